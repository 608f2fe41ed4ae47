"""A lone --network bridge container run, which makes and removes swvm0
and its nftables table, vs the same run while another run holds them (no
peer: the cost of cleaning up)."""
import subprocess
import time

from .harness import SWVM, Results, need, runs_option, scratch_directory, spread
from .netutil import bridge_held
from .rootfs import netperf_tools

NAME = "bridge"
HELP = "a --network bridge run alone (makes and removes swvm0) vs while another run holds it"
add_arguments = runs_option(10)


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    work = scratch_directory(NAME)
    _, rootfs = netperf_tools(work)
    argv = [SWVM, "run", "--network", "bridge", rootfs, "--", "sh", "-c", "true"]

    def times():
        out = []
        for _ in range(args.runs):
            t = time.monotonic()
            subprocess.run(argv, check=True)
            out.append(time.monotonic() - t)
        return out
    # Not alternating: the held case needs the holder for all its runs.
    alone = times()
    with bridge_held(rootfs):
        held = times()
    r = Results(NAME, f"`{' '.join(argv)}`, {args.runs} runs each, wall time of the whole swvm run", args)
    r.command("alone", argv)
    r.command("held", argv + ["  (while another --network bridge run holds swvm0)"])
    print(f"## {r.data['title']}\n")
    print("| | median ms (min-max) |\n| --- | --- |")
    for name, label, ts in (("alone", "alone: makes and removes the bridge and table", alone),
                            ("held", "another run holds them", held)):
        r.series(name, "time", "s", ts)
        print(f"| {label} | {spread(ts, scale=1e3)} |")
    print()
    r.ratio("alone/held", "alone", "held", "time")
    r.write()
