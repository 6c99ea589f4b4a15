"""`python -m bench.hub.summary results.jsonl [...]`: medians (min-max) per shape, FIB setting and hub, and the
ratios mcrd/BIRD and mcrd/FRR, as Markdown tables. Failed runs are counted and left out of the figures."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from typing import Any

METRICS = [  # (row key, column title, unit)
    ("announce_s", "announce, all done", "s"),
    ("announce_observers_s", "announce, observers", "s"),
    ("announce_kernel_s", "announce, hub kernel", "s"),
    ("withdraw_s", "withdraw, all empty", "s"),
    ("cpu_announce_s", "hub CPU announce", "s"),
    ("cpu_withdraw_s", "hub CPU withdraw", "s"),
    ("rss_peak_mib", "hub peak RSS", "MiB"),
]
RATIO_METRICS = ["announce_s", "withdraw_s", "cpu_announce_s", "rss_peak_mib"]
SHAPE_ORDER = {"S1": 1, "S2": 2, "S3": 3, "S4": 4}
HUB_ORDER = {"bird": 0, "frr": 1, "mcrd": 2}


def _fixes(row: dict[str, Any]) -> str:
    """Which of mcrd/bgp/exabgp_launch.py's fixes a study row ran with (its older names: nosleep, shallow)."""
    names = [fix for fix, key in (("poll", "nosleep"), ("copy", "shallow"), ("sort", "sort")) if row.get(key)]
    return "+".join(names) or "none"


def load(paths: list[str]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        with open(path) as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def fmt(values: list[float], spec: str = ".3g") -> str:
    """Median (min-max) of `values`, each written with the format `spec`."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:{spec}}"
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def fmt_int(values: list[float]) -> str:
    return fmt(values, ",.0f")


def ratio(a: list[float], b: list[float]) -> str:
    if not a or not b or statistics.median(b) == 0:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.1f}x"


def summarize(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], dict[tuple[str, str], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row["shape"], row["fib"])][(row["hub"], row.get("variant", ""))].append(row)
    out = []
    for (shape, fib), hubs in sorted(groups.items(), key=lambda kv: (SHAPE_ORDER.get(kv[0][0], 9), kv[0][1] != "on")):
        any_row = next(iter(next(iter(hubs.values()))))
        kernel = f"{any_row['accepted_total']:,} in the kernel" if fib == "on" else "no kernel routes"
        out.append(f"### {shape}, FIB {fib}: {any_row['spokes']} spokes x {any_row['prefixes_per_spoke']:,} prefixes "
                   f"({any_row['advertisements']:,} routes to send, {kernel})")
        out.append("")
        metrics = [m for m in METRICS if fib == "on" or m[0] != "announce_kernel_s"]
        out.append("| hub | runs ok | " + " | ".join(f"{title} ({unit})" for _, title, unit in metrics) + " |")
        out.append("|---|---|" + "---|" * len(metrics))
        ordered = sorted(hubs.items(), key=lambda kv: (HUB_ORDER.get(kv[0][0], 9), kv[0][1]))
        for (hub, variant), runs in ordered:
            ok = [r for r in runs if r.get("ok")]
            label = hub + (f" [{variant}]" if variant else "")
            cells = [fmt([r[key] for r in ok if r.get(key) is not None]) for key, _, _ in metrics]
            out.append(f"| {label} | {len(ok)}/{len(runs)} | " + " | ".join(cells) + " |")
        out.append("")

        def values(hub: str, variant: str, key: str,
                   hubs: dict[tuple[str, str], list[dict[str, Any]]] = hubs) -> list[float]:
            return [r[key] for r in hubs.get((hub, variant), []) if r.get("ok") and r.get(key) is not None]

        mcrd_variants = [v for (h, v) in hubs if h == "mcrd"]
        if mcrd_variants and ((("bird", "") in hubs) or (("frr", "") in hubs)):
            out.append("| ratio | " + " | ".join(RATIO_METRICS) + " |")
            out.append("|---|" + "---|" * len(RATIO_METRICS))
            for variant in sorted(mcrd_variants):
                tag = f"mcrd [{variant}]" if variant else "mcrd"
                for other in ("bird", "frr"):
                    cells = [ratio(values("mcrd", variant, k), values(other, "", k)) for k in RATIO_METRICS]
                    out.append(f"| {tag} / {other} | " + " | ".join(cells) + " |")
            out.append("")
        failures = [r for runs in hubs.values() for r in runs if not r.get("ok")]
        for r in failures:
            out.append(f"- failed: {r['hub']} run {r['run']}: {r.get('error')}")
        if failures:
            out.append("")
    loads = [str(r["load_before"]) for r in rows if r.get("load_before")]
    if loads:
        ones = [float(x.split()[0]) for x in loads]
        out.append(f"Load average (1 min) at the start of the runs: median {statistics.median(ones):.2f}, "
                   f"min {min(ones):.2f}, max {max(ones):.2f} ({len(ones)} runs).")
    first = rows[0] if rows else {}
    if first.get("versions"):
        versions = {k: v for k, v in first["versions"].items() if k != "mcrd"}
        out.append(f"Versions: {json.dumps(versions)}; machine: {json.dumps(first.get('machine'))}.")
    revs: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["hub"] == "mcrd":
            rev = row.get("mcrd_rev") or row.get("versions", {}).get("mcrd", "?")
            tree = f" (sources {row['mcrd_tree']})" if row.get("mcrd_tree") else ""
            revs[row.get("variant") or "default"].add(rev + tree)
    for variant, seen in sorted(revs.items()):
        out.append(f"mcrd revisions, {variant}: {', '.join(sorted(seen))}.")
    return "\n".join(out) + "\n"


def summarize_study(rows: list[dict[str, Any]]) -> str:
    """The ExaBGP option study (bench/hub/exabgp_study.py): routes/s per option, median (min-max) over runs."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["option"]].append(row)
    base = [r["routes_per_s"] for r in groups.get("5.0 baseline (mcrd today)", []) if r.get("ok")]
    first = rows[0]
    out = [f"{first['observers']} observers x {first['prefixes']:,} prefixes = {first['routes']:,} routes per run", "",
           "| option | runs ok | routes/s | vs baseline | ExaBGP CPU s | idle CPU % | version | speed | per command | "
           "window | multi | adj-rib-out | processes | mcrd's fixes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        ok = [r for r in runs if r.get("ok")]
        rate = [r["routes_per_s"] for r in ok]
        gain = f"{statistics.median(rate) / statistics.median(base):.1f}x" if rate and base else "-"
        r0 = runs[0]
        idle = [r["idle_cpu_pct"] for r in ok if r.get("idle_cpu_pct") is not None]
        out.append(f"| {name} | {len(ok)}/{len(runs)} | {fmt_int(rate)} | {gain} | {fmt([r['cpu_s'] for r in ok])} | "
                   f"{fmt(idle)} | {r0['version']} | {r0['speed']} | {r0['per_command']} | {r0['window'] or 'none'} | "
                   f"{'yes' if r0['multi'] else 'no'} | {'true' if r0['adj_rib_out'] else 'false'} | "
                   f"{r0['processes']} | {_fixes(r0)} |")
    loads = [float(str(r["load_before"]).split()[0]) for r in rows if r.get("load_before")]
    if loads:
        out += ["", f"Load average (1 min) at the start of the runs: median {statistics.median(loads):.2f}, "
                    f"min {min(loads):.2f}, max {max(loads):.2f}."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hub.summary", description=__doc__)
    parser.add_argument("results", nargs="+", help="JSON lines written by python -m bench.hub.run --json")
    parser.add_argument("--before", metavar="FILE", help="mcrd rows of an earlier revision, shown as their own lines "
                        "(variant 'before') for comparison; rows carrying a 'note' are left out")
    args = parser.parse_args(argv)
    rows = load(args.results)
    if args.before:
        for row in load([args.before]):
            if row["hub"] == "mcrd" and not row.get("note"):
                row["variant"] = " ".join(x for x in ("before", row.get("variant", "")) if x)
                rows.append(row)
    study = [r for r in rows if "option" in r]
    hub = [r for r in rows if "option" not in r]
    if hub:
        sys.stdout.write(summarize(hub))
    if study:
        sys.stdout.write(summarize_study(study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
