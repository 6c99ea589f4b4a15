"""`mcrd lab verify LAB INTENTS [--junit F] [--json F] [--up]` and `mcrd lab verify LAB --record`: the glue between
a lab `mcrd lab up` built (its record, its namespaces) and the judging in `mcrd.lab.verify`."""

from __future__ import annotations

import io
import ipaddress
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from mcrd.config.load import ConfigError
from mcrd.lab import runner
from mcrd.lab.access import Access, DockerAccess
from mcrd.lab.intents import LINK_STEPS, IntentsFile, Step, load_intents, prefix_key
from mcrd.lab.probe import ROUTING_ROLES, NoAnswerError, Probe
from mcrd.lab.state import LabState
from mcrd.lab.system import LabError
from mcrd.lab.topology import load_topology
from mcrd.lab.verify import EXIT_ERROR, Report, StepRunner, run_verify, summary_line, to_json, to_junit


def verify_command(ref: runner.LabRef, intents_path: Path, out: TextIO, err: TextIO, *, junit: Path | None = None,
                   json_path: Path | None = None, bring_up: bool = False, timeout: float = runner.DEFAULT_TIMEOUT,
                   docker: str | None = None) -> int:
    try:
        intents = load_intents(intents_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return EXIT_ERROR
    report = Report(ref.name, str(intents_path))
    if docker is not None:
        return _verify_containerlab(ref, intents, docker, out, err, junit, json_path)
    try:
        with _lab_up(ref, out, bring_up, timeout) as state:
            topo = load_topology(state.topology)
            access = runner.namespace_access(state, topo)
            probe = Probe(access, topo.nodes)
            report = run_verify(ref.name, intents, probe, namespace_steps(state, access, out), out)
    except LabError as exc:
        report.error = str(exc)
    return _finish(report, out, err, junit, json_path)


def _finish(report: Report, out: TextIO, err: TextIO, junit: Path | None, json_path: Path | None) -> int:
    if report.error:
        print(f"mcrd lab verify: the lab cannot be judged: {report.error}", file=err)
    print(summary_line(report), file=out)
    if junit is not None:
        junit.write_text(to_junit(report))
    if json_path is not None:
        json_path.write_text(to_json(report) + "\n")
    return report.exit_code


def _verify_containerlab(ref: runner.LabRef, intents: IntentsFile, docker: str, out: TextIO, err: TextIO,
                         junit: Path | None, json_path: Path | None) -> int:
    """A lab deployed by containerlab: nodes are the containers `clab-<lab>-<node>`, reached with `docker exec`."""
    report = Report(ref.name, intents.source)
    if ref.topology is None:
        report.error = "--docker needs the topology file (containerlab's lab has no mcrd lab record)"
        return _finish(report, out, err, junit, json_path)
    topo = load_topology(ref.topology)
    access = DockerAccess(topo.name, docker)

    def step(s: Step) -> None:
        if s.action in ("stop", "start"):
            raise LabError(f"step {s} (line {s.line}): stop/start need a lab run by `mcrd lab up` (with "
                           f"containerlab: an exec step, or `docker {s.action} clab-{topo.name}-{s.node}`)")
        _run_step(access, s)

    report = run_verify(topo.name, intents, Probe(access, topo.nodes), step, out)
    return _finish(report, out, err, junit, json_path)


@contextmanager
def _lab_up(ref: runner.LabRef, out: TextIO, bring_up: bool, timeout: float) -> Iterator[LabState]:
    if not bring_up:
        yield runner.up_state(ref.name)
        return
    if ref.topology is None:
        raise LabError(f"--up needs the topology file, not a lab name ({ref.name} is not up)")
    log = io.StringIO()
    try:
        try:
            runner.up(ref.topology, log, timeout)
        except LabError as exc:
            raise LabError(f"mcrd lab up failed: {exc}") from None
        finally:
            out.write("".join(f"  | {line}\n" for line in log.getvalue().splitlines() if "converged" in line))
        yield runner.up_state(ref.name)
    finally:
        runner.down_lab(ref.name, io.StringIO())


def namespace_steps(state: LabState, access: Access, out: TextIO) -> StepRunner:
    """Scenario steps on a lab built by `mcrd lab up`: links and commands through `access`, daemons by pid."""

    def step(s: Step) -> None:
        if s.action == "stop":
            runner.stop_node(state, s.node)
        elif s.action == "start":
            runner.start_node(state, s.node, io.StringIO())
        else:
            _run_step(access, s)

    return step


def _run_step(access: Access, s: Step) -> None:
    """linkDown, linkUp and exec: commands in the node."""
    if s.action in LINK_STEPS:
        argv = ["ip", "link", "set", "dev", s.interface, "down" if s.action == "linkDown" else "up"]
    else:
        argv = list(s.cmd)
    proc = access.run(s.node, argv, timeout=60.0)
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()[-300:]
        raise LabError(f"step {s} (line {s.line}) failed ({proc.returncode})" + (f": {output}" if output else ""))


# --- --record -----------------------------------------------------------------------------------------------------


def record_command(ref: runner.LabRef, out: TextIO) -> int:
    state = runner.up_state(ref.name)
    topo = load_topology(state.topology)
    probe = Probe(runner.namespace_access(state, topo), topo.nodes)
    try:
        text = record(ref.name, probe)
    except NoAnswerError as exc:
        raise LabError(f"cannot record: {exc}") from None
    out.write(text)
    return 0


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML scalar, quoted where it needs to be


def record(lab: str, probe: Probe) -> str:
    """The lab's state now, as intents: sessions, each routing node's routes from each neighbour (exactly, and the
    best ones with their AS path and next hop), and the ping matrix between hosts."""
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [
        f"# Recorded by `mcrd lab verify {lab} --record` at {when}.",
        "# WARNING: this is what the lab HELD when recorded, not what it SHOULD hold: a leak, a missing route or a",
        "# host that could not reach another is recorded as intended. Review every intent before trusting it.",
        "intents:",
    ]
    routers = [n for n, node in probe.nodes.items() if node.role in ROUTING_ROLES]
    for node in routers:
        sessions = probe.sessions(node)
        if sessions and all(s.established for s in sessions):
            lines += [f"  - name: {_q(f'{node}: every BGP session established')}", f"    at: {node}",
                      "    sessions: established"]
        paths = probe.paths(node)
        for s in sessions:
            peer = probe.node_of(s.address)
            if peer is None:
                continue
            learned = [p for p in paths if p.peer == s.address]
            prefixes = sorted({p.prefix for p in learned}, key=prefix_key)
            lines += [f"  - name: {_q(f'{node} hears exactly these from {peer}')}", f"    at: {node}",
                      f"    from: {peer}", f"    exactly: [{', '.join(prefixes)}]"]
            for p in sorted((p for p in learned if p.best), key=lambda p: prefix_key(p.prefix)):
                lines += [f"  - name: {_q(f'{node} routes {p.prefix} through {peer}')}", f"    at: {node}",
                          f"    route: {p.prefix}", f"    from: {peer}",
                          f"    asPath: [{', '.join(map(str, p.as_path))}]"]
                if p.next_hop:
                    lines.append(f"    nextHop: {p.next_hop}")
    hosts = {n: _host_address(probe, n) for n, node in probe.nodes.items() if node.role == "host"}
    for a, b in itertools.permutations(sorted(h for h, addr in hosts.items() if addr), 2):
        target = hosts[b]
        assert target is not None
        reach = any(probe.ping(a, target, count=1)[0] for _ in range(3))
        verb = "reaches" if reach else "does not reach"
        lines += [f"  - name: {_q(f'{a} {verb} {b}')}", f"    from: {a}", f"    ping: {target}",
                  f"    reach: {'true' if reach else 'false'}"]
    return "\n".join(lines) + "\n"


def _host_address(probe: Probe, node: str) -> str | None:
    """A host's first global IPv4 address (the one its peers ping)."""
    addrs = [ipaddress.ip_address(a) for a in probe.addresses(node)]
    good = sorted(a for a in addrs if a.version == 4 and not a.is_loopback and not a.is_link_local)
    return str(good[0]) if good else None
