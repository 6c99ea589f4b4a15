"""`python -m bench.hub.pyspy_top FILE [--top 15]`: the top functions of a py-spy `--format raw` profile (collapsed
stacks, `frame;frame;... count`), by own samples (the leaf) and by inclusive samples (anywhere on the stack)."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter


def _name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame.strip())
    if not m:
        return frame.strip()
    path = m.group(2)
    short = "/".join(path.split("/")[-2:]) if "site-packages" in path or "/mcrd/" in path else path.split("/")[-1]
    return f"{m.group(1)} ({short})"


# Frames that only wrap everything (interpreter start-up, asyncio, ExaBGP's entry points): left out of the inclusive
# table so that it shows where the work is.
WRAPPERS = re.compile(r"\((?:<frozen runpy>|runners\.py|base_events\.py|events\.py|server\.py|main\.py|__main__\.py|"
                      r"threading\.py|thread\.py|exabgp_nosleep\.py|exabgp_launch\.py|mcrd/cli\.py)\)$"
                      r"|^main \(mcrd/daemon\.py\)$")


def top(path: str, count: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as handle:
        for line in handle:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            samples = int(n)
            total += samples
            frames = [_name(f) for f in stack.split(";")]
            frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
            if frames:
                own[frames[-1]] += samples
            for name in set(frames):
                inclusive[name] += samples
    out = [f"{path}: {total} samples", "", "| own % | function |", "|---|---|"]
    out += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in own.most_common(count)]
    out += ["", "| inclusive % | function |", "|---|---|"]
    shown = [(name, n) for name, n in inclusive.most_common() if not WRAPPERS.search(name)][:count]
    out += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in shown]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hub.pyspy_top", description=__doc__)
    parser.add_argument("profiles", nargs="+")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    for path in args.profiles:
        sys.stdout.write(top(path, args.top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
