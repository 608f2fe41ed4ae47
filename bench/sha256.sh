#!/bin/sh
# Verification speed of a 256 MiB blob: swvm's SHA-256 at two revisions
# (the file read in 64 KiB chunks, as ImageLayout.verifyBlob reads it)
# against coreutils' sha256sum, alternating, RUNS times each; prints the
# median CPU seconds (user+sys) of each.
#   bench/sha256.sh [BEFORE_REV] [RUNS]
# BEFORE_REV is a commit whose SwvmBase/SHA256.swift is the hand-written one.
set -eu
cd "$(dirname "$0")/.."
before=${1:-a1fc394}
runs=${2:-7}
work=$(mktemp -d /tmp/swvm-sha-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
head -c 268435456 /dev/urandom > "$work/blob"
cat > "$work/main.swift" <<'SWIFT'
import Glibc
let fd = open(CommandLine.arguments[1], O_RDONLY)
let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
var h = SHA256()
while true {
    let n = read(fd, buf, 1 << 16)
    if n <= 0 { break }
    h.update(UnsafeRawBufferPointer(start: buf, count: n))
}
print(h.finalizeHex())
SWIFT
# The old file uses hex() from the same file; both define it.
git show "$before:Sources/SwvmBase/SHA256.swift" > "$work/old.swift"
swiftc -O "$work/old.swift" "$work/main.swift" -o "$work/before" 2>/dev/null
swiftc -O -I Sources/CLibcrypto Sources/SwvmBase/SHA256.swift "$work/main.swift" -o "$work/after" -lcrypto 2>/dev/null
want=$(sha256sum "$work/blob" | cut -d' ' -f1)
for b in before after; do
    got=$("$work/$b" "$work/blob")
    [ "$got" = "$want" ] || { echo "$b: wrong digest $got" >&2; exit 1; }
done
cpu() { /usr/bin/time -f "%U %S" "$@" >/dev/null 2>"$work/t" && awk '{print $1 + $2}' "$work/t"; }
: > "$work/before.t"; : > "$work/after.t"; : > "$work/sha256sum.t"
i=0
while [ $i -lt "$runs" ]; do
    cpu "$work/before" "$work/blob" >> "$work/before.t"
    cpu "$work/after" "$work/blob" >> "$work/after.t"
    cpu sha256sum "$work/blob" >> "$work/sha256sum.t"
    i=$((i + 1))
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f s (%.2f-%.2f)\n", m, a[1], a[NR]}'; }
echo "256 MiB, $runs runs each, CPU seconds (user+sys), median (min-max):"
echo "  before ($before, hand-written): $(median "$work/before.t")"
echo "  after (libcrypto):              $(median "$work/after.t")"
echo "  sha256sum:                      $(median "$work/sha256sum.t")"
