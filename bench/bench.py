#!/usr/bin/env python3
"""swvm's benchmarks, each against a peer, side by side in one run.

    bench/bench.py container [--runs 20]   swvm run --isolation=container vs crun run
    bench/bench.py boot [--runs 5]         swvm boot vs qemu-system-x86_64 -M microvm
    bench/bench.py vm [--runs 5]           swvm run --isolation=vm vs the container path
                                           vs QEMU microvm booting the same kernel and disk
    bench/bench.py init [--runs 3]         a minimal static PID 1 in Swift vs in C (musl),
                                           booted by swvm: why guest-init is written in C
    bench/bench.py warm [--runs 5]         warm start (snapshot restore) vs cold boot vs QEMU
                                           microvm's cold boot; restore alone vs QEMU's
                                           -incoming; host memory of 4 concurrent VMs
    bench/bench.py python [--runs 5]       a Debian image's python3 -c 'print(1)' in a VM
                                           from its template vs from the boot snapshot
                                           (scripts/build-debian-image.sh's image)
    bench/bench.py warmvol [--runs 5]      a -v run from the image template vs from the
                                           boot snapshot (and a run without -v from the
                                           template)
    bench/bench.py net [--runs 3]          TCP throughput and round trip from the host to a
                                           server in a container (veth), a VM (tap +
                                           virtio-net), QEMU microvm (tap + its
                                           virtio-net-device) and the host's own loopback
    bench/bench.py podnet [--runs 3]       TCP throughput and round trip from the host to a
                                           server in a VM through a pod's network namespace
                                           (--network ns:PATH, tc mirred) vs through swvm's
                                           own --network bridge
    bench/bench.py volumes [--runs 3]      1,000 small files and one 100 MiB file through a
                                           container's bind mount, swvm's virtio-9p share and
                                           QEMU microvm's -virtfs (9p) on the same kernel
    bench/bench.py netmem [--runs 5]       the VMM's memory beyond guest RAM without a
                                           network, with --network bridge, and after
                                           traffic through virtio-net
    bench/bench.py bridge [--runs 10]      a lone --network bridge container run, which
                                           makes and removes swvm0 and its nftables
                                           table, vs the same run while another run
                                           holds them (no peer: the cost of cleaning up)

    bench/bench.py oci [--runs 20]         the OCI runtime command line: create + start +
                                           wait + delete of a bundle running `true`, swvm
                                           vs runc (time and the runtime's peak RSS);
                                           --runtime NAME=PATH names other contenders
    bench/bench.py podman [--runs 20]      `podman run --rm IMAGE true` with swvm vs runc
                                           as podman's runtime (a private podman store)
    bench/bench.py builds --baseline BIN   this swvm build vs another (e.g. an older
                                           commit's): container start, warm VM start and
                                           small files through 9p, alternating
    bench/bench.py podmanvm [--runs 10]    `podman run --rm IMAGE true` at the VM level (a
                                           swvm-vm link) vs `swvm run --isolation=vm`, with
                                           podman's own cost beside it (podman with runc vs
                                           runc run, podman with swvm vs swvm run at the
                                           container level) and the phases of a podman run
                                           at the VM level (each runtime call timestamped)

    bench/bench.py vmdetach [--runs 5]    `swvm run -d --isolation=vm` start to ready vs the
                                           foreground run; `swvm exec` of true into it vs a
                                           warm `swvm run --isolation=vm -- true`

    bench/bench.py table RESULTS.json...   a results file as BENCHMARKS.md's Markdown
                                           table, with the command that made it

Runs alternate between the contenders so that drift on a shared, noisy
machine hits both alike. Each prints medians (with min-max), the ratio of
the medians, and peak memory, and the exact commands it ran, and writes
every run's figures to a JSON results file (--json FILE, default
bench/results/NAME-UTCTIME.json). Times are wall
clock; memory is the peak RSS of the process tree (wait4's ru_maxrss) or,
for VMMs, the resident memory outside the guest's RAM mapping.

The code is the package bench/swvmbench: harness.py (the alternating runs,
medians, ratios, peak memory, the results file), one module per benchmark,
table.py. SWVM_BINARY names another swvm binary, SWVM_CACHE another cache.

Needs: the release build (scripts/setup.sh --no-run), kernel/build.sh and
guest-init/build.sh outputs, scripts/build-example-image.sh's image, and for
the peers Debian's crun, runc, podman and qemu-system-x86 packages.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from swvmbench.cli import main  # noqa: E402

if __name__ == "__main__":
    main(__doc__)
