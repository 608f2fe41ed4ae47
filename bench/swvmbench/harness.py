"""What every benchmark shares: paths, the alternating runs, medians and
ratios, peak memory, and the results file (JSON) that table.py renders.

Runs alternate between the contenders so that drift on a shared, noisy
machine hits both alike."""
import atexit
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("SWVM_CACHE", "/var/cache/swvm")
SWVM = os.environ.get("SWVM_BINARY", os.path.join(REPO, ".build/release/swvm"))
IMAGE = os.path.join(REPO, "examples/busybox")
KERNEL = os.path.join(CACHE, "kernel/current/vmlinux")

_measure = None


def runs_option(default):
    """add_arguments for a mode whose one option is --runs."""
    def add_arguments(p):
        p.add_argument("--runs", type=int, default=default)
    return add_arguments


def scratch_directory(name):
    """A temporary directory for the bench mode NAME, removed at exit."""
    import shutil
    path = tempfile.mkdtemp(prefix=f"swvm-bench-{name}-")
    atexit.register(shutil.rmtree, path, True)
    return path


def need(path, how):
    if not os.path.exists(path):
        sys.exit(f"bench: {path} is missing; {how}")


def run_wait4(argv, cwd=None, detached=False):
    """Runs argv to completion: (seconds, peak RSS KiB of its process tree,
    exit status), through bench/measure.c: a forked Python would count its
    own memory as the child's peak. `detached`: the command leaves a
    process behind (an OCI runtime's create): its stdio is /dev/null and
    the figures come back through a file."""
    global _measure
    if _measure is None:
        _measure = os.path.join(tempfile.gettempdir(), f"swvm-measure-{os.getpid()}")
        subprocess.run(["gcc", "-O2", "-o", _measure, os.path.join(REPO, "bench/measure.c")], check=True)
        atexit.register(lambda: os.path.exists(_measure) and os.unlink(_measure))
    out = _measure + ".out" if detached else None
    cmd = [_measure] + (["-C", cwd] if cwd else []) + (["-o", out] if out else []) + argv
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL if out else subprocess.PIPE, text=True)
    text = open(out).read() if out else p.stderr
    seconds, rss, status = text.strip().split("\n")[-1].split()
    return float(seconds), int(rss), int(status)


def run_checked(argv, cwd=None):
    """run_wait4 that ends the benchmark on a non-zero exit."""
    t, rss, status = run_wait4(argv, cwd=cwd)
    if status != 0:
        sys.exit(f"bench: {' '.join(argv)} exited {status}")
    return t, rss


def alternate(runs, contenders, warmup=0):
    """Calls each contender's function once per round, in order, for
    warmup + runs rounds: {name: [result of each measured round]}."""
    out = {name: [] for name in contenders}
    for i in range(warmup + runs):
        for name, measure in contenders.items():
            value = measure(i)
            if i >= warmup:
                out[name].append(value)
    return out


def summary(values):
    return statistics.median(values), min(values), max(values)


def fmt_ms(values):
    m, lo, hi = summary(values)
    return f"{m * 1000:.1f} ms (min {lo * 1000:.1f}, max {hi * 1000:.1f})"


def fmt_s(values):
    m, lo, hi = summary(values)
    return f"{m:.2f} s (min {lo:.2f}, max {hi:.2f})"


def spread(values, digits=0, scale=1):
    """"median (min-max)" of values times scale, for a table cell."""
    m, lo, hi = (v * scale for v in summary(values))
    return f"{m:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(a, b):
    return statistics.median(a) / statistics.median(b)


# ------------------------------------------------------------------ memory

def peak_rss_kib(pid):
    return _status_kib(f"/proc/{pid}/status", "VmHWM:")


def pss_kib(pid):
    return _status_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def _status_kib(path, key):
    try:
        for line in open(path):
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return None


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


# ------------------------------------------------------------------ results

class Results:
    """One benchmark's figures: each contender's command and series of
    values (per metric, with its unit), and ratios of medians. Written as
    JSON to a results file, which `bench.py table` renders."""

    def __init__(self, benchmark, title, args):
        self.data = {
            "benchmark": benchmark,
            "title": title,
            "command": "python3 bench/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "environment": {k: os.environ[k] for k in ("SWVM_BINARY", "SWVM_CACHE") if k in os.environ},
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host": f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            "commit": _git_head(),
            "commands": {},
            "series": {},
            "ratios": {},
            "notes": [],
        }
        self.path = getattr(args, "json", None) or default_results_path(benchmark)

    def command(self, name, argv):
        self.data["commands"][name] = argv if isinstance(argv, str) else " ".join(argv)

    def series(self, name, metric, unit, values):
        """values of one metric of one contender, every run (None dropped)."""
        values = [v for v in values if v is not None]
        if values:
            self.data["series"].setdefault(name, {})[metric] = {"unit": unit, "values": values}

    def values(self, name, metric):
        return self.data["series"].get(name, {}).get(metric, {}).get("values", [])

    def print_commands(self, end="\n"):
        """The title and each contender's command; `end` closes the list."""
        print(f"## {self.data['title']}\n")
        for name, argv in self.data["commands"].items():
            print(f"{name}: {argv}")
        print(end, end="")

    def show_commands(self, commands, end="\n"):
        """Records each contender's command ({name: argv}) and prints them."""
        for name, argv in commands.items():
            self.command(name, argv)
        self.print_commands(end)

    def medians(self, got, width, what="median", fmt=fmt_s, metric="time", unit="s"):
        """Records each contender's values of one metric ({name: [value]})
        and prints a line with its median."""
        for name, values in got.items():
            self.series(name, metric, unit, values)
            print(f"{name:{width}} {what} {fmt(values)}")
        print()

    def time_and_rss(self, got, width):
        """Records and prints each contender's (seconds, peak RSS KiB) runs."""
        for name, runs in got.items():
            times, rss = [t for t, _ in runs], [m for _, m in runs]
            self.series(name, "time", "s", times)
            self.series(name, "peak RSS", "KiB", rss)
            print(f"{name:{width}} median {fmt_ms(times)}, peak RSS median {statistics.median(rss) / 1024:.1f} MiB "
                  f"(max {max(rss) / 1024:.1f})")
        print()

    def ratio(self, label, a_name, b_name, metric, digits=2):
        a, b = self.values(a_name, metric), self.values(b_name, metric)
        if a and b:
            self.data["ratios"][label] = round(ratio(a, b), 4)
            print(f"ratio {label} (medians of {metric}): {ratio(a, b):.{digits}f}")

    def note(self, text):
        self.data["notes"].append(text)
        print(text)

    def write(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w") as f:
            json.dump(self.data, f, indent=1)
            f.write("\n")
        shown = os.path.relpath(self.path) if os.path.abspath(self.path).startswith(os.getcwd() + "/") else self.path
        print(f"\nresults: {shown} (bench/bench.py table {shown})")


def default_results_path(benchmark):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return os.path.join(REPO, "bench/results", f"{benchmark}-{stamp}.json")


def _git_head():
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or None
    except OSError:
        return None
