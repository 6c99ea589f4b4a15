#!/usr/bin/env python3
"""Cost of one kernel scan (`FibWorker.scan`, what `mcrd run` does every `--kernel-scan-interval` seconds) with N
routes of mcrd's installed, in a fresh network namespace.

  steady   a scan that finds nothing to fix: dump of protocol 252 + compare with the wanted routes
  repair   a scan after 1 % of the routes were deleted, 1 % altered (another next hop) and 1 % stray routes added
           behind mcrd's back (`ip -batch`), which it puts right

The scan runs in the worker's thread, as in the daemon; `loop stall` is the longest the event loop waited for a
1 ms timer during the scan (the thread holds the GIL while it decodes and compares); `cpu` the worker thread's CPU
time (user + system: the kernel's side of the dump included), less sensitive to a busy machine than the wall
clock. Best of --repeat.

Usage (root):
  python bench/bench_scan.py                      # 100,000 IPv4 routes
  python bench/bench_scan.py --routes 100000 --family both
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcrd.fib.kernel import ReconcileResult
from mcrd.fib.worker import FibWorker
from mcrd.rib.effects import FibNextHop

NEAR = {4: "192.0.2.1/24", 6: "fd00:0:0:1::1/64"}
GATEWAYS = {4: ("192.0.2.2", "192.0.2.3"), 6: ("fd00:0:0:1::2", "fd00:0:0:1::3")}


def prefixes(family: int, count: int, base: int = 0) -> list[str]:
    if family == 4:
        return [f"{16 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}.0/24" for n in range(base, base + count)]
    return [f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::/64" for n in range(base, base + count)]


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True).stdout


@contextmanager
def lab() -> Iterator[tuple[str, str]]:
    ns, dev, peer = f"mcrdb-{secrets.token_hex(4)}", f"mba{secrets.token_hex(4)}", f"mbb{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ip(ns, "link", "add", dev, "type", "veth", "peer", "name", peer)
        ip(ns, "link", "set", dev, "up")
        ip(ns, "link", "set", peer, "up")
        ip(ns, "addr", "add", NEAR[4], "dev", dev)
        ip(ns, "addr", "add", NEAR[6], "dev", dev, "nodad")
        yield ns, dev
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def tamper(ns: str, dev: str, families: tuple[int, ...], count: int) -> int:
    """Delete, alter and add 1 % of the routes of each family behind the worker's back; how many of each."""
    share = max(count // 100, 1)
    lines = []
    for family in families:
        routes = prefixes(family, count)
        other = GATEWAYS[family][1]
        lines += [f"route del {p} proto 252 metric 20" for p in routes[:share]]
        lines += [f"route replace {p} via {other} dev {dev} proto 252 metric 20" for p in routes[share:2 * share]]
        lines += [f"route add {p} via {other} dev {dev} proto 252 metric 20" for p in prefixes(family, share, count)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as batch:
        batch.write("\n".join(lines) + "\n")
        batch.flush()
        ip(ns, "-batch", batch.name)
    return share


async def timed_scan(worker: FibWorker) -> tuple[tuple[float, float, float], ReconcileResult | None]:
    """((seconds, worker thread CPU seconds, longest loop stall), result) of one scan."""
    stall = 0.0

    async def beat() -> None:
        nonlocal stall
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, time.perf_counter() - before - 0.001)

    cpu = await worker.run(time.thread_time)
    task = asyncio.create_task(beat())
    start = time.perf_counter()
    result = await worker.scan()
    seconds = time.perf_counter() - start
    task.cancel()
    cpu = await worker.run(time.thread_time) - cpu
    return (seconds, cpu, stall), result


async def run_once(ns: str, dev: str, families: tuple[int, ...],
                   count: int) -> dict[str, tuple[float, float, float]]:
    want: dict[str, FibNextHop] = {}
    for family in families:
        want.update(dict.fromkeys(prefixes(family, count), FibNextHop(GATEWAYS[family][0], dev)))
    out = {}
    async with FibWorker(netns=ns) as worker:
        result = await worker.reconcile(want)
        assert result.added == len(want), result.errors[:3]
        out["steady"], got = await timed_scan(worker)
        assert got is not None
        assert (got.kept, got.changed) == (len(want), False)
        share = tamper(ns, dev, families, count)
        out["repair"], got = await timed_scan(worker)
        n = share * len(families)
        assert got is not None
        assert (got.added, got.replaced, got.removed) == (n, n, n), got
        await worker.flush()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=100_000, help="routes per family")
    parser.add_argument("--family", choices=("4", "6", "both"), default="4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_scan.py needs root (network namespaces)")
    families = (4, 6) if args.family == "both" else (int(args.family),)
    best: dict[str, tuple[float, float, float]] = {}
    for _ in range(args.repeat):
        with lab() as (ns, dev):
            run = uvloop.run(run_once(ns, dev, families, args.routes))
        best = {k: min(v, best.get(k, v)) for k, v in run.items()}
    total = args.routes * len(families)
    report = {"routes": total, "families": [f"IPv{f}" for f in families], "repeat": args.repeat,
              "machine": {"kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count()},
              "results": {k: {"seconds": round(s, 3), "cpu_seconds": round(c, 3), "loop_stall_seconds": round(st, 3)}
                          for k, (s, c, st) in best.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{total:,} routes ({', '.join(report['families'])}), best of {args.repeat}; kernel {platform.release()}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    for phase, (seconds, cpu, stall) in best.items():
        print(f"{phase:<8} {seconds:7.3f} s   cpu {cpu:7.3f} s   loop stall {stall * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
