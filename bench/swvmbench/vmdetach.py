"""A detached VM (`swvm run -d --isolation=vm`, the VMM a child of its
monitor) against the foreground run, alternating:

- ready: from spawn until the workload's first line ("ready") is on the
  host: the foreground run's stdout, the detached VM's log (polled every
  2 ms once `run -d` returned; `run -d` itself returns once the workload
  runs, its time is kept as "detached-return"); the detached VM is then
  removed (`swvm rm -f`, not timed);
- exec: `swvm exec ID true` into a detached VM running sleep vs a warm
  `swvm run --isolation=vm IMAGE -- true`, each the whole command (spawn
  to exit, with its peak RSS)."""
import os
import subprocess
import sys
import time

from .harness import IMAGE, SWVM, Results, alternate, fmt_ms, need, run_checked

NAME = "vmdetach"
HELP = "swvm run -d --isolation=vm start-to-ready and swvm exec into it vs the foreground run"
CONTAINERS = "/run/swvm/containers"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--exec-only", action="store_true", help="only exec vs the warm run (not start-to-ready)")


def swvm(args, check=True):
    p = subprocess.run([SWVM] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"bench: swvm {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def wait_for_line(path, text, deadline):
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                if text in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    return False


def foreground_ready(image):
    t0 = time.monotonic()
    p = subprocess.Popen([SWVM, "run", "--isolation=vm", image, "--", "echo", "ready"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    t = time.monotonic() - t0
    p.stdout.read()
    if p.wait() != 0 or line != b"ready\n":
        sys.exit(f"bench: the foreground run exited {p.returncode} after {line!r}")
    return t


def detached_ready(image, returns):
    t0 = time.monotonic()
    cid = swvm(["run", "-d", "--isolation=vm", image, "--", "sh", "-c", "echo ready; exec sleep 3600"]).strip()
    returns.append(time.monotonic() - t0)
    try:
        if not wait_for_line(os.path.join(CONTAINERS, cid, "container.log"), b"ready\n", time.monotonic() + 60):
            sys.exit("bench: the detached VM's log never said ready")
        return time.monotonic() - t0
    finally:
        swvm(["rm", "-f", cid], check=False)


def run(args):
    need(SWVM, "run: swift build -c release")
    image = os.path.abspath(IMAGE)
    returns = []
    ready = {} if args.exec_only else alternate(args.runs, {"foreground": lambda i: foreground_ready(image),
                                                            "detached": lambda i: detached_ready(image, returns)}, warmup=1)
    cid = swvm(["run", "-d", "--isolation=vm", image, "--", "sleep", "3600"]).strip()
    try:
        exec_argv = [SWVM, "exec", cid, "true"]
        run_argv = [SWVM, "run", "--isolation=vm", image, "--", "true"]
        # The first exec into the VM (guest-init's own path; it then forks
        # the exec zygote the later ones come from), kept apart.
        first = run_checked(exec_argv)
        got = alternate(args.runs, {"exec": lambda i: run_checked(exec_argv), "run": lambda i: run_checked(run_argv)},
                        warmup=1)
    finally:
        swvm(["rm", "-f", cid], check=False)
    r = Results(NAME, f"swvm run -d --isolation=vm vs the foreground run: ready, and exec of true, {args.runs} runs each, alternating",
                args)
    r.command("foreground", f"{SWVM} run --isolation=vm {image} -- echo ready (until its stdout says ready)")
    r.command("detached", f"{SWVM} run -d --isolation=vm {image} -- sh -c 'echo ready; exec sleep 3600' "
              "(until its log says ready; then swvm rm -f, not timed)")
    r.command("exec", f"{SWVM} exec ID true (ID: {SWVM} run -d --isolation=vm {image} -- sleep 3600)")
    r.command("run", run_argv)
    r.print_commands()
    if ready:
        r.series("foreground", "time", "s", ready["foreground"])
        r.series("detached", "time", "s", ready["detached"])
        r.series("detached-return", "time", "s", returns[1:])
        for name in ("foreground", "detached", "detached-return"):
            print(f"{name:16} median {fmt_ms(r.values(name, 'time'))}")
        r.ratio("detached/foreground (ready)", "detached", "foreground", "time")
    r.series("exec-first", "time", "s", [first[0]])
    print(f"first exec into the VM: {first[0] * 1000:.0f} ms")
    r.time_and_rss(got, 5)
    r.ratio("exec/run", "exec", "run", "time")
    r.note("issue 19's exec target: at most 0.5x the warm run")
    r.write()
