"""A run with a volume (-v) from the image's template vs from the boot
snapshot (--no-template, which is how every -v run started before its
share could be attached after a template's restore); the same run without
a volume from the template, for what the volume adds."""
import os
import subprocess

from .harness import IMAGE, KERNEL, SWVM, Results, alternate, need, runs_option, scratch_directory
from .vmutil import swvm_report_run

NAME = "warmvol"
HELP = "a -v run from the image template vs from the boot snapshot (and a run without -v from the template)"
add_arguments = runs_option(5)


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build)")
    need(KERNEL, "run: kernel/build.sh")
    need(IMAGE, "run: scripts/build-example-image.sh")
    share = scratch_directory(NAME)
    with open(os.path.join(share, "hello"), "w") as f:
        f.write("hello from the host\n")
    vm = [SWVM, "run", "--isolation=vm"]
    volume = ["-v", f"{share}:/data"]
    command = [IMAGE, "--", "cat", "/data/hello"]
    commands = {
        "template -v": vm + volume + command,
        "boot snapshot -v": vm + ["--no-template"] + volume + command,
        "template": vm + [IMAGE, "--", "true"],
    }
    starts = {"template -v": "template", "boot snapshot -v": "warm", "template": "template"}
    subprocess.run(commands["template"], check=True)   # the disk, the snapshot
    subprocess.run(commands["template"], check=True)   # and the plain template
    subprocess.run(commands["template -v"], check=True)   # and the one of runs with volumes

    got = alternate(args.runs, {name: (lambda i, name=name: swvm_report_run(commands[name], starts[name])[0])
                                for name in commands})

    r = Results(NAME, f"a run with a volume from the image template vs the boot snapshot, {args.runs} runs each, alternating", args)
    r.show_commands(commands)
    r.medians(got, 17, "total median")
    r.ratio("template -v/boot snapshot -v", "template -v", "boot snapshot -v", "time", digits=3)
    r.ratio("template -v/template", "template -v", "template", "time", digits=3)
    r.write()
