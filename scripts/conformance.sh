#!/bin/bash
# Runs the OCI runtime-tools validation programs (validation/*/*.go of
# github.com/opencontainers/runtime-tools) against one or more runtimes, side
# by side, and prints TAP: one test point per program and runtime, then a
# "RUNTIME: N passed, M failed" line per runtime.
#
#   scripts/conformance.sh [RUNTIME...]     (default: $RUNTIME, else swvm's
#                                            release build)
#   e.g. scripts/conformance.sh .build/release/swvm /usr/sbin/runc /usr/bin/crun
#
# Environment:
#   SWVM_CACHE          cache root (default /var/cache/swvm); everything this
#                       script writes is under $SWVM_CACHE/conformance
#   RUNTIME_TOOLS_SRC   a runtime-tools source tree to use instead of Debian's
#                       source package
#   CONFORMANCE_ONLY    space-separated program names to run (default: all)
#   CONFORMANCE_TIMEOUT seconds per program (default 120)
#
# The source comes from Debian's golang-github-opencontainers-runtime-tools
# source package, fetched by `apt-get source` through a private sources list:
# apt checks the signed Sources index, the .dsc's checksums and the tarballs'.
# The programs are built offline (GOPATH mode, GOPROXY=off) against the
# source's vendor/ and Debian's golang-*-dev packages, as runtime-tools'
# Makefile builds them (`go test -c` of each validation/NAME/), and run as its
# `localvalidation` target runs them: RUNTIME=... ./NAME.t in a directory that
# holds runtimetest and rootfs-amd64.tar.gz (here: the example busybox image's
# layer, from scripts/build-example-image.sh).
#
# A program passes when it exits 0, prints no "not ok" point and, if it
# printed no "ok" point either, printed no YAML diagnostic block: the
# lifecycle programs (prestart, poststop, ...) report a failure only as a
# diagnostic under a 1..0 plan, and the *_fail programs print nothing (but the
# runtime's error) when the runtime rightly refused the config. Plans and test
# numbers are not checked: runtimetest's seccomp check prints its own numbered
# SKIP points into the outer stream. Each runtime gets a private
# --root under the cache (a wrapper script), so leftover containers are found
# and deleted with --force after every program; leftover test cgroups
# (/sys/fs/cgroup/*/cgrouptest) are removed when empty; bundles live in a
# private TMPDIR that is emptied. Run it under the test lock:
#   flock -o /tmp/swvm-test.lock scripts/conformance.sh ...
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${SWVM_CACHE:-/var/cache/swvm}/conformance
timeout_s=${CONFORMANCE_TIMEOUT:-120}
pkg=golang-github-opencontainers-runtime-tools

die() { echo "conformance: $*" >&2; exit 2; }
# The runtimes, as absolute paths (the script changes directory below).
if [ $# -eq 0 ]; then set -- "${RUNTIME:-$here/.build/release/swvm}"; fi
runtimes=()
for rt in "$@"; do
    case $rt in /*) ;; */*) rt=$(cd "$(dirname "$rt")" 2>/dev/null && pwd)/$(basename "$rt") ;; *) rt=$(command -v "$rt") ;; esac
    [ -x "$rt" ] || die "$rt is not executable"
    runtimes+=("$rt")
done
[ "$(id -u)" = 0 ] || die "must run as root (the programs create containers)"
mkdir -p "$cache" || die "cannot create $cache"

# --- packages ---------------------------------------------------------------
deps="golang-go busybox-static dpkg-dev golang-github-blang-semver-dev
 golang-github-google-uuid-dev golang-github-hashicorp-go-multierror-dev
 golang-github-mrunalp-fileutils-dev golang-github-opencontainers-specs-dev
 golang-github-opencontainers-selinux-dev golang-github-satori-go.uuid-dev
 golang-github-sirupsen-logrus-dev golang-github-urfave-cli-dev
 golang-github-xeipuuv-gojsonschema-dev golang-gocapability-dev
 golang-golang-x-sys-dev golang-github-opencontainers-runtime-tools-dev"
missing=
for p in $deps; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "conformance: installing$missing" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2 \
        || die "apt-get install$missing failed"
fi

# --- source -----------------------------------------------------------------
# fetch_debian_source DIR: apt-get source into DIR with a private sources list
# (deb-src of the release this machine runs), unpacked by dpkg-source.
fetch_debian_source() {
    local dir=$1 apt=$cache/apt suite
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
        > "$apt/sources.list"
    local opts="-o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=/nonexistent
        -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o APT::Sandbox::User=root"
    apt-get $opts update >&2 || return 1
    (cd "$dir" && apt-get $opts source --download-only "$pkg") >&2 || return 1
    local dsc
    dsc=$(ls "$dir"/${pkg}_*.dsc 2>/dev/null | head -n1)
    [ -n "$dsc" ] || return 1
    (cd "$dir" && dpkg-source --no-check -x "$(basename "$dsc")" src) >&2 || return 1
}

src=${RUNTIME_TOOLS_SRC:-}
if [ -z "$src" ]; then
    src=$cache/debian/src
    if [ ! -d "$src/validation" ]; then
        rm -rf "$cache/debian"
        fetch_debian_source "$cache/debian" || die "could not fetch Debian's $pkg source package
(the source tarball must be reachable from deb.debian.org); set RUNTIME_TOOLS_SRC=DIR to use a checkout"
    fi
fi
[ -d "$src/validation" ] && [ -d "$src/cmd/runtimetest" ] || die "$src is not a runtime-tools source tree"

# --- build ------------------------------------------------------------------
gopath=$cache/gopath
bin=$cache/bin
mkdir -p "$gopath/src/github.com/opencontainers" "$bin"
ln -sfn "$(cd "$src" && pwd)" "$gopath/src/github.com/opencontainers/runtime-tools"
export GOPATH=$gopath:/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= \
       CGO_ENABLED=0 GOCACHE=$cache/gocache GOTMPDIR=
cd "$gopath/src/github.com/opencontainers/runtime-tools" || die "no source link"
stamp=$(find -L . -name '*.go' -newer "$bin/.built" 2>/dev/null | head -n1)
if [ ! -f "$bin/.built" ] || [ -n "$stamp" ]; then
    go build -o "$bin/runtimetest" ./cmd/runtimetest || die "runtimetest does not build"
    : > "$bin/.failed-to-build"
    for d in validation/*/; do
        name=$(basename "$d")
        [ "$name" = util ] && continue
        ls "$d"*.go >/dev/null 2>&1 || continue
        go build -o "$bin/$name.t" "./$d" 2> "$bin/$name.build.log" \
            || echo "$name" >> "$bin/.failed-to-build"
    done
    touch "$bin/.built"
fi

# --- rootfs -----------------------------------------------------------------
image=$here/examples/busybox
[ -f "$image/index.json" ] || "$here/scripts/build-example-image.sh" "$image" >&2 || die "no example image"
layer=$(python3 -c '
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + i["manifests"][0]["digest"].split(":")[1]))
print(d + "/blobs/sha256/" + m["layers"][0]["digest"].split(":")[1])' "$image") || die "cannot read $image"
run=$cache/run
mkdir -p "$run"
cp "$layer" "$run/rootfs-amd64.tar.gz"
cp "$bin/runtimetest" "$run/runtimetest"

# --- runtimes ---------------------------------------------------------------
programs=${CONFORMANCE_ONLY:-$(cd "$bin" && ls *.t | sed 's/\.t$//')}

# cleanup RT STATE: delete every container left under the private root, and
# the test cgroups the programs make; empty the private TMPDIR (bundles).
cleanup() {
    local rt=$1 state=$2 id
    for id in $(ls "$state" 2>/dev/null); do
        [ -d "$state/$id" ] || continue
        "$rt" --root "$state" kill "$id" KILL >/dev/null 2>&1
        "$rt" --root "$state" delete --force "$id" >/dev/null 2>&1
    done
    for cg in /sys/fs/cgroup/*/cgrouptest /sys/fs/cgroup/cgrouptest; do
        [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
    done
    # A runtime that runs a config without a mount namespace (runc, in
    # linux_ns_itype) mounts in this one: unmount what is left under the
    # bundles, deepest first, before removing them (never across a mount).
    awk -v p="$cache/tmp/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf --one-file-system "$cache/tmp/"* 2>/dev/null
}

# judge LOG STATUS: 0 when the program passed (see the header).
judge() {
    local log=$1 status=$2
    [ "$status" = 0 ] || return 1
    grep -qE '^not ok' "$log" && return 1
    grep -qE '^ok ' "$log" && return 0
    ! grep -qE '^  ---' "$log"
}

results=$cache/results
mkdir -p "$results" "$cache/tmp"
declare -A passed failed
total=$((${#runtimes[@]} * $(echo "$programs" | wc -w)))
echo "TAP version 13"
echo "1..$total"
n=0
for rt in "${runtimes[@]}"; do
    label=$(basename "$rt")
    state=$cache/state/$label
    mkdir -p "$state" "$results/$label"
    wrapper=$cache/wrap/$label
    mkdir -p "$(dirname "$wrapper")"
    printf '#!/bin/sh\nexec %s --root %s "$@"\n' "$rt" "$state" > "$wrapper"
    chmod +x "$wrapper"
    passed[$label]=0; failed[$label]=0
    for p in $programs; do
        n=$((n + 1))
        log=$results/$label/$p.tap
        if [ ! -x "$bin/$p.t" ]; then
            echo "not ok $n - $label $p # did not build (see $bin/$p.build.log)"
            failed[$label]=$((failed[$label] + 1)); continue
        fi
        (cd "$run" && TMPDIR=$cache/tmp RUNTIME=$wrapper timeout -k 5 "$timeout_s" "$bin/$p.t") > "$log" 2>&1
        status=$?
        cleanup "$rt" "$state"
        if judge "$log" "$status"; then
            echo "ok $n - $label $p"
            passed[$label]=$((passed[$label] + 1))
        else
            echo "not ok $n - $label $p # exit $status, see $log"
            failed[$label]=$((failed[$label] + 1))
        fi
    done
done
for rt in "${runtimes[@]}"; do
    label=$(basename "$rt")
    echo "# $label: ${passed[$label]} passed, ${failed[$label]} failed"
done
