"""TCP throughput and round trip from the host to a server in a container
(veth), a VM (tap + virtio-net), QEMU microvm (tap + its
virtio-net-device) and the host's own loopback."""
import atexit
import shutil
import statistics
import subprocess
import tempfile
import time

from .harness import KERNEL, SWVM, Results, alternate, need, spread
from .netutil import SERVE, measure_net, plain_veth, qemu_net_setup, start_server, stop_server
from .rootfs import netperf_tools
from .vmutil import kernel_cmdline, qemu_microvm

NAME = "net"
HELP = "TCP from the host to a container, a VM, QEMU microvm and loopback"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--pings", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--only", default="", help="comma-separated: veth,container,vm,qemu (loopback always runs)")


def contenders_of(args, work, tool, rootfs, mem):
    qemu = shutil.which("qemu-system-x86_64")
    contenders = {
        "loopback": [tool, "server", "5201"],
        "veth": plain_veth(tool),
        "container": [SWVM, "run", "--network", "bridge", rootfs, "--", "sh", "-c", SERVE],
        "vm": [SWVM, "run", "--isolation=vm", "--network", "bridge", "--memory", f"{mem - 64}m", rootfs, "--", "sh", "-c", SERVE],
    }
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only.split(",") or k == "loopback"}
        qemu = qemu if "qemu" in args.only.split(",") else None
    if qemu:
        qaddr = "10.88.255.254"
        cpio, tap = qemu_net_setup(work, tool, qaddr, rootfs)
        contenders["qemu"] = qemu_microvm(qemu, mem, kernel_cmdline(mem), "-initrd", cpio,
                                          "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off",
                                          "-device", "virtio-net-device,netdev=n0")
    return contenders


def one_run(args, name, argv, tool, mem):
    """(Gbit/s, round trip us, VMM overhead KiB) of one server start."""
    if name == "loopback":
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        address, over = "127.0.0.1", None
        time.sleep(0.2)
    else:
        p, address, over = start_server(argv, args.timeout, guest_bytes=mem << 20 if name in ("vm", "qemu") else None)
    try:
        gbps, rtt = measure_net(tool, address, args.seconds, args.pings)
    finally:
        stop_server(p)
    return gbps, rtt, over


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh (with CONFIG_INET)")
    work = tempfile.mkdtemp(prefix="swvm-bench-net-")
    atexit.register(shutil.rmtree, work, True)
    tool, rootfs = netperf_tools(work)
    mem = 128
    contenders = contenders_of(args, work, tool, rootfs, mem)
    got = alternate(args.runs, {name: (lambda i, name=name, argv=argv: one_run(args, name, argv, tool, mem))
                                for name, argv in contenders.items()})
    r = Results(NAME, f"TCP from the host to a server in each, {args.runs} runs each, alternating "
                      f"({args.seconds} s stream, {args.pings} 1-byte round trips)", args)
    r.show_commands(contenders)
    print("| path | throughput Mbit/s (median, min-max) | round trip us (median, min-max) | VMM memory beyond guest RAM |")
    print("| --- | --- | --- | --- |")
    for name, runs in got.items():
        r.series(name, "throughput", "Mbit/s", [g * 1000 for g, _, _ in runs])
        r.series(name, "round trip", "us", [x for _, x, _ in runs])
        r.series(name, "VMM memory beyond guest RAM", "KiB", [o for _, _, o in runs])
        over = r.values(name, "VMM memory beyond guest RAM")
        o = f"{statistics.median(over) / 1024:.1f} MiB" if over else "-"
        print(f"| {name} | {spread(r.values(name, 'throughput'), 2)} | {spread(r.values(name, 'round trip'))} | {o} |")
    print()
    for name in got:
        if name != "loopback":
            r.ratio(f"throughput {name}/loopback", name, "loopback", "throughput")
    r.ratio("throughput container/veth", "container", "veth", "throughput")
    r.ratio("throughput vm/qemu", "vm", "qemu", "throughput")
    r.write()
