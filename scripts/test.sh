#!/bin/sh
# Runs every test: unit tests and the integration tests that really create
# containers and boot VMs (as root, with /dev/kvm). Installs and builds what
# they need first (scripts/setup.sh --no-run; cached builds return at once).
#
#   scripts/test.sh [swift test arguments, e.g. --filter ContainerTests]
set -eu
cd "$(dirname "$0")/.."
. scripts/private-tmpdir.sh
# The developer guide's function length (seconds; names the ones to split).
python3 scripts/long-functions.py --check
scripts/setup.sh --no-run
# One test at a time: VM tests each keep a vCPU busy, and these machines
# have two cores.
swift test --no-parallel "$@"
# A full run also runs each libFuzzer harness briefly (its crash
# regressions first): scripts/fuzz.sh, FUZZING.md.
[ $# -eq 0 ] && scripts/fuzz.sh 5
exit 0
