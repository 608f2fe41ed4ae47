#!/bin/sh
# As root: sets swvm up on a fresh Debian 12 machine and runs the example image at
# both isolation levels:
#
#   scripts/setup.sh            install, build, run examples/busybox
#   scripts/setup.sh --no-run   install and build only (tests use this)
#   scripts/setup.sh --packages-only   install the Debian packages only
#
# It installs Debian packages (with podman, containerd, runc, conmon, skopeo
# and netavark, which drive swvm as an OCI runtime in the engine tests;
# netavark needs iptables, the tests' CRI client python3-grpcio, the CRI pod
# test at the VM level the CNI plugins of containernetworking-plugins), builds
# the guest kernel (kernel/build.sh, cached in /var/cache/swvm) and
# guest-init, builds swvm, and makes the
# example OCI image in examples/busybox from Debian's busybox-static.
set -eu
cd "$(dirname "$0")/.."

run=1 packages_only=0
[ "${1:-}" = "--no-run" ] && run=0
[ "${1:-}" = "--packages-only" ] && packages_only=1

if [ "$(id -u)" != 0 ]; then
    echo "scripts/setup.sh: run as root (swvm creates namespaces, cgroups and VMs)" >&2
    exit 1
fi

pkgs="build-essential pkg-config libseccomp-dev zlib1g-dev libzstd-dev libssl-dev e2fsprogs busybox-static
      musl-tools file cpio xz-utils zstd iproute2 util-linux python3 python3-jsonschema ccache crun
      qemu-system-x86 umoci chromium time nftables linux-perf
      podman containerd runc conmon skopeo netavark aardvark-dns iptables python3-grpcio
      containernetworking-plugins"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ "$packages_only" = 1 ] && exit 0

echo "== guest kernel"
kernel/build.sh
echo "== guest-init and the compare probe"
guest-init/build.sh
probe/build.sh
echo "== swvm (release, statically linked)"
scripts/build-release.sh
echo "== example image"
scripts/build-example-image.sh

if [ "$run" = 1 ]; then
    swvm=.build/release/swvm
    echo "== $swvm run --isolation=container examples/busybox -- echo hello"
    $swvm run --isolation=container examples/busybox -- echo hello
    if [ -w /dev/kvm ]; then
        echo "== $swvm run --isolation=vm examples/busybox -- echo hello   (the first VM run on a machine boots the guest and saves a snapshot: ~20 s on a PVM host; later runs restore it)"
        $swvm run --isolation=vm examples/busybox -- echo hello
    else
        echo "== skipping --isolation=vm: /dev/kvm is not available here"
    fi
fi
