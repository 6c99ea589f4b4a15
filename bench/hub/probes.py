"""What the benchmark measures with: BIRD's control socket, a netlink monitor of the hub's kernel table, and a
sampler of the hub's process tree (CPU seconds, RSS). Standard library plus mcrd's own netlink codec."""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
import time
from pathlib import Path

from mcrd.fib import netlink as nl
from mcrd.fib.netns import enter_netns

# --- BIRD control socket --------------------------------------------------------------------------------------------

_FINAL = re.compile(rb"^\d{4} ", re.M)
_COUNT = re.compile(r"(\d+) of (\d+) routes for (\d+) networks")
_ROUTE = re.compile(r"^(?:\d{4}[- ]| )?(\d+\.\d+\.\d+\.\d+/\d+)\s+\S+\s+\[(\S+) ([\d.]+)")


class BirdCtl:
    """One persistent connection to `bird -s SOCK` (the birdc protocol: 4-digit codes, a space ends a reply)."""

    def __init__(self, path: Path | str, timeout: float = 60.0) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self._buf = b""
        self._reply()  # greeting "0001 BIRD x.y.z ready."

    def close(self) -> None:
        self.sock.close()

    def _reply(self) -> str:
        data = self._buf
        while True:
            # the final line of a reply starts with a code and a space, at the start of a line
            start = max(0, len(data) - 65536 - 200)
            match = None
            for match in _FINAL.finditer(data, start):
                end = data.find(b"\n", match.start())
                if end >= 0:
                    self._buf = data[end + 1 :]
                    return data[: end + 1].decode(errors="replace")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"BIRD closed {self.path}")
            data += chunk

    def send(self, command: str) -> None:
        self.sock.sendall(command.encode() + b"\n")

    def cmd(self, command: str) -> str:
        self.send(command)
        return self._reply()

    def reply(self) -> str:
        """The reply of a command sent with `send()`."""
        return self._reply()

    def count(self, protocol: str) -> int:
        text = self.cmd(f"show route protocol {protocol} count")
        m = _COUNT.search(text)
        if not m:
            raise RuntimeError(f"{self.path}: unexpected count reply {text[-300:]!r}")
        return int(m.group(1))

    def routes(self, protocol: str) -> dict[str, float]:
        """prefix -> time of the route's last change (epoch seconds; needs `timeformat route "%s.%3f"`)."""
        out = {}
        for line in self.cmd(f"show route protocol {protocol}").splitlines():
            m = _ROUTE.match(line)
            if m:
                out[m.group(1)] = float(m.group(3))
        return out

    def state(self, protocol: str) -> str:
        for line in self.cmd(f"show protocols {protocol}").splitlines():
            parts = line.split()
            # "1002-hub  BGP  ---  up  20:20:40.361  Established" (Info may go on: "Active  Socket: ...")
            if len(parts) >= 6 and parts[0].split("-", 1)[-1] == protocol:
                return parts[5]
        return ""


# --- the hub's kernel table, watched over netlink -------------------------------------------------------------------

RTMGRP_IPV4_ROUTE = 0x40


class KernelMonitor(threading.Thread):
    """Follows the routes of one protocol in table main of a namespace (IPv4), from netlink route events.

    `target` is the set the table must reach (prefix -> gateway); `complete_at` is the time of the event that made
    the table equal to it (None while it differs). A receive-buffer overrun (ENOBUFS) is recovered by a dump and
    counted in `overruns` (the time of that moment is then the dump's)."""

    def __init__(self, netns: str, protocol: int) -> None:
        super().__init__(name=f"kmon-{netns}", daemon=True)
        self.netns, self.protocol = netns, protocol
        self.state: dict[str, str] = {}
        self.target: dict[str, str] = {}
        self._good = 0  # prefixes in state with the target gateway
        self.complete_at: float | None = None
        self.last_change = 0.0
        self.events = 0
        self.overruns = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._started = threading.Event()

    # called from the main thread
    def set_target(self, target: dict[str, str]) -> None:
        with self._lock:
            self.target = target
            self._good = sum(1 for p, g in self.state.items() if target.get(p) == g)
            self._check(time.time())

    def snapshot(self) -> tuple[int, float | None]:
        with self._lock:
            return len(self.state), self.complete_at

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def wait_started(self) -> None:
        self._started.wait(10)
        if self.error:
            raise self.error

    # the thread
    def _check(self, now: float) -> None:
        equal = self._good == len(self.target) == len(self.state)
        if equal and self.complete_at is None:
            self.complete_at = now
        elif not equal:
            self.complete_at = None

    def _apply(self, kind: int, payload: memoryview, now: float) -> None:
        route = nl.decode_route(payload)
        if route is None or route[4] != self.protocol:
            return
        prefix, gateway = route[0], route[1]
        old = self.state.get(prefix)
        want = self.target.get(prefix)
        if old is not None and old == want:
            self._good -= 1
        if kind == nl.RTM_NEWROUTE:
            self.state[prefix] = gateway
            if gateway == want:
                self._good += 1
        else:
            self.state.pop(prefix, None)
        self.events += 1
        self.last_change = now

    def _dump(self) -> dict[str, str]:
        sock = nl.RouteSocket()
        try:
            out: dict[str, str] = {}
            # strict checking filters the dump in the kernel: table main, our protocol
            body = nl.RTMSG.pack(socket.AF_INET, 0, 0, 0, nl.RT_TABLE_MAIN, self.protocol, 0, 0, 0)
            sock.seq += 1
            sock.sock.send(nl.frame(nl.RTM_GETROUTE, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, sock.seq, body))
            while True:
                for kind, flags, seq, payload in nl.messages(sock.sock.recv(1 << 20)):
                    if seq != sock.seq:
                        continue
                    if kind == nl.NLMSG_DONE:
                        return out
                    if kind == nl.NLMSG_ERROR:
                        code, text = nl.decode_ack(flags, payload)
                        raise OSError(code, f"route dump: {os.strerror(code)} {text}")
                    route = nl.decode_route(payload)
                    if route is not None and route[4] == self.protocol:
                        out[route[0]] = route[1]
        finally:
            sock.close()

    def run(self) -> None:
        try:
            enter_netns(self.netns)
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, nl.SO_RCVBUFFORCE, 1 << 30)
            sock.bind((0, RTMGRP_IPV4_ROUTE))
            sock.settimeout(0.2)
            with self._lock:
                self.state = self._dump()
                self._check(time.time())
        except BaseException as exc:
            self.error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while not self._halt.is_set():
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    self.overruns += 1
                    fresh = self._dump()
                    with self._lock:
                        self.state = fresh
                        self._good = sum(1 for p, g in fresh.items() if self.target.get(p) == g)
                        self.last_change = time.time()
                        self._check(self.last_change)
                    continue
                now = time.time()
                with self._lock:
                    for kind, _flags, _seq, payload in nl.messages(data):
                        if kind in (nl.RTM_NEWROUTE, nl.RTM_DELROUTE):
                            self._apply(kind, payload, now)
                    self._check(now)
        except BaseException as exc:
            self.error = exc
        finally:
            sock.close()

    def verify(self) -> dict[str, str]:
        """A fresh dump of the table (from a helper thread in the namespace)."""
        result: dict[str, object] = {}

        def work() -> None:
            try:
                enter_netns(self.netns)
                result["routes"] = self._dump()
            except BaseException as exc:
                result["error"] = exc

        helper = threading.Thread(target=work)
        helper.start()
        helper.join(60)
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        return result["routes"]  # type: ignore[return-value]


# --- the hub's process tree -------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(roots: list[int]) -> list[int]:
    """The roots and all their descendants (from /proc/PID/task/TID/children)."""
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    todo += [int(c) for c in handle.read().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError):
        return 0.0


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid`, as "TID name" (Python does not name its OS threads: the main thread's
    TID is the PID)."""
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as handle:
                name = handle.read().rpartition(")")[0].partition("(")[2]
            # schedstat's first field: nanoseconds on a CPU (stat's utime + stime count 10-ms ticks)
            with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                out[f"{task} {name}"] = int(handle.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return out


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError):
        return 0


def hwm_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every `interval` s; `peak` is the largest sum seen. CPU seconds
    are read on demand (`cpu()`), summed over the tree as it is at that moment."""

    def __init__(self, roots: list[int], interval: float = 0.1) -> None:
        super().__init__(name="tree-sampler", daemon=True)
        self.roots, self.interval = roots, interval
        self.peak = 0
        self.peak_by_pid: dict[int, int] = {}
        self.seen: dict[int, str] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> int:
        pids = tree(self.roots)
        for pid in pids:
            if pid not in self.seen:
                self.seen[pid] = comm(pid)
        sizes = {p: rss_bytes(p) for p in pids}
        for pid, size in sizes.items():
            self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), size)
        total = sum(sizes.values())
        self.peak = max(self.peak, total)
        return total

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in tree(self.roots))

    def cpu_by_process(self) -> dict[str, float]:
        return {f"{pid} {self.seen.get(pid) or comm(pid)}": cpu_seconds(pid) for pid in tree(self.roots)}

    def cpu_by_thread(self) -> dict[str, float]:
        """CPU seconds of every thread of the tree, named "PID TID name"."""
        return {f"{pid} {name}": cpu for pid in tree(self.roots) for name, cpu in cpu_by_thread(pid).items()}

    def hwm(self) -> int:
        """Sum of each process's own peak RSS (VmHWM): an upper bound of the tree's peak."""
        return sum(hwm_bytes(p) for p in tree(self.roots))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


