"""Sum py-spy's collapsed stacks (``--format raw``) into a text profile: the share of samples
in which each function is on the stack (inclusive) and on top of it (self), top N each.

    .venv/bin/python benchmarks/stacks.py FILE [--top 25] [--match router/]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="", help="only frames whose text holds this")
    args = ap.parse_args()
    inclusive, own, total = Counter(), Counter(), 0
    for line in open(args.file, encoding="utf-8"):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(n)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for f in set(frames):
            if args.match in f:
                inclusive[f] += n
        if args.match in frames[-1]:
            own[frames[-1]] += n
    print(f"{total} samples")
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"-- {title}")
        for f, n in counts.most_common(args.top):
            print(f"{100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    main()
