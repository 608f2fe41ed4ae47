# Sourced by the scripts that run `swift build` or `swift test`: SwiftPM
# leaves six empty TemporaryDirectory.* in $TMPDIR on every invocation, so
# it gets a private one, removed when the script exits.
swvm_tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/swvm-swiftpm.XXXXXX")
TMPDIR=$swvm_tmpdir
export TMPDIR
trap 'rm -rf "$swvm_tmpdir"' EXIT
