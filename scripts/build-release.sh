#!/bin/sh
# Builds swvm's release binary, as scripts/setup.sh and scripts/text-order.sh
# need it (SWVM_BUILD_PATH, default .build; extra arguments go to swift build).
#
# Fully static: no dynamic loading or relocation at start-up, which keeps
# `swvm run` close to crun's start time. Every function in its own section,
# laid out by lld in the order of scripts/swvm.order (the code a container
# run executes, scripts/text-order.sh): a page fault maps a 64 KiB window of
# the binary, and with that code together a run maps about 3.5 MiB of its
# code instead of 6.5 (its peak RSS, BENCHMARKS.md). scripts/rodata-rw.ld
# keeps .rodata read-only (a VM's VMM then holds 4.5 MiB, not 5.2).
set -eu
cd "$(dirname "$0")/.."
. scripts/private-tmpdir.sh
build=${SWVM_BUILD_PATH:-.build}
# SwiftPM does not see the order file as an input: always relink.
rm -f "$build/release/swvm"
swift build -c release --scratch-path "$build" -Xswiftc -static-executable -Xswiftc -use-ld=lld \
    -Xswiftc -Xfrontend -Xswiftc -function-sections \
    -Xlinker --symbol-ordering-file="$PWD/scripts/swvm.order" -Xlinker --no-warn-symbol-ordering -Xlinker -T -Xlinker "$PWD/scripts/rodata-rw.ld" "$@"
