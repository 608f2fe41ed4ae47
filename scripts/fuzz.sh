#!/bin/sh
# Builds the libFuzzer harnesses (fuzz/harnesses/NAME, each compiling the real
# targets with -sanitize=fuzzer,address) and runs each for SECONDS (default
# 60), starting from its committed seed corpus (fuzz/corpus/NAME). Every input
# in fuzz/regressions/NAME (the inputs of crashes found and fixed) is replayed
# first. A crash stops the
# script with its input in .build-fuzz/artifacts/NAME/.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]     e.g. scripts/fuzz.sh 5 FuzzTar
set -eu
cd "$(dirname "$0")/.."
. scripts/private-tmpdir.sh
seconds=${1:-60}
[ $# -gt 0 ] && shift
names=${*:-FuzzTar FuzzJSON FuzzVirtqueue FuzzVirtioDevice FuzzGuestProtocol FuzzBootLoader FuzzRunSettings FuzzNineP FuzzOCIConfig FuzzOCIState FuzzTaskstats}
export SWIFT_BACKTRACE=enable=no   # libFuzzer reports crashes itself
for name in $names; do
    if [ -f "fuzz/harnesses/$name/fuzz.c" ]; then
        # A C harness (the code swvm and guest-init share): clang, with UBSan too,
        # over the files its `sources` lists (one a line), or the run settings'.
        mkdir -p .build-fuzz/release
        sources="Sources/CConfinement/run_settings.c Sources/CConfinement/exec_wire.c Sources/CConfinement/seccomp_preload.c"
        [ -f "fuzz/harnesses/$name/sources" ] && sources=$(cat "fuzz/harnesses/$name/sources")
        clang -g -O1 -fsanitize=fuzzer,address,undefined -I Sources/CConfinement/include \
            -o ".build-fuzz/release/$name" "fuzz/harnesses/$name/fuzz.c" $sources 2>&1 \
            | grep -v "Cannot export local symbol" || true
    else
        # --sanitize fuzzer: SwiftPM links libFuzzer's main. Then one -sanitize= flag
        # with both (swiftc keeps only the last of several).
        SWVM_FUZZ=1 swift build --build-path .build-fuzz -c release --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address \
            --product "$name" 2>&1 | grep -E "error|Build of product" | grep -v "^$" || true
    fi
    bin=.build-fuzz/release/$name
    [ -x "$bin" ] || { echo "fuzz.sh: $name did not build" >&2; exit 1; }
    if [ -d "fuzz/regressions/$name" ] && [ -n "$(ls "fuzz/regressions/$name")" ]; then
        "$bin" -runs=1 fuzz/regressions/"$name"/* >/dev/null 2>&1 || {
            echo "fuzz.sh: $name fails on a regression input" >&2; "$bin" fuzz/regressions/"$name"/*; exit 1; }
    fi
    scratch=.build-fuzz/corpus/$name artifacts=.build-fuzz/artifacts/$name
    mkdir -p "$scratch" "$artifacts"
    log=.build-fuzz/$name.log
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -artifact_prefix="$artifacts/" \
            "$scratch" "fuzz/corpus/$name" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz.sh: $name found a crash; its input is in $artifacts/" >&2
        exit 1
    fi
    # "Done N runs in S second(s)", and the coverage reached.
    echo "$name: $(grep -E '^Done' "$log") $(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
done
