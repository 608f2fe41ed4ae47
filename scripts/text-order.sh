#!/bin/sh
# Writes scripts/swvm.order, the symbol ordering file scripts/build-release.sh
# links swvm with: the functions `swvm run --isolation=container IMAGE -- true`
# executes (then those a VM run's VMM adds), those in small sections first, then those inside the few large
# sections that hold many functions (the Swift standard library's), so that
# the code a run needs shares pages. A function it does not name keeps the
# linker's place, so a stale file costs memory, never correctness; re-run
# this after changing what a container run executes.
#
# The functions come from perf: samples of 300 runs, then the instruction
# fetches that fault (each maps a 64 KiB window), relinking until the order
# stops changing. (valgrind would list them exactly but lacks openat2.)
set -eu
cd "$(dirname "$0")/.."
export SWVM_BUILD_PATH=${SWVM_BUILD_PATH:-.build}
swvm=$SWVM_BUILD_PATH/release/swvm
image=examples/busybox
work=$(mktemp -d /tmp/swvm-text-order.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -f "$image/index.json" ] || scripts/build-example-image.sh
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null

link() { scripts/build-release.sh -Xlinker -Map="$work/map" >/dev/null; }
# Symbols of swvm's own instruction fetches in a perf recording, from any
# of its threads (a VM run's are swvm-vcpu0, swvm-events, ...).
symbols() { perf script -i "$1" --no-demangle -F comm,ip,sym 2>/dev/null | awk '$1 ~ /^swvm/ && NF >= 3 && $3 != "[unknown]" { print $3 }'; }

[ -f scripts/swvm.order ] || : >scripts/swvm.order
link
"$swvm" run "$image" -- true    # unpack the image and cache the seccomp filter first
perf record -q -F 40000 -e cpu-clock:u -o "$work/samples" -- sh -c "for i in \$(seq 300); do $swvm run $image -- true; done" >/dev/null 2>&1
symbols "$work/samples" >"$work/found"
# Then what a VM run executes in the VMM (after the container's, which keeps
# its place): a first run boots and saves the snapshot, the others restore it.
if [ -e /dev/kvm ]; then
    perf record -q -F 20000 -e cpu-clock:u -o "$work/vm-samples" -- sh -c "for i in \$(seq 6); do $swvm run --isolation=vm $image -- true; done" >/dev/null 2>&1
    symbols "$work/vm-samples" >>"$work/found"
fi
for round in $(seq 20); do
    perf record -q -e page-faults -c 1 -d -o "$work/faults" -- "$swvm" run "$image" -- true >/dev/null 2>&1
    perf script -i "$work/faults" --no-demangle -F comm,addr,ip,sym 2>/dev/null |
        awk '$1 == "swvm" && $2 == $4 && $5 != "[unknown]" { print $5 }' >>"$work/found"
    python3 - "$work/map" "$work/found" "$work/order" <<'PY'
import sys
mapfile, found, out = sys.argv[1:4]
# lld's map: an input section's line ("... FILE:(SECTION)"), then its symbols.
size, section = {}, None
for line in open(mapfile):
    f = line.split()
    if len(f) != 5:
        continue
    if ":(" in f[4]:
        section = int(f[2], 16) if ".text" in f[4] else None
    elif section is not None:
        size.setdefault(f[4], section)
names = list(dict.fromkeys(open(found).read().split()))
small = [n for n in names if size.get(n, 0) < 16 << 10]
large = [n for n in names if size.get(n, 0) >= 16 << 10]
open(out, "w").write("".join(n + "\n" for n in small + large))
PY
    cmp -s "$work/order" scripts/swvm.order && break
    cp "$work/order" scripts/swvm.order
    link
    echo "round $round: $(wc -l <scripts/swvm.order) functions"
done
