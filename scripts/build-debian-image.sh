#!/bin/sh
# Builds examples/debian-python3/: a Debian 12 (bookworm) minbase image with
# Debian's python3, made by mmdebstrap from the host apt sources' packages and
# packed as an OCI image layout by scripts/pack-oci-image.sh, ref "latest".
# For the benchmark of issue 22 (a Debian image's `python3 -c ...` in a VM).
#
#   scripts/build-debian-image.sh [OUTPUT_DIR]
#
# SOURCE_DATE_EPOCH fixes the timestamps mmdebstrap writes; the package
# versions are whatever the mirror has today, so the digests change with them.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/examples/debian-python3}

if ! command -v mmdebstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
export SOURCE_DATE_EPOCH=1704067200
# Without apt's lists and caches, man pages and docs: only what runs.
mmdebstrap --variant=minbase --include=python3 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$work/rootfs" >&2
"$here/scripts/pack-oci-image.sh" "$work/rootfs" "$out" '["python3"]' "swvm scripts/build-debian-image.sh (mmdebstrap minbase + python3)"
