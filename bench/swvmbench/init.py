"""A minimal static PID 1 in Swift vs in C (musl), booted by swvm: why
guest-init is written in C."""
import os
import shutil
import statistics
import subprocess
import tempfile

from .harness import KERNEL, REPO, SWVM, Results, alternate, fmt_s, need
from .rootfs import write_cpio
from .vmutil import time_to_marker

NAME = "init"
HELP = "a minimal static PID 1, Swift vs C, booted by swvm boot"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300)


def build_inits(work):
    """The Swift and C inits, stripped, each in an initramfs: {name: cpio}."""
    src = os.path.join(REPO, "bench/init-language")
    cc = "musl-gcc" if shutil.which("musl-gcc") else "gcc"
    builds = {
        "swift": ["swiftc", "-static-executable", "-O", "-o", os.path.join(work, "swift"), os.path.join(src, "init.swift")],
        "c": [cc, "-static", "-Os", "-o", os.path.join(work, "c"), os.path.join(src, "init.c")],
        "stub": [cc, "-static", "-Os", "-o", os.path.join(work, "stub"), os.path.join(src, "stub.c")],
    }
    for cmd in builds.values():
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        subprocess.run(["strip", cmd[cmd.index("-o") + 1]], check=True)
    cpios = {}
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
    return cpios


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    work = tempfile.mkdtemp(prefix="swvm-bench-init-")
    try:
        cpios = build_inits(work)
        cmds = {name: [SWVM, "boot", "--kernel", KERNEL, "--initrd", cpio, "--memory", "128M"] for name, cpio in cpios.items()}
        got = alternate(args.runs, {name: (lambda i, argv=argv: time_to_marker(argv, "SWVM-INIT-MARKER", 128 << 20, args.timeout)[0])
                                    for name, argv in cmds.items()})
        sizes = {name: os.path.getsize(os.path.join(work, name)) / 1024 for name in cpios}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = Results(NAME, f"a minimal static PID 1, Swift vs C, booted by swvm boot, {args.runs} runs each, alternating", args)
    print(f"## {r.data['title']}\n")
    for name, times in got.items():
        r.command(name, cmds[name])
        r.series(name, "time to marker", "s", times)
        r.series(name, "static binary", "KiB", [sizes[name]])
        print(f"{name:6} ({sizes[name]:,.0f} KiB static binary): time to marker median {fmt_s(times)}")
    r.note(f"\nswift - c (medians): {statistics.median(got['swift']) - statistics.median(got['c']):+.2f} s")
    r.write()
