"""Starting VMs and QEMU: time to a marker on the console, the kernel's
command line, QEMU microvm's arguments, the example image's disk, a
QMP client, warm-run reports."""
import json
import os
import select
import subprocess
import sys
import time

from .rootfs import write_cpio
from .harness import IMAGE, KERNEL, REPO, SWVM, peak_rss_kib, pss_kib, vmm_overhead_kib


QEMU_MICROVM = ["-M", "microvm,acpi=off,x-option-roms=off,rtc=on", "-no-reboot", "-enable-kvm"]


def kernel_cmdline(mem_mib):
    """The guest kernel's command line as swvm boot builds it, including
    the PVM-safe options it adds on this host: QEMU gets the same."""
    return subprocess.run([SWVM, "boot", "--print-cmdline", "--kernel", KERNEL, "--memory", f"{mem_mib}M"],
                          capture_output=True, text=True, check=True).stdout.strip()


def qemu_microvm(qemu, mem_mib, cmdline, *extra):
    """QEMU microvm with swvm's kernel, one vCPU, the console on stdio."""
    return [qemu, *QEMU_MICROVM, "-m", f"{mem_mib}M", "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
            "-serial", "stdio", "-kernel", KERNEL, "-append", cmdline, *extra]


def qemu_disk_boot(qemu, mem_mib, disk):
    """QEMU booting the same kernel with the example image's ext4 disk as
    its root and the image's `true` as init; when it exits the kernel says
    "Attempted to kill init" (the marker). QEMU appends its
    virtio_mmio.device= after our parameters, so init takes no arguments."""
    return qemu_microvm(qemu, mem_mib, kernel_cmdline(mem_mib) + " root=/dev/vda ro rootfstype=ext4 init=/bin/true",
                        "-drive", f"id=root,file={disk},format=raw,if=none,readonly=on",
                        "-device", "virtio-blk-device,drive=root")


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


def example_disk():
    """The ext4 disk swvm made for the example image (run it once first)."""
    index = json.load(open(os.path.join(IMAGE, "index.json")))
    digest = index["manifests"][0]["digest"].split(":")[1]
    disks = os.path.join(os.environ.get("SWVM_ROOT", "/var/lib/swvm"), "disks")
    for name in sorted(os.listdir(disks)) if os.path.isdir(disks) else []:
        if name.startswith(digest) and name.endswith(".ext4"):
            return os.path.join(disks, name)
    return None


def swvm_report_run(argv, start=None):
    """Runs `swvm run ... --report-fd N`: (wall s, the report, spawn monotonic ns).
    With `start`, the benchmark ends unless the report's vmStart is that
    (a measured run must have the start its contender stands for)."""
    r, w = os.pipe()
    started = time.monotonic_ns()
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
    seconds = (time.monotonic_ns() - started) / 1e9
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} exited {p.returncode}: {err.decode(errors='replace')}")
    report = json.loads(data.decode().strip().split("\n")[-1])
    if start and report.get("vmStart") != start:
        sys.exit(f"bench: {' '.join(argv)}: expected a {start} start, got {report.get('vmStart')}")
    return seconds, report, started


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
    sock = os.path.join(work, "qmp.sock")
    state = os.path.join(work, "qemu-state")
    base = qemu_microvm(qemu, mem, kernel_cmdline(mem), "-initrd", initrd)
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
