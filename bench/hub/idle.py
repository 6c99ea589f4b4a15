"""Idle CPU of the hub: `python -m bench.hub.idle [--shape S2] [--seconds 60] [--exabgp-env MCRD_FAST_PATH=0]` (root).

The hub benchmark's lab (bench/hub/run.py: mcrd on CPU 1 between BIRD spokes on CPU 0), every session up and every
spoke's routes announced and learned (each spoke holds exactly its expected set from the hub), then nothing changes:
after `--settle` s, the CPU time (utime + stime, /proc/PID/stat) of mcrd and its children (ExaBGP, the API bridge)
over `--seconds` s, as a share of one core, per process and in all. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.hub.probes import BirdCtl, comm, cpu_seconds, tree
from bench.hub.run import build, loadavg, start_hub
from bench.hub.shapes import SHAPES, Topology
from tests.lab.harness import Lab, poll


def measure(roots: list[int], seconds: float) -> dict[str, float]:
    """CPU seconds per process (pid and command) of `roots`' trees over `seconds`."""
    pids = tree(roots)
    names = {pid: f"{pid} {comm(pid)[:60]}" for pid in pids}
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)  # the measurement window
    return {names[pid]: cpu_seconds(pid) - before[pid] for pid in pids}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="S2", choices=sorted(SHAPES))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--exabgp-env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in mcrd's environment (ExaBGP inherits it), e.g. MCRD_FAST_PATH=0")
    args = parser.parse_args(argv)
    topo = Topology.build(args.shape)
    expected = {s.name: topo.expected_observer(s) for s in topo.spokes}
    lab = Lab("hubidle")
    ctls: list[BirdCtl] = []
    try:
        hub_ns, ctls, _ = build(lab, topo, "mcrd")
        hub = start_hub("mcrd", lab, hub_ns, topo, True, None, args.exabgp_env)
        poll(lambda: all(c.state("hub") == "Established" for c in ctls), 60, "every spoke session Established")
        for c in ctls:
            c.cmd("enable gen")
        poll(lambda: all(c.count("hub") == len(expected[s.name]) for c, s in zip(ctls, topo.spokes, strict=True)),
             120, "every spoke holds its expected routes from the hub")
        time.sleep(args.settle)  # let the announce's after-effects (kernel, timers) pass before measuring
        ups = [c.state("hub") for c in ctls]
        used = measure(hub.roots, args.seconds)
        if [c.state("hub") for c in ctls] != ups or set(ups) != {"Established"}:
            raise RuntimeError("a session changed state during the measurement")
        row: dict[str, Any] = {
            "shape": topo.shape.name, "spokes": len(topo.spokes), "seconds": args.seconds,
            "exabgp_env": args.exabgp_env, "load_before": loadavg(),
            "percent_of_a_core": round(100 * sum(used.values()) / args.seconds, 2),
            "by_process": {name: round(100 * cpu / args.seconds, 2) for name, cpu in used.items()},
        }
        print(json.dumps(row))
        return 0
    finally:
        for c in ctls:
            c.close()
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
