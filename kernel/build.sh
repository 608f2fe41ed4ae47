#!/bin/sh
# Build swvm's guest kernel (an uncompressed ELF vmlinux) from Debian's
# linux-source-6.1, with kernel/swvm.config on top of tinyconfig and the
# patches in kernel/patches/.
#
# The result is cached outside the repository, keyed by a hash of the
# config, the patches, this script and the source package's version:
#
#   ${SWVM_CACHE:-/var/cache/swvm}/kernel/<key>/vmlinux   (+ System.map, config)
#   ${SWVM_CACHE:-/var/cache/swvm}/kernel/current -> <key>
#
# swvm looks for kernel/current/vmlinux by default. A second run with the same
# inputs prints the cached path at once. The last line of output is the path.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${SWVM_CACHE:-/var/cache/swvm}
jobs=${JOBS:-$(nproc)}

need_pkgs=""
dpkg -s linux-source-6.1 >/dev/null 2>&1 || need_pkgs="$need_pkgs linux-source-6.1"
for p in build-essential flex bison libelf-dev libssl-dev bc xz-utils ccache patch; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ]; then
    echo "kernel/build.sh: installing$need_pkgs" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need_pkgs >&2
fi

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( (echo "linux-source-6.1 $srcver"; cat "$here/swvm.config" "$here/build.sh"; \
        for p in "$here"/patches/*.patch; do [ -e "$p" ] && cat "$p"; done) \
      | sha256sum | cut -c1-16)
out="$cache/kernel/$key"

if [ -f "$out/vmlinux" ]; then
    ln -sfn "$key" "$cache/kernel/current"
    echo "$out/vmlinux"
    exit 0
fi

mkdir -p "$cache/kernel"
work="$cache/kernel/build-$key"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT INT TERM

echo "kernel/build.sh: building $key from linux-source-6.1 $srcver" >&2
tar -C "$work" -xf /usr/src/linux-source-6.1.tar.xz
src="$work/linux-source-6.1"
for p in "$here"/patches/*.patch; do
    [ -e "$p" ] || continue
    echo "kernel/build.sh: applying $(basename "$p")" >&2
    patch -d "$src" -p1 --quiet --forward < "$p"
done

# ccache keeps rebuilds after a patch or config change short.
export CCACHE_DIR="$cache/ccache"
export CCACHE_BASEDIR="$work"
make -C "$src" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$here/swvm.config" >/dev/null
make -C "$src" -s olddefconfig >&2

# Every line of the fragment must have survived (a typo or an unmet
# dependency would otherwise silently drop an option).
missing=0
while IFS= read -r line; do
    case "$line" in
        CONFIG_*=*) grep -qxF "$line" "$src/.config" || { echo "kernel/build.sh: not applied: $line" >&2; missing=1; } ;;
        "# CONFIG_"*" is not set")
            opt=${line#\# }; opt=${opt%% *}
            if grep -q "^$opt=" "$src/.config"; then echo "kernel/build.sh: not applied: $line" >&2; missing=1; fi ;;
    esac
done < "$here/swvm.config"
[ "$missing" = 0 ] || exit 1

make -C "$src" -s -j"$jobs" CC="ccache gcc" KBUILD_BUILD_TIMESTAMP=1970-01-01 KBUILD_BUILD_USER=swvm KBUILD_BUILD_HOST=swvm vmlinux >&2

mkdir -p "$out.tmp"
cp "$src/vmlinux" "$src/System.map" "$out.tmp/"
cp "$src/.config" "$out.tmp/config"
strip --strip-debug "$out.tmp/vmlinux" 2>/dev/null || true
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$key" "$cache/kernel/current"
echo "$out/vmlinux"
