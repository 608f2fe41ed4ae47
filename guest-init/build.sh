#!/bin/sh
# Builds guest-init, the micro-VM's PID 1: a static binary (musl when
# musl-gcc is there, which keeps it small; glibc otherwise) of init.c, the
# files beside it (exec.c) and
# the C confinement swvm shares with it (Sources/CConfinement), cached
# outside the repository by a hash of its sources (scripts/setup.sh
# installs musl-tools):
#
#   ${SWVM_CACHE:-/var/cache/swvm}/guest-init/<key>/init
#   ${SWVM_CACHE:-/var/cache/swvm}/guest-init/current -> <key>
#
# The last line of output is the binary's path.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared="$here/../Sources/CConfinement"
cache=${SWVM_CACHE:-/var/cache/swvm}

if command -v musl-gcc >/dev/null 2>&1; then cc=musl-gcc; else cc=gcc; fi

sources="$(ls "$here"/*.c "$shared"/*.c | sort | tr '\n' ' ')"
key=$( (echo "$cc"; cat $sources "$shared"/include/*.h "$here"/*.h "$here/build.sh") | sha256sum | cut -c1-16)
out="$cache/guest-init/$key"
if [ ! -x "$out/init" ]; then
    mkdir -p "$out.tmp"
    $cc -static -Os -Wall -Wextra -Wno-unused-parameter -I "$shared/include" -o "$out.tmp/init" $sources
    strip "$out.tmp/init"
    rm -rf "$out"
    mv "$out.tmp" "$out"
fi
ln -sfn "$key" "$cache/guest-init/current"
echo "$out/init"
