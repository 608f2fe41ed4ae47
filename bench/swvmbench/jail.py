"""What the VMM's jail costs a warm start and the host's memory: the same
build, alternating, with the jail (the default) and without it
(SWVM_TEST_UNJAILED_VMM=1, a test-only switch that only a debug build
reads: a release build's jail cannot be turned off, so this benchmark
runs the debug build, `swift build`). Both runs start the
keeper (it cleans up in either case), so the difference is the jail's own
steps: the uid lease, the cgroup, closing descriptors, namespaces,
pivot_root, the identity switch and the process-wide seccomp filter."""
import os

from .harness import Results, alternate, fmt_ms, need, summary
from .vmutil import swvm_report_run

NAME = "jail"
HELP = "a warm VM start with the VMM's jail vs the same build with it skipped (test-only switch)"

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
IMAGE = os.path.join(ROOT, "examples", "busybox")
# The debug build: the only one that reads the test-only switch.
SWVM = os.path.abspath(os.path.join(ROOT, ".build", "debug", "swvm"))


def add_arguments(p):
    p.add_argument("--runs", type=int, default=10)


def run(args):
    need(SWVM, "run: swift build (the debug build; only it reads the test-only switch)")
    image = os.path.abspath(IMAGE)
    # From the boot snapshot (image templates would take its place).
    argv = [SWVM, "run", "--isolation=vm", "--no-template", image, "--", "true"]

    def measure(jailed):
        def one(_):
            env = dict(os.environ)
            if not jailed:
                env["SWVM_TEST_UNJAILED_VMM"] = "1"
            old = os.environ.copy()
            os.environ.clear()
            os.environ.update(env)
            try:
                seconds, report, spawned = swvm_report_run(argv)
            finally:
                os.environ.clear()
                os.environ.update(old)
            if report.get("vmStart") != "warm":
                raise SystemExit(f"bench: expected a warm start, got {report.get('vmStart')}")
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
        m, lo, hi = summary(start)
        w, wlo, whi = summary(whole)
        k, klo, khi = summary(rss)
        print(f"| {name} | {m * 1e3:.1f} ({lo * 1e3:.1f}-{hi * 1e3:.1f}) | {w:.2f} ({wlo:.2f}-{whi:.2f}) | {k:.1f} ({klo:.1f}-{khi:.1f}) |")
    print()
    js, us = summary(r.values("jailed", "start"))[0], summary(r.values("unjailed", "start"))[0]
    r.note(f"the jail adds {(js - us) * 1e3:.1f} ms (medians) before the VM's threads start (target: at most 5 ms)")
    jr, ur = summary(r.values("jailed", "rss"))[0], summary(r.values("unjailed", "rss"))[0]
    r.note(f"VMM + keeper peak RSS: jailed {jr:.1f} MiB, unjailed {ur:.1f} MiB")
    r.write()
