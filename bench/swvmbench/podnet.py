"""TCP throughput and round trip from the host to a server in a VM through
a pod's network namespace (--network ns:PATH: a netns with a veth to the
host, as a CNI plugin makes it; tc mirred between the veth and the VM's
tap) vs the same server in a VM on swvm's own --network bridge."""
import atexit
import shutil
import subprocess
import tempfile

from .harness import KERNEL, SWVM, Results, alternate, need, spread
from .netutil import SERVE, measure_net, start_server, stop_server
from .rootfs import netperf_tools

NAME = "podnet"
HELP = "TCP from the host to a VM through a pod's netns vs through --network bridge"

NAMESPACE, HOST_END = "swvmbenchpod", "swvmbp0"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--pings", type=int, default=200)
    p.add_argument("--timeout", type=float, default=300)


def pod_namespace():
    """A network namespace as a CNI bridge-less plugin leaves it: eth0 (a
    veth, MTU 1500 as swvm0's) with an address and a default route to the
    host end. Removed at exit."""
    subprocess.run(["ip", "netns", "del", NAMESPACE], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    atexit.register(lambda: subprocess.run(["ip", "netns", "del", NAMESPACE], stderr=subprocess.DEVNULL))
    atexit.register(lambda: subprocess.run(["ip", "link", "del", HOST_END], stderr=subprocess.DEVNULL))
    subprocess.run(["ip", "link", "add", HOST_END, "type", "veth", "peer", "name", "eth0", "netns", NAMESPACE], check=True)
    subprocess.run(["ip", "addr", "add", "10.89.254.1/30", "dev", HOST_END], check=True)
    subprocess.run(["ip", "link", "set", HOST_END, "up"], check=True)
    for cmd in (["addr", "add", "10.89.254.2/30", "dev", "eth0"], ["link", "set", "eth0", "up"],
                ["link", "set", "lo", "up"], ["route", "add", "default", "via", "10.89.254.1"]):
        subprocess.run(["ip", "-n", NAMESPACE, *cmd], check=True)
    return f"/run/netns/{NAMESPACE}"


def one_run(args, argv, tool, mem):
    """(Gbit/s, round trip us) of one server start."""
    p, address, _ = start_server(argv, args.timeout)
    try:
        return measure_net(tool, address, args.seconds, args.pings)
    finally:
        stop_server(p)


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build), or set SWVM_BINARY")
    need(KERNEL, "run: kernel/build.sh (with CONFIG_INET)")
    work = tempfile.mkdtemp(prefix="swvm-bench-podnet-")
    atexit.register(shutil.rmtree, work, True)
    tool, rootfs = netperf_tools(work)
    mem = 128
    vm = [SWVM, "run", "--isolation=vm", "--memory", f"{mem - 64}m"]
    contenders = {
        "bridge": vm + ["--network", "bridge", rootfs, "--", "sh", "-c", SERVE],
        "pod": vm + ["--network", f"ns:{pod_namespace()}", rootfs, "--", "sh", "-c", SERVE],
    }
    got = alternate(args.runs, {name: (lambda i, argv=argv: one_run(args, argv, tool, mem))
                                for name, argv in contenders.items()})
    r = Results(NAME, f"TCP from the host to a server in a VM, pod netns vs swvm's bridge, {args.runs} runs each, "
                      f"alternating ({args.seconds} s stream, {args.pings} 1-byte round trips)", args)
    r.show_commands(contenders)
    print("| path | throughput Mbit/s (median, min-max) | round trip us (median, min-max) |")
    print("| --- | --- | --- |")
    for name, runs in got.items():
        r.series(name, "throughput", "Mbit/s", [g * 1000 for g, _ in runs])
        r.series(name, "round trip", "us", [x for _, x in runs])
        print(f"| {name} | {spread(r.values(name, 'throughput'), 2)} | {spread(r.values(name, 'round trip'))} |")
    print()
    r.ratio("throughput pod/bridge", "pod", "bridge", "throughput")
    r.ratio("round trip pod/bridge", "pod", "bridge", "round trip")
    r.write()
