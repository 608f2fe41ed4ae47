#!/bin/sh
# netavark (podman's network) adds base chains to iptables' nat and filter
# tables and never removes them. The engine tests and the podman benchmark
# run a podman of their own; this removes what it added:
#
#   netavark-chains.sh present   exit 0 if netavark's chains exist already
#   netavark-chains.sh remove    delete the jumps into NETAVARK* chains, then the chains
set -eu
case "${1:-}" in
present)
    iptables -t nat -S 2>/dev/null | grep -q '^-N NETAVARK' ;;
remove)
    for t in nat filter; do
        # Jumps first (a chain still referenced cannot be deleted).
        iptables -t "$t" -S 2>/dev/null | grep -E '^-A [A-Z_]+ .*-j NETAVARK' | grep -v '^-A NETAVARK' |
            while read -r rule; do
                eval "iptables -t $t -D ${rule#-A }"
            done
        for c in $(iptables -t "$t" -S 2>/dev/null | sed -n 's/^-N \(NETAVARK[A-Z_-]*\)$/\1/p'); do
            iptables -t "$t" -F "$c"
        done
        for c in $(iptables -t "$t" -S 2>/dev/null | sed -n 's/^-N \(NETAVARK[A-Z_-]*\)$/\1/p'); do
            iptables -t "$t" -X "$c"
        done
    done ;;
*)
    echo "usage: $0 present|remove" >&2; exit 2 ;;
esac
