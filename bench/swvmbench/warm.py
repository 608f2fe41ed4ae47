"""Start from an image template vs warm start (boot snapshot restore) vs
the first run of an image (which saves its template) vs cold boot vs QEMU
microvm's cold boot; restore alone vs QEMU's -incoming; host memory of 4
concurrent VMs."""
import os
import select
import shutil
import statistics
import subprocess
import tempfile
import time

from .harness import CACHE, IMAGE, KERNEL, SWVM, Results, alternate, fmt_ms, fmt_s, need, vmm_overhead_kib
from .vmutil import concurrent_vms_pss, example_disk, qemu_disk_boot, qemu_restore_times, swvm_report_run, time_to_marker

NAME = "warm"
HELP = "template vs warm start vs first run vs cold boot vs QEMU microvm; restore alone vs QEMU -incoming; memory of 4 VMs"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300)


def remove_templates():
    """The first run of an image: no template saved yet."""
    root = os.path.join(CACHE, "templates")
    for name in os.listdir(root) if os.path.isdir(root) else []:
        if not name.startswith("."):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def start_times(args, commands, qemu_cold, mem):
    """Alternating template, warm, first, cold and QEMU runs: {name: [(s, restore s, RSS KiB)]}."""
    def restored(argv, start):
        def one(i):
            seconds, report, spawned = swvm_report_run(argv, start)
            return seconds, (report["readyNanos"] - spawned) / 1e9, report["swvmPeakRSS"] / 1024
        return one

    def first(i):
        remove_templates()
        return restored(commands["first"], "warm")(i)

    def cold_boot(i):
        seconds, report, _ = swvm_report_run(commands["cold"])
        return seconds, None, report["swvmPeakRSS"] / 1024
    contenders = {"template": restored(commands["template"], "template"), "warm": restored(commands["warm"], "warm"),
                  "first": first, "cold": cold_boot}
    if qemu_cold:
        contenders["qemu"] = lambda i: (time_to_marker(qemu_cold, "Attempted to kill init", mem << 20, args.timeout)[0], None, None)
    return alternate(args.runs, contenders)


def running_overhead_kib(mem, timeout):
    """VMM memory beyond guest RAM, sampled while a warm VM runs."""
    p = subprocess.Popen([SWVM, "run", "--isolation=vm", IMAGE, "--", "sh", "-c", "echo up; sleep 30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    select.select([p.stdout], [], [], timeout)
    os.read(p.stdout.fileno(), 100)
    time.sleep(2)   # past the VMM's trim of its start-up pages (1 s in)
    overhead = vmm_overhead_kib(p.pid, mem << 20)
    p.kill()
    p.wait()
    return overhead


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    need(IMAGE, "run: scripts/build-example-image.sh")
    qemu = shutil.which("qemu-system-x86_64")
    run_cmd = [SWVM, "run", "--isolation=vm", IMAGE, "--", "true"]
    commands = {
        # From the image's template (the default once one is saved).
        "template": run_cmd,
        # From the boot snapshot: as every warm run before templates.
        "warm": [SWVM, "run", "--isolation=vm", "--no-template", IMAGE, "--", "true"],
        # The first run of the image: its template removed before each.
        "first": run_cmd,
        "cold": [SWVM, "run", "--isolation=vm", "--cold-boot", IMAGE, "--", "true"],
    }
    subprocess.run(run_cmd, check=True)   # makes the disk and the snapshot
    subprocess.run(run_cmd, check=True)   # and the template
    disk = example_disk()
    mem = 128
    qemu_cold = qemu_disk_boot(qemu, mem, disk) if qemu and disk else None
    got = start_times(args, commands, qemu_cold, mem)
    overhead = running_overhead_kib(mem, args.timeout)
    one = concurrent_vms_pss(1, args.timeout)
    four = concurrent_vms_pss(4, args.timeout)
    qtimes, qcmd, qsize = ([], None, 0)
    if qemu:
        work = tempfile.mkdtemp(prefix="swvm-bench-warm-")
        try:
            qtimes, qcmd, qsize = qemu_restore_times(qemu, work, args.runs, args.timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    r = Results(NAME, f"warm start: `true` in the example image, {args.runs} runs each, alternating", args)
    print(f"## {r.data['title']}\n")
    for name, argv in list(commands.items()) + [("qemu", qemu_cold)]:
        if argv:
            r.command(name, argv)
            print(f"{name}: {' '.join(argv)}" + ("   (its template removed first)" if name == "first" else ""))
    print()
    for name, runs in got.items():
        r.series(name, "time", "s", [t for t, _, _ in runs])
        r.series(name, "swvm peak RSS", "KiB", [m for _, _, m in runs])
        rss = r.values(name, "swvm peak RSS")
        what = "time to marker" if name == "qemu" else "total"
        print(f"{name:8} {what} median {fmt_s(r.values(name, 'time'))}"
              + (f", swvm peak RSS median {statistics.median(rss) / 1024:.1f} MiB" if rss else ""))
    print()
    r.ratio("template/cold", "template", "cold", "time", digits=3)
    r.ratio("template/qemu cold boot", "template", "qemu", "time", digits=3)
    r.ratio("template/warm", "template", "warm", "time", digits=3)
    r.ratio("first run/warm", "first", "warm", "time", digits=3)
    r.ratio("warm/cold", "warm", "cold", "time", digits=3)
    r.ratio("warm/qemu cold boot", "warm", "qemu", "time", digits=3)

    print(f"\n## restore alone: process start until the restored vCPUs run, {args.runs} runs\n")
    r.series("warm", "restore", "s", [x for _, x, _ in got["warm"]])
    r.series("template", "restore", "s", [x for _, x, _ in got["template"]])
    print(f"swvm: spawn to readyNanos of --report-fd (restored, about to resume): median {fmt_ms(r.values('warm', 'restore'))}"
          f" (boot snapshot), {fmt_ms(r.values('template', 'restore'))} (template)")
    if qtimes:
        r.command("qemu restore", qcmd)
        r.series("qemu restore", "restore", "s", qtimes)
        print(f"qemu: {' '.join(qcmd)}\n      ({qsize / 1048576:.1f} MiB state file) spawn to running (loaded, then QMP cont): median {fmt_ms(qtimes)}")
        r.ratio("restore swvm/qemu", "warm", "qemu restore", "restore", digits=3)

    print("\n## memory\n")
    if overhead is not None:
        r.series("warm", "VMM memory beyond guest RAM", "KiB", [overhead])
        print(f"VMM memory beyond guest RAM (RSS outside the guest mapping, warm VM running): {overhead / 1024:.1f} MiB")
    r.series("1 warm VM", "PSS", "KiB", one)
    r.series("4 concurrent warm VMs", "PSS", "KiB", four)
    r.note(f"PSS of 1 warm VM: {one[0] / 1024:.1f} MiB; of 4 concurrent warm VMs: {sum(four) / 1024:.1f} MiB "
           f"({', '.join(f'{x / 1024:.1f}' for x in four)}); each additional VM: {(sum(four) - one[0]) / 3 / 1024:.1f} MiB")
    r.write()
