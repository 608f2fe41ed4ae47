"""What the VMM's jail costs a warm start and the host's memory: the same
build, alternating, with the jail (the default) and without it
(SWVM_TEST_UNJAILED_VMM=1, a test-only switch that only a debug build
reads: a release build's jail cannot be turned off, so this benchmark
runs the debug build, `swift build`). Both runs start the
keeper (it cleans up in either case), so the difference is the jail's own
steps: the uid lease, the cgroup, closing descriptors, namespaces,
pivot_root, the identity switch and the process-wide seccomp filter."""
import os
import subprocess
import time

from .harness import Results, alternate, need, peak_rss_kib, spread, summary
from .vmutil import swvm_report_run

NAME = "jail"
HELP = "a warm VM start with the VMM's jail vs the same build with it skipped (test-only switch)"

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
IMAGE = os.path.join(ROOT, "examples", "busybox")
# The debug build: the only one that reads the test-only switch.
SWVM = os.path.abspath(os.path.join(ROOT, ".build", "debug", "swvm"))


def add_arguments(p):
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--old-swvm", metavar="BINARY",
                   help="also measure the keeper of this swvm binary (an older build), side by side")
    p.add_argument("--keeper-runs", type=int, default=5,
                   help="VMs per binary for the keeper's private memory")
    p.add_argument("--keeper-only", action="store_true", help="measure the keeper's memory only")
    p.add_argument("--old-cache", metavar="DIR",
                   help="with --old-swvm: the old build's SWVM_CACHE (a guest-init of its own sources)")
    p.add_argument("--processes", action="store_true",
                   help="with --old-swvm: the process model side by side (this build's monitor + VMM child vs the "
                        "old build's VMM + keeper child): warm start and the two processes' memory")


def smaps_kib(pid, fields):
    """The sum of `fields` of /proc/PID/smaps_rollup, KiB."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(fields):
                total += int(line.split()[1])
    return total


def smaps_private_kib(pid):
    """Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, KiB."""
    return smaps_kib(pid, ("Private_Clean:", "Private_Dirty:"))


def keeper_pid(vmm):
    """The VMM's keeper: its child (swvm-vmm-keeper, or an older build's
    `swvm vmm-keeper`); `swvm run` itself when it is the monitor, whose
    child is the VMM."""
    with open(f"/proc/{vmm}/cmdline", "rb") as c:
        if b"vmm-keeper" in c.read():
            return vmm
    for task in os.listdir(f"/proc/{vmm}/task"):
        with open(f"/proc/{vmm}/task/{task}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/cmdline", "rb") as c:
                    if b"vmm-keeper" in c.read():
                        return int(child)
    return None


def keeper_private_kib(swvm, image):
    """Runs a warm VM with `sleep` and reads its keeper's private memory
    (and RSS) once the workload is up, 1 s later (the keeper is idle)."""
    p = subprocess.Popen([swvm, "run", "--isolation=vm", image, "--", "sh", "-c", "echo up; sleep 30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if p.stdout.readline().strip() != b"up":
            raise SystemExit(f"bench: {swvm}: the VM did not come up")
        time.sleep(1)
        pid = keeper_pid(p.pid)
        if pid is None:
            raise SystemExit(f"bench: {swvm}: no keeper under the VMM {p.pid}")
        return smaps_private_kib(pid), peak_rss_kib(pid)
    finally:
        p.terminate()
        p.wait()


def tree(root):
    """`root` and every process under it."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                todo += [int(c) for c in f.read().split()]
    return out


def tree_memory(swvm, image):
    """Runs a warm VM with `sleep` and reads, 1 s after it is up, the
    private memory, RSS and anonymous memory of `swvm run`'s whole process
    tree (the VMM and its keeper, or the monitor and its VMM): KiB, KiB,
    process count, KiB. Private memory counts clean file pages only this
    tree maps (its binary's, the snapshot's page cache), which depend on
    what else maps those files; anonymous memory is what the host must
    back for the processes themselves (guest RAM the guest dirtied too)."""
    p = subprocess.Popen([swvm, "run", "--isolation=vm", "--no-template", image, "--", "sh", "-c", "echo up; sleep 30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if p.stdout.readline().strip() != b"up":
            raise SystemExit(f"bench: {swvm}: the VM did not come up")
        time.sleep(1)
        pids = tree(p.pid)
        return (sum(smaps_private_kib(x) for x in pids), sum(rss_kib(x) for x in pids), len(pids),
                sum(smaps_kib(x, ("Anonymous:",)) for x in pids))
    finally:
        p.terminate()
        p.wait()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def with_cache(cache, run):
    """`run` with SWVM_CACHE set to `cache` (when given) while it runs."""
    if not cache:
        return run

    def one(i):
        saved = os.environ.get("SWVM_CACHE")
        os.environ["SWVM_CACHE"] = cache
        try:
            return run(i)
        finally:
            if saved is None:
                del os.environ["SWVM_CACHE"]
            else:
                os.environ["SWVM_CACHE"] = saved
    return one


def processes(args, image):
    """This build (monitor + VMM child) against the old one (VMM + keeper
    child), alternating: a warm start from the boot snapshot (spawn to the
    workload's exec, and the whole run), and the tree's memory."""
    old = os.path.abspath(args.old_swvm)
    argv = lambda swvm: [swvm, "run", "--isolation=vm", "--no-template", image, "--", "true"]

    def start(swvm):
        def one(i):
            # The warm-up round may boot and save the build's snapshot.
            seconds, report, spawned = swvm_report_run(argv(swvm), "warm" if i > 0 else None)
            return ((report["execNanos"] - spawned) / 1e9, seconds)
        return one

    r = Results(NAME, f"the process model side by side: `{' '.join(argv(SWVM))}` vs the old build, "
                      f"{args.runs} runs each, alternating; memory of {args.keeper_runs} VMs each", args)
    r.command("new", argv(SWVM))
    r.command("old", argv(old))
    old_start, old_memory = with_cache(args.old_cache, start(old)), with_cache(args.old_cache, lambda _: tree_memory(old, image))
    got = alternate(args.runs, {"new": start(SWVM), "old": old_start}, warmup=1)
    mem = alternate(args.keeper_runs, {"new": lambda _: tree_memory(SWVM, image), "old": old_memory})
    print(f"## {r.data['title']}\n")
    print("| | spawn to the workload's exec, ms | whole run, s | processes' private memory, KiB | their RSS, KiB | their anonymous memory, KiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("new", "old"):
        r.series(name, "exec", "s", [v[0] for v in got[name]])
        r.series(name, "whole", "s", [v[1] for v in got[name]])
        r.series(name, "private", "KiB", [v[0] for v in mem[name]])
        r.series(name, "rss", "KiB", [v[1] for v in mem[name]])
        r.series(name, "anonymous", "KiB", [v[3] for v in mem[name]])
        v = lambda metric: r.values(name, metric)
        print(f"| {name} | {spread(v('exec'), scale=1e3)} | {spread(v('whole'), 2)} "
              f"| {spread(v('private'))} | {spread(v('rss'))} | {spread(v('anonymous'))} |")
    print()
    ne, oe = summary(r.values("new", "exec"))[0], summary(r.values("old", "exec"))[0]
    nm, om = summary(r.values("new", "private"))[0], summary(r.values("old", "private"))[0]
    r.note(f"warm start to the workload's exec: new/old {ne / oe:.3f} ({(ne - oe) * 1e3:+.0f} ms, medians)")
    na, oa = summary(r.values("new", "anonymous"))[0], summary(r.values("old", "anonymous"))[0]
    r.note(f"monitor + VMM private memory {nm:.0f} KiB vs VMM + keeper {om:.0f} KiB: {nm - om:+.0f} KiB (target: at most +1024)")
    r.note(f"monitor + VMM anonymous memory {na:.0f} KiB vs VMM + keeper {oa:.0f} KiB: {na - oa:+.0f} KiB (target: at most +1024)")
    r.write()


def run(args):
    need(SWVM, "run: swift build (the debug build; only it reads the test-only switch)")
    image = os.path.abspath(IMAGE)
    if args.processes:
        if not args.old_swvm:
            raise SystemExit("bench: --processes needs --old-swvm")
        processes(args, image)
        return
    # From the boot snapshot (image templates would take its place).
    argv = [SWVM, "run", "--isolation=vm", "--no-template", image, "--", "true"]
    if args.keeper_only:
        r = Results(NAME, f"the keeper's private memory while a VM runs, {args.keeper_runs} VMs each", args)
        keepers(args, image, r)
        r.write()
        return

    def measure(jailed):
        def one(_):
            env = dict(os.environ)
            if not jailed:
                env["SWVM_TEST_UNJAILED_VMM"] = "1"
            old = os.environ.copy()
            os.environ.clear()
            os.environ.update(env)
            try:
                seconds, report, spawned = swvm_report_run(argv, "warm")
            finally:
                os.environ.clear()
                os.environ.update(old)
            return ((report["threadsStartNanos"] - spawned) / 1e9, seconds, report["swvmPeakRSS"] / 1024)
        return one

    got = alternate(args.runs, {"jailed": measure(True), "unjailed": measure(False)}, warmup=1)
    r = Results(NAME, f"`{' '.join(argv)}`, {args.runs} runs each, alternating", args)
    r.command("jailed", argv)
    r.command("unjailed", "SWVM_TEST_UNJAILED_VMM=1 " + " ".join(argv))
    print(f"## {r.data['title']}\n")
    print("| | spawn to the VM's threads starting, ms | whole run, s | VMM + keeper peak RSS, MiB |")
    print("| --- | --- | --- | --- |")
    for name in ("jailed", "unjailed"):
        start = [v[0] for v in got[name]]
        whole = [v[1] for v in got[name]]
        rss = [v[2] / 1024 for v in got[name]]
        r.series(name, "start", "s", start)
        r.series(name, "whole", "s", whole)
        r.series(name, "rss", "MiB", rss)
        print(f"| {name} | {spread(start, 1, 1e3)} | {spread(whole, 2)} | {spread(rss, 1)} |")
    print()
    js, us = summary(r.values("jailed", "start"))[0], summary(r.values("unjailed", "start"))[0]
    r.note(f"the jail adds {(js - us) * 1e3:.1f} ms (medians) before the VM's threads start (target: at most 5 ms)")
    jr, ur = summary(r.values("jailed", "rss"))[0], summary(r.values("unjailed", "rss"))[0]
    r.note(f"VMM + keeper peak RSS: jailed {jr:.1f} MiB, unjailed {ur:.1f} MiB")
    keepers(args, image, r)
    r.write()


def keepers(args, image, r):
    """The keeper's private memory while a VM runs: this build's, and the
    older binary's side by side when given."""
    contenders = {"keeper": lambda _: keeper_private_kib(SWVM, image)}
    if args.old_swvm:
        contenders["old keeper"] = lambda _: keeper_private_kib(os.path.abspath(args.old_swvm), image)
        r.command("old keeper", [os.path.abspath(args.old_swvm), "run", "--isolation=vm", image, "--", "sh", "-c", "echo up; sleep 30"])
    r.command("keeper", [SWVM, "run", "--isolation=vm", image, "--", "sh", "-c", "echo up; sleep 30"])
    got = alternate(args.keeper_runs, contenders)
    print("| keeper of | private (Private_Clean + Private_Dirty), KiB | peak RSS, KiB |")
    print("| --- | --- | --- |")
    for name in contenders:
        private = [v[0] for v in got[name]]
        rss = [v[1] for v in got[name]]
        r.series(name, "private", "KiB", private)
        r.series(name, "rss", "KiB", rss)
        m, lo, hi = summary(private)
        k, klo, khi = summary(rss)
        print(f"| {name} | {m:.0f} ({lo:.0f}-{hi:.0f}) | {k:.0f} ({klo:.0f}-{khi:.0f}) |")
    print()
    new = summary(r.values("keeper", "private"))[0]
    r.note(f"the keeper's private memory while a VM runs: {new:.0f} KiB (target: at most 1024 KiB)")
    if args.old_swvm:
        old = summary(r.values("old keeper", "private"))[0]
        r.note(f"the old keeper's: {old:.0f} KiB; new/old {new / old:.3f}")
