"""ExaBGP option study: how fast does ExaBGP send N prefixes to K BIRD observers, option by option.

    python -m bench.hub.exabgp_study [--prefixes 5000] [--observers 10] [--json out.jsonl] [--only NAME ...]
        [--exabgp42 /tmp/venv/bin/python]

Lab (tests/lab/harness.py): one namespace with ExaBGP (CPU 1) driven by bench/hub/exabgp_api.py, K namespaces with a
BIRD observer each (CPU 0). The API process waits for every session and a go file, then sends every prefix to every
neighbor. Rate = N x K / (time of the last route change at any observer - go), from BIRD's route times (ms), after
checking that every observer holds exactly the N prefixes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.hub.probes import BirdCtl, TreeSampler
from bench.hub.run import loadavg, machine
from tests.lab.harness import Lab, poll

ROOT = Path(__file__).resolve().parents[2]
EXA_ASN = 65000

# name -> settings; defaults: 5.0.15, reactor.speed 1.0, 500 prefixes per command, window 200, one neighbor per
# command, adj-rib-out false, one ExaBGP process (what mcrd does today)
BASE: dict[str, Any] = {"version": "5.0.15", "speed": 1.0, "per_command": 500, "window": 200, "multi": False,
                        "adj_rib_out": False, "processes": 1, "nosleep": False, "shallow": False, "sort": False}
IDLE = 3.0  # seconds of idle ExaBGP CPU measured after each run
OPTIONS: dict[str, dict[str, Any]] = {
    "5.0 baseline (mcrd today)": {},
    "5.0 one route per command": {"per_command": 1},
    "5.0 100 per command": {"per_command": 100},
    "5.0 2000 per command": {"per_command": 2000},
    "5.0 window 20": {"window": 20},
    "5.0 no window": {"window": 0},
    "5.0 adj-rib-out true": {"adj_rib_out": True},
    "5.0 speed 0.1": {"speed": 0.1},
    "5.0 speed 0.01": {"speed": 0.01},
    "5.0 speed 0.001": {"speed": 0.001},
    "5.0 multi-neighbor": {"multi": True},
    "5.0 multi-neighbor speed 0.01": {"multi": True, "speed": 0.01},
    "5.0 2 processes": {"processes": 2},
    "5.0 2 processes speed 0.01": {"processes": 2, "speed": 0.01},
    "5.0 one route per command speed 0.01": {"per_command": 1, "speed": 0.01},
    "5.0 100 per command speed 0.01": {"per_command": 100, "speed": 0.01},
    "5.0 multi-neighbor 2 processes speed 0.01": {"multi": True, "processes": 2, "speed": 0.01},
    "5.0 nosleep patch": {"nosleep": True},
    "5.0 nosleep patch multi-neighbor": {"nosleep": True, "multi": True},
    "5.0 nosleep patch 2 processes": {"nosleep": True, "processes": 2},
    "5.0 nosleep patch multi-neighbor 2 processes": {"nosleep": True, "multi": True, "processes": 2},
    "5.0 nosleep+shallow patch": {"nosleep": True, "shallow": True},
    "5.0 nosleep+shallow patch multi-neighbor": {"nosleep": True, "shallow": True, "multi": True},
    "5.0 nosleep+shallow patch multi-neighbor 2 processes": {"nosleep": True, "shallow": True, "multi": True,
                                                             "processes": 2},
    # What mcrd ships (mcrd/bgp/exabgp_launch.py): all three fixes, one command for all sessions.
    "5.0 poll+copy+sort fixes multi-neighbor (mcrd now)": {"nosleep": True, "shallow": True, "sort": True,
                                                           "multi": True},
    "5.0 poll+copy+sort fixes multi-neighbor 2 processes": {"nosleep": True, "shallow": True, "sort": True,
                                                            "multi": True, "processes": 2},
    "4.2 baseline": {"version": "4.2.25"},
    "4.2 speed 0.01": {"version": "4.2.25", "speed": 0.01},
    "4.2 multi-neighbor speed 0.01": {"version": "4.2.25", "multi": True, "speed": 0.01},
    "4.2 2 processes speed 0.01": {"version": "4.2.25", "processes": 2, "speed": 0.01},
}


def observer_bird(i: int) -> str:
    return f"""log stderr {{ warning, error, fatal, bug }};
timeformat route "%s.%3f";
router id 10.98.{i}.2;
protocol device {{ scan time 10; }}
protocol bgp exa {{
  local 10.98.{i}.2 as {65100 + i};
  neighbor 10.98.{i}.1 as {EXA_ASN};
  hold time 90;
  connect delay time 1; connect retry time 1; error wait time 1, 5;
  ipv4 {{ import all; export none; }};
}}
"""


def exabgp_config(indexes: list[int], api: list[str], settings: dict[str, Any]) -> str:
    lines = ["process api {", f"    run {' '.join(api)};", "    encoder json;", "}", ""]
    for i in indexes:
        lines += [
            f"neighbor 10.98.{i}.2 {{",
            "    router-id 10.98.255.1;",
            f"    local-address 10.98.{i}.1;",
            f"    local-as {EXA_ASN};",
            f"    peer-as {65100 + i};",
            "    hold-time 90;",
            "    passive false;",
            "    group-updates true;",
            f"    adj-rib-out {'true' if settings['adj_rib_out'] else 'false'};",
            "    family { ipv4 unicast; }",
            "    capability { route-refresh disable; graceful-restart disable; }",
            "    api { processes [ api ]; receive { parsed; update; } neighbor-changes; }",
            "}",
            "",
        ]
    return "\n".join(lines)


def environment(settings: dict[str, Any]) -> list[str]:
    return [
        "exabgp_api_ack=true", "exabgp_api_encoder=json", "exabgp_api_cli=false", "exabgp_daemon_daemonize=false",
        "exabgp_daemon_user=root", "exabgp_daemon_drop=false", "exabgp_log_destination=stderr",
        "exabgp_log_level=WARNING", "exabgp_log_processes=false", "exabgp_log_routes=false",
        "exabgp_log_packets=false", "exabgp_log_rib=false", "exabgp_log_statistics=false",
        f"exabgp_reactor_speed={settings['speed']}",
        f"EXABGP_BENCH_FIXES={','.join(_fixes(settings))}",
        f"PYTHONPATH={ROOT}",
    ]


def _fixes(settings: dict[str, Any]) -> list[str]:
    """mcrd's ExaBGP fixes (mcrd/bgp/exabgp_launch.py) chosen by a row: nosleep = poll, shallow = copy."""
    return [fix for fix, key in (("poll", "nosleep"), ("copy", "shallow"), ("sort", "sort")) if settings[key]]


def run_option(name: str, settings: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    settings = {**BASE, **settings}
    python = sys.executable if settings["version"].startswith("5") else args.exabgp42
    k, n = args.observers, args.prefixes
    row: dict[str, Any] = {"option": name, **settings, "observers": k, "prefixes": n, "routes": k * n,
                           "ok": False, "error": None, "load_before": loadavg()}
    lab = Lab("exastudy")
    ctls: list[BirdCtl] = []
    sampler = None
    try:
        exa = lab.netns("exa")
        socks = []
        for i in range(k):
            ns = lab.netns(f"o{i:02d}")
            lab.link(exa, f"o{i:02d}", ns, "exa", [f"10.98.{i}.1/30"], [f"10.98.{i}.2/30"])
            work = lab.make_dir(f"obs{i}")
            (work / "bird.conf").write_text(observer_bird(i))
            ns.popen("taskset", "-c", "0", "bird", "-f", "-c", str(work / "bird.conf"), "-s", str(work / "ctl"),
                     label="bird")
            socks.append(work / "ctl")
        poll(lambda: all(s.exists() for s in socks), 30, "observer control sockets")
        ctls = [BirdCtl(s) for s in socks]
        work = lab.make_dir("exa")
        go = work / "go"
        groups = [list(range(k))] if settings["processes"] == 1 else [list(range(0, k, 2)), list(range(1, k, 2))]
        pids, reports, procs = [], [], []
        for g, indexes in enumerate(groups):
            spec = {"neighbors": [[f"10.98.{i}.2", f"10.98.{i}.1"] for i in indexes], "prefixes": n,
                    "per_command": settings["per_command"], "window": settings["window"],
                    "multi": settings["multi"], "go": str(go), "report": str(work / f"report{g}.json")}
            (work / f"spec{g}.json").write_text(json.dumps(spec))
            api = [python, str(ROOT / "bench" / "hub" / "exabgp_api.py"), str(work / f"spec{g}.json")]
            (work / f"exabgp{g}.conf").write_text(exabgp_config(indexes, api, settings))
            cpu = "1" if g == 0 else "0"
            cmd = [python, "-m", "exabgp"] + (["server"] if settings["version"].startswith("5") else [])
            if _fixes(settings):  # ExaBGP with some of mcrd's fixes
                cmd = [python, str(ROOT / "bench" / "hub" / "exabgp_fixes.py"), "server"]
            proc = exa.popen("env", *environment(settings), "taskset", "-c", cpu, *cmd, str(work / f"exabgp{g}.conf"),
                             label=f"exabgp{g}")
            pids.append(proc.pid)
            procs.append(proc)
            reports.append(work / f"report{g}.json")
        def up() -> bool:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("ExaBGP exited (see its log)")
            return all(c.state("exa") == "Established" for c in ctls)

        poll(up, 90, "observer sessions Established")
        time.sleep(1.0)
        sampler = TreeSampler(pids)
        sampler.start()
        cpu0 = sampler.cpu()
        t0 = time.time()
        go.write_text("go")
        deadline = time.time() + args.timeout
        last, moved = None, time.time()
        while True:
            counts = [c.count("exa") for c in ctls]
            if counts != last:
                last, moved = counts, time.time()
            if all(x == n for x in counts):
                break
            if time.time() - moved > args.stall or time.time() > deadline:
                raise RuntimeError(f"stalled at {counts} after {time.time() - t0:.1f}s")
            time.sleep(0.05)
        expected = {f"30.{i >> 8}.{i & 255}.0/24" for i in range(n)}
        newest = t0
        for i, c in enumerate(ctls):
            routes = c.routes("exa")
            if set(routes) != expected:
                raise RuntimeError("an observer holds another set than the N prefixes")
            newest = max(newest, max(routes.values()))
            # next hop self: every route via the ExaBGP end of the observer's own link
            via = c.cmd(f"show route protocol exa where gw = 10.98.{i}.1 count")
            if f"{n} of {n} routes" not in via:
                raise RuntimeError(f"observer {i}: not every route has next hop 10.98.{i}.1: {via.strip()}")
        row["cpu_s"] = round(sampler.cpu() - cpu0, 2)
        row["rss_peak_mib"] = round(sampler.peak / 2**20, 1)
        row["seconds"] = round(newest - t0, 3)
        row["routes_per_s"] = round(k * n / (newest - t0))
        done = [json.loads(p.read_text()) for p in reports if p.exists()]
        row["command_errors"] = sum(d["errors"] for d in done)
        row["acked_after_s"] = round(max(d["acked_at"] for d in done) - t0, 3) if done else None
        idle0 = sampler.cpu()
        time.sleep(IDLE)
        row["idle_cpu_pct"] = round(100 * (sampler.cpu() - idle0) / IDLE, 1)
        row["ok"] = True
    except (RuntimeError, AssertionError, OSError, TimeoutError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        if args.verbose:
            lab.dump_logs(lines=20, out=sys.stderr)
    finally:
        if sampler is not None:
            sampler.stop()
        for c in ctls:
            c.close()
        row["load_after"] = loadavg()
        lab.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hub.exabgp_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefixes", type=int, default=5000)
    parser.add_argument("--observers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="option names (default: all)")
    parser.add_argument("--exabgp42", default="/tmp/hubbench-exa42/bin/python",
                        help="python of a venv with exabgp==4.2.25 (the project pins 5.0.15)")
    parser.add_argument("--stall", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {0})
    names = args.only or list(OPTIONS)
    for _ in range(args.runs):
        for name in names:
            row = run_option(name, OPTIONS[name], args)
            row["machine"] = machine()
            print(json.dumps({k: row.get(k) for k in ("option", "ok", "routes_per_s", "seconds", "cpu_s",
                                                      "idle_cpu_pct", "load_before", "error")}), flush=True)
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
