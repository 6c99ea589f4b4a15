"""Churn soak: `python -m bench.hub.soak [--seconds 300] [--shape S1] [--warmup 60] [--json out.json]`.

mcrd as the hub between BIRD spokes (the hub benchmark's lab: bench/hub/run.py), then route churn for `--seconds`:
every spoke announces its whole table at once (`enable gen`), the spokes and the hub's kernel must converge to exactly
the expected sets, every spoke withdraws it (`disable gen`), everything must be empty again; round after round. The
RSS of mcrd and of its ExaBGP children is sampled every `--every` seconds. At the end the tables are announced once
more and checked exactly (each spoke's table from the hub by a full dump, the hub's kernel by netlink).

Memory is "flat" when the largest mcrd RSS after `--warmup` seconds exceeds the RSS at the end of the warm-up by no
more than `--growth` MiB; the result says so (`flat`), with the samples. docs/PERFORMANCE.md has a 5-minute run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.hub.probes import KernelMonitor, TreeSampler, comm, rss_bytes, tree
from bench.hub.run import build, converge_announce, converge_withdraw, signal_spokes, start_hub
from bench.hub.shapes import SHAPES, Topology
from tests.lab.harness import Lab, poll

MIB = 2**20


class RssSampler(TreeSampler):
    """Every `every` s: seconds since start, mcrd's RSS and the sum of its ExaBGP children's (MiB)."""

    def __init__(self, root: int, every: float) -> None:
        super().__init__([root], every)
        self.root = root
        self.samples: list[tuple[float, float, float]] = []
        self.start_time = time.time()

    def sample(self) -> int:
        exabgp = sum(rss_bytes(p) for p in tree([self.root]) if p != self.root and "exabgp" in comm(p))
        mcrd = rss_bytes(self.root)
        self.samples.append((round(time.time() - self.start_time, 1), round(mcrd / MIB, 1), round(exabgp / MIB, 1)))
        return mcrd


def judge(samples: list[tuple[float, float, float]], warmup: float, growth: float) -> dict[str, Any]:
    """Whether mcrd's RSS stayed within `growth` MiB of its value at the end of the warm-up."""
    before = [s for s in samples if s[0] <= warmup]
    after = [s for s in samples if s[0] > warmup]
    if not before or not after:
        return {"flat": False, "why": "too few samples around the warm-up"}
    at_warmup = before[-1][1]
    peak_after = max(s[1] for s in after)
    return {"rss_at_warmup_mib": at_warmup, "rss_peak_after_warmup_mib": peak_after, "rss_end_mib": samples[-1][1],
            "growth_after_warmup_mib": round(peak_after - at_warmup, 1), "flat": peak_after - at_warmup <= growth,
            "exabgp_rss_end_mib": samples[-1][2]}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    topo = Topology.build(args.shape)
    expected = {s.name: topo.expected_observer(s) for s in topo.spokes}
    target = topo.expected_kernel()
    received_per_round = sum(topo.shape.prefixes for _ in topo.spokes)
    result: dict[str, Any] = {"shape": topo.shape.name, "spokes": len(topo.spokes),
                              "prefixes_per_spoke": topo.shape.prefixes, "seconds": args.seconds,
                              "warmup_s": args.warmup, "ok": False, "error": None}
    lab = Lab("soak")
    monitor: KernelMonitor | None = None
    sampler: RssSampler | None = None
    ctls: list[Any] = []
    try:
        hub_ns, ctls, _ = build(lab, topo, "mcrd")
        hub = start_hub("mcrd", lab, hub_ns, topo, True, None)
        monitor = KernelMonitor(hub_ns.name, hub.protocol)
        monitor.start()
        monitor.wait_started()
        poll(lambda: all(c.state("hub") == "Established" for c in ctls), args.setup_timeout,
             "every spoke session Established")
        sampler = RssSampler(hub.roots[0], args.every)
        sampler.start()
        rounds = 0
        while time.time() - sampler.start_time < args.seconds:
            monitor.set_target(target)
            converge_announce(args, ctls, topo, expected, monitor, True, signal_spokes(ctls, "enable gen"))
            monitor.set_target({})
            converge_withdraw(args, ctls, monitor, True, signal_spokes(ctls, "disable gen"))
            rounds += 1
        # The end: everything announced once more, every table checked exactly.
        monitor.set_target(target)
        converge_announce(args, ctls, topo, expected, monitor, True, signal_spokes(ctls, "enable gen"))
        sampler.stop()
        sampler.sample()
        result.update(rounds=rounds, routes_received=(2 * rounds + 1) * received_per_round,
                      route_changes_per_s=round(2 * rounds * received_per_round / args.seconds),
                      exact_at_end=True, samples=sampler.samples)
        result.update(judge(sampler.samples, args.warmup, args.growth))
        result["ok"] = True
    except (RuntimeError, TimeoutError, OSError, AssertionError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        lab.dump_logs(lines=30, out=sys.stderr)
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        if monitor is not None:
            monitor.stop()
        for c in ctls:
            c.close()
        lab.close()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="S1")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before memory must stay flat")
    parser.add_argument("--growth", type=float, default=20, help="MiB mcrd's RSS may grow after the warm-up")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--stall", type=float, default=30, help="seconds without progress that fail a round")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a round may take")
    parser.add_argument("--setup-timeout", type=float, default=60)
    parser.add_argument("--json", help="write the result here")
    return parser


def summary(result: dict[str, Any], step: float = 30) -> str:
    """The result for people: RSS every `step` seconds, then the verdict."""
    lines = [f"{'t (s)':>6}  {'mcrd RSS (MiB)':>14}  {'ExaBGP RSS (MiB)':>16}"]
    next_t = 0.0
    for t, mcrd, exabgp in result.get("samples", []):
        if t >= next_t:
            lines.append(f"{t:>6.0f}  {mcrd:>14.1f}  {exabgp:>16.1f}")
            next_t = t + step
    keys = ("ok", "error", "rounds", "routes_received", "route_changes_per_s", "exact_at_end", "rss_at_warmup_mib",
            "rss_peak_after_warmup_mib", "growth_after_warmup_mib", "flat")
    lines += [f"{k}: {result[k]}" for k in keys if k in result]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = soak(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    return 0 if result["ok"] and result.get("flat") else 1


if __name__ == "__main__":
    sys.exit(main())
