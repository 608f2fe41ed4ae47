#!/bin/sh
# Builds guest-init, the micro-VM's PID 1: a static binary (musl when
# musl-gcc is there, which keeps it ~60 KiB; glibc otherwise), cached
# outside the repository by a hash of its sources:
#
#   ${SWVM_CACHE:-/var/cache/swvm}/guest-init/<key>/init
#   ${SWVM_CACHE:-/var/cache/swvm}/guest-init/current -> <key>
#
# The last line of output is the binary's path.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${SWVM_CACHE:-/var/cache/swvm}

if ! command -v musl-gcc >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools >&2 || true
fi
if command -v musl-gcc >/dev/null 2>&1; then cc=musl-gcc; else cc=gcc; fi

key=$( (echo "$cc"; cat "$here/init.c" "$here/protocol.h" "$here/build.sh") | sha256sum | cut -c1-16)
out="$cache/guest-init/$key"
if [ ! -x "$out/init" ]; then
    mkdir -p "$out.tmp"
    $cc -static -Os -Wall -Wextra -Wno-unused-parameter -o "$out.tmp/init" "$here/init.c"
    strip "$out.tmp/init"
    rm -rf "$out"
    mv "$out.tmp" "$out"
fi
ln -sfn "$key" "$cache/guest-init/current"
echo "$out/init"
