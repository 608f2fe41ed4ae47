"""1,000 small files and one 100 MiB file through a container's bind
mount, swvm's virtio-9p share and QEMU microvm's -virtfs (9p) on the same
kernel."""
import atexit
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from .harness import KERNEL, SWVM, Results, alternate, need, spread
from .rootfs import fsperf_tools, write_cpio
from .vmutil import kernel_cmdline, qemu_microvm

NAME = "volumes"
HELP = "small files and one big file through a bind mount, swvm's 9p and QEMU's 9p"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--mib", type=int, default=100)
    p.add_argument("--timeout", type=float, default=3600)


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


def contenders_of(args, work, root, mem):
    qemu = shutil.which("qemu-system-x86_64")
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
            contenders[name] = qemu_microvm(qemu, mem, kernel_cmdline(mem), "-initrd", cpio,
                                            "-fsdev", f"local,id=fs0,path={share},security_model=passthrough",
                                            "-device", "virtio-9p-device,fsdev=fs0,mount_tag=hostshare")
    return contenders


def one_run(args, name, argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    figures = parse_fsperf(p.stdout)
    if figures is None:
        sys.exit(f"bench: {name} gave no figures (status {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return figures


def run(args):
    need(SWVM, "run: scripts/build-release.sh")
    need(KERNEL, "run: kernel/build.sh (with 9P)")
    work = tempfile.mkdtemp(prefix="swvm-bench-vol-")
    atexit.register(shutil.rmtree, work, True)
    _, root = fsperf_tools(work)
    mem = 256
    contenders = contenders_of(args, work, root, mem)
    # A first VM run boots and saves the snapshot; it is not measured.
    subprocess.run(contenders["vm"][:-1] + ["true"], check=True, stdout=subprocess.DEVNULL)
    phases = ["create+write", "read", "delete", f"write {args.mib} MiB", f"read {args.mib} MiB"]
    got = alternate(args.runs, {name: (lambda i, name=name, argv=argv: one_run(args, name, argv))
                                for name, argv in contenders.items()})
    r = Results(NAME, f"{args.files} files of 100 bytes, and one {args.mib} MiB file, through each; "
                      f"{args.runs} runs each, alternating", args)
    r.show_commands(contenders)
    print("| path | " + " | ".join(f"{p} ms (median, min-max)" for p in phases) + " |")
    print("| --- |" + " --- |" * len(phases))
    for name, runs in got.items():
        cells = []
        for i, phase in enumerate(phases):
            r.series(name, phase, "ms", [x[i] for x in runs])
            cells.append(spread(r.values(name, phase)))
        print(f"| {name} | " + " | ".join(cells) + " |")
    # Every run's figures, so that sets made at different times can be pooled.
    print()
    for name, runs in got.items():
        print(f"{name} runs: " + "; ".join(" ".join(f"{x:.0f}" for x in run_) for run_ in runs))
    if "qemu" in got:
        print()
        for p in phases:
            v, q, c = (statistics.median(r.values(n, p)) for n in ("vm", "qemu", "container"))
            r.data["ratios"][f"{p}: vm/qemu"] = round(v / q, 4)
            print(f"{p}: vm/qemu {v / q:.2f}, vm/container {v / max(c, 0.1):.1f}")
    r.write()
