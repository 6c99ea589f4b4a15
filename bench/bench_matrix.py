#!/usr/bin/env python3
"""Benchmark of the looking glass page's server side: the reachability matrix (`mcrd.lg.matrix`) and the stamp the
page polls every second (`mcrd.lg.webui.stamp`), on a route processor holding N routes from 4 sessions (NON_CLOUD,
PRIV_CLOUD, PUB_CLOUD, NON_CLOUD; each sends N/4 /24s). Both run on the daemon's event loop. Best of --repeat runs.

Usage:
  python bench/bench_matrix.py                    # 10,000 and 100,000 routes
  python bench/bench_matrix.py --routes 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from mcrd.lg.matrix import matrix
from mcrd.lg.webui import stamp
from mcrd.rib.inputs import ConfigChanged, PeerUp, RoutesAnnounced
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import PathAttributes
from tests.core.helpers import peer_config, peer_ip

SESSIONS = 4


def loaded(total: int) -> tuple[RouteProcessor, object]:
    config = peer_config([{"peerType": "NON_CLOUD"}, {"peerType": "PRIV_CLOUD"}, {"peerType": "PUB_CLOUD"}, {}],
                         mcr={"maxRoutes": max(total, 10_000)})
    processor = RouteProcessor()
    processor.handle(ConfigChanged(config), 0)
    for n in range(1, SESSIONS + 1):
        processor.handle(PeerUp(peer_ip(n), f"10.255.0.{n}"), 0)
    per = total // SESSIONS
    for n in range(1, SESSIONS + 1):
        prefixes = tuple(f"{10 + n}.{i // 256 % 256}.{i % 256}.0/24" for i in range(per))
        processor.handle(RoutesAnnounced(peer_ip(n), PathAttributes(peer_ip(n), (64600 + n,)), prefixes), 1)
    return processor, config


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, action="append", help="routes in the table (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for total in args.routes or [10_000, 100_000]:
        processor, config = loaded(total)
        took_matrix = best_of(args.repeat, lambda: matrix(processor))  # noqa: B023 - called at once
        took_stamp = best_of(args.repeat, lambda: stamp(processor, config))  # noqa: B023
        print(f"{processor.route_count:>7} routes, {SESSIONS} sessions: matrix {took_matrix * 1000:6.0f} ms, "
              f"stamp {took_stamp * 1000:5.1f} ms")


if __name__ == "__main__":
    main()
