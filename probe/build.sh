#!/bin/sh
# Builds swvm-probe (static; musl when available), cached like guest-init:
#   ${SWVM_CACHE:-/var/cache/swvm}/probe/current/swvm-probe
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${SWVM_CACHE:-/var/cache/swvm}
if command -v musl-gcc >/dev/null 2>&1; then cc=musl-gcc; else cc=gcc; fi
key=$( (echo "$cc"; cat "$here/probe.c" "$here/build.sh") | sha256sum | cut -c1-16)
out="$cache/probe/$key"
if [ ! -x "$out/swvm-probe" ]; then
    mkdir -p "$out.tmp"
    $cc -static -O2 -Wall -o "$out.tmp/swvm-probe" "$here/probe.c"
    strip "$out.tmp/swvm-probe"
    rm -rf "$out"
    mv "$out.tmp" "$out"
fi
ln -sfn "$key" "$cache/probe/current"
echo "$out/swvm-probe"
