#!/usr/bin/env python3
"""Benchmark of the kernel side (`mcrd.fib.kernel.KernelFib`) against `ip -batch`, in a fresh network namespace.

For each address family, N routes (default 100,000) through a veth next hop, one phase after the other:

  add        KernelFib.apply(): RTM_NEWROUTE create|replace of every prefix (next hop A)
  dump       KernelFib.dump(): the routes of protocol 252
  reconcile  KernelFib.reconcile() with the same routes: a dump and nothing to change
  replace    KernelFib.apply() with next hop B for every prefix
  delete     KernelFib.apply() removing every prefix

then the same add / replace / delete with `ip -n NS -batch FILE` ("route add|replace|del P via GW dev D proto 252
metric 20" lines). Each phase is checked (`ip route show proto 252` count). Best of --repeat runs, in routes/s.

Usage (root):
  python bench/bench_fib.py                       # 100,000 IPv4 and 100,000 IPv6 routes
  python bench/bench_fib.py --routes 20000 --family 4 --repeat 1
  python bench/bench_fib.py --json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcrd.fib.kernel import KernelFib
from mcrd.fib.netns import enter_netns
from mcrd.rib.effects import FibInstall, FibNextHop

T = TypeVar("T")
PHASES = ("add", "dump", "reconcile", "replace", "delete", "ip-batch add", "ip-batch replace", "ip-batch delete")
NEAR = {4: "192.0.2.1/24", 6: "fd00:0:0:1::1/64"}  # on the veth in the namespace
GATEWAYS = {4: ("192.0.2.2", "192.0.2.3"), 6: ("fd00:0:0:1::2", "fd00:0:0:1::3")}  # next hops A and B


def prefixes(family: int, count: int) -> tuple[str, ...]:
    if family == 4:
        return tuple(f"{16 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}.0/24" for n in range(count))
    return tuple(f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::/64" for n in range(count))


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True).stdout


def count_routes(ns: str, family: int) -> int:
    return len(json.loads(ip(ns, "-j", f"-{family}", "route", "show", "proto", "252") or "[]"))


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


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_once(ns: str, dev: str, family: int, count: int) -> dict[str, float]:
    """Seconds per phase."""
    gw_a, gw_b = GATEWAYS[family]
    routes = prefixes(family, count)
    hop_a, hop_b = FibNextHop(gw_a, dev), FibNextHop(gw_b, dev)
    seconds: dict[str, float] = {}

    def in_namespace() -> None:  # KernelFib in a thread of its own inside the namespace, as FibWorker does
        enter_netns(ns)
        with KernelFib() as fib:
            seconds["add"], errors = timed(lambda: fib.apply([FibInstall(hop_a, routes)], []))
            assert not errors, errors[:3]
            assert count_routes(ns, family) == count
            seconds["dump"], table = timed(fib.dump)
            assert len(table) == count
            seconds["reconcile"], result = timed(lambda: fib.reconcile(dict.fromkeys(routes, hop_a)))
            assert result.kept == count
            assert not result.errors
            seconds["replace"], errors = timed(lambda: fib.apply([FibInstall(hop_b, routes)], []))
            assert not errors
            assert fib.dump()[routes[-1]] == hop_b
            seconds["delete"], errors = timed(lambda: fib.apply([], routes))
            assert not errors
            assert count_routes(ns, family) == 0

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(in_namespace).result()

    with tempfile.TemporaryDirectory() as tmp:
        for verb, gateway, expect in (("add", gw_a, count), ("replace", gw_b, count), ("del", gw_a, 0)):
            batch = Path(tmp) / f"{verb}.txt"
            tail = f" via {gateway} dev {dev} proto 252 metric 20\n" if verb != "del" else " proto 252 metric 20\n"
            batch.write_text("".join(f"route {verb} {p}{tail}" for p in routes))
            phase = "ip-batch " + ("delete" if verb == "del" else verb)
            seconds[phase], _ = timed(functools.partial(ip, ns, "-batch", str(batch)))
            assert count_routes(ns, family) == expect
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--family", choices=("4", "6", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs, each in a fresh namespace")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_fib.py needs root (network namespaces)")
    families = (4, 6) if args.family == "both" else (int(args.family),)
    best: dict[int, dict[str, float]] = {}
    for family in families:
        for _ in range(args.repeat):
            with lab() as (ns, dev):
                run = run_once(ns, dev, family, args.routes)
            best[family] = {k: min(v, best.get(family, {}).get(k, v)) for k, v in run.items()}
    report = {
        "routes": args.routes,
        "repeat": args.repeat,
        "machine": {"kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "results": {f"IPv{f}": {k: {"seconds": round(s, 3), "routes_per_s": round(args.routes / s)}
                                for k, s in phases.items()} for f, phases in best.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.routes:,} routes per family, best of {args.repeat}; kernel {platform.release()}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"{'phase':<18}" + "".join(f"{'IPv' + str(f) + ' s':>10}{'routes/s':>12}" for f in best))
    for phase in PHASES:
        print(f"{phase:<18}" + "".join(f"{best[f][phase]:>10.3f}{args.routes / best[f][phase]:>12,.0f}" for f in best))


if __name__ == "__main__":
    main()
