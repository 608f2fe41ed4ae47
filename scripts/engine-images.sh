#!/bin/sh
# Loads the example image (examples/busybox, the OCI layout that
# scripts/build-example-image.sh makes) into podman or containerd, as
# localhost/swvm-busybox:latest. No registry is needed: skopeo turns the
# layout into an archive that the engine imports.
#
#   scripts/engine-images.sh podman [PODMAN_GLOBAL_FLAGS...]
#       e.g. --root DIR --runroot DIR (the tests' private storage)
#   scripts/engine-images.sh containerd ADDRESS [NAMESPACE...]
#       ctr --address ADDRESS -n NAMESPACE images import (default: default);
#       also localhost/swvm-pause:latest, the same image running
#       `sleep 2147483647`: the CRI plugin's pod sandbox ("pause") image
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
image=${SWVM_ENGINE_IMAGE:-$here/examples/busybox}
name=localhost/swvm-busybox:latest

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
engine=$1; shift

[ -f "$image/index.json" ] || "$here/scripts/build-example-image.sh" "$image" >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/swvm-engine-images.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# pause_layout SRC DST: a copy of the OCI layout SRC whose config's Cmd is
# `sleep 2147483647` (new config, manifest and index; the layers shared).
pause_layout() {
    cp -r "$1" "$2"
    python3 - "$2" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
def blob(digest): return os.path.join(d, "blobs", *digest.split(":"))
def put(obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    open(blob(digest), "wb").write(data)
    return digest, len(data)
index = json.load(open(os.path.join(d, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
config["config"]["Cmd"] = ["sleep", "2147483647"]
manifest["config"]["digest"], manifest["config"]["size"] = put(config)
index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(manifest)
json.dump(index, open(os.path.join(d, "index.json"), "w"))
PY
}

case $engine in
podman)
    skopeo copy -q "oci:$image:latest" "oci-archive:$work/image.tar"
    loaded=$(podman "$@" load -q -i "$work/image.tar")
    # "Loaded image: sha256:ID" (an archive without a name is loaded by id).
    id=${loaded##*sha256:}
    [ -n "$id" ] && [ "$id" != "$loaded" ] || { echo "engine-images: podman load said: $loaded" >&2; exit 1; }
    podman "$@" tag "$id" "$name"
    ;;
containerd)
    [ $# -ge 1 ] || usage
    address=$1; shift
    [ $# -ge 1 ] || set -- default
    skopeo copy -q "oci:$image:latest" "docker-archive:$work/image.tar:$name"
    pause_layout "$image" "$work/pause"
    skopeo copy -q "oci:$work/pause:latest" "docker-archive:$work/pause.tar:localhost/swvm-pause:latest"
    for namespace in "$@"; do
        ctr --address "$address" -n "$namespace" images import "$work/image.tar" >/dev/null
        ctr --address "$address" -n "$namespace" images import "$work/pause.tar" >/dev/null
    done
    ;;
*) usage ;;
esac
echo "$name"
