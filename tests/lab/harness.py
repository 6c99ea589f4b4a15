"""Lab harness: real network namespaces, veths, FRR and BIRD peers for mcrd's lab tests.

Everything here drives real parts: `ip netns`, veth pairs, the kernel's routing tables, FRR (zebra + bgpd) and BIRD 2
daemons.  Rules it enforces so that lab tests stay safe to run side by side and after a crash:

* Every namespace is called ``mcl-<name>-<run id>`` and every veth ``<name>-<run id>`` (<= 15 characters).  Veths are
  created directly inside the lab's namespaces, never in the host namespace.
* Every process is started by :meth:`Netns.popen` and stopped by pid (SIGTERM, then SIGKILL after a deadline).
* :meth:`Lab.close` stops the processes, deletes the namespaces (and with them the veths), removes the run directory and
  then checks that nothing of the run is left.  A small watchdog process does the same if the test process dies without
  closing the lab (SIGKILL, crash): it only ever touches names carrying this run's id.
* Synchronisation is done by :func:`poll` (a condition and a deadline), never by a fixed sleep.

This module imports the standard library and `mcrd.lab`'s process helpers only (the ones `mcrd lab down` uses): it
is also run as a script (watchdog, ``--list-stale``, ``--reap-stale``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from mcrd.lab.state import proc_start_time
from mcrd.lab.system import stop_pids

T = TypeVar("T")

PREFIX = "mcl-"
"""Prefix of every namespace (and of the run directory) a lab creates: ``mcl-<name>-<run id>``."""
RUN_ID_LEN = 6
MAX_IFNAME = 15
REGISTRY_DIR = Path("/run/mcl-lab")
"""One JSON file per live run (owner pid + its start time): how a stale run is told from a live one."""
FRR_SBIN = Path("/usr/lib/frr")
FRR_TMP = Path("/var/tmp/frr")
"""FRR 8.x keeps per-process crash-log buffers in ``/var/tmp/frr/<daemon>.<pid>``; removed on a clean exit only."""
STOP_TIMEOUT = 8.0

_RUN_ID_RE = re.compile(rf"^{re.escape(PREFIX)}[a-z0-9-]+-([0-9a-f]{{{RUN_ID_LEN}}})$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# --------------------------------------------------------------------------------------------------------------------
# Polling


def poll(
    fn: Callable[[], T],
    timeout: float,
    message: str,
    *,
    interval: float = 0.05,
    until: Callable[[T], object] | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``fn`` until its value is truthy (or ``until(value)`` is) and return that value.

    On timeout raise AssertionError with ``message`` and the last value observed (or the last ignored exception).
    Exceptions of the types in ``ignore`` count as "not yet"; any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = fn()
        except ignore as exc:
            last = exc
        else:
            if (until(value) if until is not None else value):
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (timed out after {timeout:g}s; last observed: {last!r})")
        time.sleep(interval)


def assert_stays(fn: Callable[[], object], duration: float, message: str, *, interval: float = 0.1) -> None:
    """Bounded negative check: ``fn`` must stay truthy for the whole of ``duration`` seconds.

    A non-event can never be observed to be final; callers pick ``duration`` well above the time the positive case
    takes (and should have evidence that the thing was attempted), and say so in a comment.
    """
    deadline = time.monotonic() + duration
    while True:
        value = fn()
        if not value:
            raise AssertionError(f"{message} (observed {value!r})")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------------------------
# Commands


class LabCommandError(subprocess.CalledProcessError):
    """A command failed; unlike CalledProcessError its message carries stdout and stderr."""

    def __str__(self) -> str:
        out = (self.stdout or "").strip()
        err = (self.stderr or "").strip()
        return f"{super().__str__()}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"


class LabLeakError(RuntimeError):
    """Something of the run (namespace, process, file) was still there after cleanup."""


def _run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, input=input_text, check=False,
    )
    if check and proc.returncode != 0:
        raise LabCommandError(proc.returncode, list(cmd), proc.stdout, proc.stderr)
    return proc


def list_netns() -> list[str]:
    """Names of all named network namespaces on the host."""
    out = _run(["ip", "-j", "netns", "list"]).stdout.strip()
    if not out:
        return []
    return [str(entry["name"]) for entry in json.loads(out)]


def netns_pids(name: str) -> list[int]:
    """Pids of the processes living in namespace ``name`` (empty if it is gone)."""
    proc = _run(["ip", "netns", "pids", name], check=False)
    return [int(tok) for tok in proc.stdout.split()] if proc.returncode == 0 else []


def run_id_of(name: str) -> str | None:
    """The run id in a lab namespace name (``mcl-<name>-<run id>``), or None for any other name."""
    m = _RUN_ID_RE.match(name)
    return m.group(1) if m else None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running (non-zombie) process."""
    return proc_start_time(pid) is not None


def _kill_pids(pids: Iterable[int], timeout: float) -> list[int]:
    """SIGTERM ``pids``, wait up to ``timeout`` for them to go, SIGKILL the rest.  Returns the pids SIGKILLed."""
    return stop_pids(dict.fromkeys(pids), timeout)


def _frr_tmp_dirs(pids: Iterable[int], newer_than: float = 0.0) -> list[Path]:
    """FRR's ``/var/tmp/frr/<daemon>.<pid>`` directories of these pids; ``newer_than`` (epoch seconds) skips one
    that an older process with a reused pid left."""
    found = []
    for pid in pids:
        for path in FRR_TMP.glob(f"*.{pid}"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime >= newer_than:
                    found.append(path)
    return found


def _remove_frr_tmp(pids: Iterable[int], newer_than: float = 0.0) -> None:
    for path in _frr_tmp_dirs(pids, newer_than):
        shutil.rmtree(path, ignore_errors=True)


def cleanup_run(run_id: str, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Remove whatever is left of run ``run_id``: processes in its namespaces, the namespaces, its run directory and
    registry entry.  Touches nothing that does not carry this run id.  Returns the namespaces deleted."""
    if not re.fullmatch(rf"[0-9a-f]{{{RUN_ID_LEN}}}", run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    names = [n for n in list_netns() if run_id_of(n) == run_id]
    pids = sorted({pid for n in names for pid in netns_pids(n)})
    _kill_pids(pids, timeout)
    _remove_frr_tmp(pids)
    for name in names:
        _run(["ip", "netns", "del", name], check=False)
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}{run_id}-*"):
        shutil.rmtree(path, ignore_errors=True)
    (REGISTRY_DIR / f"{run_id}.json").unlink(missing_ok=True)
    return names


def _owner_alive(run_id: str) -> bool | None:
    """True/False from the run's registry entry, None when the run has no entry (not ours to judge)."""
    try:
        entry = json.loads((REGISTRY_DIR / f"{run_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return proc_start_time(int(entry["pid"])) == int(entry["start_time"])


def stale_runs() -> dict[str, list[str]]:
    """Runs whose owning process is dead (per the registry) -> their namespaces still present.

    Namespaces with the ``mcl-`` prefix but no registry entry are not listed: nothing proves their owner is gone.
    """
    runs: dict[str, list[str]] = {}
    for name in list_netns():
        rid = run_id_of(name)
        if rid is not None and _owner_alive(rid) is False:
            runs.setdefault(rid, []).append(name)
    if REGISTRY_DIR.is_dir():
        for entry in REGISTRY_DIR.glob("*.json"):
            if _owner_alive(entry.stem) is False:
                runs.setdefault(entry.stem, [])
    return runs


def reap_stale() -> list[str]:
    """Clean up every stale run (owner process provably dead).  Never touches a live run.  Returns run ids reaped."""
    reaped = []
    for rid in stale_runs():
        cleanup_run(rid)
        reaped.append(rid)
    return reaped


# --------------------------------------------------------------------------------------------------------------------
# Lab, namespaces, links


@dataclass
class _Started:
    proc: subprocess.Popen[bytes]
    label: str
    log: Path


class Netns:
    """A network namespace of a lab.  ``name`` is the real name (with prefix and run id), ``short`` the given one."""

    def __init__(self, lab: Lab, short: str, name: str) -> None:
        self.lab = lab
        self.short = short
        self.name = name

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 30.0, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace (``ip netns exec``) and wait for it."""
        return _run(["ip", "netns", "exec", self.name, *cmd], check=check, timeout=timeout, input_text=input_text)

    def popen(self, *cmd: str, label: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``cmd`` inside the namespace; stdout+stderr go to a log file in the run directory.

        The process is registered with the lab and stopped by pid at teardown.  ``ip netns exec`` execs the command,
        so the returned pid is the command's own.
        """
        return self.lab._start(self, list(cmd), label or Path(cmd[0]).name)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n NS ARGS``."""
        return _run(["ip", "-n", self.name, *args], check=check)

    def ip_json(self, *args: str) -> Any:
        """``ip -j -n NS ARGS`` parsed."""
        out = _run(["ip", "-j", "-n", self.name, *args]).stdout.strip()
        return json.loads(out) if out else []

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a (per-namespace) sysctl such as ``net.ipv4.ip_forward``."""
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def enable_forwarding(self, ipv4: bool = True, ipv6: bool = True) -> None:
        """Turn on IP forwarding in this namespace (a new namespace starts with it off)."""
        if ipv4:
            self.sysctl("net.ipv4.ip_forward", 1)
        if ipv6:
            self.sysctl("net.ipv6.conf.all.forwarding", 1)

    def add_address(self, ifname: str, cidr: str) -> None:
        """Add ``cidr`` (e.g. ``192.0.2.1/24``, ``2001:db8::1/64``) to ``ifname``; IPv6 without DAD (usable at once)."""
        iface = ipaddress.ip_interface(cidr)
        extra = ["nodad"] if iface.version == 6 else []
        self.ip("addr", "add", str(iface), "dev", ifname, *extra)

    def add_route(self, prefix: str, via: str | None = None, dev: str | None = None, *extra: str) -> None:
        """``ip route add PREFIX [via VIA] [dev DEV] EXTRA...`` in this namespace (``default`` allowed)."""
        v6 = (via is not None and ipaddress.ip_address(via).version == 6) or (
            prefix != "default" and ipaddress.ip_network(prefix, strict=False).version == 6
        )
        args = ["-6"] if v6 else ["-4"]
        args += ["route", "add", prefix]
        if via:
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        self.ip(*args, *extra)

    def addresses(self) -> list[str]:
        """Addresses (without prefix length) configured in this namespace."""
        return [a["local"] for link in self.ip_json("addr", "show") for a in link.get("addr_info", [])]

    def kernel_routes(self, ipv6: bool = False) -> dict[str, dict[str, Any]]:
        """The main kernel routing table of this namespace: ``dst`` -> ``ip -j route`` entry."""
        entries = self.ip_json("-6" if ipv6 else "-4", "route", "show")
        return {str(e["dst"]): e for e in entries}

    def ping(self, addr: str, count: int = 1, timeout: float = 1.0) -> bool:
        """Ping ``addr`` from this namespace; True if replies came back.

        Refuses (ValueError) an address that is not configured in one of this lab's namespaces, so lab traffic can
        never leave the lab.
        """
        target = str(ipaddress.ip_address(addr))
        if target not in {str(ipaddress.ip_address(a)) for ns in self.lab.namespaces for a in ns.addresses()}:
            raise ValueError(f"refusing to ping {addr}: not an address of this lab's namespaces")
        proc = self.run(
            "ping", "-n", "-q", "-c", str(count), "-W", f"{timeout:g}", target,
            check=False, timeout=count * timeout + 10,
        )
        return proc.returncode == 0

    def connects(self, source: str, target: str, port: int = 179, timeout: float = 2.0) -> bool:
        """Whether a plain TCP connection over IPv4 (no TCP-MD5 key) from ``source`` reaches ``target``:``port``
        within ``timeout`` seconds."""
        script = (
            "import socket, sys\n"
            "s = socket.socket(); s.settimeout(float(sys.argv[4])); s.bind((sys.argv[1], 0))\n"
            "try:\n    s.connect((sys.argv[2], int(sys.argv[3])))\nexcept OSError:\n    sys.exit(1)\n"
        )
        return self.run(sys.executable, "-c", script, source, target, str(port), str(timeout),
                        check=False, timeout=timeout + 10).returncode == 0

    def netstat(self) -> dict[str, int]:
        """Kernel TCP/IP counters of this namespace from /proc/net/netstat and /proc/net/snmp, as ``TcpExt.Name``."""
        counters: dict[str, int] = {}
        for path in ("/proc/net/netstat", "/proc/net/snmp"):
            lines = self.run("cat", path).stdout.splitlines()
            for head, values in zip(lines[::2], lines[1::2], strict=False):
                keys = head.split()
                vals = values.split()
                group = keys[0].rstrip(":")
                for k, v in zip(keys[1:], vals[1:], strict=False):
                    counters[f"{group}.{k}"] = int(v)
        return counters

    def tcp_md5_rejects(self) -> int:
        """Segments the kernel dropped for a missing, unexpected or wrong TCP-MD5 signature (RFC 2385)."""
        c = self.netstat()
        return sum(c.get(f"TcpExt.{k}", 0) for k in ("TCPMD5NotFound", "TCPMD5Unexpected", "TCPMD5Failure"))

    def pids(self) -> list[int]:
        """Pids of all processes in this namespace."""
        return netns_pids(self.name)


@dataclass(frozen=True)
class Link:
    """A veth pair: ``if_a`` in ``ns_a`` and ``if_b`` in ``ns_b`` (real interface names, with the run id)."""

    ns_a: Netns
    if_a: str
    ns_b: Netns
    if_b: str


class Lab:
    """Namespaces, veths and processes of one run; a context manager that removes all of it on exit.

    ``Lab()`` registers the run and starts its watchdog; ``close()`` (or leaving the ``with`` block) tears down and
    verifies (LabLeakError if anything of the run is left).
    """

    def __init__(self, label: str = "lab") -> None:
        self.label = label
        self.created = time.time()
        existing = {run_id_of(n) for n in list_netns()}
        self.run_id = secrets.token_hex(RUN_ID_LEN // 2)
        while self.run_id in existing:
            self.run_id = secrets.token_hex(RUN_ID_LEN // 2)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.run_id}-"))
        self.workdir.chmod(0o755)  # daemons dropping to user frr must reach their own sub-directories
        (self.workdir / "logs").mkdir()
        self.namespaces: list[Netns] = []
        self._started: list[_Started] = []
        self._dirs = 0
        self._closed = False
        me = os.getpid()
        entry = json.dumps({"pid": me, "start_time": proc_start_time(me), "workdir": str(self.workdir),
                            "label": label})
        for _ in range(3):  # another run may remove the (empty) registry directory in between
            REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                (REGISTRY_DIR / f"{self.run_id}.json").write_text(entry)
                break
        # The watchdog holds the read end of a pipe: EOF without "done" means we died without closing the lab.  Its
        # own session keeps a Ctrl-C of the test run from reaching it.
        try:
            with (self.workdir / "logs" / "watchdog.log").open("wb") as log:
                # Run as a script, it imports mcrd from this checkout whether or not mcrd is installed.
                source_root = str(Path(__file__).resolve().parents[2])
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (source_root,
                                                                               os.environ.get("PYTHONPATH"))))}
                self._watchdog = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--watch", self.run_id],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                    start_new_session=True, close_fds=True, env=env,
                )
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            (REGISTRY_DIR / f"{self.run_id}.json").unlink(missing_ok=True)
            raise
        self.watchdog_pid = self._watchdog.pid

    # -- context manager ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ----------------------------------------------------------------------------------------------------
    def netns(self, name: str) -> Netns:
        """Create namespace ``mcl-<name>-<run id>`` with ``lo`` up and IPv6 DAD off."""
        if not _NAME_RE.match(name):
            raise ValueError(f"namespace name {name!r}: use lower-case letters, digits and '-'")
        real = f"{PREFIX}{name}-{self.run_id}"
        _run(["ip", "netns", "add", real])  # fails if it exists: runs never share a namespace
        ns = Netns(self, name, real)
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
        ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        return ns

    def ifname(self, base: str) -> str:
        """Real interface name for ``base``: ``<base>-<run id>``, at most 15 characters."""
        name = f"{base}-{self.run_id}"
        if len(name) > MAX_IFNAME or not _NAME_RE.match(base):
            raise ValueError(
                f"interface name {base!r}: at most {MAX_IFNAME - RUN_ID_LEN - 1} characters of [a-z0-9-] "
                f"(the run id is appended: {name!r})"
            )
        return name

    def link(
        self,
        ns_a: Netns,
        if_a: str,
        ns_b: Netns,
        if_b: str,
        addrs_a: Sequence[str] = (),
        addrs_b: Sequence[str] = (),
    ) -> Link:
        """A veth pair between two namespaces, addresses (CIDR) added, both ends up.  Returns the real names."""
        real_a, real_b = self.ifname(if_a), self.ifname(if_b)
        ns_a.ip("link", "add", real_a, "type", "veth", "peer", "name", real_b, "netns", ns_b.name)
        for addr in addrs_a:
            ns_a.add_address(real_a, addr)
        for addr in addrs_b:
            ns_b.add_address(real_b, addr)
        ns_a.ip("link", "set", real_a, "up")
        ns_b.ip("link", "set", real_b, "up")
        return Link(ns_a, real_a, ns_b, real_b)

    def make_dir(self, name: str, owner: str | None = None) -> Path:
        """A fresh directory in the run directory (``chown owner:owner`` when given, e.g. ``frr``)."""
        self._dirs += 1
        path = self.workdir / f"{self._dirs:02d}-{name}"
        path.mkdir()
        if owner:
            shutil.chown(path, owner, owner)
        return path

    # -- processes ---------------------------------------------------------------------------------------------------
    def _start(self, ns: Netns, cmd: list[str], label: str) -> subprocess.Popen[bytes]:
        if self._closed:
            raise RuntimeError("lab is closed")
        log = self.workdir / "logs" / f"{len(self._started):02d}-{ns.short}-{label}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, *cmd],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True,
            )
        self._started.append(_Started(proc, label, log))
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> Path:
        """The log file of a process started by this lab."""
        for s in self._started:
            if s.proc is proc:
                return s.log
        raise KeyError(proc.pid)

    def json_log(self, proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
        """The JSON lines of a process's log (mcrd's structlog output), skipping any other line."""
        out = []
        for line in self.log_of(proc).read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def log_events(self, proc: subprocess.Popen[bytes], name: str) -> list[dict[str, Any]]:
        """The lines of `proc`'s JSON log whose `event` is `name`, in order."""
        return [entry for entry in self.json_log(proc) if entry.get("event") == name]

    def stop_processes(self, procs: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
        """Stop processes by pid: SIGTERM all, wait up to ``timeout``, then SIGKILL the rest.  Reaps them."""
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        killed = []
        for p in alive:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5.0)
                killed.append(p.pid)
        _remove_frr_tmp(killed)

    def kill_processes(self, procs: Sequence[subprocess.Popen[bytes]]) -> None:
        """SIGKILL processes by pid (a crash, no clean-up of their own) and reap them."""
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5.0)
        _remove_frr_tmp(p.pid for p in procs)

    # -- diagnostics -------------------------------------------------------------------------------------------------
    def dump_logs(self, lines: int = 40, out: IO[str] | None = None) -> None:
        """Print the tail of every process log (call on failure, before close())."""
        stream = out or sys.stdout
        for s in self._started:
            try:
                text = s.log.read_text(errors="replace").splitlines()
            except OSError:
                continue
            rc = s.proc.poll()
            print(f"----- {s.log.name} (pid {s.proc.pid}, {'running' if rc is None else f'exit {rc}'})",
                  file=stream)
            print("\n".join(text[-lines:]), file=stream)

    # -- teardown ----------------------------------------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """What of this run still exists (namespaces, live processes, run directory, interfaces in the host)."""
        left = [f"namespace {n}" for n in list_netns() if run_id_of(n) == self.run_id]
        left += [f"process {s.proc.pid} ({s.label})" for s in self._started if pid_alive(s.proc.pid)]
        if self._closed and pid_alive(self.watchdog_pid):
            left.append(f"watchdog {self.watchdog_pid}")
        left += [f"FRR crash-log directory {p}"
                 for p in _frr_tmp_dirs([s.proc.pid for s in self._started], self.created - 1)]
        if self.workdir.exists():
            left.append(f"directory {self.workdir}")
        host_links = _run(["ip", "-o", "link", "show"]).stdout
        left += [f"host interface {m}" for m in re.findall(rf"\d+: (\S+-{self.run_id})[@:]", host_links)]
        return left

    def close(self) -> None:
        """Stop every process (by pid), delete the namespaces, remove the run directory; verify nothing is left."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        try:
            self.stop_processes([s.proc for s in self._started])
        except Exception as exc:  # keep tearing down
            errors.append(f"stopping processes: {exc!r}")
        try:
            # Anything else still inside our namespaces was started by something of ours (e.g. a daemon's child).
            stray = sorted({pid for ns in self.namespaces for pid in ns.pids()})
            _remove_frr_tmp(_kill_pids(stray, STOP_TIMEOUT))
        except Exception as exc:
            errors.append(f"stopping stray processes: {exc!r}")
        # A daemon that crashed by itself leaves its FRR crash-log directory too.
        _remove_frr_tmp([s.proc.pid for s in self._started], newer_than=self.created - 1)
        for ns in reversed(self.namespaces):
            proc = _run(["ip", "netns", "del", ns.name], check=False)
            if proc.returncode != 0 and ns.name in list_netns():
                errors.append(f"deleting {ns.name}: {proc.stderr.strip()}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        (REGISTRY_DIR / f"{self.run_id}.json").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            REGISTRY_DIR.rmdir()  # only when no other run is registered
        self._stop_watchdog(done=not errors)
        left = self.leftovers()
        if errors or left:
            raise LabLeakError(f"lab {self.run_id} teardown: errors={errors} leftovers={left}")

    def _stop_watchdog(self, done: bool) -> None:
        stdin = self._watchdog.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            if done:
                stdin.write(b"done")
            stdin.close()
        try:
            self._watchdog.wait(STOP_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            self._watchdog.kill()
            self._watchdog.wait()


def _watch(run_id: str) -> int:
    """Watchdog body: wait for EOF on stdin; unless the lab said "done", clean up the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    data = sys.stdin.buffer.read()
    if data.endswith(b"done"):
        return 0
    cleanup_run(run_id)
    return 0


# --------------------------------------------------------------------------------------------------------------------
# Routes


@dataclass(frozen=True)
class Route:
    """One path as a peer shows it in its own RIB.

    ``as_path`` flattens AS sets; ``origin`` is ``igp``/``egp``/``incomplete``; ``next_hop`` is the global next hop
    (FRR shows ``0.0.0.0``/``::`` for its own networks, BIRD ``""`` for its static routes); ``source`` is the FRR
    peer address (``""`` when local) or the BIRD protocol name.
    """

    prefix: str
    as_path: tuple[int, ...]
    med: int | None
    next_hop: str
    origin: str
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    source: str = ""
    ext_communities: tuple[str, ...] = ()
    """Extended communities (RFC 4360) as ``rt 65030:1`` / ``soo 65030:1`` (OpenBGPD's spelling), whatever the peer
    prints; FRR fills them in only in :meth:`FrrPeer.route_detail`."""


def _as_path(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


_EXT_KINDS = {"rt": "rt", "soo": "soo"}


def ext_community(kind: str, value: str) -> str:
    """An extended community in the harness's one spelling: ``rt 65030:1``.  ``kind`` as FRR (``RT``, ``SoO``), BIRD
    (``rt``, ``ro``) or GoBGP (route target subtype 2, route origin subtype 3) name it."""
    key = kind.lower()
    return f"{_EXT_KINDS.get(key, 'soo' if key == 'ro' else key)} {value}"


def _afi_of(prefix: str) -> str:
    return "ipv6" if ipaddress.ip_network(prefix, strict=False).version == 6 else "ipv4"


def parse_frr_routes(data: dict[str, Any], *, best_only: bool = True) -> dict[str, Route]:
    """One path per prefix from ``show bgp <afi> unicast [neighbors N routes] json``: the best path (prefixes
    without one are left out), or with ``best_only=False`` the best path if any, else the first."""
    routes: dict[str, Route] = {}
    for prefix, paths in (data.get("routes") or {}).items():
        chosen = [p for p in paths if p.get("bestpath")] or ([] if best_only else paths[:1])
        if chosen:
            routes[prefix] = _frr_path(prefix, chosen[0])
    return routes


def _frr_next_hop(path: dict[str, Any]) -> str:
    hops = path.get("nexthops") or []
    for hop in hops:
        if hop.get("scope", "global") == "global":
            return str(hop.get("ip", ""))
    return str(hops[0].get("ip", "")) if hops else ""


def _frr_path(prefix: str, path: dict[str, Any]) -> Route:
    aspath = path.get("aspath")
    as_text = aspath.get("string", "") if isinstance(aspath, dict) else path.get("path", "")
    med = path.get("metric", path.get("med"))
    peer = path.get("peer")
    source = peer.get("peerId", "") if isinstance(peer, dict) else path.get("peerId", "")
    if source in ("(unspec)", "0.0.0.0", "::"):
        source = ""
    comm = path.get("community") or {}
    large = path.get("largeCommunity") or {}
    ext = str((path.get("extendedCommunity") or {}).get("string", ""))
    return Route(
        prefix=prefix,
        as_path=() if as_text == "Local" else _as_path(as_text),
        med=int(med) if med is not None else None,
        next_hop=_frr_next_hop(path),
        origin=str(path.get("origin", "")).lower(),
        local_pref=path.get("locPrf", path.get("localpref")),
        communities=tuple(comm.get("string", "").split()),
        large_communities=tuple(large.get("string", "").split()),
        source=str(source),
        ext_communities=tuple(ext_community(*tok.split(":", 1)) for tok in ext.split() if ":" in tok),
    )


_BIRD_ROUTE_RE = re.compile(
    r"^(?P<prefix>\S+)?\s+(?P<kind>[a-z]+)\s+\[(?P<proto>\S+)[^\]]*\](?P<best>\s+\*)?\s+\((?P<pref>\d+)"
)


def parse_bird_routes(text: str) -> dict[str, list[tuple[bool, Route]]]:
    """All routes from ``birdc show route all`` output: prefix -> [(is_best, Route), ...] in BIRD's order."""
    result: dict[str, list[tuple[bool, Route]]] = {}
    prefix = ""
    cur: dict[str, Any] | None = None

    def flush() -> None:
        if cur is None:
            return
        route = Route(
            prefix=cur["prefix"],
            as_path=cur["as_path"],
            med=cur["med"],
            next_hop=cur["next_hop"] or cur["via"],
            origin=cur["origin"],
            local_pref=cur["local_pref"],
            communities=cur["communities"],
            large_communities=cur["large"],
            source=cur["proto"],
            ext_communities=cur["ext"],
        )
        result.setdefault(route.prefix, []).append((cur["best"], route))

    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Table ", "Network")):
            continue
        m = _BIRD_ROUTE_RE.match(line)
        if m and not line.lstrip().startswith(("via ", "dev ", "Type:", "BGP.")):
            flush()
            if m.group("prefix"):
                prefix = m.group("prefix")
            cur = {
                "prefix": prefix, "proto": m.group("proto"), "best": bool(m.group("best")), "as_path": (),
                "med": None, "next_hop": "", "via": "", "origin": "", "local_pref": None,
                "communities": (), "large": (), "ext": (),
            }
            continue
        if cur is None:
            continue
        item = line.strip()
        if item.startswith("via ") and not cur["via"]:
            cur["via"] = item.split()[1]
        elif item.startswith("BGP."):
            key, _, value = item.partition(": ")
            value = value.strip()
            if key == "BGP.as_path":
                cur["as_path"] = _as_path(value)
            elif key == "BGP.med":
                cur["med"] = int(value)
            elif key == "BGP.next_hop":
                cur["next_hop"] = value.split()[0] if value else ""
            elif key == "BGP.origin":
                cur["origin"] = value.lower()
            elif key == "BGP.local_pref":
                cur["local_pref"] = int(value)
            elif key == "BGP.community":
                cur["communities"] = tuple(f"{a}:{b}" for a, b in re.findall(r"\((\d+),\s*(\d+)\)", value))
            elif key == "BGP.ext_community":
                cur["ext"] = tuple(
                    ext_community(k, f"{a}:{b}") for k, a, b in re.findall(r"\((\w+),\s*([\d.]+),\s*(\d+)\)", value)
                )
            elif key == "BGP.large_community":
                cur["large"] = tuple(
                    f"{a}:{b}:{c}" for a, b, c in re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", value)
                )
    flush()
    return result


def parse_bird_protocol_state(text: str) -> str:
    """The BGP session state from ``birdc show protocols all P`` (``Established``, ``Active``, ...), else the
    protocol state column (``down`` when the protocol is disabled)."""
    m = re.search(r"^\s*BGP state:\s*(\S+)", text, re.M)
    if m:
        return m.group(1)
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] == "BGP":
            return cols[3]
    return ""


# --------------------------------------------------------------------------------------------------------------------
# BGP peers


class BgpPeer:
    """What FRR and BIRD peers share: waiting for sessions and routes."""

    ns: Netns

    def session_state(self, neighbor: str) -> str:
        raise NotImplementedError

    def routes_for(self, prefix: str) -> dict[str, Route]:
        raise NotImplementedError

    def wait_established(self, neighbor: str, timeout: float = 30.0) -> None:
        """Poll until the session (FRR: neighbor address, BIRD: protocol name) is Established."""
        poll(lambda: self.session_state(neighbor), timeout, f"{self!r}: session {neighbor} not Established",
             until=lambda state: state == "Established")

    def wait_route(
        self, prefix: str, timeout: float = 30.0, check: Callable[[Route], bool] | None = None
    ) -> Route:
        """Poll until ``prefix`` is in this peer's RIB (and ``check(route)`` holds); return the route."""

        def found() -> Route | None:
            route = self.routes_for(prefix).get(prefix)
            if route is not None and (check is None or check(route)):
                return route
            return None

        route = poll(found, timeout, f"{self!r}: route {prefix} not present as expected")
        assert route is not None
        return route

    def wait_route_gone(self, prefix: str, timeout: float = 30.0) -> None:
        """Poll until ``prefix`` is no longer in this peer's RIB."""
        poll(lambda: prefix not in self.routes_for(prefix), timeout, f"{self!r}: route {prefix} still present")


def _check_alive(proc: subprocess.Popen[bytes], lab: Lab, what: str) -> bool:
    """True while ``proc`` runs; raises (with its log) once it has exited."""
    if proc.poll() is not None:
        log = lab.log_of(proc).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log}")
    return True


# ---- FRR


@dataclass(frozen=True)
class FrrNeighbor:
    """A neighbor for :func:`frr_config`.  ``families`` defaults to the address's own (ipv4 or ipv6 unicast)."""

    address: str
    remote_as: int
    password: str | None = None
    families: tuple[str, ...] = ()
    hold_time: int | None = None
    extra: tuple[str, ...] = ()
    """Raw lines under ``router bgp`` (e.g. ``"neighbor 192.0.2.2 ebgp-multihop 2"``)."""


def frr_config(
    asn: int,
    router_id: str,
    neighbors: Sequence[FrrNeighbor],
    networks: Sequence[str] = (),
    *,
    hostname: str = "lab-frr",
    graceful_restart: bool = True,
    restart_time: int | None = None,
    extra: str = "",
) -> str:
    """A typical bgpd config for a lab peer.

    RFC 8212 off (``no bgp ebgp-requires-policy``), ``network`` statements without a matching IGP route
    (``no bgp network import-check``), ``bgp graceful-restart`` (restarter mode; ``restart_time`` sets the
    restart time FRR advertises, default 120 s), neighbors activated only in their own address family; for fast
    labs: connect retry 1 s, advertisement interval 0 and ``coalesce-time 50`` (FRR otherwise holds a new session's
    first UPDATEs for 1 s).

    End-of-RIB: FRR 8.4 sends it to a peer only when that peer advertises the graceful-restart capability, whatever
    FRR's own graceful-restart mode (measured with BIRD ``graceful restart off``/``aware``).
    """
    lines = [
        "frr defaults traditional",
        f"hostname {hostname}",
        "log stdout informational",
        "!",
        f"router bgp {asn}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        " no bgp default ipv4-unicast",
        " coalesce-time 50",
    ]
    if graceful_restart:
        lines.append(" bgp graceful-restart")
    if restart_time is not None:
        lines.append(f" bgp graceful-restart restart-time {restart_time}")
    for n in neighbors:
        lines.append(f" neighbor {n.address} remote-as {n.remote_as}")
        if n.password:
            lines.append(f" neighbor {n.address} password {n.password}")
        lines.append(f" neighbor {n.address} timers connect 1")
        lines.append(f" neighbor {n.address} advertisement-interval 0")
        if n.hold_time is not None:
            lines.append(f" neighbor {n.address} timers {max(1, n.hold_time // 3)} {n.hold_time}")
        lines.extend(f" {x}" for x in n.extra)
    for afi in ("ipv4", "ipv6"):
        nets = [p for p in networks if _afi_of(p) == afi]
        active = [n for n in neighbors if afi in (n.families or (_afi_of(n.address),))]
        if not nets and not active:
            continue
        lines.append(f" address-family {afi} unicast")
        lines.extend(f"  network {p}" for p in nets)
        lines.extend(f"  neighbor {n.address} activate" for n in active)
        lines.append(" exit-address-family")
    lines.append("!")
    if extra:
        lines.append(extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


class FrrPeer(BgpPeer):
    """FRR (zebra + bgpd, foreground, ``-u frr -g frr``) in a namespace, driven through ``vtysh --vty_socket DIR``.

    ``bfdd``: the config of an FRR bfdd to start as well (e.g. ``"bfd\n peer 192.0.2.1\n !\n!\n"``; ``""`` starts it
    without sessions, for ``neighbor X bfd`` in bgpd's config).  It gets its own control socket in the run directory.
    """

    def __init__(
        self, ns: Netns, asn: int, router_id: str, config_text: str, *, timeout: float = 15.0, bfdd: str | None = None
    ) -> None:
        if not re.search(rf"^router bgp {asn}\b", config_text, re.M):
            raise ValueError(f"config has no 'router bgp {asn}'")
        self.ns = ns
        self.asn = asn
        self.router_id = router_id
        lab = ns.lab
        self.dir = lab.make_dir(f"frr-{ns.short}", owner="frr")
        self.bgpd_conf = self.dir / "bgpd.conf"
        self.zebra_conf = self.dir / "zebra.conf"
        self.bgpd_conf.write_text(config_text)
        self.zebra_conf.write_text("hostname lab-zebra\nlog stdout informational\n")
        for p in (self.bgpd_conf, self.zebra_conf):
            p.chmod(0o644)
        self.zserv = self.dir / "zserv.api"
        self._check_config()
        common = ["-u", "frr", "-g", "frr", "-z", str(self.zserv), "--vty_socket", str(self.dir), "-P", "0"]
        self.zebra = ns.popen(
            str(FRR_SBIN / "zebra"), "-f", str(self.zebra_conf), "-i", str(self.dir / "zebra.pid"), *common,
            label="zebra",
        )
        poll(lambda: _check_alive(self.zebra, lab, "zebra") and self.zserv.exists(), timeout,
             f"{ns.name}: zebra did not open {self.zserv}")
        self.bfdd: subprocess.Popen[bytes] | None = None
        if bfdd is not None:
            self.bfdd_conf = self.dir / "bfdd.conf"
            self.bfdd_conf.write_text(bfdd)
            self.bfdd_conf.chmod(0o644)
            self.bfdd = ns.popen(
                str(FRR_SBIN / "bfdd"), "-f", str(self.bfdd_conf), "-i", str(self.dir / "bfdd.pid"),
                "--bfdctl", str(self.dir / "bfdd.sock"), *common, label="bfdd",
            )
        self.bgpd = ns.popen(
            str(FRR_SBIN / "bgpd"), "-f", str(self.bgpd_conf), "-i", str(self.dir / "bgpd.pid"), *common,
            label="bgpd",
        )
        poll(self._ready, timeout, f"{ns.name}: FRR not answering on {self.dir}")

    def __repr__(self) -> str:
        return f"FrrPeer({self.ns.name}, AS{self.asn})"

    def _check_config(self) -> None:
        # bgpd -C parses the config; FRR 8.4 exits 0 even then, but logs "<reason> on config line N: <line>" for every
        # line it rejects (a running bgpd would log and ignore them).
        proc = self.ns.popen(
            str(FRR_SBIN / "bgpd"), "-C", "-f", str(self.bgpd_conf), "-u", "frr", "-g", "frr", "-Z", "-p", "0",
            "-P", "0", "--vty_socket", str(self.dir), "-i", str(self.dir / "check.pid"), label="bgpd-check",
        )
        try:
            rc = proc.wait(30)
        finally:
            self.ns.lab.stop_processes([proc])
            _remove_frr_tmp([proc.pid])  # the dry run leaves /var/tmp/frr/bgpd.<pid> behind even on success
        log = self.ns.lab.log_of(proc).read_text(errors="replace")
        errors = [line for line in log.splitlines() if " on config line " in line]
        if rc != 0 or errors:
            raise ValueError("FRR rejects the config:\n" + "\n".join(errors or [log]))

    def _ready(self) -> bool:
        _check_alive(self.zebra, self.ns.lab, "zebra")
        _check_alive(self.bgpd, self.ns.lab, "bgpd")
        if self.bfdd is not None:
            _check_alive(self.bfdd, self.ns.lab, "bfdd")
            if not (self.dir / "bfdd.vty").exists():
                return False
        return (self.dir / "bgpd.vty").exists() and self.vtysh("show bgp summary json", check=False).returncode == 0

    def vtysh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run vtysh commands against this FRR (each one a ``-c``)."""
        args = ["vtysh", "--vty_socket", str(self.dir)]
        for c in commands:
            args += ["-c", c]
        return _run(args, check=check)

    def show_json(self, command: str) -> Any:
        """``vtysh -c '<command> json'`` parsed (the trailing ``json`` is added when missing)."""
        cmd = command if command.rstrip().endswith("json") else f"{command} json"
        out = self.vtysh(cmd).stdout
        return json.loads(out) if out.strip() else {}

    def configure(self, *lines: str) -> None:
        """Apply config lines (``configure terminal`` is prepended); raises on any ``%`` error from FRR."""
        proc = self.vtysh("configure terminal", *lines, "end", check=False)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 or re.search(r"^%", text, re.M):
            raise LabCommandError(proc.returncode or 1, ["vtysh", *lines], proc.stdout, proc.stderr)

    def session_state(self, neighbor: str) -> str:
        """``bgpState`` of a neighbor (``Established``, ``Active``, ``Connect``, ``Idle``...) or ``""`` if unknown."""
        data = self.show_json(f"show bgp neighbors {neighbor}")
        entry = data.get(neighbor) or next((v for v in data.values() if isinstance(v, dict)), {})
        return str(entry.get("bgpState", ""))

    def last_notification(self, neighbor: str) -> tuple[int, str, str]:
        """FRR's own record of the NOTIFICATIONs ``neighbor`` sent: how many it counted (FRR 8.4 counts 2 for the one
        a session ends with), the last one's code and subcode (``"0602"``: 6/2) and FRR's name for it."""
        entry = self.show_json(f"show bgp neighbors {neighbor}")[neighbor]
        return (int(entry["messageStats"]["notificationsRecv"]), str(entry.get("lastErrorCodeSubcode", "")),
                str(entry.get("lastNotificationReason", "")))

    def wait_notification(self, neighbor: str, seen: int, timeout: float = 30.0) -> tuple[int, str, str]:
        """``last_notification(neighbor)`` once FRR has counted more than ``seen`` NOTIFICATIONs from it."""
        return poll(lambda: self.last_notification(neighbor), timeout, f"{self!r}: a NOTIFICATION from {neighbor}",
                    until=lambda got: got[0] > seen)

    def end_of_rib(self, neighbor: str) -> dict[str, set[str]]:
        """End-of-RIB bookkeeping for a neighbor: ``{"sent": {...}, "received": {...}}`` of AFI/SAFI names such as
        ``ipv4Unicast`` (FRR only tracks it when graceful restart is negotiated)."""
        entry = self.show_json(f"show bgp neighbors {neighbor}").get(neighbor, {})
        gr = entry.get("gracefulRestartInfo") or {}
        return {
            "sent": {k for k, v in (gr.get("endOfRibSend") or {}).items() if v},
            "received": {k for k, v in (gr.get("endOfRibRecv") or {}).items() if v},
        }

    def routes(self, afi: str = "ipv4", neighbor: str | None = None) -> dict[str, Route]:
        """Best path per prefix (``show bgp <afi> unicast json``); with ``neighbor``: what that neighbor sent and
        was accepted.  Communities are only filled in by :meth:`route_detail`."""
        if afi not in ("ipv4", "ipv6"):
            raise ValueError(afi)
        cmd = f"show bgp {afi} unicast" + (f" neighbors {neighbor} routes" if neighbor else "")
        return parse_frr_routes(self.show_json(cmd), best_only=neighbor is None)

    def route_detail(self, prefix: str) -> list[Route]:
        """All paths for ``prefix`` (best first) with communities: ``show bgp <afi> unicast PREFIX json``."""
        data = self.show_json(f"show bgp {_afi_of(prefix)} unicast {prefix}")
        paths = sorted(data.get("paths", []), key=lambda p: not (p.get("bestpath") or {}).get("overall", False))
        return [_frr_path(prefix, p) for p in paths]

    def routes_for(self, prefix: str) -> dict[str, Route]:
        return self.routes(_afi_of(prefix))

    def announce(
        self,
        prefix: str,
        *,
        med: int | None = None,
        as_path_prepend: Sequence[int] = (),
        communities: Sequence[str] = (),
        ext_communities: Sequence[str] = (),
        large_communities: Sequence[str] = (),
    ) -> None:
        """Originate ``prefix`` (a ``network`` statement; import-check is off so no IGP route is needed).

        Attributes, when given, are set by a route-map made for this prefix (``ext_communities`` as ``rt 65030:1``)."""
        afi = _afi_of(prefix)
        network = f"network {prefix}"
        if med is not None or as_path_prepend or communities or ext_communities or large_communities:
            rmap = "MCL-NET-" + re.sub(r"[^0-9a-zA-Z]", "-", prefix)
            sets = []
            if med is not None:
                sets.append(f" set metric {med}")
            if as_path_prepend:
                sets.append(f" set as-path prepend {' '.join(str(a) for a in as_path_prepend)}")
            if communities:
                sets.append(f" set community {' '.join(communities)}")
            if ext_communities:
                sets.append(f" set extcommunity {' '.join(ext_communities)}")
            if large_communities:
                sets.append(f" set large-community {' '.join(large_communities)}")
            self.configure(f"no route-map {rmap}", f"route-map {rmap} permit 10", *sets, "exit")
            network += f" route-map {rmap}"
        self.configure(f"router bgp {self.asn}", f"address-family {afi} unicast", network)

    def withdraw(self, prefix: str) -> None:
        """Remove the ``network`` statement for ``prefix``."""
        self.configure(f"router bgp {self.asn}", f"address-family {_afi_of(prefix)} unicast", f"no network {prefix}")

    def neighbor_states(self) -> dict[str, str]:
        """Every configured neighbor -> its ``bgpState``."""
        data = self.show_json("show bgp neighbors")
        return {k: str(v.get("bgpState", "")) for k, v in data.items() if isinstance(v, dict)}

    def stop(self, notify: bool = True) -> None:
        """Stop bgpd and zebra by pid (SIGTERM).

        FRR 8.4 sends no NOTIFICATION when terminated, so a peer doing graceful restart (BIRD does by default) keeps
        FRR's routes as stale for FRR's restart time (120 s).  With ``notify`` (default) FRR first runs ``bgp
        shutdown``: every peer gets a Cease NOTIFICATION and drops FRR's routes at once."""
        if notify and self.bgpd.poll() is None:
            self.configure(f"router bgp {self.asn}", "bgp shutdown")
            poll(self.neighbor_states, 10, f"{self!r}: sessions still up after bgp shutdown",
                 until=lambda states: "Established" not in states.values())
        self.ns.lab.stop_processes([self.bgpd, *self._bfdd(), self.zebra])

    def kill(self) -> None:
        """Crash FRR: SIGKILL bgpd and zebra (no NOTIFICATION; peers see the TCP connection close)."""
        self.ns.lab.kill_processes([self.bgpd, *self._bfdd(), self.zebra])

    def _bfdd(self) -> list[subprocess.Popen[bytes]]:
        return [self.bfdd] if self.bfdd is not None else []

    def bfd_peers(self) -> dict[str, dict[str, Any]]:
        """bfdd's sessions by peer address (``show bfd peers json``: ``status``, ``diagnostic``,
        ``remote-diagnostic``, ``receive-interval``, ``transmit-interval``, ``remote-receive-interval``, ...)."""
        data = self.show_json("show bfd peers")
        return {str(p["peer"]): p for p in (data if isinstance(data, list) else [])}


# ---- BIRD


BIRD_EXPORT_STATIC = (
    "filter { if source != RTS_STATIC then reject; if defined(bgp_med) then bgp_med = bgp_med; accept; }"
)
"""Export only the static routes.  BIRD sends MED to an eBGP peer only when the export filter set it, so the filter
re-sets a MED that the static route carries."""


@dataclass(frozen=True)
class BirdNeighbor:
    """A ``protocol bgp`` for :func:`bird_config`; its channel is the address's family."""

    name: str
    address: str
    remote_as: int
    local_address: str | None = None
    password: str | None = None
    import_filter: str = "all"
    export_filter: str = BIRD_EXPORT_STATIC
    hold_time: int | None = None
    extra: tuple[str, ...] = ()
    """Raw statements inside the protocol block (e.g. ``"multihop 2;"``)."""


_STATIC_BEGIN = "# >>> mcl static routes (rewritten by BirdPeer.announce/withdraw)"
_STATIC_END = "# <<< mcl static routes"


@dataclass(frozen=True)
class BirdStatic:
    """A route BIRD originates (``route P blackhole``) and the BGP attributes set on it."""

    prefix: str
    med: int | None = None
    as_path_prepend: tuple[int, ...] = ()
    communities: tuple[str, ...] = ()
    ext_communities: tuple[str, ...] = ()
    """As ``rt 65030:1`` (BIRD's ``(rt, 65030, 1)``)."""
    large_communities: tuple[str, ...] = ()

    def render(self) -> str:
        sets = []
        if self.med is not None:
            sets.append(f"bgp_med = {self.med};")
        for asn in reversed(self.as_path_prepend):
            sets.append(f"bgp_path.prepend({asn});")
        for c in self.communities:
            a, b = c.split(":")
            sets.append(f"bgp_community.add(({a},{b}));")
        for c in self.ext_communities:
            kind, value = c.split()
            a, b = value.split(":")
            sets.append(f"bgp_ext_community.add(({kind},{a},{b}));")
        for c in self.large_communities:
            a, b, n = c.split(":")
            sets.append(f"bgp_large_community.add(({a},{b},{n}));")
        body = " { " + " ".join(sets) + " }" if sets else ""
        return f"  route {self.prefix} blackhole{body};"


def bird_static_block(routes: Iterable[BirdStatic | str]) -> str:
    """The managed static protocols ``mcl_static4``/``mcl_static6`` holding the routes BIRD announces."""
    statics = [r if isinstance(r, BirdStatic) else BirdStatic(r) for r in routes]
    out = [_STATIC_BEGIN]
    for afi in ("ipv4", "ipv6"):
        out.append(f"protocol static mcl_static{afi[-1]} {{")
        out.append(f"  {afi};")
        out.extend(s.render() for s in statics if _afi_of(s.prefix) == afi)
        out.append("}")
    out.append(_STATIC_END)
    return "\n".join(out) + "\n"


def bird_config(
    asn: int,
    router_id: str,
    neighbors: Sequence[BirdNeighbor],
    networks: Sequence[BirdStatic | str] = (),
    *,
    kernel_export: bool = True,
    extra: str = "",
) -> str:
    """A typical BIRD 2 config for an eBGP lab peer.

    Explicit channel filters (BIRD 2 needs them on eBGP: default import/export is none): import all, export only the
    static routes; networks go in the managed static block; BGP routes are exported to the kernel (``kernel_export``)
    so the namespace forwards along them; connect/error timers are short so sessions come back quickly.
    """
    lines = ["log stderr all;", f"router id {router_id};", "protocol device { scan time 10; }"]
    if kernel_export:
        for afi in ("ipv4", "ipv6"):
            lines.append(
                f"protocol kernel mcl_kernel{afi[-1]} {{ {afi} {{ import none; export where source = RTS_BGP; }}; }}"
            )
    for n in neighbors:
        afi = _afi_of(n.address)
        local = f"{n.local_address} " if n.local_address else ""
        block = [
            f"protocol bgp {n.name} {{",
            f"  local {local}as {asn};",
            f"  neighbor {n.address} as {n.remote_as};",
            "  connect delay time 1;",
            "  connect retry time 1;",
            "  error wait time 1, 5;",
        ]
        if n.password:
            block.append(f'  password "{n.password}";')
        if n.hold_time is not None:
            block.append(f"  hold time {n.hold_time};")
        block.extend(f"  {x}" for x in n.extra)
        block.append(f"  {afi} {{ import {n.import_filter}; export {n.export_filter}; }};")
        block.append("}")
        lines.extend(block)
    text = "\n".join(lines) + "\n" + bird_static_block(networks)
    if extra:
        text += extra.rstrip("\n") + "\n"
    return text


def _parse_static_block(config_text: str) -> tuple[str, list[BirdStatic]] | None:
    begin = config_text.find(_STATIC_BEGIN)
    end = config_text.find(_STATIC_END)
    if begin < 0 or end < 0:
        return None
    block = config_text[begin:end]
    statics = []
    for m in re.finditer(r"route (\S+) blackhole(?: \{([^}]*)\})?;", block):
        body = m.group(2) or ""
        med = re.search(r"bgp_med = (\d+);", body)
        prepend = tuple(int(a) for a in reversed(re.findall(r"bgp_path\.prepend\((\d+)\);", body)))
        comms = tuple(f"{a}:{b}" for a, b in re.findall(r"bgp_community\.add\(\((\d+),(\d+)\)\);", body))
        ext = tuple(f"{k} {a}:{b}" for k, a, b in re.findall(r"bgp_ext_community\.add\(\((\w+),(\d+),(\d+)\)\);", body))
        large = tuple(f"{a}:{b}:{c}"
                      for a, b, c in re.findall(r"bgp_large_community\.add\(\((\d+),(\d+),(\d+)\)\);", body))
        statics.append(BirdStatic(m.group(1), int(med.group(1)) if med else None, prepend, comms, ext, large))
    rest = config_text[:begin] + config_text[end + len(_STATIC_END) :].lstrip("\n")
    return rest, statics


class BirdPeer(BgpPeer):
    """BIRD 2 (``bird -f -c CONF -s SOCK``) in a namespace, driven through ``birdc -s SOCK``."""

    def __init__(self, ns: Netns, config_text: str, *, timeout: float = 15.0) -> None:
        self.ns = ns
        self.dir = ns.lab.make_dir(f"bird-{ns.short}")
        self.conf = self.dir / "bird.conf"
        self.sock = self.dir / "bird.ctl"
        parsed = _parse_static_block(config_text)
        self._base, statics = parsed if parsed else (config_text, [])
        self._statics: dict[str, BirdStatic] = {s.prefix: s for s in statics}
        self._write_config()
        self.proc = ns.popen("bird", "-f", "-c", str(self.conf), "-s", str(self.sock), label="bird")
        poll(self._ready, timeout, f"{ns.name}: BIRD not answering on {self.sock}")

    def __repr__(self) -> str:
        return f"BirdPeer({self.ns.name})"

    def _ready(self) -> bool:
        _check_alive(self.proc, self.ns.lab, "bird")
        return self.sock.exists() and self.birdc("show status", check=False).returncode == 0

    def _write_config(self) -> None:
        text = self._base.rstrip("\n") + "\n" + bird_static_block(self._statics.values())
        tmp = self.dir / "bird.conf.new"
        tmp.write_text(text)
        proc = _run(["bird", "-p", "-c", str(tmp)], check=False)  # parse only: clear errors before any change
        if proc.returncode != 0:
            raise ValueError(f"BIRD rejects the config: {proc.stderr.strip()}\n{text}")
        tmp.replace(self.conf)

    @property
    def config_text(self) -> str:
        """The config as currently written."""
        return self.conf.read_text()

    def birdc(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``birdc -s SOCK COMMAND...``."""
        return _run(["birdc", "-s", str(self.sock), *command], check=check)

    def reconfigure(self, config_text: str | None = None) -> None:
        """Rewrite the config (``config_text`` replaces everything outside the static block) and ``birdc
        configure``."""
        if config_text is not None:
            parsed = _parse_static_block(config_text)
            self._base = parsed[0] if parsed else config_text
            if parsed:
                self._statics = {s.prefix: s for s in parsed[1]}
        self._write_config()
        out = self.birdc("configure").stdout
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"birdc configure failed: {out}")

    def session_state(self, protocol: str) -> str:
        """BGP state of ``protocol`` (``Established``, ``Active``, ``Connect``, ``Idle``...), ``""`` if unknown."""
        return parse_bird_protocol_state(self.birdc("show", "protocols", "all", protocol, check=False).stdout)

    def routes(self, table: str = "master4", protocol: str | None = None) -> dict[str, Route]:
        """Best route per prefix in ``table`` (``master4``/``master6``); with ``protocol``, that protocol's routes."""
        cmd = ["show", "route", "all", "table", table]
        if protocol:
            cmd += ["protocol", protocol]
        parsed = parse_bird_routes(self.birdc(*cmd).stdout)
        return {p: next((r for best, r in rs if best), rs[0][1]) for p, rs in parsed.items()}

    def routes_for(self, prefix: str) -> dict[str, Route]:
        return self.routes("master6" if _afi_of(prefix) == "ipv6" else "master4")

    def announce(
        self,
        prefix: str,
        *,
        med: int | None = None,
        as_path_prepend: Sequence[int] = (),
        communities: Sequence[str] = (),
        ext_communities: Sequence[str] = (),
        large_communities: Sequence[str] = (),
    ) -> None:
        """Add a static route (with attributes) to the managed block and reconfigure."""
        self._statics[prefix] = BirdStatic(prefix, med, tuple(as_path_prepend), tuple(communities),
                                           tuple(ext_communities), tuple(large_communities))
        self.reconfigure()

    def withdraw(self, prefix: str) -> None:
        """Remove the static route for ``prefix`` and reconfigure."""
        self._statics.pop(prefix, None)
        self.reconfigure()

    @property
    def announced(self) -> list[str]:
        """Prefixes in the managed static block."""
        return list(self._statics)

    def stop(self) -> None:
        """Stop BIRD by pid (SIGTERM: BIRD sends its peers a Cease NOTIFICATION, they drop its routes at once)."""
        self.ns.lab.stop_processes([self.proc])

    def kill(self) -> None:
        """Crash BIRD: SIGKILL (no NOTIFICATION).  BIRD's default graceful restart mode "aware" advertises a restart
        time of 0, so FRR drops BIRD's routes as soon as it sees the connection close."""
        self.ns.lab.kill_processes([self.proc])


# ---- GoBGP


GOBGP_API = ("127.0.0.1", "50051")
"""Where gobgpd serves its gRPC API: the loopback of its own namespace, which no other namespace (and no other run)
sees, so every GoBGP of every lab can use the same port."""

_GOBGP_STATES = {1: "Idle", 2: "Connect", 3: "Active", 4: "OpenSent", 5: "OpenConfirm", 6: "Established"}
_GOBGP_ORIGINS = {0: "igp", 1: "egp", 2: "incomplete"}
_GOBGP_EXT_SUBTYPES = {2: "rt", 3: "soo"}


@dataclass(frozen=True)
class GoBgpNeighbor:
    """A neighbor for :func:`gobgp_config`; its family is the address's (ipv4 or ipv6 unicast)."""

    address: str
    remote_as: int
    password: str | None = None
    hold_time: int | None = None
    passive: bool = False
    local_address: str | None = None


def gobgp_config(asn: int, router_id: str, neighbors: Sequence[GoBgpNeighbor]) -> str:
    """A gobgpd config (TOML) for a lab peer: connect retry 1 s, no policy (GoBGP accepts and sends everything by
    default; it does not apply RFC 8212).  Routes are added at run time
    (:meth:`GoBgpPeer.announce`)."""
    lines = ["[global.config]", f"  as = {asn}", f"  router-id = {json.dumps(router_id)}", ""]
    for n in neighbors:
        lines += ["[[neighbors]]", "  [neighbors.config]", f"    neighbor-address = {json.dumps(n.address)}",
                  f"    peer-as = {n.remote_as}"]
        if n.password:
            lines.append(f"    auth-password = {json.dumps(n.password)}")
        lines += ["  [neighbors.timers.config]", "    connect-retry = 1"]
        if n.hold_time is not None:
            lines += [f"    hold-time = {n.hold_time}", f"    keepalive-interval = {max(1, n.hold_time // 3)}"]
        if n.passive or n.local_address:
            lines.append("  [neighbors.transport.config]")
            if n.passive:
                lines.append("    passive-mode = true")
            if n.local_address:
                lines.append(f"    local-address = {json.dumps(n.local_address)}")
        family = "ipv6-unicast" if _afi_of(n.address) == "ipv6" else "ipv4-unicast"
        lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                  f"      afi-safi-name = {json.dumps(family)}", ""]
    return "\n".join(lines) + "\n"


def _gobgp_path(prefix: str, path: dict[str, Any]) -> Route:
    attrs = {a.get("type"): a for a in path.get("attrs") or [] if isinstance(a, dict)}
    segments = (attrs.get(2) or {}).get("as_paths") or []
    reach = attrs.get(14) or {}  # MP_REACH_NLRI: GoBGP 3.10 prints its next hop as "nexthop", like NEXT_HOP's
    hop = (attrs.get(3) or {}).get("nexthop") or reach.get("nexthop") or next(iter(reach.get("nexthops") or []), "")
    med = (attrs.get(4) or {}).get("metric")
    local_pref = (attrs.get(5) or {}).get("value")
    comms = [int(c) for c in (attrs.get(8) or {}).get("communities") or []]
    ext = [(int(e.get("subtype", -1)), str(e.get("value", ""))) for e in (attrs.get(16) or {}).get("value") or []]
    large = [(e.get("ASN"), e.get("LocalData1"), e.get("LocalData2")) for e in (attrs.get(32) or {}).get("value") or []]
    return Route(
        prefix=prefix,
        as_path=tuple(int(a) for seg in segments for a in seg.get("asns") or []),
        med=None if med is None else int(med),
        next_hop="" if hop in ("0.0.0.0", "::") else str(hop),
        origin=_GOBGP_ORIGINS.get(int((attrs.get(1) or {}).get("value", -1)), ""),
        local_pref=None if local_pref is None else int(local_pref),
        communities=tuple(f"{c >> 16}:{c & 0xFFFF}" for c in comms),
        large_communities=tuple(f"{a}:{b}:{c}" for a, b, c in large),
        source=str(path.get("neighbor-ip") or ""),
        ext_communities=tuple(f"{_GOBGP_EXT_SUBTYPES.get(sub, f'subtype{sub}')} {v}" for sub, v in ext),
    )


def parse_gobgp_routes(data: dict[str, Any] | None) -> dict[str, Route]:
    """The best path per prefix from ``gobgp -j global rib -a <family>`` (path attributes by BGP type code)."""
    routes: dict[str, Route] = {}
    for prefix, paths in (data or {}).items():
        chosen = [p for p in paths if p.get("best")] or paths[:1]
        if chosen:
            canonical = str(ipaddress.ip_network(prefix, strict=False))
            routes[canonical] = _gobgp_path(canonical, chosen[0])
    return routes


class GoBgpPeer(BgpPeer):
    """GoBGP (``gobgpd -f CONF``, foreground) in a namespace, driven through its API with the ``gobgp`` CLI.

    ``networks`` are originated once the API answers (GoBGP's config file has no network statement)."""

    def __init__(self, ns: Netns, config_text: str, networks: Sequence[str] = (), *, timeout: float = 15.0) -> None:
        self.ns = ns
        self.dir = ns.lab.make_dir(f"gobgp-{ns.short}")
        self.conf = self.dir / "gobgpd.toml"
        self.conf.write_text(config_text)
        proc = _run(["gobgpd", "-d", "-t", "toml", "-f", str(self.conf)], check=False)  # dry run: clear errors
        if proc.returncode != 0:
            raise ValueError(f"GoBGP rejects the config: {(proc.stdout + proc.stderr).strip()}\n{config_text}")
        self.proc = ns.popen("gobgpd", "-t", "toml", "-f", str(self.conf), "--api-hosts", ":".join(GOBGP_API),
                             "--pprof-disable", "--log-plain", label="gobgpd")
        poll(self._ready, timeout, f"{ns.name}: GoBGP API not answering on {':'.join(GOBGP_API)}")
        for prefix in networks:
            self.announce(prefix)

    def __repr__(self) -> str:
        return f"GoBgpPeer({self.ns.name})"

    def _ready(self) -> bool:
        _check_alive(self.proc, self.ns.lab, "gobgpd")
        return self.gobgp("global", check=False).returncode == 0

    def gobgp(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``gobgp ARGS`` against this gobgpd (run in its namespace: the API is on the namespace's loopback)."""
        return self.ns.run("gobgp", "-u", GOBGP_API[0], "-p", GOBGP_API[1], *args, check=check)

    def gobgp_json(self, *args: str) -> Any:
        """``gobgp -j ARGS`` parsed (None when GoBGP prints nothing)."""
        out = self.gobgp("-j", *args).stdout
        return json.loads(out) if out.strip() else None

    def neighbor(self, address: str) -> dict[str, Any]:
        """``gobgp -j neighbor ADDRESS``: ``conf``, ``state`` (``session_state``, ``messages`` sent/received by type),
        ``timers`` (``state.uptime``), ``afi_safis``."""
        return dict(self.gobgp_json("neighbor", address) or {})

    def session_state(self, neighbor: str) -> str:
        """``Established``, ``Active``, ... (GoBGP's session state by number), ``""`` if unknown."""
        state = (self.neighbor(neighbor).get("state") or {}).get("session_state")
        return _GOBGP_STATES.get(int(state), str(state)) if state is not None else ""

    def routes(self, afi: str = "ipv4") -> dict[str, Route]:
        """Best path per prefix in GoBGP's global RIB (its own routes too: no AS path, no next hop)."""
        if afi not in ("ipv4", "ipv6"):
            raise ValueError(afi)
        return parse_gobgp_routes(self.gobgp_json("global", "rib", "-a", afi))

    def routes_for(self, prefix: str) -> dict[str, Route]:
        return self.routes(_afi_of(prefix))

    def announce(
        self,
        prefix: str,
        *,
        med: int | None = None,
        communities: Sequence[str] = (),
        ext_communities: Sequence[str] = (),
        large_communities: Sequence[str] = (),
    ) -> None:
        """Originate ``prefix`` (``gobgp global rib add``) with these attributes (``ext_communities``: route targets
        ``rt A:B`` only, what the CLI offers for unicast)."""
        args = ["global", "rib", "add", "-a", _afi_of(prefix), prefix, "origin", "igp"]
        if med is not None:
            args += ["med", str(med)]
        if communities:
            args += ["community", ",".join(communities)]
        if large_communities:
            args += ["large-community", ",".join(large_communities)]
        for ext in ext_communities:
            kind, value = ext.split()
            if kind != "rt":
                raise ValueError(f"GoBGP's CLI adds route targets only: {ext!r}")
            args += ["rt", value]
        self.gobgp(*args)

    def withdraw(self, prefix: str) -> None:
        """Stop originating ``prefix``."""
        self.gobgp("global", "rib", "del", "-a", _afi_of(prefix), prefix)

    def stop(self) -> None:
        """Stop gobgpd by pid (SIGTERM)."""
        self.ns.lab.stop_processes([self.proc])

    def kill(self) -> None:
        """Crash gobgpd: SIGKILL."""
        self.ns.lab.kill_processes([self.proc])


# ---- OpenBGPD


OPENBGPD_SBIN = Path("/usr/sbin")
OPENBGPD_USER = "_openbgpd"
"""Debian's openbgpd drops privileges to this user and chroots to its home (``/run/openbgpd``, made by systemd's
``RuntimeDirectory``; without systemd the harness makes it)."""


@dataclass(frozen=True)
class OpenBgpdNeighbor:
    """A ``neighbor`` block for :func:`openbgpd_config`."""

    address: str
    remote_as: int
    local_address: str | None = None
    password: str | None = None
    hold_time: int | None = None
    passive: bool = False
    extra: tuple[str, ...] = ()
    """Raw lines inside the block."""


@dataclass(frozen=True)
class OpenBgpdNetwork:
    """A ``network`` OpenBGPD announces, with the attributes it sets (``ext_communities`` as ``rt 65030:1``)."""

    prefix: str
    communities: tuple[str, ...] = ()
    ext_communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()

    def set_args(self) -> list[str]:
        """The attributes as ``bgpctl network add`` and the config's ``set { }`` take them."""
        args: list[str] = []
        for c in self.communities:
            args += ["community", c]
        for c in self.ext_communities:
            args += ["ext-community", *c.split()]
        for c in self.large_communities:
            args += ["large-community", c]
        return args


def openbgpd_config(
    asn: int,
    router_id: str,
    neighbors: Sequence[OpenBgpdNeighbor],
    networks: Sequence[OpenBgpdNetwork | str] = (),
    *,
    extra: str = "",
) -> str:
    """A typical bgpd.conf for a lab peer: no FIB updates, connect retry 1 s, ``allow from any`` / ``allow to any``
    (OpenBGPD denies both by default).  :class:`OpenBgpdPeer` adds its own control socket."""
    lines = [f"AS {asn}", f"router-id {router_id}", "fib-update no", "connect-retry 1"]
    for net in networks:
        n = net if isinstance(net, OpenBgpdNetwork) else OpenBgpdNetwork(net)
        sets = n.set_args()
        lines.append(f"network {n.prefix}" + (f" set {{ {' '.join(sets)} }}" if sets else ""))
    for nb in neighbors:
        lines.append(f"neighbor {nb.address} {{")
        lines.append(f"    remote-as {nb.remote_as}")
        if nb.local_address:
            lines.append(f"    local-address {nb.local_address}")
        if nb.password:
            lines.append(f"    tcp md5sig password {json.dumps(nb.password)}")
        if nb.hold_time is not None:
            lines.append(f"    holdtime {nb.hold_time}")
        if nb.passive:
            lines.append("    passive")
        lines.extend(f"    {x}" for x in nb.extra)
        lines.append("}")
    lines += ["allow from any", "allow to any"]
    if extra:
        lines.append(extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


def _openbgpd_path(entry: dict[str, Any]) -> Route:
    neighbor = entry.get("neighbor") or {}
    hop = str(entry.get("exit_nexthop", ""))  # the NEXT_HOP attribute ("true_nexthop" is how OpenBGPD reaches it)
    local = neighbor.get("description") == "LOCAL"
    med = entry.get("metric")
    return Route(
        prefix=str(entry["prefix"]),
        as_path=_as_path(str(entry.get("aspath", ""))),
        med=None if med is None else int(med),
        next_hop="" if local or hop in ("0.0.0.0", "::") else hop,
        origin=str(entry.get("origin", "")).lower(),
        local_pref=entry.get("localpref"),
        communities=tuple(str(c) for c in entry.get("communities") or []),
        large_communities=tuple(str(c) for c in entry.get("large_communities") or []),
        source="" if local else str(neighbor.get("remote_addr", "")),
        ext_communities=tuple(str(c) for c in entry.get("extended_communities") or []),
    )


def parse_openbgpd_rib(data: dict[str, Any]) -> dict[str, Route]:
    """The best path per prefix from ``bgpctl -j show rib detail``."""
    routes: dict[str, Route] = {}
    for entry in data.get("rib") or []:
        prefix = str(entry.get("prefix", ""))
        if entry.get("best") or prefix not in routes:
            routes[prefix] = _openbgpd_path(entry)
    return routes


class OpenBgpdPeer(BgpPeer):
    """OpenBGPD (``bgpd -d -f CONF``: parent, session engine, RDE and RTR processes) in a namespace, driven through
    ``bgpctl -s SOCK`` on its own control socket (the config's ``socket``; the default path would be shared by every
    OpenBGPD of the machine)."""

    def __init__(self, ns: Netns, config_text: str, *, timeout: float = 15.0) -> None:
        import pwd

        self.ns = ns
        self.dir = ns.lab.make_dir(f"openbgpd-{ns.short}")
        self.sock = self.dir / "bgpd.sock"
        self.conf = self.dir / "bgpd.conf"
        self.conf.write_text(f'socket "{self.sock}"\n' + config_text)
        self.conf.chmod(0o600)  # bgpd refuses a config others can read only with passwords in it; keep it private
        chroot = Path(pwd.getpwnam(OPENBGPD_USER).pw_dir)
        chroot.mkdir(mode=0o755, exist_ok=True)  # systemd's RuntimeDirectory where there is systemd
        proc = ns.run(str(OPENBGPD_SBIN / "bgpd"), "-n", "-f", str(self.conf), check=False)
        if proc.returncode != 0:
            raise ValueError(f"OpenBGPD rejects the config: {(proc.stdout + proc.stderr).strip()}\n{config_text}")
        self.proc = ns.popen(str(OPENBGPD_SBIN / "bgpd"), "-d", "-f", str(self.conf), label="bgpd")
        poll(self._ready, timeout, f"{ns.name}: OpenBGPD not answering on {self.sock}")

    def __repr__(self) -> str:
        return f"OpenBgpdPeer({self.ns.name})"

    def _ready(self) -> bool:
        _check_alive(self.proc, self.ns.lab, "bgpd")
        return self.sock.exists() and self.bgpctl("show", check=False).returncode == 0

    def bgpctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``bgpctl -s SOCK ARGS``."""
        return _run([str(OPENBGPD_SBIN / "bgpctl"), "-s", str(self.sock), *args], check=check)

    def bgpctl_json(self, *args: str) -> Any:
        """``bgpctl -j -s SOCK ARGS`` parsed."""
        out = self.bgpctl("-j", *args).stdout
        return json.loads(out) if out.strip() else {}

    def neighbor(self, address: str) -> dict[str, Any]:
        """The neighbour at ``address`` in ``bgpctl -j show neighbor``: ``state``, ``stats.message`` sent/received by
        type (``updates``, ``route_refresh``...), ``session`` (local and remote address and port)."""
        # All of them, then by address: `bgpctl show neighbor fe80::8%eth1` finds none, and bgpctl (run outside the
        # namespace) names a scope by the interface of that index in its own namespace: compared without it.
        found = [n for n in self.bgpctl_json("show", "neighbor").get("neighbors") or []
                 if str(n.get("remote_addr", "")).split("%")[0] == address.split("%")[0]]
        return dict(found[0]) if found else {}

    def session_state(self, neighbor: str) -> str:
        return str(self.neighbor(neighbor).get("state", ""))

    def routes(self, afi: str = "ipv4") -> dict[str, Route]:
        """Best path per prefix in OpenBGPD's Loc-RIB (its own networks too: no AS path, no next hop)."""
        family = {"ipv4": "inet", "ipv6": "inet6"}[afi]
        return parse_openbgpd_rib(self.bgpctl_json("show", "rib", "detail", family))

    def routes_for(self, prefix: str) -> dict[str, Route]:
        return self.routes(_afi_of(prefix))

    def announce(self, prefix: str, **attrs: Sequence[str]) -> None:
        """Originate ``prefix`` at run time (``bgpctl network add``); ``attrs`` as :class:`OpenBgpdNetwork`'s."""
        net = OpenBgpdNetwork(prefix, **{k: tuple(v) for k, v in attrs.items()})
        self.bgpctl("network", "add", prefix, *net.set_args())

    def withdraw(self, prefix: str) -> None:
        """Stop originating ``prefix`` (``bgpctl network delete``)."""
        self.bgpctl("network", "delete", prefix)

    def stop(self) -> None:
        """Stop bgpd by pid (SIGTERM to the parent; its engines follow, anything left is reaped at teardown)."""
        self.ns.lab.stop_processes([self.proc])

    def kill(self) -> None:
        """Crash the parent bgpd: SIGKILL."""
        self.ns.lab.kill_processes([self.proc])


# --------------------------------------------------------------------------------------------------------------------
# Requirements


LAB_TOOLS = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "nft": "nftables",
    "bird": "bird2",
    "birdc": "bird2",
    "vtysh": "frr",
    str(FRR_SBIN / "zebra"): "frr",
    str(FRR_SBIN / "bgpd"): "frr",
    str(FRR_SBIN / "bfdd"): "frr",
    "gobgpd": "gobgpd",
    "gobgp": "gobgpd",
    str(OPENBGPD_SBIN / "bgpd"): "openbgpd",
    str(OPENBGPD_SBIN / "bgpctl"): "openbgpd",
}


def missing_requirements() -> list[str]:
    """Why lab tests cannot run here (empty when they can)."""
    if os.geteuid() != 0:
        return ["not root: lab tests create network namespaces and run FRR/BIRD"]
    missing = sorted({pkg for tool, pkg in LAB_TOOLS.items() if shutil.which(tool) is None})
    reasons = [f"apt package {pkg} not installed" for pkg in missing]
    try:
        import pwd

        pwd.getpwnam("frr")
    except KeyError:
        reasons.append("no user frr (apt package frr)")
    try:
        pwd.getpwnam(OPENBGPD_USER)
    except KeyError:
        reasons.append(f"no user {OPENBGPD_USER} (apt package openbgpd)")
    return reasons


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--watch":
        return _watch(argv[1])
    if argv == ["--list-stale"]:
        for rid, names in stale_runs().items():
            print(rid, " ".join(names))
        return 0
    if argv == ["--reap-stale"]:
        for rid in reap_stale():
            print("reaped", rid)
        return 0
    print("usage: harness.py --list-stale | --reap-stale", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


__all__ = [
    "BIRD_EXPORT_STATIC",
    "BgpPeer",
    "BirdNeighbor",
    "BirdPeer",
    "BirdStatic",
    "FrrNeighbor",
    "FrrPeer",
    "GoBgpNeighbor",
    "GoBgpPeer",
    "Lab",
    "LabCommandError",
    "LabLeakError",
    "Link",
    "Netns",
    "OpenBgpdNeighbor",
    "OpenBgpdNetwork",
    "OpenBgpdPeer",
    "Route",
    "assert_stays",
    "bird_config",
    "bird_static_block",
    "cleanup_run",
    "ext_community",
    "frr_config",
    "gobgp_config",
    "list_netns",
    "missing_requirements",
    "openbgpd_config",
    "parse_bird_protocol_state",
    "parse_bird_routes",
    "parse_frr_routes",
    "parse_gobgp_routes",
    "parse_openbgpd_rib",
    "poll",
    "reap_stale",
    "stale_runs",
]
