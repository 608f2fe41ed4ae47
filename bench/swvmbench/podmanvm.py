"""`podman run --rm --network none IMAGE true` at the VM level (podman's
runtime a `swvm-vm` link to swvm) vs `swvm run --isolation=vm IMAGE --
true`, alternating: what podman (conmon, the OCI lifecycle, the 9p root)
adds to swvm's own warm VM start. Issue 19's target: at most 1.1x. The
podman is the benchmark's own (podman.PrivatePodman). `swvm run` restores
an image template; swvm-vm-boot is the same run from the boot snapshot
(--no-template), the start the OCI path (no template) makes. podman's own
share: `podman --runtime runc run --rm` vs `runc run` of the same image's
root (oci.bundle), podman-runc minus runc. podman-vm-9p: podman-vm with
the annotation swvm.vm-root=9p, the bundle's root over 9p as before the
image layers became a disk (issue 19, tenth session). podman-vm restores
an OCI root template (eleventh session: the image layers disk mounted and
the command's files warmed); podman-vm-boot is podman-vm with the
annotation swvm.vm-template=off, from the boot snapshot as before."""
import os
import shutil
import tempfile

from .harness import IMAGE, SWVM, Results, alternate, fmt_ms, need, run_checked
from .oci import bundle
from .podman import IMAGE_NAME, PrivatePodman

NAME = "podmanvm"
HELP = "podman run --rm IMAGE true at the VM level vs swvm run --isolation=vm IMAGE -- true"


def add_arguments(p):
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)


def vm_link(directory):
    """A swvm-vm link to SWVM (by its absolute path: podman runs its
    runtime from another directory); podman gives its runtime a curated
    environment, so with SWVM_CACHE set a script sets it and exec's swvm
    under the link's name."""
    link = os.path.join(directory, "swvm-vm")
    cache = os.environ.get("SWVM_CACHE")
    swvm = os.path.abspath(SWVM)
    if cache:
        with open(link, "w") as f:
            f.write(f"#!/bin/bash\nexport SWVM_CACHE='{cache}'\nexec -a \"$0\" '{swvm}' \"$@\"\n")
        os.chmod(link, 0o755)
    else:
        os.symlink(swvm, link)
    return link


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build), or SWVM_BINARY")
    need(IMAGE, "run: scripts/build-example-image.sh")
    work = tempfile.mkdtemp(prefix="swvm-bench-podmanvm-")
    try:
        with PrivatePodman(SWVM) as podman:
            link = vm_link(podman.dir)
            runc = ["runc", "--root", os.path.join(work, "runc"), "run", "--bundle", bundle(work)]
            vm9p = podman.argv(link, "none")
            vm9p[vm9p.index("run") + 1:vm9p.index("run") + 1] = ["--annotation", "swvm.vm-root=9p"]
            boot = podman.argv(link, "none")
            boot[boot.index("run") + 1:boot.index("run") + 1] = ["--annotation", "swvm.vm-template=off"]
            cmds = {"podman-vm": podman.argv(link, "none"), "podman-vm-9p": vm9p, "podman-vm-boot": boot, "swvm-vm": [SWVM, "run", "--isolation=vm", IMAGE, "--", "true"],
                    "swvm-vm-boot": [SWVM, "run", "--isolation=vm", "--no-template", IMAGE, "--", "true"],
                    "podman-runc": podman.argv("/usr/sbin/runc", "none")}
            got = alternate(args.runs, {"podman-vm": podman.timed(cmds["podman-vm"]),
                                        "podman-vm-9p": podman.timed(cmds["podman-vm-9p"]),
                                        "podman-vm-boot": podman.timed(cmds["podman-vm-boot"]),
                                        "swvm-vm": lambda i: run_checked(cmds["swvm-vm"])[0],
                                        "swvm-vm-boot": lambda i: run_checked(cmds["swvm-vm-boot"])[0],
                                        "podman-runc": podman.timed(cmds["podman-runc"]),
                                        "runc": lambda i: run_checked(runc + [f"podmanvm-{os.getpid()}-{i}"])[0]},
                            warmup=args.warmup)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = Results(NAME, f"`podman run --rm IMAGE true` at the VM level vs `swvm run --isolation=vm`, {args.runs} runs each, alternating", args)
    r.command("podman-vm", f"podman --root DIR/storage --runroot DIR/run ... --runtime DIR/swvm-vm run --rm --network none {IMAGE_NAME} true")
    r.command("podman-vm-9p", f"podman ... --runtime DIR/swvm-vm run --rm --annotation swvm.vm-root=9p --network none {IMAGE_NAME} true")
    r.command("podman-vm-boot", f"podman ... --runtime DIR/swvm-vm run --rm --annotation swvm.vm-template=off --network none {IMAGE_NAME} true")
    r.command("swvm-vm", cmds["swvm-vm"])
    r.command("swvm-vm-boot", cmds["swvm-vm-boot"])
    r.command("podman-runc", f"podman --root DIR/storage --runroot DIR/run ... --runtime /usr/sbin/runc run --rm --network none {IMAGE_NAME} true")
    r.command("runc", "runc --root DIR/runc run --bundle DIR/bundle ID (the image's root, `runc spec`, args true)")
    r.print_commands()
    for name, times in got.items():
        r.series(name, "time", "s", times)
        print(f"{name:12} median {fmt_ms(times)}")
    print()
    for a, b in [("podman-vm", "swvm-vm"), ("podman-vm", "swvm-vm-boot"), ("podman-vm-9p", "swvm-vm"), ("podman-vm", "podman-vm-9p"), ("podman-vm", "podman-vm-boot"),
                 ("podman-runc", "runc")]:
        r.ratio(f"{a}/{b}", a, b, "time", digits=3)
    r.write()
