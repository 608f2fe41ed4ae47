"""`podman run --rm IMAGE true` with swvm as the OCI runtime vs with runc
(`podman --runtime PATH`), alternating, on a podman of the benchmark's
own: storage, run root and networks in a temporary directory, the engine
tests' containers.conf (Tests/Fixtures/engines, through CONTAINERS_CONF)
and network (netavark's bridge on 10.213.0.0/24, away from swvm0), the
example image loaded by scripts/engine-images.sh. The time is the whole
podman command's wall time (podman, conmon, netavark and the runtime)."""
import os
import shutil
import subprocess
import sys
import tempfile

from .harness import REPO, SWVM, Results, alternate, fmt_ms, need, run_wait4

NAME = "podman"
HELP = "podman run --rm IMAGE true: swvm vs runc as podman's runtime"

FIXTURES = os.path.join(REPO, "Tests/Fixtures/engines")
IMAGE_NAME = "localhost/swvm-busybox:latest"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runtime", action="append", metavar="NAME=PATH",
                   help="a contender (repeatable; the first is the ratio's numerator); "
                        f"default swvm={SWVM} and runc=/usr/sbin/runc")
    p.add_argument("--network", default="bridge", help="podman's --network for every run (default bridge)")


class PrivatePodman:
    """A podman whose files all live under one temporary directory."""

    def __init__(self, first_runtime):
        if not shutil.which("podman"):
            sys.exit("bench: podman is not installed (scripts/setup.sh)")
        # podman refuses a run root path over 50 characters: not under $TMPDIR.
        self.dir = tempfile.mkdtemp(prefix="swvm-bench-podman-", dir="/tmp")
        conf = os.path.join(self.dir, "containers.conf")
        with open(os.path.join(FIXTURES, "containers.conf")) as f:
            open(conf, "w").write(f.read().replace("@RUNTIME@", first_runtime))
        os.makedirs(os.path.join(self.dir, "networks"))
        shutil.copy(os.path.join(FIXTURES, "podman-network.json"), os.path.join(self.dir, "networks/podman.json"))
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        # netavark never removes its iptables chains: close() does, if they are this podman's.
        self.chains = os.path.join(FIXTURES, "netavark-chains.sh")
        self.chains_before = subprocess.run([self.chains, "present"]).returncode == 0
        self.flags = ["--root", os.path.join(self.dir, "storage"), "--runroot", os.path.join(self.dir, "run"),
                      "--tmpdir", os.path.join(self.dir, "libpod"), "--network-config-dir", os.path.join(self.dir, "networks")]
        subprocess.run([os.path.join(REPO, "scripts/engine-images.sh"), "podman"] + self.flags, env=self.env,
                       check=True, stdout=subprocess.DEVNULL)

    def argv(self, runtime, network):
        return ["podman"] + self.flags + ["--runtime", runtime, "run", "--rm", "--network", network, IMAGE_NAME, "true"]

    def timed(self, argv):
        """One run of a podman command, timed (for `alternate`); a failure
        ends the benchmark."""
        def once(i):
            t, _, status = run_wait4(argv, cwd=self.dir, detached=True)
            if status != 0:
                sys.exit(f"bench: {' '.join(argv)} exited {status}")
            return t
        return once

    # With: CONTAINERS_CONF reaches podman through our environment
    # (run_wait4 passes it on); at the end it is put back and this podman
    # removed.
    def __enter__(self):
        self.old_conf = os.environ.get("CONTAINERS_CONF")
        os.environ["CONTAINERS_CONF"] = self.env["CONTAINERS_CONF"]
        return self

    def __exit__(self, *exc):
        if self.old_conf is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = self.old_conf
        self.close()

    def close(self):
        subprocess.run(["podman"] + self.flags + ["system", "reset", "-f"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not self.chains_before:
            subprocess.run([self.chains, "remove"], check=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args):
    from .oci import contenders
    runtimes = contenders(args)
    # CONTAINERS_CONF reaches podman through our environment (run_wait4
    # passes it on).
    with PrivatePodman(next(iter(runtimes.values()))) as podman:
        got = alternate(args.runs, {name: podman.timed(podman.argv(rt, args.network)) for name, rt in runtimes.items()},
                        warmup=args.warmup)
    names = list(runtimes)
    r = Results(NAME, f"`podman run --rm --network {args.network} IMAGE true`, {args.runs} runs each, alternating", args)
    for name, rt in runtimes.items():
        r.command(name, f"podman --root DIR/storage --runroot DIR/run ... --runtime {rt} run --rm --network {args.network} {IMAGE_NAME} true")
    report_times(r, got, names[0], names[1])


def report_times(r, got, numerator, denominator):
    """Prints and writes each contender's times and their ratio."""
    r.print_commands()
    for name, times in got.items():
        r.series(name, "time", "s", times)
        print(f"{name:10} median {fmt_ms(times)}")
    print()
    r.ratio(f"{numerator}/{denominator}", numerator, denominator, "time", digits=3)
    r.write()
