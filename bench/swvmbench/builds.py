"""Two builds of swvm side by side: container start, warm VM start and
small files through a virtio-9p share, alternating between this build
(SWVM_BINARY) and a baseline build (--baseline, e.g. an older commit's
release binary), each with its own cache (--baseline-cache), so that a
refactor can be shown to keep the figures."""
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile

from .harness import CACHE, IMAGE, SWVM, Results, alternate, need, run_wait4
from .rootfs import fsperf_tools

NAME = "builds"
HELP = "this swvm build vs a baseline build: container start, warm VM start, 9p small files"


def add_arguments(p):
    p.add_argument("--baseline", required=True, metavar="BINARY", help="the other build's swvm")
    p.add_argument("--baseline-cache", metavar="DIR", help="its SWVM_CACHE (guest-init of its own sources)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--vm-runs", type=int, default=3)
    p.add_argument("--files", type=int, default=200)


def builds(args):
    """name -> the argv prefix that runs that build with its own cache.
    `env` execs the binary, so the measured process is swvm itself."""
    base_cache = args.baseline_cache or CACHE
    return {"this": ["env", f"SWVM_CACHE={CACHE}", SWVM],
            "baseline": ["env", f"SWVM_CACHE={base_cache}", args.baseline]}


def checked(argv):
    t, rss, status = run_wait4(argv)
    if status != 0:
        sys.exit(f"bench: {' '.join(argv)} exited {status}")
    return t, rss


def small_files(argv):
    """ms of fsperf's create+write, read and delete phases, parsed from the run."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    m = re.search(r"small ([0-9.]+) ([0-9.]+) ([0-9.]+)", p.stdout)
    if not m:
        sys.exit(f"bench: {' '.join(argv)} gave no figures (status {p.returncode}):\n{p.stderr[-2000:]}")
    return [float(x) for x in m.groups()]


def measure(args, prefixes, root, work):
    cont = {n: p + ["run", "--isolation=container", IMAGE, "--", "true"] for n, p in prefixes.items()}
    warm = {n: p + ["run", "--isolation=vm", IMAGE, "--", "true"] for n, p in prefixes.items()}
    nine = {}
    for n, p in prefixes.items():
        share = os.path.join(work, f"share-{n}")
        os.makedirs(share)
        nine[n] = p + ["run", "--isolation=vm", "-v", f"{share}:/data", root, "--",
                       "/fsperf", "small", "/data", str(args.files)]
    # The first VM run of each build saves its snapshot: not measured.
    for argv in warm.values():
        checked(argv)
    got = {"container": alternate(args.runs, {n: (lambda i, a=a: checked(a)) for n, a in cont.items()}, warmup=2),
           "warm VM": alternate(args.vm_runs, {n: (lambda i, a=a: checked(a)) for n, a in warm.items()}),
           "9p": alternate(args.vm_runs, {n: (lambda i, a=a: small_files(a)) for n, a in nine.items()})}
    return got, {"container": cont, "warm VM": warm, "9p": nine}


def report(r, got):
    for what in ("container", "warm VM"):
        for n, runs in got[what].items():
            r.series(f"{what} {n}", "time", "s", [t for t, _ in runs])
            r.series(f"{what} {n}", "peak RSS", "KiB", [m for _, m in runs])
        print(f"{what}:")
        r.time_and_rss({f"{what} {n}": runs for n, runs in got[what].items()}, 20)
        r.ratio(f"{what} this/baseline", f"{what} this", f"{what} baseline", "time")
        r.ratio(f"{what} peak RSS this/baseline", f"{what} this", f"{what} baseline", "peak RSS")
    for i, phase in enumerate(("create+write", "read", "delete")):
        for n, runs in got["9p"].items():
            r.series(f"9p {n}", phase, "ms", [x[i] for x in runs])
        r.ratio(f"9p {phase} this/baseline", "9p this", "9p baseline", phase)


def run(args):
    need(SWVM, "run: scripts/build-release.sh")
    need(args.baseline, "build the baseline (SWVM_BUILD_PATH=DIR scripts/build-release.sh in its checkout)")
    need(IMAGE, "run: scripts/build-example-image.sh")
    work = tempfile.mkdtemp(prefix="swvm-bench-builds-")
    atexit.register(shutil.rmtree, work, True)
    _, root = fsperf_tools(work)
    prefixes = builds(args)
    got, commands = measure(args, prefixes, root, work)
    r = Results(NAME, f"this build vs a baseline build: container start ({args.runs} runs), warm VM start and "
                      f"{args.files} small files through 9p ({args.vm_runs} runs), alternating", args)
    for what, argvs in commands.items():
        for n, argv in argvs.items():
            r.command(f"{what} {n}", argv)
    r.print_commands()
    report(r, got)
    r.write()
