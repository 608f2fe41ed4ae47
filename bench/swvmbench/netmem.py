"""The VMM's memory beyond guest RAM without a network, with --network
bridge idle, and after traffic through the virtio-net device."""
import atexit
import shutil
import statistics
import subprocess
import tempfile
import time

from .harness import KERNEL, SWVM, Results, alternate, need, pss_kib, spread, vmm_overhead_kib
from .netutil import SERVE, measure_net, start_server, stop_server
from .rootfs import netperf_tools

NAME = "netmem"
HELP = "the VMM's memory without a network, with --network bridge, and after traffic"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--pings", type=int, default=500)
    p.add_argument("--timeout", type=float, default=300)


def one_run(args, name, argv, tool, mem):
    """[(state, RSS beyond guest RAM KiB, PSS KiB)] of one VM."""
    p, address, _ = start_server(argv, args.timeout)
    out = []
    try:
        time.sleep(2)   # past the VMM's trim of its start-up pages (1 s in)
        out.append(("none" if name == "none" else "bridge idle", vmm_overhead_kib(p.pid, mem << 20), pss_kib(p.pid)))
        if name == "bridge":
            measure_net(tool, address, args.seconds, args.pings)
            time.sleep(2)
            out.append(("bridge after traffic", vmm_overhead_kib(p.pid, mem << 20), pss_kib(p.pid)))
    finally:
        stop_server(p)
    return out


def run(args):
    need(SWVM, "run: swift build -c release")
    need(KERNEL, "run: kernel/build.sh")
    work = tempfile.mkdtemp(prefix="swvm-bench-netmem-")
    atexit.register(shutil.rmtree, work, True)
    tool, rootfs = netperf_tools(work)
    mem = 128
    vm = [SWVM, "run", "--isolation=vm", "--memory", f"{mem - 64}m"]
    idle = "trap 'exit 0' TERM; echo addr=0.0.0.0; echo ready; sleep 120 & wait"
    contenders = {
        "none": vm + [rootfs, "--", "sh", "-c", idle],
        "bridge": vm + ["--network", "bridge", rootfs, "--", "sh", "-c", SERVE],
    }
    # The snapshot exists after a first run.
    for argv in contenders.values():
        subprocess.run(argv[:-4] + ["--", "sh", "-c", "true"], check=True)
    got = alternate(args.runs, {name: (lambda i, name=name, argv=argv: one_run(args, name, argv, tool, mem))
                                for name, argv in contenders.items()})
    r = Results(NAME, f"VMM memory with the network device: {args.runs} runs each, alternating, a {mem} MiB guest", args)
    r.show_commands(contenders, end="")
    print(f"traffic: {tool} tput ADDRESS 5201 {args.seconds}; {tool} rtt ADDRESS 5201 {args.pings}\n")
    samples = [s for runs in got.values() for run_ in runs for s in run_]
    states = ("none", "bridge idle", "bridge after traffic")
    for state in states:
        r.series(state, "RSS beyond guest RAM", "KiB", [o for s, o, _ in samples if s == state])
        r.series(state, "PSS", "KiB", [x for s, _, x in samples if s == state])
    print("| VM | RSS beyond guest RAM, MiB (median, min-max) | PSS of the process, MiB (median) |")
    print("| --- | --- | --- |")
    for state in states:
        print(f"| {state} | {spread(r.values(state, 'RSS beyond guest RAM'), 2, 1 / 1024)} | "
              f"{statistics.median(r.values(state, 'PSS')) / 1024:.1f} |")
    base = statistics.median(r.values("none", "RSS beyond guest RAM"))
    print()
    for state in states[1:]:
        m = statistics.median(r.values(state, "RSS beyond guest RAM"))
        r.data["ratios"][f"{state}/none"] = round(m / base, 4)
        print(f"{state} - none: {(m - base) / 1024:+.2f} MiB (ratio {m / base:.3f})")
    r.write()
