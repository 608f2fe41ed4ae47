#!/bin/sh
# Builds examples/busybox/: an OCI image layout (oci-layout, index.json,
# blobs/sha256/...) with one gzip layer made from Debian's busybox-static,
# ref "latest". Deterministic: the same busybox gives the same digests.
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

# The layer: a sorted, owner-normalised tar with fixed mtimes, gzip -n.
mtime="2024-01-01 00:00:00Z"
tar --sort=name --mtime="$mtime" --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -9 -n -c "$work/layer.tar" > "$work/layer.tar.gz"
layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")

cat > "$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"swvm scripts/build-example-image.sh (busybox-static)"}]}
EOF
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")

cat > "$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_digest","size":$layer_size}]}
EOF
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")

rm -rf "$out.tmp"
mkdir -p "$out.tmp/blobs/sha256"
cp "$work/layer.tar.gz" "$out.tmp/blobs/sha256/$layer_digest"
cp "$work/config.json" "$out.tmp/blobs/sha256/$config_digest"
cp "$work/manifest.json" "$out.tmp/blobs/sha256/$manifest_digest"
echo '{"imageLayoutVersion":"1.0.0"}' > "$out.tmp/oci-layout"
cat > "$out.tmp/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}
EOF
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out (manifest sha256:$manifest_digest)"
