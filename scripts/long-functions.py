#!/usr/bin/env python3
"""Fails if a product function (common/, tools/, nschain/) is longer than LIMIT lines, counted
from its `fn` line to its closing brace; `#[cfg(test)]` modules are skipped (run by `make check`).
With --list, prints every function over --min lines, longest first."""
import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def strip(line, state):
    """The line without comments, strings and chars, so braces can be counted."""
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if state["block"]:
            if line.startswith("*/", i):
                state["block"] = False
                i += 2
            else:
                i += 1
            continue
        if state["str"]:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                state["str"] = False
            i += 1
            continue
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            end = '"' + m.group(1)
            j = line.find(end, i + len(m.group(0)))
            if j < 0:
                state["raw"] = end
                return "".join(out)
            i = j + len(end)
            continue
        if c == '"':
            state["str"] = True
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|[^\\'])'", line[i:]) or re.match(r"'\\u\{[0-9a-fA-F]+\}'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    lines = path.read_text(errors="replace").splitlines()
    state = {"block": False, "str": False, "raw": None}
    stack = []  # (name, start, depth) of open functions
    depth, skip_depth, pending_test = 0, None, False
    for n, raw in enumerate(lines, 1):
        if state["raw"]:
            j = raw.find(state["raw"])
            if j < 0:
                continue
            raw, state["raw"] = raw[j + len(state["raw"]):], None
        if "#[cfg(test)]" in raw:
            pending_test = True
        code = strip(raw, state)
        m = FN.match(code)
        if m and skip_depth is None:
            stack.append([m.group(7), n, None])
        for c in code:
            if c == "{":
                if pending_test and skip_depth is None:
                    skip_depth = depth
                    pending_test = False
                if stack and stack[-1][2] is None:
                    stack[-1][2] = depth
                depth += 1
            elif c == "}":
                depth -= 1
                if skip_depth is not None and depth == skip_depth:
                    skip_depth = None
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    yield name, start, n - start + 1
            elif c == ";" and stack and stack[-1][2] is None:
                stack.pop()  # a declaration without a body
        if code.strip() and not code.strip().startswith("#") and pending_test and "mod" not in code and "{" not in code:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--min", type=int, default=60)
    args = ap.parse_args()
    roots = [ROOT / "common" / "src", ROOT / "nschain"] + sorted((ROOT / "tools").glob("*/src"))
    found = []
    for root in roots:
        for f in sorted(root.rglob("*.rs")) if root.exists() else []:
            for name, start, length in functions(f):
                found.append((length, f"{f.relative_to(ROOT)}:{start}", name))
    found.sort(reverse=True)
    if args.list:
        for length, where, name in found:
            if length >= args.min:
                print(f"{length:4}  {name}  {where}")
        return 0
    long = [f for f in found if f[0] > args.limit]
    for length, where, name in long:
        print(f"long-functions: {where}: fn {name} is {length} lines (limit {args.limit})", file=sys.stderr)
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
