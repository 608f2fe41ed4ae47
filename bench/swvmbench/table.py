"""`bench.py table RESULTS.json...`: BENCHMARKS.md's Markdown from results
files, with the command that made each: one row per contender, a column
per metric (median, min-max), then the ratios of the medians.

`bench.py table --update BENCHMARKS.md` rewrites, in place, every block
between `<!-- bench.py table PATH... -->` and `<!-- end of table -->` from
its results files (PATH relative to the repository)."""
import json
import os
import re
import statistics

from .harness import REPO

BLOCK = re.compile(r"(<!-- bench\.py table ([^>]*?) -->\n)(.*?)(<!-- end of table -->)", re.S)

NAME = "table"
HELP = "print a results file as a Markdown table, with the command that made it"


def add_arguments(p):
    p.add_argument("results", nargs="*", help="JSON results files written by a benchmark")
    p.add_argument("--update", metavar="MARKDOWN", help="rewrite the marked tables of this file instead")


def scale(unit, median):
    """(divisor, shown unit, decimals) for values of this unit near median."""
    if unit == "s":
        return (1e-3, "ms", 1) if median < 1 else (1, "s", 2)
    if unit == "KiB":
        return (1024, "MiB", 1) if median >= 1024 else (1, "KiB", 0)
    return 1, unit, 0


def cell(series):
    if not series:
        return "-"
    values, unit = series["values"], series["unit"]
    m = statistics.median(values)
    div, shown, digits = scale(unit, m)
    if len(values) == 1:
        return f"{m / div:.{digits}f} {shown}"
    return f"{m / div:.{digits}f} {shown} ({min(values) / div:.{digits}f}-{max(values) / div:.{digits}f})"


def markdown(data):
    """The lines of one results file's section."""
    env = " ".join(f"{k}={v}" for k, v in data.get("environment", {}).items())
    lines = [f"    {env + ' ' if env else ''}{data['command']}", "",
             f"{data['title']}; {data['date']}, commit {data.get('commit') or '?'}, {data['host']}.", ""]
    series = data["series"]
    metrics = []
    for per_contender in series.values():
        metrics += [m for m in per_contender if m not in metrics]
    lines.append("| | " + " | ".join(f"{m} median (min-max)" for m in metrics) + " |")
    lines.append("| --- |" + " --- |" * len(metrics))
    for name, per_contender in series.items():
        lines.append(f"| {name} | " + " | ".join(cell(per_contender.get(m)) for m in metrics) + " |")
    if data["ratios"]:
        lines += ["", "| ratio of medians | |", "| --- | --- |"]
        lines += [f"| {label} | {value:.2f} |" for label, value in data["ratios"].items()]
    for note in data.get("notes", []):
        lines += ["", note.strip()]
    return lines


def render(paths):
    out = []
    for i, path in enumerate(paths):
        with open(path) as f:
            out += ([""] if i else []) + markdown(json.load(f))
    return "\n".join(out)


def update(markdown_path):
    """Each marked block of the file, regenerated from its results files."""
    text = open(markdown_path).read()

    def block(m):
        paths = [os.path.join(REPO, p) for p in m.group(2).split()]
        return m.group(1) + render(paths) + "\n" + m.group(4)
    new, n = BLOCK.subn(block, text)
    with open(markdown_path, "w") as f:
        f.write(new)
    print(f"{markdown_path}: {n} table(s) regenerated")


def run(args):
    if args.update:
        update(args.update)
    elif args.results:
        print(render(args.results))
    else:
        raise SystemExit("bench: table needs RESULTS.json files or --update MARKDOWN")
