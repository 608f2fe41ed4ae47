"""swvm run --isolation=container vs crun run: `true` in the example image."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from .harness import IMAGE, SWVM, Results, alternate, need, run_checked
from .rootfs import cached_rootfs

NAME = "container"
HELP = "swvm run --isolation=container vs crun run"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)


def hybrid_cgroups():
    """crun refuses hosts with cgroup v1 controllers and a cgroup2 mount that
    still has a controller (hugetlb here); in our own mount namespace the
    cgroup2 mount is hidden from both runtimes alike."""
    try:
        return bool(open("/sys/fs/cgroup/unified/cgroup.controllers").read().strip())
    except OSError:
        return False


def crun_bundle():
    """A bundle of the same rootfs, `crun spec` with args ["true"]."""
    bundle = tempfile.mkdtemp(prefix="swvm-bench-bundle-")
    subprocess.run(["cp", "-a", cached_rootfs(), os.path.join(bundle, "rootfs")], check=True)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.load(open(os.path.join(bundle, "config.json")))
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    json.dump(spec, open(os.path.join(bundle, "config.json"), "w"))
    return bundle


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(IMAGE, "run: scripts/build-example-image.sh")
    if not shutil.which("crun"):
        sys.exit("bench: crun is not installed (apt-get install crun)")
    if hybrid_cgroups() and not os.environ.get("SWVM_BENCH_NS"):
        # Re-run ourselves in a private mount namespace without the cgroup2 mount.
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               "umount /sys/fs/cgroup/unified && exec \"$@\"", "sh", sys.executable] + sys.argv
        os.execvpe("unshare", cmd, dict(os.environ, SWVM_BENCH_NS="1"))
    bundle = crun_bundle()
    try:
        swvm_cmd = [SWVM, "run", "--isolation=container", IMAGE, "--", "true"]
        got = alternate(args.runs, {
            "swvm": lambda i: run_checked(swvm_cmd),
            "crun": lambda i: run_checked(["crun", "run", f"swvm-bench-{os.getpid()}-{i}"], cwd=bundle),
        }, warmup=args.warmup)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    r = Results(NAME, f"container start: `true` in the example image, {args.runs} runs each, alternating", args)
    r.command("swvm", swvm_cmd)
    r.command("crun", "crun run ID  (bundle: the same rootfs, `crun spec` with args [\"true\"])")
    r.print_commands()
    r.time_and_rss(got, 5)
    r.ratio("swvm/crun", "swvm", "crun", "time")
    r.write()
