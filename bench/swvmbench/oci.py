"""The OCI runtime command line, swvm vs runc: `create` + `start` + wait +
`delete` of a bundle running `true` (the example image's root filesystem
and `runc spec`'s config with args ["true"]), each runtime with a --root
of its own. The time is the sum of the three commands' wall times (each
through bench/measure.c) and of the wait from `start`'s return to the
container's exit; peak memory is the largest ru_maxrss of the three
runtime processes (the container itself is not the runtime's memory).
The benchmark is a child subreaper, as conmon and containerd's shim are,
so it reaps each container's init itself."""
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from .harness import IMAGE, SWVM, Results, alternate, need, run_wait4

NAME = "oci"
HELP = "create+start+wait+delete of a bundle running `true`: swvm vs runc"

PR_SET_CHILD_SUBREAPER = 36


def add_arguments(p):
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runtime", action="append", metavar="NAME=PATH",
                   help="a contender (repeatable; the first is the ratio's numerator); "
                        f"default swvm={SWVM} and runc=/usr/sbin/runc. "
                        "A sanity run: --runtime runc-a=/usr/sbin/runc --runtime runc-b=/usr/sbin/runc")


def contenders(args):
    pairs = args.runtime or [f"swvm={SWVM}", "runc=/usr/sbin/runc"]
    out = {}
    for p in pairs:
        name, _, path = p.partition("=")
        if not name or not path:
            sys.exit(f"bench: --runtime {p!r}: expected NAME=PATH")
        need(path, "give an OCI runtime binary (--runtime NAME=PATH)")
        out[name] = path
    if len(out) < 2:
        sys.exit("bench: oci needs two contenders (--runtime NAME=PATH twice)")
    return out


def bundle(work):
    """rootfs: the example image's one layer, unpacked; config.json: `runc spec`."""
    need(IMAGE, "run: scripts/build-example-image.sh")
    index = json.load(open(os.path.join(IMAGE, "index.json")))
    blob = lambda d: os.path.join(IMAGE, "blobs", *d.split(":"))  # noqa: E731
    manifest = json.load(open(blob(index["manifests"][0]["digest"])))
    path = os.path.join(work, "bundle")
    rootfs = os.path.join(path, "rootfs")
    os.makedirs(rootfs)
    for layer in manifest["layers"]:
        subprocess.run(["tar", "-xzf", blob(layer["digest"]), "-C", rootfs], check=True)
    subprocess.run(["runc", "spec"], cwd=path, check=True)
    spec = json.load(open(os.path.join(path, "config.json")))
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    json.dump(spec, open(os.path.join(path, "config.json"), "w"))
    return path


def lifecycle(runtime, root, bundle_path, cid, pid_file):
    """(seconds, peak RSS KiB) of create + start + wait + delete."""
    total, peak = 0.0, 0
    base = [runtime, "--root", root]
    t, rss, status = run_wait4(base + ["create", "--bundle", bundle_path, "--pid-file", pid_file, cid], detached=True)
    if status != 0:
        sys.exit(f"bench: {runtime} create exited {status}")
    total, peak = total + t, max(peak, rss)
    pid = int(open(pid_file).read().strip())
    t, rss, status = run_wait4(base + ["start", cid], detached=True)
    if status != 0:
        sys.exit(f"bench: {runtime} start exited {status}")
    total, peak = total + t, max(peak, rss)
    started = time.monotonic()
    _, wstatus = os.waitpid(pid, 0)  # ours: we are the subreaper
    total += time.monotonic() - started
    if os.waitstatus_to_exitcode(wstatus) != 0:
        sys.exit(f"bench: the container of {runtime} exited {wstatus}")
    t, rss, status = run_wait4(base + ["delete", cid], detached=True)
    if status != 0:
        sys.exit(f"bench: {runtime} delete exited {status}")
    return total + t, max(peak, rss)


def run(args):
    runtimes = contenders(args)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed")
    work = tempfile.mkdtemp(prefix="swvm-bench-oci-")
    try:
        path = bundle(work)
        roots = {name: os.path.join(work, f"root-{name}") for name in runtimes}
        pid_file = os.path.join(work, "pid")

        def measure(name):
            return lambda i: lifecycle(runtimes[name], roots[name], path, f"bench-{os.getpid()}-{name}-{i}", pid_file)
        got = alternate(args.runs, {name: measure(name) for name in runtimes}, warmup=args.warmup)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = list(runtimes)
    r = Results(NAME, f"OCI lifecycle: create + start + wait + delete of a bundle running `true`, "
                      f"{args.runs} runs each, alternating", args)
    for name, rt in runtimes.items():
        r.command(name, f"{rt} --root DIR create --bundle B --pid-file F ID; {rt} start ID; wait; {rt} delete ID")
    r.print_commands()
    r.time_and_rss(got, 6)
    r.ratio(f"{names[0]}/{names[1]}", names[0], names[1], "time")
    r.ratio(f"{names[0]}/{names[1]} peak RSS", names[0], names[1], "peak RSS")
    r.write()
