"""swvm boot vs qemu-system-x86_64 -M microvm: time to the test init's marker."""
import shutil
import statistics
import sys
import tempfile

from .harness import KERNEL, SWVM, Results, alternate, fmt_s, need
from .rootfs import boot_initramfs
from .vmutil import kernel_cmdline, qemu_microvm, time_to_marker

NAME = "boot"
HELP = "swvm boot vs qemu-system-x86_64 -M microvm"
MARKER = "SWVM-BOOT-MARKER-OK"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300)


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        sys.exit("bench: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    work = tempfile.mkdtemp(prefix="swvm-bench-boot-")
    try:
        initrd = boot_initramfs(work)
        mem = 128
        cmds = {"swvm": [SWVM, "boot", "--kernel", KERNEL, "--initrd", initrd, "--memory", f"{mem}M"],
                # The same kernel (through its PVH entry), initramfs and command line.
                "qemu": qemu_microvm(qemu, mem, kernel_cmdline(mem), "-initrd", initrd)}
        got = alternate(args.runs, {name: (lambda i, argv=argv: time_to_marker(argv, MARKER, mem << 20, args.timeout))
                                    for name, argv in cmds.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = Results(NAME, f"boot to the test init's marker, {args.runs} runs each, alternating", args)
    r.show_commands(cmds)
    for name, runs in got.items():
        r.series(name, "time to marker", "s", [t for t, _ in runs])
        r.series(name, "VMM memory beyond guest RAM", "KiB", [o for _, o in runs])
        over = r.values(name, "VMM memory beyond guest RAM")
        o = f", VMM memory beyond guest RAM median {statistics.median(over) / 1024:.1f} MiB" if over else ""
        print(f"{name:5} time to marker median {fmt_s(r.values(name, 'time to marker'))}{o}")
    print()
    r.ratio("swvm/qemu", "swvm", "qemu", "time to marker")
    r.write()
