#!/bin/sh
# Builds examples/busybox/: an OCI image layout (oci-layout, index.json,
# blobs/sha256/...) with one gzip layer made from Debian's busybox-static,
# ref "latest" (packed by scripts/pack-oci-image.sh). Deterministic: the same
# busybox gives the same digests.
#
#   scripts/build-example-image.sh [OUTPUT_DIR]
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/examples/busybox}
busybox=/bin/busybox

if ! dpkg -s busybox-static >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2
fi
file -L "$busybox" 2>/dev/null | grep -q "statically linked" || {
    echo "build-example-image: $busybox is not the static busybox" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/home/app" \
         "$root/proc" "$root/sys" "$root/dev" "$root/var" "$root/usr/bin" "$root/usr/sbin" "$root/sbin"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
done
cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
tty:x:5:
app:x:1000:
audio:x:29:app
video:x:44:app
nogroup:x:65534:
EOF
chown 1000:1000 "$root/home/app"
echo "swvm-example" > "$root/etc/hostname"

"$here/scripts/pack-oci-image.sh" "$root" "$out" '["sh"]' "swvm scripts/build-example-image.sh (busybox-static)"
