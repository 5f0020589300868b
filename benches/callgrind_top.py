#!/usr/bin/env python3
"""The top functions of an uncompressed callgrind dump (`--compress-strings=no`), by their own
instructions and, for ssod's own functions, with their callees.

Usage: benches/callgrind_top.py DUMP [CALLS] [N]

callgrind_annotate 3.19 charges a dump taken after `callgrind_control --zero` wholly to
`clone` when asked for functions' own costs, so this reads the dump itself: a cost line
belongs to the current `fn=` unless it follows a `calls=` line, in which case it is the
inclusive cost of that call. CALLS divides the figures (instructions per call).
"""

import collections
import re
import sys


def parse(path):
    own = collections.Counter()
    called = collections.defaultdict(collections.Counter)
    function = callee = None
    after_calls = False
    with open(path, encoding="utf-8", errors="replace") as dump:
        for line in dump:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                function = line[3:]
            elif line.startswith("cfn="):
                callee = line[4:]
            elif line.startswith("calls="):
                after_calls = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                fields = line.split()
                if len(fields) < 2 or function is None:
                    continue
                cost = int(fields[1])
                if after_calls:
                    # Recursion would count a callee inside itself; leave it to its own cost.
                    if callee != function:
                        called[function][callee] += cost
                    after_calls = False
                else:
                    own[function] += cost
    return own, called


def inclusive(own, called):
    return {f: own[f] + sum(called[f].values()) for f in set(own) | set(called)}


def short(name, width=110):
    """Drops generic arguments (`Vec<T>` → `Vec<…>`) but keeps the type a method is on
    (`<ssod::grpc::auth::Authenticate as …::Around>::around` → `<Authenticate>::around`)."""
    depth, out = 0, []
    for char in name:
        if char == "<":
            depth += 1
            out.append("<" if depth == 1 and not out else ("<…>" if depth == 1 else ""))
            continue
        if char == ">":
            depth -= 1
            if depth == 0 and out and out[-1] != "<…>":
                out.append(">")
            continue
        if depth == 0 or (depth == 1 and out and out[0] == "<"):
            out.append(char)
    text = "".join(out)
    text = re.sub(r" as [^>]*>", ">", text)
    text = re.sub(r"<(\w+::)+", "<", text)
    text = re.sub(r"(<…>)+", "<…>", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def main():
    path = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    own, called = parse(path)
    total = sum(own.values())
    print(f"{total} instructions, {total // calls} per call")
    print("by their own instructions (per call, share):")
    for function, cost in own.most_common(count):
        print(f"  {cost // calls:>8}  {100 * cost / total:5.1f} %  {short(function)}")
    print("ssod's own functions with their callees (per call, share):")
    with_callees = inclusive(own, called)
    ours = sorted(
        (f for f in with_callees if re.search(r"\bssod::(service|store|grpc::auth|crypto)", f)),
        key=with_callees.get,
        reverse=True,
    )
    shown = set()
    for function in ours:
        name = short(function)
        if name in shown:
            continue
        shown.add(name)
        print(f"  {with_callees[function] // calls:>8}  {100 * with_callees[function] / total:5.1f} %  {name}")
        if len(shown) == count:
            break


if __name__ == "__main__":
    main()
