"""Servers in runs, VMs and QEMU, and the TCP measurements against them."""
import atexit
import contextlib
import os
import re
import select
import shutil
import subprocess
import sys
import time

from .rootfs import write_cpio
from .harness import SWVM, vmm_overhead_kib


SERVE = ("trap 'exit 0' TERM; ip -4 -o addr show eth0 | sed 's/.*inet \\([0-9.]*\\).*/addr=\\1/'; "
         "/netperf server 5201 & wait")


def start_server(argv, timeout, guest_bytes=None):
    """Starts a server that prints addr=A then ready; returns (process, A, VMM overhead KiB)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf, start = b"", time.perf_counter()
    while time.perf_counter() - start < timeout and b"ready" not in buf:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
    m = re.search(rb"addr=([0-9.]+)", buf)
    if b"ready" not in buf or not m:
        p.kill()
        p.wait()
        sys.exit(f"bench: no server from {' '.join(argv)}; output:\n{buf[-2000:].decode(errors='replace')}")
    over = vmm_overhead_kib(p.pid, guest_bytes) if guest_bytes else None
    return p, m.group(1).decode(), over


def stop_server(p):
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def measure_net(tool, address, seconds, pings):
    out = subprocess.run([tool, "tput", address, "5201", str(seconds)], capture_output=True, text=True, check=True).stdout
    gbps = float(out.split()[1])
    out = subprocess.run([tool, "rtt", address, "5201", str(pings)], capture_output=True, text=True, check=True).stdout
    return gbps, float(out.split()[1])


def qemu_net_setup(work, tool, address, rootfs):
    """An initramfs whose /init brings eth0 up with `address` and serves,
    and a tap on swvm's bridge for QEMU."""
    root = os.path.join(work, "qemu-root")
    for d in ("bin", "proc", "dev"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(shutil.which("busybox"), os.path.join(root, "bin/busybox"))
    os.symlink("busybox", os.path.join(root, "bin/sh"))
    shutil.copy(tool, os.path.join(root, "netperf"))
    with open(os.path.join(root, "init"), "w") as f:
        f.write("#!/bin/sh\n/bin/busybox mount -t proc proc /proc\n"
                "/bin/busybox ip link set lo up\n"
                f"/bin/busybox ip addr add {address}/16 dev eth0\n/bin/busybox ip link set eth0 up\n"
                f"echo addr={address}\nexec /netperf server 5201\n")
    os.chmod(os.path.join(root, "init"), 0o755)
    cpio = write_cpio(root, os.path.join(work, "qemu-initrd.cpio"))
    tap = "swvmqemu0"
    # swvm's bridge exists while a run, or a port of someone else's, is on
    # it: a waiting run holds it while the tap goes on, then the tap keeps
    # it. At exit, after the tap goes, one more run lets swvm remove it.
    atexit.register(lambda: subprocess.run([SWVM, "run", "--network", "bridge", rootfs, "--", "sh", "-c", "true"]))
    subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], check=True)
    atexit.register(lambda: subprocess.run(["ip", "link", "del", tap], stderr=subprocess.DEVNULL))
    with bridge_held(rootfs):
        for cmd in (["master", "swvm0"], ["type", "bridge_slave", "isolated", "on"], ["up"]):
            subprocess.run(["ip", "link", "set", tap] + cmd, check=True)
    return cpio, tap


@contextlib.contextmanager
def bridge_held(rootfs):
    """swvm's bridge kept for the duration by a waiting --network bridge run."""
    holder = subprocess.Popen([SWVM, "run", "--network", "bridge", rootfs, "--", "sh", "-c",
                               "trap 'exit 0' TERM; echo up; sleep 600 & wait"], stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "up":
            sys.exit("bench: the run holding swvm's bridge did not start")
        yield
    finally:
        holder.terminate()
        holder.wait()


def plain_veth(tool):
    """The host's own veth-to-veth figure: a network namespace joined to
    the host by a bare veth pair (no bridge, no nftables), serving."""
    ns, host_end = "swvmbench", "swvmbv0"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    atexit.register(lambda: subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL))
    atexit.register(lambda: subprocess.run(["ip", "link", "del", host_end], stderr=subprocess.DEVNULL))
    subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
    subprocess.run(["ip", "addr", "add", "10.89.255.1/30", "dev", host_end], check=True)
    subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
    for cmd in (["addr", "add", "10.89.255.2/30", "dev", "eth0"], ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"]):
        subprocess.run(["ip", "-n", ns, *cmd], check=True)
    return ["ip", "netns", "exec", ns, "sh", "-c", "echo addr=10.89.255.2; exec " + tool + " server 5201"]
