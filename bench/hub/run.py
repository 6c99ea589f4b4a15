"""Hub benchmark: `python -m bench.hub.run --shape S2 --hub mcrd|bird|frr [--fib off] [--runs 5] [--json out.jsonl]`.

One run, in a fresh lab of network namespaces (tests/lab/harness.py: names `mcl-*-<run id>`, processes stopped by
pid, everything removed and checked at the end, a watchdog cleans up if this process dies):

  spoke sNN (BIRD, CPU 0) --veth 169.254.N.0/30-- hub (mcrd | BIRD | FRR, CPU 1)

1. Every spoke BIRD starts with its static protocol `gen` disabled; the hub starts; wait until every session is
   Established, the hub's kernel table (its protocol) and every spoke's table from the hub are empty.
2. Go: `enable gen` on every spoke's control socket at once (t0). The spokes are the observers: each must end with
   *exactly* its expected set (shapes.py) learned from the hub; the hub's kernel must end with exactly every
   accepted prefix via the right spoke. Observer convergence = the last change time BIRD shows on any expected
   route (ms, `timeformat route "%s.%3f"`), checked by set equality of full dumps; kernel convergence = the
   netlink event that made the table equal to the target (KernelMonitor).
3. Withdraw: `disable gen` everywhere (t1); time until every spoke's table from the hub and the hub's kernel table
   are empty (observers: polled counts, ~20-60 ms granularity; kernel: netlink events).
4. CPU seconds (utime+stime) and RSS of the hub's whole process tree (mcrd + ExaBGP + bridge; zebra + bgpd; bird),
   sampled every 100 ms; the sum of each process's VmHWM as well.

A run fails (ok=false with the reason) when nothing changes for --stall seconds or after --timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.hub.configs import bird_hub, frr_hub, load, mcr_config, spoke_bird
from bench.hub.probes import BirdCtl, KernelMonitor, TreeSampler
from bench.hub.shapes import HUB_ASN, SHAPES, Topology
from tests.lab.harness import FRR_SBIN, FrrPeer, Lab, Netns, poll

ROOT = Path(__file__).resolve().parents[2]
HUB_CPU, GEN_CPU = "1", "0"
KERNEL_PROTO = {"mcrd": 252, "bird": 12, "frr": 186}  # rtm_protocol of each hub's kernel routes
POLL = 0.02


class RunFailedError(RuntimeError):
    pass


# --- versions and machine -----------------------------------------------------------------------------------------


def _out(*cmd: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
        return (proc.stdout + proc.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "mem_gib": round(int(mem) / 2**20, 1),
            "os": _out("sh", "-c", ". /etc/os-release; echo $PRETTY_NAME")}


def versions() -> dict[str, str]:
    rev = _out("git", "rev-parse", "--short", "HEAD")
    dirty = _out("git", "status", "--porcelain", "--", "mcrd")
    return {
        "mcrd": rev + ("+dirty(mcrd/)" if dirty else ""),
        "exabgp": _out(sys.executable, "-c", "import importlib.metadata as m; print(m.version('exabgp'))"),
        "bird": _out("bird", "--version").split()[-1],
        "frr": _out(str(FRR_SBIN / "bgpd"), "--version").splitlines()[0].split()[-1],
        "python": platform.python_version(),
        "iproute2": _out("ip", "-V"),
    }


def mcrd_tree() -> str:
    """A digest of the mcrd sources as they are now (the tree is shared: it may change between runs)."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "mcrd").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- hubs --------------------------------------------------------------------------------------------------------


@dataclass
class Hub:
    kind: str
    ns: Netns
    roots: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> int:
        return KERNEL_PROTO[self.kind]


def start_hub(kind: str, lab: Lab, ns: Netns, topo: Topology, fib: bool, exabgp_cpu: str | None,
              args_env: list[str] = (), exabgp_processes: int = 1) -> Hub:  # type: ignore[assignment]
    text = mcr_config(topo, lab.run_id, fib=fib)
    config = load(text)
    work = lab.make_dir(f"hub-{kind}")
    (work / "mcrd.json").write_text(text)
    hub = Hub(kind, ns)
    if kind == "mcrd":
        extra_env = list(args_env)
        module = "bench.hub.mcrd_bench" if any(e.startswith("MCRD_BENCH_") for e in extra_env) else "mcrd"
        proc = ns.popen("env", f"PYTHONPATH={ROOT}", *extra_env, "taskset", "-c", HUB_CPU, sys.executable, "-m", module,
                        "run", "-c", str(work / "mcrd.json"), "--log-format", "json", "--log-level", "info",
                        "--state-dir", str(lab.make_dir("mcrd-state")), "--exabgp-processes", str(exabgp_processes),
                        label="mcrd")
        hub.roots = [proc.pid]
        hub.info["log"] = str(lab.log_of(proc))
        if exabgp_cpu is not None:
            hub.info["exabgp_cpu"] = exabgp_cpu
        hub.info["exabgp_env"] = extra_env
    elif kind == "bird":
        conf = work / "bird.conf"
        conf.write_text(bird_hub(config))
        sock = work / "bird.ctl"
        proc = ns.popen("taskset", "-c", HUB_CPU, "bird", "-f", "-c", str(conf), "-s", str(sock), label="bird-hub")
        poll(lambda: sock.exists(), 15, "hub BIRD control socket")
        hub.roots = [proc.pid]
    elif kind == "frr":
        frr = FrrPeer(ns, HUB_ASN, str(config.effective_router_id()), frr_hub(config))
        for proc in (frr.zebra, frr.bgpd):
            subprocess.run(["taskset", "-a", "-p", "-c", HUB_CPU, str(proc.pid)], check=True, capture_output=True)
        hub.roots = [frr.zebra.pid, frr.bgpd.pid]
        hub.info["frr"] = frr
    else:
        raise ValueError(kind)
    return hub


def exabgp_pids(hub: Hub) -> list[int]:
    from bench.hub.probes import comm, tree

    return sorted(p for p in tree(hub.roots) if "exabgp" in comm(p) and "bridge" not in comm(p))


# --- one run -----------------------------------------------------------------------------------------------------


def build(lab: Lab, topo: Topology, kind: str) -> tuple[Netns, list[BirdCtl], list[Any]]:
    hub_ns = lab.netns("hub")
    ctls, procs = [], []
    for spoke in topo.spokes:
        ns = lab.netns(spoke.name)
        hub_addrs = [] if kind == "mcrd" else [f"{spoke.hub_ip}/30"]  # mcrd configures its side itself
        lab.link(hub_ns, spoke.name, ns, "hub", hub_addrs, [f"{spoke.spoke_ip}/30"])
        work = lab.make_dir(f"bird-{spoke.name}")
        conf, sock = work / "bird.conf", work / "bird.ctl"
        conf.write_text(spoke_bird(spoke))
        procs.append(ns.popen("taskset", "-c", GEN_CPU, "bird", "-f", "-c", str(conf), "-s", str(sock),
                              label="bird"))
        ctls.append(sock)
    poll(lambda: all(s.exists() for s in ctls), 30, "spoke BIRD control sockets")
    return hub_ns, [BirdCtl(s) for s in ctls], procs


def run_once(args: argparse.Namespace, run: int) -> dict[str, Any]:
    topo = Topology.build(args.shape, spokes=args.spokes, prefixes=args.prefixes)
    fib = args.fib == "on"
    row: dict[str, Any] = {
        "shape": topo.shape.name, "hub": args.hub, "fib": args.fib, "run": run,
        "variant": args.variant or _variant(args), "spokes": len(topo.spokes),
        "prefixes_per_spoke": topo.shape.prefixes, "accepted_total": topo.total_accepted,
        "advertisements": topo.advertisements, "ok": False, "error": None,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_before": loadavg(),
        "mcrd_rev": _out("git", "rev-parse", "--short", "HEAD"), "mcrd_tree": mcrd_tree(),
    }
    expected = {s.name: topo.expected_observer(s) for s in topo.spokes}
    kernel_target = topo.expected_kernel() if fib else {}
    lab = Lab("hubbench")
    sampler: TreeSampler | None = None
    monitor: KernelMonitor | None = None
    ctls: list[BirdCtl] = []
    try:
        hub_ns, ctls, _ = build(lab, topo, args.hub)
        t_setup = time.time()
        hub = start_hub(args.hub, lab, hub_ns, topo, fib, args.exabgp_cpu, args.exabgp_env, args.exabgp_processes)
        monitor = KernelMonitor(hub_ns.name, hub.protocol)
        monitor.start()
        monitor.wait_started()

        def established() -> bool:
            return all(c.state("hub") == "Established" for c in ctls)

        poll(established, args.setup_timeout, "every spoke session Established")
        row["sessions_up_s"] = round(time.time() - t_setup, 2)
        if args.hub == "mcrd" and args.exabgp_cpu is not None:
            cpus = args.exabgp_cpu.split(",")
            for index, pid in enumerate(exabgp_pids(hub)):
                subprocess.run(["taskset", "-a", "-p", "-c", cpus[index % len(cpus)], str(pid)], check=True,
                               capture_output=True)
        # quiet start: nothing learned from the hub anywhere, sessions stay up for a moment
        poll(lambda: all(c.count("hub") == 0 for c in ctls) and monitor.snapshot()[0] == 0, 30, "empty start")
        time.sleep(args.settle)
        if not established():
            raise RunFailedError("a session dropped before the go signal")
        sampler = TreeSampler(hub.roots)
        sampler.start()
        sampler.sample()
        monitor.set_target(kernel_target)
        profiles = start_profiles(args, hub, "announce") if args.profile else []

        # --- announce -----------------------------------------------------------------------------------------
        cpu0, by0, threads0 = sampler.cpu(), sampler.cpu_by_process(), sampler.cpu_by_thread()
        t0 = signal_spokes(ctls, "enable gen")
        row.update(converge_announce(args, ctls, topo, expected, monitor, fib, t0))
        row["cpu_announce_s"] = round(sampler.cpu() - cpu0, 2)
        row["cpu_announce_by_process_s"] = {name[:60]: round(cpu - by0.get(name, 0.0), 3)
                                            for name, cpu in sampler.cpu_by_process().items()}
        row["cpu_announce_by_thread_s"] = {name: round(cpu - threads0.get(name, 0.0), 3)
                                           for name, cpu in sampler.cpu_by_thread().items()
                                           if cpu - threads0.get(name, 0.0) > 0}
        row["rss_peak_announce_mib"] = round(sampler.peak / 2**20, 1)
        finished = stop_profiles(profiles)
        time.sleep(args.settle)

        # --- withdraw -----------------------------------------------------------------------------------------
        monitor.set_target({})
        profiles = start_profiles(args, hub, "withdraw") if args.profile else []
        perf = start_perf(args, "withdraw", row["run"]) if args.perf else None
        toggled = args.hub == "mcrd" and any(e.startswith(("MCRD_BENCH_CPROFILE=", "MCRD_BENCH_PARTS="))
                                                for e in args.exabgp_env)
        if toggled:
            os.kill(hub.roots[0], signal.SIGUSR2)  # bench/hub/mcrd_bench.py: cProfile or the parts on
        cpu2, threads2 = sampler.cpu(), sampler.cpu_by_thread()
        t1 = signal_spokes(ctls, "disable gen")
        row.update(converge_withdraw(args, ctls, monitor, fib, t1))
        if toggled:
            os.kill(hub.roots[0], signal.SIGUSR2)  # off, written
        if perf is not None:
            perf.send_signal(2)  # SIGINT: perf writes its data and exits
            perf.wait(60)
        if args.profile:
            row["profiles"] = finished + stop_profiles(profiles)
        row["cpu_withdraw_s"] = round(sampler.cpu() - cpu2, 2)
        row["cpu_withdraw_by_thread_s"] = {name: round(cpu - threads2.get(name, 0.0), 3)
                                           for name, cpu in sampler.cpu_by_thread().items()
                                           if cpu - threads2.get(name, 0.0) > 0}
        row["cpu_total_s"] = round(sampler.cpu(), 2)  # since the hub started (sessions and idle included)
        row["rss_peak_mib"] = round(sampler.peak / 2**20, 1)
        row["rss_hwm_sum_mib"] = round(sampler.hwm() / 2**20, 1)
        row["processes"] = {k: round(v, 2) for k, v in sampler.cpu_by_process().items()}
        row["rss_peak_by_process_mib"] = {f"{pid} {sampler.seen.get(pid, '?')[:60]}": round(size / 2**20, 1)
                                          for pid, size in sampler.peak_by_pid.items()}
        row["kernel_overruns"] = monitor.overruns
        row["ok"] = True
    except (RunFailedError, TimeoutError, RuntimeError, OSError, AssertionError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        if args.verbose:
            lab.dump_logs(lines=30, out=sys.stderr)
    finally:
        if sampler is not None:
            sampler.stop()
        if monitor is not None:
            monitor.stop()
        for c in ctls:
            with contextlib.suppress(OSError):
                c.close()
        row["load_after"] = loadavg()
        if mcrd_tree() != row["mcrd_tree"]:
            row["ok"] = False
            row["error"] = f"mcrd/ changed during the run: {row['error'] or ''}"
        if args.keep_logs:
            keep = Path(args.keep_logs) / f"{row['shape']}-{row['hub']}-fib{row['fib']}-{run}"
            keep.mkdir(parents=True, exist_ok=True)
            for log in (lab.workdir / "logs").glob("*"):
                with contextlib.suppress(OSError):
                    (keep / log.name).write_bytes(log.read_bytes()[-2_000_000:])
        lab.close()
    return row


def _variant(args: argparse.Namespace) -> str:
    if args.hub != "mcrd":
        return ""
    parts = [e.removeprefix("exabgp_").removeprefix("MCRD_BENCH_") for e in args.exabgp_env]
    if args.exabgp_processes != 1:
        parts.append(f"exabgp-processes{args.exabgp_processes}")
    if args.exabgp_cpu is not None:
        parts.append(f"exabgp-cpu{args.exabgp_cpu}")
    return " ".join(parts)


def _progress(ctls: list[BirdCtl], monitor: KernelMonitor) -> tuple[list[int], int]:
    return [c.count("hub") for c in ctls], monitor.snapshot()[0]


def converge_announce(args: argparse.Namespace, ctls: list[BirdCtl], topo: Topology,
                      expected: dict[str, frozenset[str]], monitor: KernelMonitor, fib: bool,
                      t0: float) -> dict[str, Any]:
    names = [s.name for s in topo.spokes]
    want = [len(expected[n]) for n in names]
    last_sig: Any = None
    last_move = time.time()
    extra_seen = 0.0  # last time an observer held more routes than expected (a wrong route that went away later)
    verified: dict[str, float] = {}
    while True:
        now = time.time()
        counts, klen = _progress(ctls, monitor)
        for got, need in zip(counts, want, strict=True):
            if got > need:
                extra_seen = now
        sig = (counts, klen, monitor.events)
        if sig != last_sig:
            last_sig, last_move = sig, now
        kernel_done = monitor.snapshot()[1] is not None if fib else klen == 0
        if counts == want and kernel_done:
            # set equality, not only counts: full dumps; the newest route change is when the observer converged
            for name, ctl in zip(names, ctls, strict=True):
                if name in verified:
                    continue
                routes = ctl.routes("hub")
                if set(routes) == expected[name]:
                    verified[name] = max(routes.values(), default=t0)
            if len(verified) == len(names):
                kernel = monitor.verify()
                target = topo.expected_kernel() if fib else {}
                if kernel != target:
                    raise RunFailedError(f"hub kernel differs from its target: {_diff(set(kernel), set(target))}")
                obs = max(max(verified.values()), extra_seen)
                out = {
                    "announce_observers_s": round(obs - t0, 3),
                    "announce_observer_max_by_spoke_s": {n: round(t - t0, 3) for n, t in verified.items()},
                }
                if fib:
                    done = monitor.snapshot()[1]
                    assert done is not None
                    out["announce_kernel_s"] = round(done - t0, 3)
                out["announce_s"] = round(max(obs, monitor.snapshot()[1] or 0) - t0, 3)
                out["announce_detect_s"] = round(time.time() - t0, 3)
                return out
        if now - last_move > args.stall or now - t0 > args.timeout:
            detail = ", ".join(f"{n}={c}/{w}" for n, c, w in zip(names, counts, want, strict=True))
            ktarget = len(topo.expected_kernel()) if fib else 0
            why = "stalled" if now - last_move > args.stall else "timed out"
            raise RunFailedError(f"announce {why} after {now - t0:.1f}s: observers {detail}; kernel {klen}/{ktarget}")
        time.sleep(POLL)


def converge_withdraw(args: argparse.Namespace, ctls: list[BirdCtl], monitor: KernelMonitor, fib: bool,
                      t1: float) -> dict[str, Any]:
    empty_at: dict[int, float] = {}
    last_sig: Any = None
    last_move = time.time()
    while True:
        now = time.time()
        counts = []
        for i, c in enumerate(ctls):
            asked = time.time()
            n = c.count("hub")
            counts.append(n)
            if n == 0 and i not in empty_at:
                empty_at[i] = asked
            elif n:
                empty_at.pop(i, None)
        klen, kdone = monitor.snapshot()
        sig = (counts, klen, monitor.events)
        if sig != last_sig:
            last_sig, last_move = sig, now
        if len(empty_at) == len(ctls) and kdone is not None:
            if monitor.verify():
                raise RunFailedError("the hub kernel still holds routes after the withdrawal")
            obs = max(empty_at.values())
            out = {"withdraw_observers_s": round(obs - t1, 3)}
            if fib:
                out["withdraw_kernel_s"] = round(kdone - t1, 3)
            out["withdraw_s"] = round(max(obs, kdone if fib else 0) - t1, 3)
            return out
        if now - last_move > args.stall or now - t1 > args.timeout:
            raise RunFailedError(f"withdraw stalled after {now - t1:.1f}s: observers {counts}; kernel {klen}")
        time.sleep(POLL)


def _diff(got: set[str], want: set[str]) -> str:
    missing, extra = sorted(want - got), sorted(got - want)
    return f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})"


# --- py-spy --------------------------------------------------------------------------------------------------------


def signal_spokes(ctls: list[BirdCtl], command: str) -> float:
    """`command` on every spoke BIRD at once (all sent, then all answers read); returns the time it was sent."""
    sent = time.time()
    for c in ctls:
        c.send(command)
    for c in ctls:
        c.reply()
    return sent


def start_profiles(args: argparse.Namespace, hub: Hub, phase: str) -> list[dict[str, Any]]:
    from bench.hub.probes import comm, tree

    out = []
    pids = [p for p in tree(hub.roots) if "python" in comm(p) and "bridge" not in comm(p)]
    Path(args.profile).mkdir(parents=True, exist_ok=True)
    for pid in pids:
        name = "exabgp" if "exabgp" in comm(pid) else "mcrd"
        path = Path(args.profile) / f"{args.shape}-{phase}-{name}.txt"
        proc = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw",
                                 "--rate", str(args.profile_rate), "--nonblocking", "--output", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append({"pid": pid, "name": name, "path": str(path), "proc": proc})
    time.sleep(1.0)  # py-spy attaches
    return out


def start_perf(args: argparse.Namespace, phase: str, run: int) -> subprocess.Popen[bytes]:
    """`perf record` of the hub's core (user and kernel, call graphs) for one phase: what BIRD and mcrd each spend
    in the kernel, which py-spy cannot show (`perf report -i FILE --sort comm,dso,sym`)."""
    Path(args.perf).mkdir(parents=True, exist_ok=True)
    path = Path(args.perf) / f"{args.shape}-{phase}-{args.hub}-{run}.data"
    proc = subprocess.Popen(["perf", "record", "-q", "-g", "-C", HUB_CPU, "-o", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf attaches
    return proc


def stop_profiles(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import signal

    for p in profiles:
        proc = p.pop("proc")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return profiles


# --- main --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.hub.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--hub", choices=["mcrd", "bird", "frr"], required=True)
    parser.add_argument("--fib", choices=["on", "off"], default="on")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="append one JSON row per run (JSON lines)")
    parser.add_argument("--spokes", type=int, help="override the shape's spoke count")
    parser.add_argument("--prefixes", type=int, help="override the shape's prefixes per spoke")
    parser.add_argument("--stall", type=float, default=60.0, help="fail when nothing changes for this long (s)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="fail a phase after this long (s)")
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    parser.add_argument("--settle", type=float, default=1.0, help="pause before each phase (s)")
    parser.add_argument("--exabgp-cpu", help="mcrd only: move ExaBGP to this CPU (default: with mcrd on CPU 1); a "
                             "list (0,1) gives the n-th ExaBGP process the n-th CPU")
    parser.add_argument("--exabgp-processes", type=int, default=1, metavar="N",
                        help="mcrd only: `mcrd run --exabgp-processes N`")
    parser.add_argument("--exabgp-env", action="append", default=[], metavar="KEY=VALUE",
                        help="mcrd only: an ExaBGP setting through mcrd's environment, e.g. exabgp_reactor_speed=0.01 "
                             "(ExaBGP inherits mcrd's environment; mcrd's own settings win); also "
                             "MCRD_EXABGP_STOCK=1 or MCRD_BENCH_EXABGP=poll,copy (bench/hub/mcrd_bench.py)")
    parser.add_argument("--variant", default="", help="a label for this configuration in the results")
    parser.add_argument("--profile", metavar="DIR",
                        help="mcrd only: py-spy the daemon and ExaBGP (announce and withdraw)")
    parser.add_argument("--perf", metavar="DIR", help="perf record the hub's core during the withdrawal")
    parser.add_argument("--profile-rate", type=int, default=100, metavar="HZ", help="py-spy's sampling rate")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every daemon log there")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    os.sched_setaffinity(0, {int(GEN_CPU)})  # the probes run beside the generators, away from the hub
    meta = {"machine": machine(), "versions": versions(), "command": " ".join(["python -m bench.hub.run",
                                                                               *(argv or sys.argv[1:])])}
    failures = 0
    for run in range(1, args.runs + 1):
        row = run_once(args, run)
        row.update(meta)
        failures += not row["ok"]
        brief = {k: row.get(k) for k in ("shape", "hub", "fib", "variant", "run", "ok", "announce_s",
                                         "announce_observers_s", "announce_kernel_s", "withdraw_s",
                                         "cpu_announce_s", "rss_peak_mib", "load_before", "error")}
        print(json.dumps(brief), flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
