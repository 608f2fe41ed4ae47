#!/bin/sh
# Packs a root directory as an OCI image layout (oci-layout, index.json,
# blobs/sha256/...) with one gzip layer, ref "latest". Deterministic: the
# same tree gives the same digests (sorted, owner-normalised tar with fixed
# mtimes, gzip -n).
#
#   scripts/pack-oci-image.sh ROOTFS OUTPUT_DIR CMD_JSON CREATED_BY
#   e.g. scripts/pack-oci-image.sh /tmp/root examples/x '["sh"]' 'my script'
set -eu
[ $# -eq 4 ] || { echo "usage: pack-oci-image.sh ROOTFS OUTPUT_DIR CMD_JSON CREATED_BY" >&2; exit 2; }
root=$1 out=$2 cmd=$3 created_by=$4
[ -d "$root" ] || { echo "pack-oci-image: $root is not a directory" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mtime="2024-01-01 00:00:00Z"
tar --sort=name --mtime="$mtime" --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -9 -n -c "$work/layer.tar" > "$work/layer.tar.gz"
layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")

cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":$cmd,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"$created_by"}]}
JSON
config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")

cat > "$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")

rm -rf "$out.tmp"
mkdir -p "$out.tmp/blobs/sha256"
cp "$work/layer.tar.gz" "$out.tmp/blobs/sha256/$layer_digest"
cp "$work/config.json" "$out.tmp/blobs/sha256/$config_digest"
cp "$work/manifest.json" "$out.tmp/blobs/sha256/$manifest_digest"
echo '{"imageLayoutVersion":"1.0.0"}' > "$out.tmp/oci-layout"
cat > "$out.tmp/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}
JSON
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out (manifest sha256:$manifest_digest)"
