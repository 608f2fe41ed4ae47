"""A Debian image's `python3 -c 'print(1)'` in a VM (issue 22's third
target): from the image's template vs from the boot snapshot (today's warm
start, --no-template), alternating, with the container run beside them for
scale. The image is Debian 12 minbase with Debian's python3
(scripts/build-debian-image.sh, examples/debian-python3)."""
import os

from .harness import REPO, SWVM, Results, alternate, fmt_ms, need
from .vmutil import swvm_report_run

NAME = "python"
HELP = "a Debian image's python3 -c 'print(1)' in a VM: from its template vs from the boot snapshot"
PY_IMAGE = os.path.join(REPO, "examples/debian-python3")


def add_arguments(p):
    p.add_argument("--runs", type=int, default=5)


def run(args):
    need(SWVM, "run: scripts/setup.sh --no-run (the release build), or SWVM_BINARY")
    need(PY_IMAGE, "run: scripts/build-debian-image.sh")
    py = ["--", "python3", "-c", "print(1)"]
    commands = {
        "template": [SWVM, "run", "--isolation=vm", PY_IMAGE] + py,
        "warm": [SWVM, "run", "--isolation=vm", "--no-template", PY_IMAGE] + py,
        "container": [SWVM, "run", "--isolation=container", PY_IMAGE] + py,
    }
    for _ in range(3):   # the disk and a template that records what python3 reads, then the template that warms those files
        swvm_report_run(commands["template"])

    starts = {"template": "template", "warm": "warm", "container": None}
    got = alternate(args.runs, {name: (lambda i, name=name: swvm_report_run(commands[name], starts[name])[0]) for name in commands})
    r = Results(NAME, f"`python3 -c 'print(1)'` in Debian 12 minbase + python3, {args.runs} runs each, alternating", args)
    r.show_commands(commands)
    r.medians(got, 10, fmt=fmt_ms)
    r.ratio("template/warm", "template", "warm", "time", digits=3)
    r.ratio("template/container", "template", "container", "time", digits=1)
    r.write()
