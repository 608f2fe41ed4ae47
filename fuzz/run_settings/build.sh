#!/bin/sh
# Builds the run settings' fuzzer (libFuzzer, with ASan and UBSan) and runs
# it over the committed corpus for ${1:-60} seconds. New inputs it finds go
# to a scratch directory, not the corpus.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared="$here/../../Sources/CConfinement"
out=${TMPDIR:-/tmp}/swvm-fuzz-run-settings
mkdir -p "$out/new"
clang -g -O1 -fsanitize=fuzzer,address,undefined -I "$shared/include" \
    -o "$out/fuzz" "$here/fuzz.c" "$shared/run_settings.c"
"$out/fuzz" -max_total_time="${1:-60}" -max_len=65536 "$out/new" "$here/corpus"
