"""swvm run --isolation=vm vs the container path vs QEMU microvm booting
the same kernel and disk: `true` in the example image."""
import shutil
import statistics
import subprocess

from .harness import IMAGE, KERNEL, SWVM, Results, alternate, fmt_s, need, run_checked
from .vmutil import example_disk, qemu_disk_boot, time_to_marker

NAME = "vm"
HELP = "swvm run --isolation=vm vs the container path vs QEMU microvm"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300)


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    need(IMAGE, "run: scripts/build-example-image.sh")
    qemu = shutil.which("qemu-system-x86_64")
    subprocess.run([SWVM, "run", "--isolation=vm", IMAGE, "--", "true"], check=True)   # makes the disk
    disk = example_disk()
    mem = 128
    cmds = {iso: [SWVM, "run", f"--isolation={iso}", IMAGE, "--", "true"] for iso in ("container", "vm")}
    contenders = {iso: (lambda i, argv=argv: run_checked(argv)) for iso, argv in cmds.items()}
    if qemu and disk:
        cmds["qemu"] = qemu_disk_boot(qemu, mem, disk)
        qemu_rss = []

        def qemu_run(i):
            t, _ = time_to_marker(cmds["qemu"], "Attempted to kill init", mem << 20, args.timeout, rss_out=qemu_rss)
            return t, qemu_rss[-1]
        contenders["qemu"] = qemu_run
    got = alternate(args.runs, contenders)
    r = Results(NAME, f"`true` in the example image: container, VM, and QEMU microvm, {args.runs} runs each, alternating", args)
    print(f"## {r.data['title']}\n")
    for name, argv in cmds.items():
        r.command(name, argv)
        print(f"{name + ':':10} {' '.join(argv)}")
    print()
    for name, runs in got.items():
        what = "time to marker" if name == "qemu" else "total"
        r.series(name, "time", "s", [t for t, _ in runs])
        r.series(name, "peak RSS", "KiB", [m for _, m in runs])
        print(f"{name:9} {what} median {fmt_s(r.values(name, 'time'))}, "
              f"peak RSS median {statistics.median(r.values(name, 'peak RSS')) / 1024:.1f} MiB")
    print()
    r.ratio("vm/container", "vm", "container", "time", digits=0)
    r.ratio("vm/qemu", "vm", "qemu", "time")
    r.write()
