"""`podman run --rm --network none IMAGE true` at the VM level (podman's
runtime a `swvm-vm` link to swvm) vs `swvm run --isolation=vm IMAGE --
true`, alternating: what podman adds to swvm's own warm VM start. Issue
19's target: at most 1.1x. The podman is the benchmark's own
(podman.PrivatePodman).

The rows, all in the same rounds:
- podman-vm: the OCI path, from an OCI root template (the image layers
  disk mounted, the command's files warmed); podman-vm-boot: the same with
  the annotation swvm.vm-template=off (the boot snapshot); podman-vm-9p:
  the annotation swvm.vm-root=9p (the bundle's root over 9p);
- swvm-vm: `swvm run` from its image template; swvm-vm-boot: the same run
  from the boot snapshot (--no-template);
- podman's own fixed cost, at the container level: podman-runc (`podman
  --runtime runc run --rm`) vs runc (`runc run` of the same image's root,
  oci.bundle), and podman-swvm (swvm at the container level as podman's
  runtime) vs swvm-container (`swvm run --isolation=container`). The
  differences of the medians are podman's (and conmon's) own time, the
  figure to put beside the target's allowance (0.1 x swvm-vm);
- podman-vm-timed: podman-vm through a wrapper that timestamps each
  runtime call and the VMM's SWVM_DEBUG lines: where a run's time goes
  (the phases between consecutive events, medians over the rounds). Its
  total against podman-vm's is what the timing costs."""
import os
import shlex
import shutil
import statistics
import tempfile
import time

from .harness import IMAGE, SWVM, Results, alternate, fmt_ms, need, run_checked
from .oci import bundle
from .podman import IMAGE_NAME, PrivatePodman

NAME = "podmanvm"
HELP = "podman run --rm IMAGE true at the VM level vs swvm run --isolation=vm IMAGE -- true"

# The runtime's subcommands a wrapper log line can name.
SUBCOMMANDS = {"create", "start", "state", "kill", "delete", "exec", "pause", "resume", "ps", "update", "features"}
# The VMM's debug lines that mark a phase, by their start.
VMM_EVENTS = [("restored from", "VMM restored"), ("guest-init ready", "guest-init ready"),
              ("template point", "template point"), ("workload started", "workload started"),
              ("workload exited", "workload exited"), ("(stderr closed)", "VMM exited")]
RATIOS = [("podman-vm", "swvm-vm"), ("podman-vm", "swvm-vm-boot"), ("podman-vm-9p", "swvm-vm"), ("podman-vm", "podman-vm-9p"),
          ("podman-vm", "podman-vm-boot"), ("podman-vm-timed", "podman-vm"), ("podman-runc", "runc"),
          ("podman-swvm", "swvm-container")]


def add_arguments(p):
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)


def runtime_script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/bash\n" + body)
    os.chmod(path, 0o755)
    return path


def cache_line():
    """podman gives its runtime a curated environment: a wrapper sets SWVM_CACHE again."""
    cache = os.environ.get("SWVM_CACHE")
    return f"export SWVM_CACHE={shlex.quote(cache)}\n" if cache else ""


def vm_link(directory):
    """A swvm-vm link to SWVM (by its absolute path: podman runs its
    runtime from another directory); with SWVM_CACHE set, a script that
    sets it and exec's swvm under the link's name (the name selects the
    VM level)."""
    link = os.path.join(directory, "swvm-vm")
    swvm = shlex.quote(os.path.abspath(SWVM))
    if cache_line():
        return runtime_script(link, cache_line() + f'exec -a "$0" {swvm} "$@"\n')
    os.symlink(os.path.abspath(SWVM), link)
    return link


def timed_link(directory, log):
    """A swvm-vm wrapper that appends to `log` one line per runtime call,
    "call BEGIN END STATUS ARGS", and, for `create`, every line of the
    VMM's stderr (it inherits create's) as "line TIME TEXT", with
    SWVM_DEBUG on, so that the VMM's own events have host times too, and
    "(stderr closed)" once the VMM has exited (the last holder of that
    stderr). Times are the wall clock ($EPOCHREALTIME)."""
    os.makedirs(directory)
    swvm, log = shlex.quote(os.path.abspath(SWVM)), shlex.quote(log)
    return runtime_script(os.path.join(directory, "swvm-vm"), cache_line() + f"""log={log}
begin=$EPOCHREALTIME
case " $* " in *" create "*)
    export SWVM_DEBUG=1
    exec 2> >({{ while IFS= read -r l; do echo "line $EPOCHREALTIME $l"; done
              echo "line $EPOCHREALTIME (stderr closed)"; }} >> "$log")
esac
(exec -a "$0" {swvm} "$@")
rc=$?
echo "call $begin $EPOCHREALTIME $rc $*" >> "$log"
exit $rc
""")


def with_annotation(argv, annotation):
    i = argv.index("run") + 1
    return argv[:i] + ["--annotation", annotation] + argv[i:]


def events(log, start, seconds):
    """One timed run's events, [(wall time, label)] in order: podman's
    start and exit, each runtime call's begin and return, the VMM's
    marked debug lines. A label seen again gets its count ("state #2")."""
    out = [(start, "podman starts"), (start + seconds, "podman exits")]
    for line in open(log):
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "call":
            begin, end, _, args = (rest.split(" ", 3) + [""])[:4]
            sub = next((a for a in args.split() if a in SUBCOMMANDS), "?")
            out += [(float(begin), f"{sub} called"), (float(end), f"{sub} returns")]
        elif kind == "line":
            t, _, text = rest.partition(" ")
            text = text.removeprefix("swvm: debug: ")
            out += [(float(t), label) for prefix, label in VMM_EVENTS if text.startswith(prefix)]
    out.sort()
    seen = {}
    for i, (t, label) in enumerate(out):
        seen[label] = seen.get(label, 0) + 1
        out[i] = (t, label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def timed(podman, argv, log, phases):
    """A measure function for `alternate`: one podman run through the
    timing wrapper, its phases ("A -> B": seconds) appended to `phases`."""
    measure = podman.timed(argv)

    def once(i):
        open(log, "w").close()
        start = time.time()
        seconds = measure(i)
        marks = events(log, start, seconds)
        phases.append({f"{a} -> {b}": tb - ta for (ta, a), (tb, b) in zip(marks, marks[1:])})
        return seconds
    return once


def commands(podman, work, link, timed_vm):
    """{name: (argv, how it is shown)}: every row's command."""
    vm = podman.argv(link, "none")
    swvm_vm = [SWVM, "run", "--isolation=vm", IMAGE, "--", "true"]
    shown = f"podman --root DIR/storage --runroot DIR/run ... --runtime %s run --rm%s --network none {IMAGE_NAME} true"
    rows = {"podman-vm": (vm, shown % ("DIR/swvm-vm", "")),
            "podman-vm-9p": (with_annotation(vm, "swvm.vm-root=9p"), shown % ("DIR/swvm-vm", " --annotation swvm.vm-root=9p")),
            "podman-vm-boot": (with_annotation(vm, "swvm.vm-template=off"),
                               shown % ("DIR/swvm-vm", " --annotation swvm.vm-template=off")),
            "podman-vm-timed": (podman.argv(timed_vm, "none"), shown % ("DIR/timed/swvm-vm (timestamps each call)", "")),
            "swvm-vm": (swvm_vm, None),
            "swvm-vm-boot": (swvm_vm[:3] + ["--no-template"] + swvm_vm[3:], None),
            "podman-runc": (podman.argv("/usr/sbin/runc", "none"), shown % ("/usr/sbin/runc", "")),
            "runc": (["runc", "--root", os.path.join(work, "runc"), "run", "--bundle", bundle(work)],
                     "runc --root DIR/runc run --bundle DIR/bundle ID (the image's root, `runc spec`, args true)"),
            "podman-swvm": (podman.argv(os.path.abspath(SWVM), "none"), shown % (os.path.abspath(SWVM), "")),
            "swvm-container": ([SWVM, "run", "--isolation=container", IMAGE, "--", "true"], None)}
    return {name: (argv, text or argv) for name, (argv, text) in rows.items()}


def measures(podman, cmds, log, phases):
    """{name: measure function} in the order the rounds run them."""
    def plain(argv):
        return lambda i: run_checked(argv)[0]
    out = {name: podman.timed(argv) if name.startswith("podman") else plain(argv) for name, (argv, _) in cmds.items()}
    out["podman-vm-timed"] = timed(podman, cmds["podman-vm-timed"][0], log, phases)
    runc = cmds["runc"][0]
    out["runc"] = lambda i: run_checked(runc + [f"podmanvm-{os.getpid()}-{i}"])[0]
    return out


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build), or SWVM_BINARY")
    need(IMAGE, "run: scripts/build-example-image.sh")
    work = tempfile.mkdtemp(prefix="swvm-bench-podmanvm-")
    phases = []
    try:
        with PrivatePodman(SWVM) as podman:
            log = os.path.join(podman.dir, "timed.log")
            cmds = commands(podman, work, vm_link(podman.dir), timed_link(os.path.join(podman.dir, "timed"), log))
            got = alternate(args.runs, measures(podman, cmds, log, phases), warmup=args.warmup)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = Results(NAME, f"`podman run --rm IMAGE true` at the VM level vs `swvm run --isolation=vm`, {args.runs} runs each, alternating", args)
    r.show_commands({name: shown for name, (_, shown) in cmds.items()})
    report(r, got, phases[args.warmup:])


def report(r, got, phases):
    """Each row's times, the ratios, the timed run's phases and podman's
    own cost beside the target's allowance."""
    for name, times in got.items():
        r.series(name, "time", "s", times)
        print(f"{name:16} median {fmt_ms(times)}")
    print()
    for a, b in RATIOS:
        r.ratio(f"{a}/{b}", a, b, "time", digits=3)
    ms = lambda seconds: f"{seconds * 1000:.0f} ms"  # noqa: E731
    median = lambda name: statistics.median(got[name])  # noqa: E731
    r.note(f"podman's own cost (medians): podman-runc - runc {ms(median('podman-runc') - median('runc'))}, "
           f"podman-swvm - swvm-container {ms(median('podman-swvm') - median('swvm-container'))}, "
           f"in podman-vm-timed's phases {ms(report_phases(r, phases))}; issue 19's allowance (0.1 x swvm-vm): "
           f"{ms(median('swvm-vm') * 0.1)}; podman-vm - swvm-vm: {ms(median('podman-vm') - median('swvm-vm'))}")
    r.write()


def report_phases(r, phases):
    """Records and prints the median of each phase of the timed runs;
    returns the median over those runs of podman's (and conmon's) share:
    the phases that end when podman calls the runtime or exits."""
    print("\nphases of podman-vm-timed (medians):")
    for label in dict.fromkeys(label for p in phases for label in p):
        values = [p[label] for p in phases if label in p]
        r.series(f"phase: {label}", "time", "s", values)
        print(f"  {label:44} {fmt_ms(values)}")
    podmans = lambda label: label.split(" -> ")[1].split(" #")[0].endswith((" called", "podman exits"))  # noqa: E731
    return statistics.median(sum(t for label, t in p.items() if podmans(label)) for p in phases) if phases else 0.0
