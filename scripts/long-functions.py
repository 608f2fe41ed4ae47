#!/usr/bin/env python3
"""Lists the functions longer than the developer guide's ~80 lines in
Sources/, guest-init/ and probe/ (Swift and C), longest first.

    scripts/long-functions.py [--max N] [--check]

--check (CI): exits 1 when a function is longer than --max (default 80)
and is not in scripts/long-functions.allow at its length or shorter (the
ones there predate the check: they may shrink, not grow; shrink the
number there when one does). A line of that file: LENGTH PATH NAME.

A function's length counts from its declaration to its closing brace.
The parse is textual (strings and comments are blanked, braces counted),
which is enough for the code here; it reads nothing but these files."""
import argparse
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTS = ("Sources", "guest-init", "probe")
ALLOW = os.path.join(REPO, "scripts", "long-functions.allow")

SWIFT_DECL = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|open|static|class|final|"
                        r"override|mutating|nonmutating|convenience|required|nonisolated)\s+)*"
                        r"(?:func\s+([^\s(<]+)|(init)[?!]?\s*[(<]|(deinit)\b|(subscript)\s*\()")
C_DECL = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(")
C_SKIP = re.compile(r"^(?:static\s+)?(?:const\s+)?(?:struct|enum|union|typedef)\b[^(]*$|^#|^(?:if|for|while|switch|return)\b")


def blank(line, state):
    """The line with string and character literals and comments blanked;
    `state` carries an open block comment or multi-line string."""
    out, i = [], 0
    while i < len(line):
        if state["in"] == "comment":
            end = line.find("*/", i)
            if end < 0:
                return "".join(out)
            i, state["in"] = end + 2, None
            continue
        if state["in"] == "multistring":
            end = line.find('"""', i)
            if end < 0:
                return "".join(out)
            i, state["in"] = end + 3, None
            out.append('""')
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["in"], i = "comment", i + 2
            continue
        if line.startswith('"""', i):
            state["in"], i = "multistring", i + 3
            continue
        if c in "\"'":
            j = i + 1
            while j < len(line) and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    """(name, first line, length) of each function in a Swift or C file."""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    state = {"in": None}
    code = [blank(l, state) for l in lines]
    swift = path.endswith(".swift")
    found = []
    for i, text in enumerate(code):
        if swift:
            m = SWIFT_DECL.match(text)
            name = m and next(g for g in m.groups() if g)
        else:
            m = C_DECL.match(text) if not text.startswith((" ", "\t")) and not C_SKIP.match(text) else None
            name = m and m.group(1)
        if not name:
            continue
        end = body_end(code, i)
        if end is not None:
            found.append((name, i + 1, end - i + 1))
    return found


def body_end(code, start):
    """The line of the brace closing the body that opens at or after
    `start` (before a `;` ends a declaration without one), or None."""
    depth, opened = 0, False
    for j in range(start, min(len(code), start + 5000)):
        for c in code[j]:
            if c == "{":
                depth, opened = depth + 1, True
            elif c == "}":
                depth -= 1
                if opened and depth == 0:
                    return j
            elif c == ";" and not opened and not code[start].lstrip().startswith(("func", "init")):
                return None
        if not opened and j > start + 8:
            return None   # a declaration without a body (a protocol's)
    return None


def scan():
    out = []
    for root in ROOTS:
        for d, _, files in os.walk(os.path.join(REPO, root)):
            for f in sorted(files):
                if f.endswith((".swift", ".c")):
                    path = os.path.join(d, f)
                    rel = os.path.relpath(path, REPO)
                    out += [(length, rel, name, line) for name, line, length in functions(path)]
    return sorted(out, reverse=True)


def allowed():
    table = {}
    if os.path.exists(ALLOW):
        for line in open(ALLOW):
            if line.strip() and not line.startswith("#"):
                length, path, name = line.split()
                table[(path, name)] = int(length)
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max", type=int, default=80)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    long = [f for f in scan() if f[0] > args.max]
    if not args.check:
        for length, path, name, line in long:
            print(f"{length:4} {path}:{line} {name}")
        return 0
    allow = allowed()
    bad = [f for f in long if f[0] > allow.get((f[1], f[2]), args.max)]
    for length, path, name, line in bad:
        limit = allow.get((path, name))
        why = f"grew past its {limit} lines in {os.path.relpath(ALLOW, REPO)}" if limit else f"over {args.max} lines"
        print(f"{path}:{line}: {name} is {length} lines long, {why}: split it (the developer guide: one job each)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
