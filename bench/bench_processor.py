#!/usr/bin/env python3
"""Benchmark of the route processor alone (`mcrd.rib.processor.RouteProcessor`): no ExaBGP, no kernel.

Every scenario is run in fresh subprocesses of this script, one per measurement:

* ``time``        best of N repetitions (default 3) of every phase, wall clock (``time.perf_counter``) and CPU
                  time (``time.process_time``, less sensitive to other load on the machine);
* ``rss``         one repetition, reporting ``ru_maxrss`` (peak resident set) of that fresh process;
* ``tracemalloc`` one repetition under ``tracemalloc`` (slow), reporting what the processor allocates.

Phases of one repetition, on a fresh processor:

  setup           ConfigChanged + PeerUp for every peer
  announce        every peer announces its prefixes (RoutesAnnounced, interleaved round-robin between peers)
  import-flip     ConfigChanged whose import permit lists now deny half of every peer's prefixes
                  (re-evaluation of every stored route; the rejected half is withdrawn from every other peer)
  import-restore  ConfigChanged back to the original lists (the half comes back)
  peer-down       PeerDown of the first peer, with all its routes
  peer-up         PeerUp of that peer (full table sent to it) and its announcements again
  withdraw-all    every peer withdraws everything (RoutesWithdrawn, same batching as the announcements)

Usage:
  python bench/bench_processor.py                      # every scenario, readable tables
  python bench/bench_processor.py --scenario 2x100k    # one scenario (repeat the option for more)
  python bench/bench_processor.py --json               # machine-readable
  python bench/bench_processor.py --profile 2x100k     # cProfile of one repetition, top functions by tottime
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mcrd.config.load import parse_config
from mcrd.config.model import Config
from mcrd.rib.inputs import ConfigChanged, Input, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import Origin, PathAttributes

MIB = 1024 * 1024
UPDATE_SIZE = 300  # prefixes per UPDATE as ExaBGP delivers them; also the unit that shares one set of attributes
NOW = 1000.0

TARGET_UPDATES_PER_S = 100_000
TARGET_RSS_MIB = 60.0
TARGET_RSS_SCENARIO = "10x1k"  # "10,000 routes across 10 peers"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    peers: int
    prefixes: int  # per peer
    shared: bool  # every peer announces the same prefixes (best-path contention)
    batch: int  # prefixes per RoutesAnnounced / RoutesWithdrawn event
    max_routes: int
    description: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("10x1k", 10, 1_000, False, UPDATE_SIZE, 10_000,
                 "10 peers x 1,000 distinct prefixes, 300 per UPDATE, each exported to 9 peers"),
        Scenario("10x1k-same", 10, 1_000, True, UPDATE_SIZE, 10_000,
                 "10 peers announce the SAME 1,000 prefixes (contention), 300 per UPDATE"),
        Scenario("10x1k-1pfx", 10, 1_000, False, 1, 10_000,
                 "as 10x1k, 1 prefix per event, attributes not shared (worst case)"),
        Scenario("2x100k", 2, 100_000, False, UPDATE_SIZE, 300_000,
                 "2 peers x 100,000 distinct prefixes, 300 per UPDATE, exported to the other peer"),
        Scenario("2x100k-1pfx", 2, 100_000, False, 1, 300_000,
                 "as 2x100k, 1 prefix per event, attributes not shared (worst case)"),
    )
}

PHASES = ("setup", "announce", "import-flip", "import-restore", "peer-down", "peer-up", "withdraw-all")
"""What `items` counts per phase: received prefixes (announce, withdraw-all), stored routes re-evaluated
(import-*), routes of the peer (peer-*); none for setup."""


# --- workload ---------------------------------------------------------------------------------------------------


def peer_key(p: int) -> str:
    return f"192.168.{p}.2"


def router_id(p: int) -> str:
    return f"10.255.0.{p + 1}"


def peer_asn(sc: Scenario, p: int) -> int:
    # In the contention scenario peers 1 and 2 are one customer AS, dual-homed: MED decides between them.
    if sc.shared and p == 2:
        return 64601
    return 64600 + p


def block(sc: Scenario, p: int) -> int:
    """First octet of the /6 a peer announces from (20.0.0.0/6, 24.0.0.0/6, ...)."""
    return 20 if sc.shared else 20 + 4 * p


def prefix_value(sc: Scenario, p: int, k: int) -> int:
    # Even k in the lower /7 of the block, odd k in the upper one: the import flip denies the lower /7.
    return (block(sc, p) << 24) + (k % 2) * (1 << 25) + (k // 2) * 256


def prefix_text(value: int, length: int = 24) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}/{length}"


def attributes(sc: Scenario, p: int, group: int) -> PathAttributes:
    """The attributes of one UPDATE: AS paths of 1-3 hops and MEDs vary by peer and UPDATE."""
    asn = peer_asn(sc, p)
    twin = 1 if sc.shared and p == 2 else p  # the dual-homed pair has equal path lengths
    hops = 1 + (twin + group) % 3
    path = (asn, *(64700 + (group + j) % 100 for j in range(hops - 1)))
    med = (group * 7 + 25 * (p == 2)) % 50 if group % 4 else None
    return PathAttributes(
        next_hop=peer_key(p),
        as_path=path,
        origin=Origin.IGP if group % 5 else Origin.INCOMPLETE,
        med=med,
        communities=(f"{asn}:{100 + group % 10}",),
    )


def import_list(sc: Scenario, p: int, flipped: bool) -> dict[str, Any]:
    """A realistic import permit list: bogons denied, the peer's own space permitted up to /24."""
    first = block(sc, p)
    entries: list[dict[str, Any]] = [
        {"action": "deny", "prefix": "0.0.0.0/8", "le": 32},
        {"action": "deny", "prefix": "10.0.0.0/8", "le": 32},
        {"action": "deny", "prefix": "127.0.0.0/8", "le": 32},
        {"action": "deny", "prefix": "172.16.0.0/12", "le": 32},
        {"action": "deny", "prefix": "192.168.0.0/16", "le": 32},
    ]
    if flipped:
        entries.append({"action": "deny", "prefix": f"{first}.0.0.0/7", "le": 32})
    entries.append({"action": "permit", "prefix": f"{first}.0.0.0/6", "ge": 8, "le": 24})
    return {"id": p + 1, "description": f"peer{p}-import", "addressFamily": "IPv4", "entries": entries}


def build_config(sc: Scenario, flipped: bool) -> Config:
    vxcs = []
    for p in range(sc.peers):
        conn = {
            "peerAsn": peer_asn(sc, p),
            "localIpAddress": f"192.168.{p}.1",
            "peerIpAddress": peer_key(p),
            "peerType": "NON_CLOUD" if p % 2 == 0 else "PRIV_CLOUD",  # every pair may exchange routes
            "importWhitelist": p + 1,
            "description": f"bench peer {p}",
        }
        vxcs.append({
            "productName": f"bench-vxc-{p}",
            "interface": f"eth{p + 1}",
            "vrouter": {"interfaces": [{"ipAddresses": [f"192.168.{p}.1/30"], "bgpConnections": [conn]}]},
        })
    doc = {
        "mcr": {"productName": "bench", "maxRoutes": sc.max_routes},
        "prefixFilterLists": [import_list(sc, p, flipped) for p in range(sc.peers)],
        "vxcs": vxcs,
    }
    return parse_config(json.dumps(doc), "bench")


@dataclass
class Workload:
    scenario: Scenario
    config: Config
    flipped: Config
    announce: list[Input]  # every peer's announcements, interleaved round-robin
    withdraw: list[Input]
    by_peer: list[list[Input]]  # each peer's announcements, in order
    received: int  # prefixes announced in total


def _chunks(items: list[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


def _interleave(lists: list[list[Input]]) -> list[Input]:
    out: list[Input] = []
    for i in range(max(map(len, lists))):
        out.extend(events[i] for events in lists if i < len(events))
    return out


def build_workload(sc: Scenario) -> Workload:
    by_peer: list[list[Input]] = []
    withdraw_by_peer: list[list[Input]] = []
    for p in range(sc.peers):
        key = peer_key(p)
        # Strings made per peer, as a BGP parser would make them (not shared between peers).
        prefixes = [prefix_text(prefix_value(sc, p, k)) for k in range(sc.prefixes)]
        announced: list[Input] = []
        for start in range(0, sc.prefixes, sc.batch):
            chunk = tuple(prefixes[start:start + sc.batch])
            # A fresh attributes object per event: with batch=1 nothing is shared, as with 1-prefix UPDATEs.
            announced.append(RoutesAnnounced(key, attributes(sc, p, start // UPDATE_SIZE), chunk))
        by_peer.append(announced)
        withdraw_by_peer.append([RoutesWithdrawn(key, chunk) for chunk in _chunks(prefixes, sc.batch)])
    return Workload(
        scenario=sc,
        config=build_config(sc, flipped=False),
        flipped=build_config(sc, flipped=True),
        announce=_interleave(by_peer),
        withdraw=_interleave(withdraw_by_peer),
        by_peer=by_peer,
        received=sc.peers * sc.prefixes,
    )


# --- running --------------------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    seconds: float  # wall clock, time.perf_counter
    items: int  # see PHASES
    exported: int = 0  # prefixes announced to peers, summed over the Effects
    withdrawn: int = 0  # prefixes withdrawn from peers, summed over the Effects
    cpu_seconds: float = 0.0  # CPU time of this process, time.process_time: less sensitive to a busy machine

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.items and self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.items / self.cpu_seconds if self.items and self.cpu_seconds > 0 else 0.0


Probe = Callable[[str], None]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"benchmark self-check failed: {what}")


def _expected_out(w: Workload, proc: RouteProcessor) -> int:
    """Adj-RIB-Out entries the Loc-RIB should give: every other peer whose AS is not in the path."""
    sc = w.scenario
    asns = {peer_key(p): peer_asn(sc, p) for p in range(sc.peers)}
    total = 0
    for entry in proc.best().values():
        total += sum(1 for key, asn in asns.items() if key != entry.source.key and asn not in entry.attrs.as_path)
    return total


def _check_state(w: Workload, proc: RouteProcessor, phase: str, accepted_per_peer: int) -> None:
    sc = w.scenario
    best = accepted_per_peer if sc.shared else accepted_per_peer * sc.peers
    _check(proc.route_count == best, f"{phase}: {proc.route_count} best routes, expected {best}")
    _check(proc.refused_total == 0, f"{phase}: {proc.refused_total} routes refused by the route limit")
    out = sum(len(proc.advertised(peer_key(p))) for p in range(sc.peers))
    want = _expected_out(w, proc)
    if not sc.shared:
        _check(want == best * (sc.peers - 1), f"{phase}: export to every other peer expected")
    _check(out == want, f"{phase}: {out} routes in the Adj-RIBs-Out, expected {want}")


def run_once(
    w: Workload, probe: Probe | None = None, profiler: cProfile.Profile | None = None
) -> dict[str, PhaseResult]:
    """One repetition of every phase on a fresh processor; `probe(phase)` is called after each (untimed).
    A `profiler` is enabled around the timed loops only (not the self-checks)."""
    sc = w.scenario
    proc = RouteProcessor()
    handle = proc.handle
    results: dict[str, PhaseResult] = {}

    def timed(name: str, events: Sequence[Input], items: int) -> None:
        gc.collect()
        exported = withdrawn = 0
        if profiler is not None:
            profiler.enable()
        cpu_start = time.process_time()
        start = time.perf_counter()
        for event in events:
            effects = handle(event, NOW)
            for announce in effects.announce:
                exported += len(announce.prefixes)
            for withdraw in effects.withdraw:
                withdrawn += len(withdraw.prefixes)
        wall = time.perf_counter() - start
        results[name] = PhaseResult(wall, items, exported, withdrawn, time.process_time() - cpu_start)
        if profiler is not None:
            profiler.disable()
        if probe is not None:
            probe(name)

    first = peer_key(0)
    timed("setup", [ConfigChanged(w.config), *(PeerUp(peer_key(p), router_id(p)) for p in range(sc.peers))], 0)
    timed("announce", w.announce, w.received)
    _check_state(w, proc, "announce", sc.prefixes)
    timed("import-flip", [ConfigChanged(w.flipped)], w.received)
    _check_state(w, proc, "import-flip", sc.prefixes // 2)
    timed("import-restore", [ConfigChanged(w.config)], w.received)
    _check_state(w, proc, "import-restore", sc.prefixes)
    timed("peer-down", [PeerDown(first, "bench")], sc.prefixes)
    timed("peer-up", [PeerUp(first, router_id(0)), *w.by_peer[0]], sc.prefixes)
    _check_state(w, proc, "peer-up", sc.prefixes)
    timed("withdraw-all", w.withdraw, w.received)
    _check(proc.route_count == 0 and not proc.fib(), "withdraw-all: routes left")
    return results


def best_of(runs: list[dict[str, PhaseResult]]) -> dict[str, PhaseResult]:
    """Per phase, the repetition with the best wall time; the CPU time is the best one too."""
    best: dict[str, PhaseResult] = {}
    for phase in PHASES:
        fastest = min((run[phase] for run in runs), key=lambda r: r.seconds)
        cpu = min(run[phase].cpu_seconds for run in runs)
        best[phase] = PhaseResult(fastest.seconds, fastest.items, fastest.exported, fastest.withdrawn, cpu)
    return best


# --- child processes ---------------------------------------------------------------------------------------------


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_time(sc: Scenario, reps: int) -> dict[str, Any]:
    w = build_workload(sc)
    load_before = os.getloadavg()[0]
    runs = [run_once(w) for _ in range(reps)]
    return {"phases": {name: {**vars(r), "rate": r.rate, "cpu_rate": r.cpu_rate} for name, r in best_of(runs).items()},
            "runs": [{name: r.seconds for name, r in run.items()} for run in runs],
            "loadavg_1min": [load_before, os.getloadavg()[0]]}


def child_rss(sc: Scenario) -> dict[str, Any]:
    after_imports = _max_rss_mib()
    w = build_workload(sc)
    gc.collect()
    before = _rss_now_mib()
    at: dict[str, float] = {}

    def probe(phase: str) -> None:
        at[phase] = _rss_now_mib()

    run_once(w, probe)
    return {"rss_after_imports_mib": after_imports, "rss_before_run_mib": before,
            "rss_after_announce_mib": at["announce"], "peak_rss_mib": _max_rss_mib()}


def child_tracemalloc(sc: Scenario) -> dict[str, Any]:
    tracemalloc.start()
    w = build_workload(sc)
    gc.collect()
    workload_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    phase_peak: dict[str, int] = {}
    current: dict[str, int] = {}

    def probe(phase: str) -> None:
        now, peak = tracemalloc.get_traced_memory()
        current[phase] = now - workload_bytes
        phase_peak[phase] = peak - workload_bytes
        tracemalloc.reset_peak()

    run_once(w, probe)
    tracemalloc.stop()
    return {"tracemalloc_workload_mib": workload_bytes / MIB,
            "tracemalloc_after_announce_mib": current["announce"] / MIB,
            "tracemalloc_peak_mib": max(phase_peak.values()) / MIB,
            "tracemalloc_peak_phase": max(phase_peak, key=lambda k: phase_peak[k])}


def run_child(mode: str, scenario: str, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--scenario", scenario, "--reps", str(reps)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- report -----------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            **source_version()}


def source_version() -> dict[str, Any]:
    """The commit measured, and whether the route processor's code differs from it (read-only git calls)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        diff = subprocess.run(["git", "-C", root, "diff", "--quiet", "HEAD", "--", "mcrd/rib", "mcrd/policy"],
                              check=False)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "rib_policy_modified": None}
    return {"commit": head, "rib_policy_modified": diff.returncode != 0}


def targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"updates_per_s_min": TARGET_UPDATES_PER_S, "rss_mib_max": TARGET_RSS_MIB,
                           "rss_scenario": TARGET_RSS_SCENARIO, "updates": {}}
    for name, res in results.items():
        rate = res["phases"]["announce"]["rate"]
        out["updates"][name] = {"updates_per_s": rate, "met": rate >= TARGET_UPDATES_PER_S,
                                "updates_per_cpu_s": res["phases"]["announce"]["cpu_rate"]}
    if TARGET_RSS_SCENARIO in results and "memory" in results[TARGET_RSS_SCENARIO]:
        peak = results[TARGET_RSS_SCENARIO]["memory"]["peak_rss_mib"]
        out["rss"] = {"peak_rss_mib": peak, "met": peak <= TARGET_RSS_MIB}
    return out


def _fmt_rate(rate: float) -> str:
    return f"{rate:>12,.0f}" if rate else f"{'-':>12}"


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    modified = " (mcrd/rib or mcrd/policy modified)" if m.get("rib_policy_modified") else ""
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['implementation']} {m['python']}; "
          f"commit {m.get('commit')}{modified}; best of {report['reps']} repetitions")
    for name, res in report["scenarios"].items():
        before, after = res["loadavg_1min"]
        print(f"\n{name}: {res['description']} (load average {before:.2f} -> {after:.2f})")
        print(f"  {'phase':<15} {'items':>9} {'ms':>10} {'items/s':>12} {'CPU ms':>10} {'items/CPU s':>12} "
              f"{'exported':>10} {'withdrawn':>10}")
        for phase in PHASES:
            r = res["phases"][phase]
            print(f"  {phase:<15} {r['items']:>9,} {r['seconds'] * 1000:>10.1f} {_fmt_rate(r['rate'])} "
                  f"{r['cpu_seconds'] * 1000:>10.1f} {_fmt_rate(r['cpu_rate'])} {r['exported']:>10,} "
                  f"{r['withdrawn']:>10,}")
    if any("memory" in res for res in report["scenarios"].values()):
        print("\nmemory (MiB)       RSS:  imports  before-run  after-announce  peak  | tracemalloc: input  "
              "processor-after-announce  processor-peak (phase)")
        for name, res in report["scenarios"].items():
            mem = res.get("memory")
            if mem:
                print(f"  {name:<15} {mem['rss_after_imports_mib']:>14.1f} {mem['rss_before_run_mib']:>11.1f} "
                      f"{mem['rss_after_announce_mib']:>15.1f} {mem['peak_rss_mib']:>5.1f}  | "
                      f"{mem['tracemalloc_workload_mib']:>18.1f} {mem['tracemalloc_after_announce_mib']:>25.1f} "
                      f"{mem['tracemalloc_peak_mib']:>15.1f} ({mem['tracemalloc_peak_phase']})")
    t = report["targets"]
    print(f"\ntargets: >= {t['updates_per_s_min']:,} updates/s in; <= {t['rss_mib_max']:.0f} MiB peak RSS "
          f"for {t['rss_scenario']}")
    for name, u in t["updates"].items():
        print(f"  {name:<15} {u['updates_per_s']:>12,.0f} updates/s  {'MET' if u['met'] else 'NOT MET'}  "
              f"(per CPU second: {u['updates_per_cpu_s']:,.0f})")
    if "rss" in t:
        print(f"  {t['rss_scenario']:<15} {t['rss']['peak_rss_mib']:>12.1f} MiB peak RSS "
              f"{'MET' if t['rss']['met'] else 'NOT MET'}")


def profile(sc: Scenario, top: int) -> str:
    w = build_workload(sc)
    profiler = cProfile.Profile()
    run_once(w, profiler=profiler)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the mcrd route processor alone.")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run this scenario (repeatable; default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--json-out", metavar="FILE", help="also write the JSON report to FILE")
    parser.add_argument("--reps", type=int, default=3, help="repetitions for throughput (best is kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS and tracemalloc runs")
    parser.add_argument("--profile", metavar="SCENARIO", choices=sorted(SCENARIOS),
                        help="profile one repetition of SCENARIO with cProfile and print the top functions")
    parser.add_argument("--top", type=int, default=10, help="functions shown by --profile")
    parser.add_argument("--child", choices=("time", "rss", "tracemalloc"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names: list[str] = args.scenario or list(SCENARIOS)

    if args.child:
        sc = SCENARIOS[names[0]]
        if args.child == "time":
            print(json.dumps(child_time(sc, args.reps)))
        elif args.child == "rss":
            print(json.dumps(child_rss(sc)))
        else:
            print(json.dumps(child_tracemalloc(sc)))
        return 0
    if args.profile:
        print(profile(SCENARIOS[args.profile], args.top))
        return 0

    results: dict[str, Any] = {}
    for name in names:
        sc = SCENARIOS[name]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        res: dict[str, Any] = {"description": sc.description, "peers": sc.peers, "prefixes_per_peer": sc.prefixes,
                               "shared_prefixes": sc.shared, "prefixes_per_event": sc.batch}
        res.update(run_child("time", name, args.reps))
        if not args.no_memory:
            res["memory"] = {**run_child("rss", name, 1), **run_child("tracemalloc", name, 1)}
        results[name] = res
    report = {"machine": machine(), "reps": args.reps, "scenarios": results, "targets": targets(results)}
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
