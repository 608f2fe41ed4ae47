"""`podman run --rm --network none IMAGE true` at the VM level (podman's
runtime a `swvm-vm` link to swvm) vs `swvm run --isolation=vm IMAGE --
true`, alternating: what podman (conmon, the OCI lifecycle, the 9p root)
adds to swvm's own warm VM start. Issue 19's target: at most 1.1x. The
podman is the benchmark's own (podman.PrivatePodman)."""
import os

from .harness import IMAGE, SWVM, Results, alternate, need, run_checked
from .podman import IMAGE_NAME, PrivatePodman, report_times

NAME = "podmanvm"
HELP = "podman run --rm IMAGE true at the VM level vs swvm run --isolation=vm IMAGE -- true"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)


def vm_link(directory):
    """A swvm-vm link to SWVM; podman gives its runtime a curated
    environment, so with SWVM_CACHE set a script sets it and exec's swvm
    under the link's name."""
    link = os.path.join(directory, "swvm-vm")
    cache = os.environ.get("SWVM_CACHE")
    if cache:
        with open(link, "w") as f:
            f.write(f"#!/bin/bash\nexport SWVM_CACHE='{cache}'\nexec -a \"$0\" '{SWVM}' \"$@\"\n")
        os.chmod(link, 0o755)
    else:
        os.symlink(SWVM, link)
    return link


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build), or SWVM_BINARY")
    need(IMAGE, "run: scripts/build-example-image.sh")
    with PrivatePodman(SWVM) as podman:
        link = vm_link(podman.dir)
        cmds = {"podman-vm": podman.argv(link, "none"), "swvm-vm": [SWVM, "run", "--isolation=vm", IMAGE, "--", "true"]}
        got = alternate(args.runs, {"podman-vm": podman.timed(cmds["podman-vm"]), "swvm-vm": lambda i: run_checked(cmds["swvm-vm"])[0]},
                        warmup=args.warmup)
    r = Results(NAME, f"`podman run --rm IMAGE true` at the VM level vs `swvm run --isolation=vm`, {args.runs} runs each, alternating", args)
    r.command("podman-vm", f"podman --root DIR/storage --runroot DIR/run ... --runtime DIR/swvm-vm run --rm --network none {IMAGE_NAME} true")
    r.command("swvm-vm", cmds["swvm-vm"])
    report_times(r, got, "podman-vm", "swvm-vm")
