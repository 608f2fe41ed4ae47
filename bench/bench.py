#!/usr/bin/env python3
"""swvm's benchmarks, each against a peer, side by side in one run.

    bench/bench.py container [--runs 20]   swvm run --isolation=container vs crun run
    bench/bench.py boot [--runs 5]         swvm boot vs qemu-system-x86_64 -M microvm
    bench/bench.py vm [--runs 5]           swvm run --isolation=vm vs the container path
                                           vs QEMU microvm booting the same kernel and disk
    bench/bench.py init [--runs 3]         a minimal static PID 1 in Swift vs in C (musl),
                                           booted by swvm: why guest-init is written in C
    bench/bench.py warm [--runs 5]         warm start (snapshot restore) vs cold boot vs QEMU
                                           microvm's cold boot; restore alone vs QEMU's
                                           -incoming; host memory of 4 concurrent VMs
    bench/bench.py net [--runs 3]          TCP throughput and round trip from the host to a
                                           server in a container (veth), a VM (tap +
                                           virtio-net), QEMU microvm (tap + its
                                           virtio-net-device) and the host's own loopback
    bench/bench.py volumes [--runs 3]      1,000 small files and one 100 MiB file through a
                                           container's bind mount, swvm's virtio-9p share and
                                           QEMU microvm's -virtfs (9p) on the same kernel
    bench/bench.py netmem [--runs 5]       the VMM's memory beyond guest RAM without a
                                           network, with --network bridge, and after
                                           traffic through virtio-net
    bench/bench.py bridge [--runs 10]      a lone --network bridge container run, which
                                           makes and removes swvm0 and its nftables
                                           table, vs the same run while another run
                                           holds them (no peer: the cost of cleaning up)

Runs alternate between the contenders so that drift on a shared, noisy
machine hits both alike. Each prints medians (with min-max), the ratio of
the medians, and peak memory, and the exact commands it ran. Times are wall
clock; memory is the peak RSS of the process tree (wait4's ru_maxrss) or,
for VMMs, the resident memory outside the guest's RAM mapping.

Needs: the release build (scripts/setup.sh --no-run), kernel/build.sh and
guest-init/build.sh outputs, scripts/build-example-image.sh's image, and for
the peers Debian's crun and qemu-system-x86 packages.
"""
import argparse
import atexit
import contextlib
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("SWVM_CACHE", "/var/cache/swvm")
SWVM = os.environ.get("SWVM_BINARY", os.path.join(REPO, ".build/release/swvm"))
IMAGE = os.path.join(REPO, "examples/busybox")
KERNEL = os.path.join(CACHE, "kernel/current/vmlinux")




MEASURE = None


def run_wait4(argv, cwd=None):
    """Runs argv to completion: (seconds, peak RSS KiB of its process tree,
    exit status), through bench/measure.c: a forked Python would count its
    own memory as the child's peak."""
    global MEASURE
    if MEASURE is None:
        MEASURE = os.path.join(tempfile.gettempdir(), f"swvm-measure-{os.getpid()}")
        subprocess.run(["gcc", "-O2", "-o", MEASURE, os.path.join(REPO, "bench/measure.c")], check=True)
        atexit.register(lambda: os.path.exists(MEASURE) and os.unlink(MEASURE))
    cmd = [MEASURE] + (["-C", cwd] if cwd else []) + argv
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, rss, status = p.stderr.strip().split("\n")[-1].split()
    return float(seconds), int(rss), int(status)


def summary(values):
    return statistics.median(values), min(values), max(values)


def fmt_ms(values):
    m, lo, hi = summary(values)
    return f"{m * 1000:.1f} ms (min {lo * 1000:.1f}, max {hi * 1000:.1f})"


def fmt_s(values):
    m, lo, hi = summary(values)
    return f"{m:.2f} s (min {lo:.2f}, max {hi:.2f})"


def need(path, how):
    if not os.path.exists(path):
        sys.exit(f"bench: {path} is missing; {how}")


# --------------------------------------------------------------- container

def cached_rootfs():
    index = json.load(open(os.path.join(IMAGE, "index.json")))
    digest = index["manifests"][0]["digest"].split(":")[1]
    root = os.path.join(os.environ.get("SWVM_ROOT", "/var/lib/swvm"), "images", digest, "rootfs")
    if not os.path.isdir(root):
        subprocess.run([SWVM, "run", IMAGE, "--", "true"], check=True)
    return root


def hybrid_cgroups():
    """crun refuses hosts with cgroup v1 controllers and a cgroup2 mount that
    still has a controller (hugetlb here); in our own mount namespace the
    cgroup2 mount is hidden from both runtimes alike."""
    try:
        return bool(open("/sys/fs/cgroup/unified/cgroup.controllers").read().strip())
    except OSError:
        return False


def bench_container(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(IMAGE, "run: scripts/build-example-image.sh")
    if not shutil.which("crun"):
        sys.exit("bench: crun is not installed (apt-get install crun)")
    if hybrid_cgroups() and not os.environ.get("SWVM_BENCH_NS"):
        # Re-run ourselves in a private mount namespace without the cgroup2 mount.
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               "umount /sys/fs/cgroup/unified && exec \"$@\"", "sh", sys.executable] + sys.argv
        os.execvpe("unshare", cmd, dict(os.environ, SWVM_BENCH_NS="1"))

    bundle = tempfile.mkdtemp(prefix="swvm-bench-bundle-")
    try:
        subprocess.run(["cp", "-a", cached_rootfs(), os.path.join(bundle, "rootfs")], check=True)
        subprocess.run(["crun", "spec"], cwd=bundle, check=True)
        spec = json.load(open(os.path.join(bundle, "config.json")))
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        json.dump(spec, open(os.path.join(bundle, "config.json"), "w"))

        swvm_cmd = [SWVM, "run", "--isolation=container", IMAGE, "--", "true"]
        results = {"swvm": [], "crun": []}
        rss = {"swvm": [], "crun": []}
        for i in range(args.warmup + args.runs):
            for name in ("swvm", "crun"):
                argv = swvm_cmd if name == "swvm" else ["crun", "run", f"swvm-bench-{os.getpid()}-{i}"]
                t, r, status = run_wait4(argv, cwd=bundle if name == "crun" else None)
                if status != 0:
                    sys.exit(f"bench: {' '.join(argv)} exited {status}")
                if i >= args.warmup:
                    results[name].append(t)
                    rss[name].append(r)
        print(f"## container start: `true` in the example image, {args.runs} runs each, alternating\n")
        print(f"swvm: {' '.join(swvm_cmd)}")
        print(f"crun: crun run ID  (bundle: the same rootfs, `crun spec` with args [\"true\"])\n")
        for name in ("swvm", "crun"):
            print(f"{name:5} median {fmt_ms(results[name])}, peak RSS median {statistics.median(rss[name]) / 1024:.1f} MiB (max {max(rss[name]) / 1024:.1f})")
        ratio = statistics.median(results["swvm"]) / statistics.median(results["crun"])
        print(f"\nratio swvm/crun (medians): {ratio:.2f}")
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


# --------------------------------------------------------------- VMs

def vmm_overhead_kib(pid, guest_bytes):
    """Resident KiB of a VMM outside the mapping that holds guest RAM."""
    total, guest = 0, 0
    size = None
    try:
        for line in open(f"/proc/{pid}/smaps"):
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                a, b = line.split()[0].split("-")
                size = int(b, 16) - int(a, 16)
            elif line.startswith("Rss:"):
                kib = int(line.split()[1])
                total += kib
                if size is not None and size >= guest_bytes and size <= guest_bytes + (2 << 20):
                    guest += kib
    except OSError:
        return None
    return total - guest


def time_to_marker(argv, marker, guest_bytes, timeout, rss_out=None):
    """Starts argv, returns (seconds to marker, VMM overhead KiB at marker)."""
    start = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen, buf, overhead = None, b"", None
    try:
        while time.perf_counter() - start < timeout:
            r, _, _ = select.select([p.stdout], [], [], 1.0)
            if not r:
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if marker.encode() in buf:
                seen = time.perf_counter() - start
                overhead = vmm_overhead_kib(p.pid, guest_bytes)
                if rss_out is not None:
                    rss_out.append(peak_rss_kib(p.pid) or 0)
                break
    finally:
        p.kill()
        p.wait()
    if seen is None:
        tail = buf[-2000:].decode(errors="replace")
        sys.exit(f"bench: no '{marker}' from {' '.join(argv)} within {timeout} s; output ended with:\n{tail}")
    return seen, overhead


def boot_initramfs(workdir):
    """The test init from Tests/Fixtures/boot-init, packed as a cpio."""
    src = os.path.join(REPO, "Tests/Fixtures/boot-init")
    root = os.path.join(workdir, "root")
    os.makedirs(root, exist_ok=True)
    for name in ("init", "child"):
        subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(root, name), os.path.join(src, name + ".c")], check=True)
    return write_cpio(root, os.path.join(workdir, "initrd.cpio"))




def bench_boot(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        sys.exit("bench: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    work = tempfile.mkdtemp(prefix="swvm-bench-boot-")
    try:
        initrd = boot_initramfs(work)
        mem = 128
        swvm = [SWVM, "boot", "--kernel", KERNEL, "--initrd", initrd, "--memory", f"{mem}M"]
        # QEMU gets the same kernel (through its PVH entry), initramfs and
        # command line, including the PVM-safe options swvm adds on this host.
        cmdline = subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem}M"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        qemu_cmd = [qemu, "-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm",
                    "-m", f"{mem}M", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
                    "-serial", "stdio", "-kernel", KERNEL, "-initrd", initrd, "-append", cmdline]
        marker = "SWVM-BOOT-MARKER-OK"
        times = {"swvm": [], "qemu": []}
        over = {"swvm": [], "qemu": []}
        for _ in range(args.runs):
            for name, argv in (("swvm", swvm), ("qemu", qemu_cmd)):
                t, o = time_to_marker(argv, marker, mem << 20, args.timeout)
                times[name].append(t)
                if o is not None:
                    over[name].append(o)
        print(f"## boot to the test init's marker, {args.runs} runs each, alternating\n")
        print(f"swvm: {' '.join(swvm)}")
        print(f"qemu: {' '.join(qemu_cmd)}\n")
        for name in ("swvm", "qemu"):
            o = f", VMM memory beyond guest RAM median {statistics.median(over[name]) / 1024:.1f} MiB" if over[name] else ""
            print(f"{name:5} time to marker median {fmt_s(times[name])}{o}")
        print(f"\nratio swvm/qemu (medians): {statistics.median(times['swvm']) / statistics.median(times['qemu']):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def peak_rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def example_disk():
    """The ext4 disk swvm made for the example image (run it once first)."""
    index = json.load(open(os.path.join(IMAGE, "index.json")))
    digest = index["manifests"][0]["digest"].split(":")[1]
    disks = os.path.join(os.environ.get("SWVM_ROOT", "/var/lib/swvm"), "disks")
    for name in sorted(os.listdir(disks)) if os.path.isdir(disks) else []:
        if name.startswith(digest) and name.endswith(".ext4"):
            return os.path.join(disks, name)
    return None


def bench_vm(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    need(IMAGE, "run: scripts/build-example-image.sh")
    qemu = shutil.which("qemu-system-x86_64")
    subprocess.run([SWVM, "run", "--isolation=vm", IMAGE, "--", "true"], check=True)   # makes the disk
    disk = example_disk()
    mem = 128
    cmdline = subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem}M"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # QEMU boots the same kernel with the same ext4 disk as its root and runs
    # the image's `true` as init; when it exits the kernel says so (the
    # marker). QEMU appends its virtio_mmio.device= after our parameters, so
    # init can take no arguments after "--".
    marker = "Attempted to kill init"
    qemu_cmd = [qemu, "-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm", "-m", f"{mem}M", "-smp", "1",
                "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-kernel", KERNEL,
                "-drive", f"id=root,file={disk},format=raw,if=none,readonly=on", "-device", "virtio-blk-device,drive=root",
                "-append", cmdline + " root=/dev/vda ro rootfstype=ext4 init=/bin/true"]
    results = {"container": [], "vm": [], "qemu": []}
    rss = {"container": [], "vm": [], "qemu": []}
    for _ in range(args.runs):
        for iso in ("container", "vm"):
            argv = [SWVM, "run", f"--isolation={iso}", IMAGE, "--", "true"]
            t, r, status = run_wait4(argv)
            if status != 0:
                sys.exit(f"bench: {' '.join(argv)} exited {status}")
            results[iso].append(t)
            rss[iso].append(r)
        if qemu and disk:
            t, _ = time_to_marker(qemu_cmd, marker, mem << 20, args.timeout, rss_out=rss["qemu"])
            results["qemu"].append(t)
    print(f"## `true` in the example image: container, VM, and QEMU microvm, {args.runs} runs each, alternating\n")
    print(f"container: {SWVM} run --isolation=container {IMAGE} -- true")
    print(f"vm:        {SWVM} run --isolation=vm {IMAGE} -- true")
    if results["qemu"]:
        print(f"qemu:      {' '.join(qemu_cmd)}")
    print()
    for iso in ("container", "vm", "qemu"):
        if results[iso]:
            what = "time to marker" if iso == "qemu" else "total"
            print(f"{iso:9} {what} median {fmt_s(results[iso])}, peak RSS median {statistics.median(rss[iso]) / 1024:.1f} MiB")
    c, v = statistics.median(results["container"]), statistics.median(results["vm"])
    print(f"\nratio vm/container (medians): {v / c:.0f}")
    if results["qemu"]:
        print(f"ratio vm/qemu (medians): {v / statistics.median(results['qemu']):.2f}")


def swvm_report_run(argv):
    """Runs `swvm run ... --report-fd N`: (wall s, the report, spawn monotonic ns)."""
    r, w = os.pipe()
    start = time.monotonic_ns()
    p = subprocess.Popen(argv[:2] + ["--report-fd", str(w)] + argv[2:], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(w,))
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, err = p.communicate()
    seconds = (time.monotonic_ns() - start) / 1e9
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} exited {p.returncode}: {err.decode(errors='replace')}")
    return seconds, json.loads(data.decode().strip().split("\n")[-1]), start


class QMP:
    """A minimal QMP client on a unix socket."""
    def __init__(self, path, timeout):
        import socket
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.005)
        self.buf = b""
        self.read()   # greeting
        self.command("qmp_capabilities")

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            m = self.read()
            if "return" in m or "error" in m:
                return m



def qemu_restore_times(qemu, work, runs, timeout):
    """QEMU microvm: boot the same kernel with a tiny idle init, save it
    with `migrate` to a file, then time `-incoming` restores from spawn to
    the restored VM running (loaded, then `cont` over QMP)."""
    root = os.path.join(work, "qroot")
    os.makedirs(root, exist_ok=True)
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(root, "init"), os.path.join(REPO, "bench/restore-init.c")], check=True)
    initrd = write_cpio(root, os.path.join(work, "qinitrd.cpio"))
    mem = 128
    cmdline = subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem}M"],
                             capture_output=True, text=True, check=True).stdout.strip()
    sock = os.path.join(work, "qmp.sock")
    state = os.path.join(work, "qemu-state")
    base = [qemu, "-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm", "-m", f"{mem}M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-kernel", KERNEL, "-initrd", initrd,
            "-append", cmdline]
    # Save once.
    save = subprocess.Popen(base + ["-qmp", f"unix:{sock},server=on,wait=off"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf, start = b"", time.time()
    while b"SWVM-BENCH-READY" not in buf:
        r, _, _ = select.select([save.stdout], [], [], 1.0)
        if r:
            chunk = os.read(save.stdout.fileno(), 65536)
            if not chunk:
                sys.exit(f"bench: QEMU ended before its init was ready: {buf[-2000:].decode(errors='replace')}")
            buf += chunk
        if time.time() - start > timeout:
            save.kill()
            sys.exit("bench: QEMU's init was not ready in time")
    q = QMP(sock, 10)
    q.command("stop")
    q.command("migrate", uri=f"exec:cat > {state}")
    while q.command("query-migrate").get("return", {}).get("status") not in ("completed", "failed"):
        time.sleep(0.05)
    status = q.command("query-migrate")["return"]["status"]
    q.command("quit")
    save.wait()
    if status != "completed":
        sys.exit("bench: QEMU's migrate to a file failed")
    if os.path.exists(sock):
        os.unlink(sock)
    restore_cmd = base + ["-qmp", f"unix:{sock},server=on,wait=on", "-incoming", f"exec:cat {state}"]
    times = []
    for _ in range(runs):
        t0 = time.monotonic_ns()
        p = subprocess.Popen(restore_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        q = QMP(sock, 10)
        # The state was saved paused: once loaded, continue it (QMP `cont`).
        while q.command("query-status")["return"]["status"] == "inmigrate":
            time.sleep(0.002)
        q.command("cont")
        if q.command("query-status")["return"]["status"] != "running":
            sys.exit("bench: QEMU's restored VM did not run")
        times.append((time.monotonic_ns() - t0) / 1e9)
        p.kill()
        p.wait()
        os.path.exists(sock) and os.unlink(sock)
    return times, restore_cmd, os.path.getsize(state)


def pss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def concurrent_vms_pss(n, timeout):
    """Starts n warm VMs at once; once each has printed, sums their PSS."""
    procs = [subprocess.Popen([SWVM, "run", "--isolation=vm", IMAGE, "--", "sh", "-c", "echo up; sleep 30"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(n)]
    try:
        for p in procs:
            r, _, _ = select.select([p.stdout], [], [], timeout)
            if not r or b"up" not in os.read(p.stdout.fileno(), 100):
                sys.exit("bench: a concurrent VM did not start")
        time.sleep(0.5)
        return [pss_kib(p.pid) or 0 for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def bench_warm(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    need(IMAGE, "run: scripts/build-example-image.sh")
    qemu = shutil.which("qemu-system-x86_64")
    run = [SWVM, "run", "--isolation=vm", IMAGE, "--", "true"]
    cold = [SWVM, "run", "--isolation=vm", "--cold-boot", IMAGE, "--", "true"]
    subprocess.run(run, check=True)   # makes the disk and the snapshot
    disk = example_disk()
    mem = 128
    cmdline = subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem}M"],
                             capture_output=True, text=True, check=True).stdout.strip()
    qemu_cold = [qemu, "-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm", "-m", f"{mem}M", "-smp", "1",
                 "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-kernel", KERNEL,
                 "-drive", f"id=root,file={disk},format=raw,if=none,readonly=on", "-device", "virtio-blk-device,drive=root",
                 "-append", cmdline + " root=/dev/vda ro rootfstype=ext4 init=/bin/true"] if qemu and disk else None
    t = {"warm": [], "cold": [], "qemu": []}
    restore, overhead, rss = [], [], {"warm": [], "cold": []}
    for _ in range(args.runs):
        seconds, report, spawned = swvm_report_run(run)
        if report.get("vmStart") != "warm":
            sys.exit(f"bench: expected a warm start, got {report.get('vmStart')}")
        t["warm"].append(seconds)
        restore.append((report["readyNanos"] - spawned) / 1e9)
        rss["warm"].append(report["swvmPeakRSS"] / 1024)
        seconds, report, _ = swvm_report_run(cold)
        t["cold"].append(seconds)
        rss["cold"].append(report["swvmPeakRSS"] / 1024)
        if qemu_cold:
            q, _ = time_to_marker(qemu_cold, "Attempted to kill init", mem << 20, args.timeout)
            t["qemu"].append(q)
    # VMM memory beyond guest RAM, sampled while a warm VM runs.
    p = subprocess.Popen([SWVM, "run", "--isolation=vm", IMAGE, "--", "sh", "-c", "echo up; sleep 30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    select.select([p.stdout], [], [], args.timeout)
    os.read(p.stdout.fileno(), 100)
    time.sleep(2)   # past the VMM's trim of its start-up pages (1 s in)
    overhead = vmm_overhead_kib(p.pid, mem << 20)
    p.kill()
    p.wait()
    one = concurrent_vms_pss(1, args.timeout)
    four = concurrent_vms_pss(4, args.timeout)
    qtimes, qcmd, qsize = ([], None, 0)
    if qemu:
        work = tempfile.mkdtemp(prefix="swvm-bench-warm-")
        try:
            qtimes, qcmd, qsize = qemu_restore_times(qemu, work, args.runs, args.timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"## warm start: `true` in the example image, {args.runs} runs each, alternating\n")
    print(f"warm: {' '.join(run)}")
    print(f"cold: {' '.join(cold)}")
    if qemu_cold:
        print(f"qemu: {' '.join(qemu_cold)}")
    print()
    print(f"warm  total median {fmt_s(t['warm'])}, swvm peak RSS median {statistics.median(rss['warm']) / 1024:.1f} MiB")
    print(f"cold  total median {fmt_s(t['cold'])}, swvm peak RSS median {statistics.median(rss['cold']) / 1024:.1f} MiB")
    if t["qemu"]:
        print(f"qemu  time to marker median {fmt_s(t['qemu'])}")
    print(f"\nratio warm/cold (medians): {statistics.median(t['warm']) / statistics.median(t['cold']):.3f}")
    if t["qemu"]:
        print(f"ratio warm/qemu cold boot (medians): {statistics.median(t['warm']) / statistics.median(t['qemu']):.3f}")
    print(f"\n## restore alone: process start until the restored vCPUs run, {args.runs} runs\n")
    print(f"swvm: spawn to readyNanos of --report-fd (restored, about to resume): median {fmt_ms(restore)}")
    if qtimes:
        print(f"qemu: {' '.join(qcmd)}\n      ({qsize / 1048576:.1f} MiB state file) spawn to running (loaded, then QMP cont): median {fmt_ms(qtimes)}")
        print(f"ratio swvm/qemu (medians): {statistics.median(restore) / statistics.median(qtimes):.3f}")
    print(f"\n## memory\n")
    if overhead is not None:
        print(f"VMM memory beyond guest RAM (RSS outside the guest mapping, warm VM running): {overhead / 1024:.1f} MiB")
    print(f"PSS of 1 warm VM: {one[0] / 1024:.1f} MiB; of 4 concurrent warm VMs: {sum(four) / 1024:.1f} MiB "
          f"({', '.join(f'{x / 1024:.1f}' for x in four)}); each additional VM: {(sum(four) - one[0]) / 3 / 1024:.1f} MiB")


def bench_init(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    src = os.path.join(REPO, "bench/init-language")
    work = tempfile.mkdtemp(prefix="swvm-bench-init-")
    try:
        cc = "musl-gcc" if shutil.which("musl-gcc") else "gcc"
        builds = {
            "swift": ["swiftc", "-static-executable", "-O", "-o", os.path.join(work, "swift"), os.path.join(src, "init.swift")],
            "c": [cc, "-static", "-Os", "-o", os.path.join(work, "c"), os.path.join(src, "init.c")],
            "stub": [cc, "-static", "-Os", "-o", os.path.join(work, "stub"), os.path.join(src, "stub.c")],
        }
        cpios = {}
        for cmd in builds.values():
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
            subprocess.run(["strip", cmd[cmd.index("-o") + 1]], check=True)
        for name in ("swift", "c"):
            root = os.path.join(work, "root-" + name)
            os.makedirs(root)
            if name == "swift":
                # A static Swift binary cannot start without /proc: a C stub
                # mounts it and execs the Swift init (see stub.c).
                shutil.copy(os.path.join(work, "stub"), os.path.join(root, "init"))
                shutil.copy(os.path.join(work, "swift"), os.path.join(root, "swift-init"))
            else:
                shutil.copy(os.path.join(work, name), os.path.join(root, "init"))
            cpios[name] = write_cpio(root, os.path.join(work, name + ".cpio"))
        times = {"swift": [], "c": []}
        extra = {"swift": [], "c": []}
        for _ in range(args.runs):
            for name in ("swift", "c"):
                t, _ = time_to_marker([SWVM, "boot", "--kernel", KERNEL, "--initrd", cpios[name], "--memory", "128M"] + extra[name],
                                      "SWVM-INIT-MARKER", 128 << 20, args.timeout)
                times[name].append(t)
        print(f"## a minimal static PID 1, Swift vs C, booted by swvm boot, {args.runs} runs each, alternating\n")
        for name in ("swift", "c"):
            size = os.path.getsize(os.path.join(work, name)) / 1024
            print(f"{name:6} ({size:,.0f} KiB static binary): time to marker median {fmt_s(times[name])}")
        print(f"\nswift - c (medians): {statistics.median(times['swift']) - statistics.median(times['c']):+.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def static_tool(work, source):
    """bench/SOURCE.c built static (musl when installed) into work/."""
    cc = shutil.which("musl-gcc") or "gcc"
    tool = os.path.join(work, os.path.splitext(source)[0])
    subprocess.run([cc, "-static", "-O2", "-o", tool, os.path.join(REPO, "bench", source)], check=True)
    return tool


def busybox_root(root, tool, applets, dirs):
    """A plain root filesystem with busybox (these applets), the tool at
    /NAME and root in /etc/passwd and /etc/group: an IMAGE for both levels."""
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(shutil.which("busybox"), os.path.join(root, "bin/busybox"))
    for applet in applets:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    shutil.copy(tool, os.path.join(root, os.path.basename(tool)))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\n")


def write_cpio(root, cpio):
    """root as a newc initramfs for QEMU."""
    with open(cpio, "wb") as f:
        subprocess.run("find . | cpio -o -H newc", shell=True, cwd=root, stdout=f, stderr=subprocess.DEVNULL, check=True)
    return cpio


def netperf_tools(work):
    """bench/netperf.c, static, and a plain root filesystem that holds it
    (busybox for the shell), usable as an IMAGE by both isolation levels."""
    tool = static_tool(work, "netperf.c")
    root = os.path.join(work, "rootfs")
    busybox_root(root, tool, ("sh", "ip", "sed", "mount"), ("bin", "etc", "proc", "sys", "dev", "tmp"))
    return tool, root


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


def bench_net(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh (with CONFIG_INET)")
    qemu = shutil.which("qemu-system-x86_64")
    work = tempfile.mkdtemp(prefix="swvm-bench-net-")
    atexit.register(shutil.rmtree, work, True)
    tool, rootfs = netperf_tools(work)
    mem = 128
    contenders = {
        "loopback": [tool, "server", "5201"],
        "veth": plain_veth(tool),
        "container": [SWVM, "run", "--network", "bridge", rootfs, "--", "sh", "-c", SERVE],
        "vm": [SWVM, "run", "--isolation=vm", "--network", "bridge", "--memory", f"{mem - 64}m", rootfs, "--", "sh", "-c", SERVE],
    }
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only.split(",") or k == "loopback"}
        qemu = qemu if "qemu" in contenders or "qemu" in args.only.split(",") else None
    if qemu:
        qaddr = "10.88.255.254"
        cpio, tap = qemu_net_setup(work, tool, qaddr, rootfs)
        cmdline = subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem}M"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        contenders["qemu"] = [qemu, "-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm",
                              "-m", f"{mem}M", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
                              "-serial", "stdio", "-kernel", KERNEL, "-initrd", cpio, "-append", cmdline,
                              "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off",
                              "-device", "virtio-net-device,netdev=n0"]
    results = {k: {"tput": [], "rtt": [], "over": []} for k in contenders}
    for _ in range(args.runs):
        for name, argv in contenders.items():
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
            results[name]["tput"].append(gbps)
            results[name]["rtt"].append(rtt)
            if over is not None:
                results[name]["over"].append(over)
    print(f"## TCP from the host to a server in each, {args.runs} runs each, alternating "
          f"({args.seconds} s stream, {args.pings} 1-byte round trips)\n")
    for name, argv in contenders.items():
        print(f"{name}: {' '.join(argv)}")
    print()
    print("| path | throughput Mbit/s (median, min-max) | round trip us (median, min-max) | VMM memory beyond guest RAM |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        t, l = summary(r["tput"]), summary(r["rtt"])
        o = f"{statistics.median(r['over']) / 1024:.1f} MiB" if r["over"] else "-"
        print(f"| {name} | {t[0] * 1000:.2f} ({t[1] * 1000:.2f}-{t[2] * 1000:.2f}) | {l[0]:.0f} ({l[1]:.0f}-{l[2]:.0f}) | {o} |")
    base = statistics.median(results["loopback"]["tput"])
    print()
    for name in results:
        if name != "loopback":
            print(f"throughput {name}/loopback: {statistics.median(results[name]['tput']) / base:.2f}")
    if "veth" in results and "container" in results:
        print(f"throughput container/veth: {statistics.median(results['container']['tput']) / statistics.median(results['veth']['tput']):.2f}")
    if "qemu" in results and "vm" in results:
        print(f"throughput vm/qemu: {statistics.median(results['vm']['tput']) / statistics.median(results['qemu']['tput']):.2f}")


def fsperf_tools(work):
    """bench/fsperf.c, static, in a plain root with busybox (the IMAGE of
    both isolation levels)."""
    tool = static_tool(work, "fsperf.c")
    root = os.path.join(work, "rootfs")
    busybox_root(root, tool, ("sh",), ("bin", "etc", "proc", "sys", "dev", "tmp", "data"))
    return tool, root


def fsperf_script(files, mib):
    return f"/fsperf small /data {files} && /fsperf big /data {mib}"


def qemu_9p_initrd(work, root, files, mib):
    qroot = os.path.join(work, "qemu-root")
    shutil.copytree(root, qroot, symlinks=True)
    with open(os.path.join(qroot, "init"), "w") as f:
        # The mount options guest-init uses (guest-init/init.c, mount_volumes).
        f.write("#!/bin/sh\n/bin/busybox mount -t proc proc /proc\n"
                "/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,access=user,cache=mmap,msize=262144 "
                "hostshare /data\n"
                f"{fsperf_script(files, mib)}\n/bin/busybox reboot -f\n")
    os.chmod(os.path.join(qroot, "init"), 0o755)
    return write_cpio(qroot, os.path.join(work, "qemu-initrd.cpio"))


def parse_fsperf(out):
    small = re.search(r"small ([0-9.]+) ([0-9.]+) ([0-9.]+)", out)
    big = re.search(r"big ([0-9.]+) ([0-9.]+)", out)
    if not small or not big:
        return None
    return [float(x) for x in small.groups()] + [float(x) for x in big.groups()]


def bench_volumes(args):
    need(SWVM, "run: scripts/build-release.sh")
    need(KERNEL, "run: kernel/build.sh (with 9P)")
    qemu = shutil.which("qemu-system-x86_64")
    work = tempfile.mkdtemp(prefix="swvm-bench-vol-")
    atexit.register(shutil.rmtree, work, True)
    tool, root = fsperf_tools(work)
    mem = 256
    script = fsperf_script(args.files, args.mib)
    contenders = {}
    for name in ("container", "vm", "qemu"):
        share = os.path.join(work, f"share-{name}")
        os.makedirs(share)
        if name == "container":
            contenders[name] = [SWVM, "run", "-v", f"{share}:/data", root, "--", "sh", "-c", script]
        elif name == "vm":
            contenders[name] = [SWVM, "run", "--isolation=vm", "--memory", f"{mem - 64}m", "-v", f"{share}:/data",
                                root, "--", "sh", "-c", script]
        elif qemu:
            cpio = qemu_9p_initrd(work, root, args.files, args.mib)
            cmdline = subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem}M"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            contenders[name] = [qemu, "-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm",
                                "-m", f"{mem}M", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
                                "-serial", "stdio", "-kernel", KERNEL, "-initrd", cpio, "-append", cmdline,
                                "-fsdev", f"local,id=fs0,path={share},security_model=passthrough",
                                "-device", "virtio-9p-device,fsdev=fs0,mount_tag=hostshare"]
    # A first VM run boots and saves the snapshot; it is not measured.
    subprocess.run(contenders["vm"][:-1] + ["true"], check=True, stdout=subprocess.DEVNULL)
    phases = ["create+write", "read", "delete", f"write {args.mib} MiB", f"read {args.mib} MiB"]
    results = {k: [] for k in contenders}
    for _ in range(args.runs):
        for name, argv in contenders.items():
            r = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
            figures = parse_fsperf(r.stdout)
            if figures is None:
                sys.exit(f"bench: {name} gave no figures (status {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            results[name].append(figures)
    print(f"## {args.files} files of 100 bytes, and one {args.mib} MiB file, through each; {args.runs} runs each, alternating\n")
    for name, argv in contenders.items():
        print(f"{name}: {' '.join(argv)}")
    print()
    print("| path | " + " | ".join(f"{p} ms (median, min-max)" for p in phases) + " |")
    print("| --- |" + " --- |" * len(phases))
    for name, runs in results.items():
        cells = []
        for i in range(len(phases)):
            m, lo, hi = summary([r[i] for r in runs])
            cells.append(f"{m:.0f} ({lo:.0f}-{hi:.0f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    # Every run's figures, so that sets made at different times can be pooled.
    print()
    for name, runs in results.items():
        print(f"{name} runs: " + "; ".join(" ".join(f"{x:.0f}" for x in r) for r in runs))
    if "qemu" in results:
        print()
        for i, p in enumerate(phases):
            v = statistics.median([r[i] for r in results["vm"]])
            q = statistics.median([r[i] for r in results["qemu"]])
            c = statistics.median([r[i] for r in results["container"]])
            print(f"{p}: vm/qemu {v / q:.2f}, vm/container {v / max(c, 0.1):.1f}")


def bench_netmem(args):
    """The VMM's memory beyond guest RAM without a network, with --network
    bridge idle, and after traffic through the virtio-net device."""
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
    over = {"none": [], "bridge idle": [], "bridge after traffic": []}
    pss = {k: [] for k in over}
    for _ in range(args.runs):
        for name, argv in contenders.items():
            p, address, _ = start_server(argv, args.timeout)
            try:
                time.sleep(2)   # past the VMM's trim of its start-up pages (1 s in)
                key = "none" if name == "none" else "bridge idle"
                over[key].append(vmm_overhead_kib(p.pid, mem << 20))
                pss[key].append(pss_kib(p.pid))
                if name == "bridge":
                    measure_net(tool, address, args.seconds, args.pings)
                    time.sleep(2)
                    over["bridge after traffic"].append(vmm_overhead_kib(p.pid, mem << 20))
                    pss["bridge after traffic"].append(pss_kib(p.pid))
            finally:
                stop_server(p)
    print(f"## VMM memory with the network device: {args.runs} runs each, alternating, a {mem} MiB guest\n")
    for name, argv in contenders.items():
        print(f"{name}: {' '.join(argv)}")
    print(f"traffic: {tool} tput ADDRESS 5201 {args.seconds}; {tool} rtt ADDRESS 5201 {args.pings}\n")
    print("| VM | RSS beyond guest RAM, MiB (median, min-max) | PSS of the process, MiB (median) |")
    print("| --- | --- | --- |")
    for name in over:
        o = summary(over[name])
        print(f"| {name} | {o[0] / 1024:.2f} ({o[1] / 1024:.2f}-{o[2] / 1024:.2f}) | {statistics.median(pss[name]) / 1024:.1f} |")
    base = statistics.median(over["none"])
    print()
    for name in ("bridge idle", "bridge after traffic"):
        m = statistics.median(over[name])
        print(f"{name} - none: {(m - base) / 1024:+.2f} MiB (ratio {m / base:.3f})")


def bench_bridge(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    work = tempfile.mkdtemp(prefix="swvm-bench-bridge-")
    atexit.register(shutil.rmtree, work, True)
    _, rootfs = netperf_tools(work)
    run = [SWVM, "run", "--network", "bridge", rootfs, "--", "sh", "-c", "true"]

    def times():
        out = []
        for _ in range(args.runs):
            t = time.monotonic()
            subprocess.run(run, check=True)
            out.append((time.monotonic() - t) * 1e3)
        return out
    alone = times()
    with bridge_held(rootfs):
        held = times()
    print(f"## `{' '.join(run)}`, {args.runs} runs each, wall time of the whole swvm run\n")
    print("| | median ms (min-max) |\n| --- | --- |")
    for name, ts in (("alone: makes and removes the bridge and table", alone), ("another run holds them", held)):
        m, lo, hi = summary(ts)
        print(f"| {name} | {m:.0f} ({lo:.0f}-{hi:.0f}) |")
    print(f"\nalone/held: {statistics.median(alone) / statistics.median(held):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("container")
    c.add_argument("--runs", type=int, default=20)
    c.add_argument("--warmup", type=int, default=2)
    b = sub.add_parser("boot")
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--timeout", type=float, default=300)
    v = sub.add_parser("vm")
    v.add_argument("--runs", type=int, default=5)
    v.add_argument("--timeout", type=float, default=300)
    w = sub.add_parser("warm")
    w.add_argument("--runs", type=int, default=5)
    w.add_argument("--timeout", type=float, default=300)
    i = sub.add_parser("init")
    i.add_argument("--runs", type=int, default=3)
    i.add_argument("--timeout", type=float, default=300)
    n = sub.add_parser("net")
    n.add_argument("--runs", type=int, default=3)
    n.add_argument("--seconds", type=float, default=5)
    n.add_argument("--pings", type=int, default=2000)
    n.add_argument("--timeout", type=float, default=300)
    n.add_argument("--only", default="", help="comma-separated: veth,container,vm,qemu (loopback always runs)")
    vo = sub.add_parser("volumes")
    vo.add_argument("--runs", type=int, default=3)
    vo.add_argument("--files", type=int, default=1000)
    vo.add_argument("--mib", type=int, default=100)
    vo.add_argument("--timeout", type=float, default=3600)
    nm = sub.add_parser("netmem")
    nm.add_argument("--runs", type=int, default=5)
    nm.add_argument("--seconds", type=float, default=3)
    nm.add_argument("--pings", type=int, default=500)
    nm.add_argument("--timeout", type=float, default=300)
    br = sub.add_parser("bridge")
    br.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    {"bridge": bench_bridge, "volumes": bench_volumes, "netmem": bench_netmem, "net": bench_net, "container": bench_container, "boot": bench_boot,
     "vm": bench_vm, "warm": bench_warm, "init": bench_init}[args.what](args)


if __name__ == "__main__":
    main()
