"""`mcrd lab up|status|down|exec`: a containerlab topology built on bare network namespaces.

Names are containerlab's: node N of lab L lives in namespace `clab-L-N` (the container name), its interfaces are the
names the topology gives (`eth1`, ...), created directly inside the namespaces (a veth pair per link, never in the
host namespace).  Daemons start detached (own session) and are stopped by pid.  Everything is recorded in
`/run/mcrd-lab/L/state.json` before it is created (see `mcrd.lab.state`), so `down` removes exactly what `up`
created, also after `up` was killed, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tabulate import tabulate

from mcrd.lab.access import NamespaceAccess
from mcrd.lab.probe import ROUTING_ROLES, NoAnswerError, PeerSession, Probe
from mcrd.lab.probe import Path as BgpPath
from mcrd.lab.sessions import SESSION_HEADERS, Session, parse_bird_protocols, parse_frr_neighbors
from mcrd.lab.state import (
    RUN_DIR,
    LabState,
    NamespaceRecord,
    NodeRecord,
    ProcessRecord,
    lab_dir,
    proc_comm,
    proc_start_time,
    same_process,
)
from mcrd.lab.system import (
    FRR_SBIN,
    LabError,
    children_of,
    frr_tmp_dirs,
    list_netns,
    netns_pids,
    run,
    stop_pids,
    tail,
)
from mcrd.lab.topology import LAB_NAME_RE, Node, Topology, load_topology, read_lab_name

DEFAULT_TIMEOUT = 90.0
READY_TIMEOUT = 20.0
POLL = 0.5
SETTLE = 1.5
"""Seconds without a change in any BGP table after which `up` calls the lab converged."""
FRR_DAEMON_NAMES = ("zebra", "bgpd", "staticd", "bfdd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "pimd",
                    "pim6d", "ldpd", "nhrpd", "eigrpd", "babeld", "sharpd", "pbrd", "fabricd", "vrrpd", "pathd")


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


# --- up ---------------------------------------------------------------------------------------------------------


@dataclass
class Builder:
    topo: Topology
    out: TextIO
    timeout: float = DEFAULT_TIMEOUT
    state: LabState = field(init=False)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return lab_dir(self.topo.name)

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    # -- the whole job ---------------------------------------------------------------------------------------------
    def up(self) -> int:
        topo = self.topo
        _say(self.out, f"lab {topo.name}: {len(topo.nodes)} nodes, {len(topo.links)} links ({topo.path})")
        self._preflight()
        self._claim()
        try:
            for node in topo.nodes.values():
                self._namespace(node)
            for link in topo.links:
                self._link(link.a.node, link.a.interface, link.b.node, link.b.interface, link.mtu)
                _say(self.out, f"  link {link.a} <-> {link.b}")
            for node in topo.nodes.values():
                self._start(node)
            for node in topo.nodes.values():
                self._exec(node)
            started = time.monotonic()
            self._wait_sessions()
            table = self._wait_converged(started)
        except LabError as exc:
            self.state.phase = "failed"
            self.state.save()
            raise LabError(
                f"{exc}\nThe lab is left as it is for a look (logs: {self.dir / 'nodes'}/*/*.log, `mcrd lab exec`); "
                f"remove it with `mcrd lab down {_rel(topo.path)}`"
            ) from exc
        self.state.phase = "up"
        self.state.save()
        _say(self.out, "")
        _say(self.out, summary(self.state, []))
        _say(self.out, "")
        _say(self.out, table)
        _say(self.out, "")
        name = topo.name
        _say(self.out, f"lab {name} is up. Run a command in a node:  mcrd lab exec {name} NODE -- COMMAND")
        _say(self.out, f"Check it against intents:                  mcrd lab verify {name} INTENTS.yaml")
        _say(self.out, f"Remove everything:                          mcrd lab down {name}")
        return 0

    # -- before anything is created --------------------------------------------------------------------------------
    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise LabError("mcrd lab needs root: it creates network namespaces")
        if shutil.which("ip") is None:
            raise LabError("ip (apt package iproute2) is not installed")
        existing = LabState.load(self.dir)
        if existing is not None:
            if existing.phase == "building" and same_process(existing.owner_pid, existing.owner_start_time):
                raise LabError(f"lab {self.topo.name} is being brought up by pid {existing.owner_pid}")
            raise LabError(
                f"lab {self.topo.name} is already up or was not brought down ({existing.path}): "
                f"run `mcrd lab down {_rel(self.topo.path)}` first"
            )
        taken = sorted(self.topo.namespace(n) for n in self.topo.nodes if self.topo.namespace(n) in list_netns())
        if taken:
            raise LabError(f"namespace(s) already exist and are not this lab's: {', '.join(taken)}")
        problems: list[str] = []
        roles = {n.role for n in self.topo.nodes.values()}
        if "frr" in roles:
            try:
                pwd.getpwnam("frr")
            except KeyError:
                problems.append("FRR nodes need FRR (apt package frr): no user frr")
            for node in self.topo.nodes.values():
                for daemon in node.daemons:
                    if not (FRR_SBIN / daemon).exists():
                        problems.append(f"node {node.name}: FRR daemon {daemon} not installed ({FRR_SBIN / daemon})")
        if "bird" in roles and shutil.which("bird") is None:
            problems.append("BIRD nodes need bird (apt package bird2)")
        if problems:
            raise LabError("; ".join(problems))
        for node in self.topo.nodes.values():
            if node.role == "mcrd":
                self._check_mcrd(node)
            elif node.role == "frr":
                self._check_frr(node)
            elif node.role == "bird":
                assert node.config is not None
                proc = run(["bird", "-p", "-c", str(node.config)], check=False)
                if proc.returncode != 0:
                    raise LabError(f"node {node.name}: BIRD rejects {node.config}: {proc.stderr.strip()}")

    def _check_mcrd(self, node: Node) -> None:
        from mcrd.config.load import ConfigError, load_config

        assert node.config is not None
        try:
            config = load_config(node.config)
        except ConfigError as exc:
            problems = "\n".join(map(str, exc.problems))
            raise LabError(f"node {node.name}: the mcrd config does not load:\n{problems}") from None
        have = set(self.topo.interfaces(node.name))
        missing = sorted({vxc.interface for vxc in config.vxcs} - have)
        if missing:
            raise LabError(
                f"node {node.name}: the mcrd config puts VXCs on {', '.join(missing)}, but the topology links no "
                f"such interface to {node.name} (it has: {', '.join(sorted(have)) or 'none'})"
            )

    def _check_frr(self, node: Node) -> None:
        with tempfile.TemporaryDirectory(prefix="mcrd-lab-frr-check-") as tmp:
            d = Path(tmp)
            self._frr_files(node, d)
            proc = run(["vtysh", "--config_dir", str(d), "-C"], check=False)
            if proc.returncode != 0:
                errors = (proc.stdout + proc.stderr).strip()
                raise LabError(f"node {node.name}: FRR rejects its config ({node.config or 'startup-config'}):\n"
                               f"{errors}")

    # -- records and namespaces ------------------------------------------------------------------------------------
    def _claim(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        RUN_DIR.chmod(0o755)
        try:
            self.dir.mkdir()
        except FileExistsError as exc:
            raise LabError(
                f"{self.dir} exists (another `mcrd lab up` of {self.topo.name} is starting, or one died early): "
                f"`mcrd lab down {_rel(self.topo.path)}` removes it"
            ) from exc
        self.dir.chmod(0o755)  # FRR drops to user frr and must reach its node directory
        me = os.getpid()
        self.state = LabState(lab=self.topo.name, topology=str(self.topo.path), dir=str(self.dir), owner_pid=me,
                              owner_start_time=proc_start_time(me))
        self.state.save()
        _say(self.out, f"  state {self.state.path}")

    def _namespace(self, node: Node) -> None:
        name = self.topo.namespace(node.name)
        record = NamespaceRecord(name=name, node=node.name)
        self.state.namespaces.append(record)
        self.state.save()  # recorded before it exists: a crash from here on leaves a name `down` will delete
        run(["ip", "netns", "add", name])
        record.created = True
        self.state.save()
        ns = ["ip", "-n", name]
        run([*ns, "link", "set", "lo", "up"])
        sysctls = {"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}
        if node.kind in ("frr", "frrouting"):  # what containerlab's frr kind does in the container's namespace
            sysctls |= {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
        for key, value in (sysctls | dict(node.sysctls)).items():
            run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", f"{key}={value}"])
        d = self.node_dir(node.name)
        (d / "bin").mkdir(parents=True)
        (self.dir / "nodes").chmod(0o755)
        d.chmod(0o755)
        self.state.nodes[node.name] = NodeRecord(role=node.role, dir=str(d))
        self.state.save()
        _write_wrappers(node, d)
        extra = f", sysctls {', '.join(f'{k}={v}' for k, v in node.sysctls.items())}" if node.sysctls else ""
        _say(self.out, f"  node {node.name} ({node.role}): namespace {name}{extra}")

    def _link(self, node_a: str, if_a: str, node_b: str, if_b: str, mtu: int | None) -> None:
        ns_a, ns_b = self.topo.namespace(node_a), self.topo.namespace(node_b)
        # Created in place: both ends appear inside their namespaces with their final names.
        run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
            if mtu:
                run(["ip", "-n", ns, "link", "set", ifname, "mtu", str(mtu)])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])

    # -- processes -------------------------------------------------------------------------------------------------
    def _spawn(self, node: Node, label: str, cmd: list[str], env: Mapping[str, str] | None = None) -> ProcessRecord:
        log = self.node_dir(node.name) / f"{label}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.topo.namespace(node.name), *cmd],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                start_new_session=True, env=dict(env) if env is not None else None,
            )
        record = ProcessRecord(node=node.name, label=label, pid=proc.pid, start_time=proc_start_time(proc.pid),
                               log=str(log))
        self.state.processes.append(record)
        self.state.save()
        self.procs[proc.pid] = proc
        return record

    def _check_alive(self, record: ProcessRecord) -> None:
        proc = self.procs.get(record.pid)
        if proc is not None and proc.poll() is not None:
            raise LabError(
                f"node {record.node}: {record.label} exited with status {proc.returncode}; last lines of "
                f"{record.log}:\n{tail(record.log)}"
            )

    def _wait(self, what: str, ready: Callable[[], bool], records: list[ProcessRecord]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            for record in records:
                self._check_alive(record)
            if ready():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {r.log}\n{tail(r.log)}" for r in records)
                raise LabError(f"{what}: not ready after {READY_TIMEOUT:g}s\n{logs}")
            time.sleep(0.05)

    def _start(self, node: Node) -> None:
        if node.role == "mcrd":
            self._start_mcrd(node)
        elif node.role == "frr":
            self._start_frr(node)
        elif node.role == "bird":
            self._start_bird(node)

    def _env(self, node: Node) -> dict[str, str]:
        env = dict(os.environ)
        env.update(node.env)
        env["PATH"] = f"{self.node_dir(node.name) / 'bin'}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        env["CLAB_INTFS"] = str(len(self.topo.interfaces(node.name)))
        return env

    def _start_mcrd(self, node: Node) -> None:
        d = self.node_dir(node.name)
        (d / "state").mkdir(exist_ok=True)  # exists when `start:` restarts the node
        record = self._spawn(node, "mcrd", [sys.executable, "-m", "mcrd", "run", "-c", str(node.config),
                                            "--state-dir", str(d / "state"), "--log-format", "json"], self._env(node))
        _say(self.out, f"  start {node.name}: mcrd (pid {record.pid}), config {_rel(node.config)}")

    def _frr_files(self, node: Node, d: Path) -> None:
        """frr.conf, vtysh.conf and an empty per-daemon config in `d` (the node's FRR config and vty socket dir)."""
        text = node.config_text if node.config_text is not None else (
            node.config.read_text() if node.config else "frr defaults traditional\nlog stdout informational\n")
        (d / "frr.conf").write_text(text)
        vtysh = node.vtysh_conf.read_text() if node.vtysh_conf else "service integrated-vtysh-config\n"
        (d / "vtysh.conf").write_text(vtysh)
        for daemon in node.daemons:
            (d / f"{daemon}.conf").write_text("")
        for path in [d, *d.glob("*.conf")]:
            shutil.chown(path, "frr", "frr")
        d.chmod(0o755)

    def _start_frr(self, node: Node) -> None:
        d = self.node_dir(node.name)
        self._frr_files(node, d)
        common = ["-z", str(d / "zserv.api"), "--vty_socket", str(d), "-u", "frr", "-g", "frr", "-P", "0",
                  "--log", "stdout"]
        started: list[ProcessRecord] = []
        for daemon in node.daemons:
            record = self._spawn(node, daemon, [str(FRR_SBIN / daemon), "-f", str(d / f"{daemon}.conf"),
                                                "-i", str(d / f"{daemon}.pid"), *common], self._env(node))
            started.append(record)
            if daemon == "zebra":  # the others connect to zebra's socket
                self._wait(f"node {node.name}: zebra",
                           lambda: (d / "zserv.api").exists() and (d / "zebra.vty").exists(), started)
        self._wait(f"node {node.name}: FRR daemons",
                   lambda: all((d / f"{x}.vty").exists() for x in node.daemons), started)
        proc = run(["vtysh", "--vty_socket", str(d), "--config_dir", str(d), "-b"], check=False)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            raise LabError(f"node {node.name}: vtysh -b could not apply frr.conf:\n{output}")
        pids = ", ".join(f"{r.label} {r.pid}" for r in started)
        _say(self.out, f"  start {node.name}: FRR ({pids}), config {_rel(node.config) if node.config else 'inline'}")

    def _start_bird(self, node: Node) -> None:
        d = self.node_dir(node.name)
        sock = d / "bird.ctl"
        record = self._spawn(node, "bird", ["bird", "-f", "-c", str(node.config), "-s", str(sock),
                                            "-P", str(d / "bird.pid")], self._env(node))
        self._wait(f"node {node.name}: BIRD",
                   lambda: sock.exists() and run(["birdc", "-s", str(sock), "show", "status"],
                                                 check=False).returncode == 0, [record])
        _say(self.out, f"  start {node.name}: BIRD (pid {record.pid}), config {_rel(node.config)}")

    def _exec(self, node: Node) -> None:
        for line in node.exec:
            proc = run(["ip", "netns", "exec", self.topo.namespace(node.name), "sh", "-c", line], check=False,
                       env=self._env(node), timeout=60)
            if proc.returncode != 0:
                raise LabError(f"node {node.name}: exec {line!r} failed ({proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()}")
            _say(self.out, f"  exec {node.name}: {line}")

    # -- sessions --------------------------------------------------------------------------------------------------
    def _wait_sessions(self) -> list[Session]:
        speakers = [n for n in self.topo.nodes.values() if n.role in ("frr", "bird")]
        deadline = time.monotonic() + self.timeout
        _say(self.out, f"waiting for the BGP sessions of {', '.join(n.name for n in speakers) or 'no node'} "
                       f"(timeout {self.timeout:g}s)")
        reported: set[tuple[str, str]] = set()
        while True:
            for record in self.state.processes:
                self._check_alive(record)
            sessions = lab_sessions(self.state)
            for s in sessions:
                if s.established and (s.node, s.neighbor) not in reported:
                    reported.add((s.node, s.neighbor))
                    _say(self.out, f"  {s.node}: {s.neighbor} (AS {s.remote_as}) Established")
            if all(s.established for s in sessions):
                return sessions
            if time.monotonic() > deadline:
                down = [f"{s.node} -> {s.neighbor} (AS {s.remote_as}): {s.state}" for s in sessions
                        if not s.established]
                logs = [r.log for r in self.state.processes if r.label in ("mcrd", "bgpd", "bird")]
                raise LabError(
                    f"BGP sessions not established after {self.timeout:g}s:\n  " + "\n  ".join(down)
                    + "\nlogs: " + ", ".join(logs)
                )
            time.sleep(POLL)

    def _wait_converged(self, started: float) -> str:
        """Until every BGP session of every routing node (mcrd's too) is established and no node's BGP table has
        changed for SETTLE seconds; returns the table of sessions with their prefixes in and out."""
        probe = Probe(namespace_access(self.state, self.topo), self.topo.nodes)
        deadline = started + self.timeout
        last: object = None
        since = time.monotonic()
        established_at: float | None = None
        while True:
            for record in self.state.processes:
                self._check_alive(record)
            try:
                sessions, tables = converge_view(probe)
                problem = next((f"{n}: {s.address} {s.state}" for n, ss in sessions.items() for s in ss
                                if not s.established and not s.admin_down), "")
            except NoAnswerError as exc:
                sessions, tables, problem = {}, None, str(exc)
            now = time.monotonic()
            if problem or tables != last:
                last, since = tables, now
            if not problem and established_at is None:
                established_at = now
            if not problem and now - since >= SETTLE:
                assert established_at is not None
                _say(self.out, f"converged after {since - started:.2f}s: every session established "
                               f"({established_at - started:.2f}s), every BGP table unchanged since "
                               f"(watched for {SETTLE:g}s)")
                return session_table(probe, sessions)
            if now > deadline:
                raise LabError(f"the lab did not converge within {self.timeout:g}s: "
                               f"{problem or 'BGP tables still changing'}")
            time.sleep(POLL)


def converge_view(probe: Probe) -> tuple[dict[str, list[PeerSession]], dict[str, list[BgpPath]]]:
    """Every routing node's sessions and BGP table (sorted, for comparison between two polls)."""
    nodes = [n for n, node in probe.nodes.items() if node.role in ROUTING_ROLES]
    sessions = {n: probe.sessions(n) for n in nodes}
    tables = {n: sorted(probe.paths(n), key=lambda p: (p.prefix, p.peer, p.as_path, p.next_hop)) for n in nodes}
    return sessions, tables


def session_table(probe: Probe, sessions: Mapping[str, list[PeerSession]]) -> str:
    rows = []
    for node, ss in sessions.items():
        for s in ss:
            peer = probe.node_of(s.address)
            rows.append([node, f"{s.address} ({peer})" if peer else s.address, s.remote_as, s.state, s.received,
                         s.sent])
    return tabulate(rows, headers=["NODE", "NEIGHBOR", "REMOTE AS", "STATE", "PREFIXES IN", "PREFIXES OUT"],
                    tablefmt="simple")


def namespace_access(state: LabState, topo: Topology | None = None) -> NamespaceAccess:
    """Access to the nodes of a lab `mcrd lab up` built (its namespaces, its wrappers, the nodes' env)."""
    env = {n: dict(node.env) for n, node in topo.nodes.items()} if topo is not None else {}
    return NamespaceAccess(state.lab, {n.node: n.name for n in state.namespaces},
                           {n: str(Path(r.dir) / "bin") for n, r in state.nodes.items()}, env)


def _write_wrappers(node: Node, d: Path) -> None:
    """Commands that find this node's daemons, first on PATH in `exec` lines and `mcrd lab exec`: `vtysh` and
    `birdc` with the node's sockets (in a container they are the defaults), `mcrd` as this installation."""
    scripts = {}
    if node.role == "frr":
        scripts["vtysh"] = f'exec {shutil.which("vtysh") or "vtysh"} --vty_socket {d} --config_dir {d} "$@"'
    if node.role == "bird":
        scripts["birdc"] = f'exec {shutil.which("birdc") or "birdc"} -s {d / "bird.ctl"} "$@"'
    scripts["mcrd"] = f'exec {sys.executable} -m mcrd "$@"'
    for name, body in scripts.items():
        path = d / "bin" / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)


def _rel(path: Path | str | None) -> str:
    if path is None:
        return "-"
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return str(path)


# --- sessions and status ------------------------------------------------------------------------------------------


def node_sessions(name: str, record: NodeRecord) -> list[Session]:
    d = Path(record.dir)
    if record.role == "frr":
        proc = run(["vtysh", "--vty_socket", str(d), "-c", "show bgp neighbors json"], check=False)
        if proc.returncode != 0:
            return [Session(name, "(vtysh)", "", "no answer")]
        try:
            data = json.loads(proc.stdout or "{}")
        except ValueError:
            return [Session(name, "(vtysh)", "", "no answer")]
        return parse_frr_neighbors(name, data)
    if record.role == "bird":
        proc = run(["birdc", "-s", str(d / "bird.ctl"), "show", "protocols", "all"], check=False)
        if proc.returncode != 0:
            return [Session(name, "(birdc)", "", "no answer")]
        return parse_bird_protocols(name, proc.stdout)
    return []


def lab_sessions(state: LabState) -> list[Session]:
    out: list[Session] = []
    for name, record in state.nodes.items():
        out += node_sessions(name, record)
    return out


def summary(state: LabState, sessions: list[Session]) -> str:
    existing = list_netns()
    rows = []
    for name, record in state.nodes.items():
        ns = state.namespace(name) or "-"
        procs = [p for p in state.processes if p.node == name]
        running = ", ".join(
            f"{p.label} {p.pid}" + ("" if same_process(p.pid, p.start_time) else " (dead)") for p in procs
        )
        rows.append([name, record.role, ns + ("" if ns in existing else " (missing)"), running or "-"])
    text = tabulate(rows, headers=["NODE", "ROLE", "NAMESPACE", "PROCESSES"], tablefmt="simple")
    if sessions:
        text += "\n\n" + tabulate([s.row() for s in sessions], headers=SESSION_HEADERS, tablefmt="simple")
    return text


# --- commands ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabRef:
    """A lab as the user named it: by its topology file, or by name (a lab that is up records its file)."""

    name: str
    topology: Path | None


def resolve(arg: str | Path, *, need_file: bool = False) -> LabRef:
    path = Path(arg)
    text = str(arg)
    if path.is_file():
        return LabRef(read_lab_name(path), path)
    looks_like_file = "/" in text or text.endswith((".yml", ".yaml", ".json"))
    if not looks_like_file and not need_file and LAB_NAME_RE.match(text):
        state = LabState.load(lab_dir(text))
        return LabRef(text, Path(state.topology) if state is not None else None)
    up_now = ", ".join(s.lab for s in running_labs()) or "none"
    if looks_like_file or need_file:
        raise LabError(f"{text}: no such topology file (labs up: {up_now})")
    raise LabError(f"{text!r} is neither a topology file nor a lab name (labs up: {up_now})")


def running_labs() -> list[LabState]:
    """Every lab with a record under /run/mcrd-lab (up, failed, or being built)."""
    if not RUN_DIR.is_dir():
        return []
    states = [LabState.load(d) for d in sorted(RUN_DIR.iterdir()) if d.is_dir()]
    return [s for s in states if s is not None]


def list_labs(out: TextIO) -> int:
    labs = running_labs()
    if not labs:
        _say(out, "no lab is up")
        return 0
    rows = []
    for state in labs:
        alive = sum(same_process(p.pid, p.start_time) for p in state.processes)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at))
        rows.append([state.lab, state.phase, len(state.nodes), f"{alive}/{len(state.processes)}", since,
                     _rel(state.topology)])
    _say(out, tabulate(rows, headers=["LAB", "PHASE", "NODES", "PROCESSES", "SINCE", "TOPOLOGY"], tablefmt="simple"))
    return 0


def up(topology: Path, out: TextIO, timeout: float = DEFAULT_TIMEOUT) -> int:
    return Builder(load_topology(topology), out, timeout).up()


def up_state(name: str) -> LabState:
    """The record of a lab that is up; LabError otherwise."""
    state = LabState.load(lab_dir(name))
    if state is None:
        raise LabError(f"lab {name} is not up (labs up: {', '.join(s.lab for s in running_labs()) or 'none'})")
    if state.phase != "up":
        raise LabError(f"lab {name} is not up: its state is {state.phase!r} (`mcrd lab status {name}`)")
    return state


def status(ref: LabRef, out: TextIO) -> int:
    name = ref.name
    state = LabState.load(lab_dir(name))
    if state is None:
        _say(out, f"lab {name} is not up")
        return 1
    sessions = lab_sessions(state)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at))
    _say(out, f"lab {name}: {state.phase}, since {since} ({state.topology})")
    _say(out, "")
    _say(out, summary(state, sessions))
    existing = list_netns()
    healthy = (state.phase == "up" and all(s.established for s in sessions)
               and all(n.name in existing for n in state.namespaces)
               and all(same_process(p.pid, p.start_time) for p in state.processes))
    return 0 if healthy else 1


def exec_in(ref: LabRef, node: str, command: list[str]) -> int:
    name = ref.name
    state = LabState.load(lab_dir(name))
    if state is None:
        raise LabError(f"lab {name} is not up")
    ns = state.namespace(node)
    record = state.nodes.get(node)
    if ns is None or record is None:
        raise LabError(f"lab {name} has no node {node!r} (nodes: {', '.join(state.nodes)})")
    if not command:
        raise LabError("no command given: mcrd lab exec LAB NODE -- COMMAND...")
    env = dict(os.environ)
    with contextlib.suppress(Exception):  # the node's env from the topology, when it still loads
        env.update(load_topology(state.topology).nodes[node].env)
    env["PATH"] = f"{Path(record.dir) / 'bin'}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    return subprocess.call(["ip", "netns", "exec", ns, *command], env=env)


def down(ref: LabRef, out: TextIO) -> int:
    return down_lab(ref.name, out)


# --- one node's daemons (scenario steps stop: and start:) -------------------------------------------------------


def stop_node(state: LabState, node: str) -> list[int]:
    """Stop the routing daemons of `node` (by pid) and forget them; returns their pids."""
    if node not in state.nodes:
        raise LabError(f"lab {state.lab} has no node {node!r}")
    records = [p for p in state.processes if p.node == node]
    stop_pids({p.pid: p.start_time for p in records if same_process(p.pid, p.start_time)})
    state.processes = [p for p in state.processes if p.node != node]
    state.save()
    return [p.pid for p in records]


def start_node(state: LabState, node: str, out: TextIO) -> None:
    """Start the routing daemons of `node` again, as `up` did."""
    topo = load_topology(state.topology)
    if node not in topo.nodes or node not in state.nodes:
        raise LabError(f"lab {state.lab} has no node {node!r}")
    if any(p.node == node and same_process(p.pid, p.start_time) for p in state.processes):
        raise LabError(f"node {node}: its daemons are running (stop: it first)")
    builder = Builder(topo, out)
    builder.state = state
    d = builder.node_dir(node)
    for stale in [*d.glob("*.vty"), d / "zserv.api", d / "bird.ctl"]:  # sockets a stopped daemon may leave
        stale.unlink(missing_ok=True)
    builder._start(topo.nodes[node])


def down_lab(name: str, out: TextIO) -> int:
    """Remove what the state of lab `name` records, and only that; verify nothing of it is left."""
    if os.geteuid() != 0:
        raise LabError("mcrd lab needs root: it deletes network namespaces")
    d = lab_dir(name)
    state = LabState.load(d)
    if state is None:
        if d.exists():  # up died before its first record: nothing else can exist
            shutil.rmtree(d, ignore_errors=True)
        _say(out, f"lab {name} is not up: nothing to remove")
        return 0
    # A build still under way (or hung) is stopped first, so that it adds nothing behind this pass; its children
    # (the daemons it started, a command it was running) are stopped with the rest.
    helpers: dict[int, int | None] = {}
    if state.phase == "building" and state.owner_pid != os.getpid() \
            and same_process(state.owner_pid, state.owner_start_time):
        helpers = {pid: proc_start_time(pid) for pid in children_of(state.owner_pid)}
        stop_pids({state.owner_pid: state.owner_start_time}, timeout=0.0)
        _say(out, f"  stopped the `mcrd lab up` still running (pid {state.owner_pid})")
    names: dict[int, str] = {}
    stopped: set[int] = set()
    killed: list[int] = []
    for _ in range(3):  # again while something new shows up (a helper finishing what the killed build began)
        state = LabState.load(d) or state
        existing = list_netns()
        targets = {pid: t for pid, t in helpers.items() if same_process(pid, t)}
        targets |= {p.pid: p.start_time for p in state.processes if same_process(p.pid, p.start_time)}
        for ns in (n.name for n in state.namespaces if n.name in existing):
            for pid in netns_pids(ns):
                targets.setdefault(pid, proc_start_time(pid))
        targets = {pid: t for pid, t in targets.items() if pid not in stopped}
        helpers = {}
        if not targets:
            break
        names |= {pid: proc_comm(pid) for pid in targets}
        _say(out, f"  stopping {len(targets)} processes: "
                  + ", ".join(f"{names.get(pid) or '?'} {pid}" for pid in sorted(targets)))
        killed += stop_pids(targets)
        stopped |= set(targets)
    for p in state.processes:
        names.setdefault(p.pid, p.label)
    if killed:
        _say(out, f"  killed (still running after SIGTERM): {', '.join(map(str, killed))}")
    existing = list_netns()
    ours = [n.name for n in state.namespaces if n.name in existing]
    errors: list[str] = []
    for ns in ours:
        proc = run(["ip", "netns", "del", ns], check=False)
        if proc.returncode != 0:
            errors.append(f"ip netns del {ns}: {proc.stderr.strip()}")
        else:
            _say(out, f"  deleted namespace {ns}")
    frr = [(pid, n) for pid, n in names.items() if n in FRR_DAEMON_NAMES]
    frr += [(p.pid, p.label) for p in state.processes if p.label in FRR_DAEMON_NAMES]
    for path in frr_tmp_dirs(set(frr)):
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)
    with contextlib.suppress(OSError):
        RUN_DIR.rmdir()  # only when no other lab is up
    left = leftovers(state)
    if errors or left:
        raise LabError(f"lab {name}: not everything could be removed: {'; '.join(errors + left)}")
    _say(out, f"lab {name} is down: {len(ours)} namespaces and {len(stopped)} processes removed")
    return 0


def leftovers(state: LabState) -> list[str]:
    """What of a lab's record still exists."""
    existing = list_netns()
    left = [f"namespace {n.name}" for n in state.namespaces if n.name in existing]
    left += [f"process {p.label} {p.pid}" for p in state.processes if same_process(p.pid, p.start_time)]
    if Path(state.dir).exists():
        left.append(f"directory {state.dir}")
    left += [f"FRR crash-log directory {p}" for p in frr_tmp_dirs(
        (p.pid, p.label) for p in state.processes if p.label in FRR_DAEMON_NAMES)]
    return left
