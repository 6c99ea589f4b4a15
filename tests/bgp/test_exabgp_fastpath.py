"""The send fast path's hooks (mcrd/bgp/exabgp_fastpath.py, exabgp_launch fix 9) on ExaBGP 5.0.15.

The hooked names and signatures are checked on ExaBGP's own classes; the byte queue on a real socket pair with a
small buffer; the whole path on a real ExaBGP, started through mcrd's launcher with `MCRD_FAST_PATH=1`, that connects
over loopback to a raw BGP speaker (tests/bgp/rawbgp.py): no root needed.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from exabgp.bgp.message.direction import Direction  # type: ignore[import-untyped]
from exabgp.bgp.message.update import Update  # type: ignore[import-untyped]

from mcrd.bgp import exabgp_config, exabgp_fastpath, wire
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes
from tests.bgp import rawbgp
from tests.bgp.test_wire import canonical
from tests.bgp.test_wire import session as wire_session

HUB, PEER = "127.0.0.1", "127.0.0.2"
HUB_AS, PEER_AS = 133937, 65099
ROOT = Path(__file__).resolve().parents[2]


# --- every hooked name, as the hooks call it --------------------------------------------------------------------------


def test_every_hooked_name_has_the_signature_the_hooks_were_written_for() -> None:
    from exabgp.bgp.fsm import FSM  # type: ignore[import-untyped]
    from exabgp.reactor.api import API  # type: ignore[import-untyped]
    from exabgp.reactor.api.processes import Processes  # type: ignore[import-untyped]
    from exabgp.reactor.api.response.json import JSON  # type: ignore[import-untyped]
    from exabgp.reactor.loop import Reactor  # type: ignore[import-untyped]
    from exabgp.reactor.network.connection import Connection  # type: ignore[import-untyped]
    from exabgp.reactor.network.error import LostConnection, NetworkError  # type: ignore[import-untyped]
    from exabgp.reactor.peer import ACTION, Peer  # type: ignore[import-untyped]

    def params(function: Callable[..., Any]) -> list[str]:
        names = list(inspect.signature(function).parameters)
        if names == ["self", "args"] and function.__closure__:  # Processes' `silenced` decorator: the one it wraps
            return params(function.__closure__[0].cell_contents)
        return names

    assert params(API.process) == ["self", "reactor", "service", "command"]
    assert params(Processes.up) == ["self", "neighbor"]
    assert params(Processes.down) == ["self", "neighbor", "reason"]
    assert params(Processes.answer_done) == ["self", "service", "force"]
    assert params(Processes.answer_error) == ["self", "service"]
    assert params(JSON.up) == ["self", "neighbor"]
    assert params(JSON.down) == ["self", "neighbor", "reason"]
    assert params(Connection.writer) == ["self", "data"]
    assert params(Reactor._wait_for_io) == ["self", "sleeptime"]
    assert params(Peer.run) == ["self"]
    assert not inspect.isgeneratorfunction(Peer.run)
    assert {ACTION.NOW, ACTION.LATER} <= set(ACTION.ALL)
    assert inspect.isgeneratorfunction(Reactor._wait_for_io)
    assert "self._poller = select.poll()" in inspect.getsource(Reactor.__init__)
    assert "self._peers = {}" in inspect.getsource(Reactor.__init__)
    assert params(Connection.close) == ["self"]
    assert inspect.isgeneratorfunction(Connection.writer)
    assert issubclass(LostConnection, Exception)
    assert issubclass(NetworkError, Exception)
    assert FSM.ESTABLISHED is not None


# --- the command ------------------------------------------------------------------------------------------------------


ATTRS = PathAttributes("self", (133937, 4200000001, 65010), Origin.EGP, med=7, local_pref=300,
                       communities=("65000:1", "65000:20"), as_set=(64600,),
                       extended_communities=(ExtendedCommunity(0x0002FDE800000001, "target:65000:1"),),
                       large_communities=("4200000001:30:1",))


def test_a_command_reads_back_as_it_was_built() -> None:
    line = exabgp_fastpath.announce_command(["192.0.2.1#3", "2001:db8::1#12"], ATTRS, ["10.0.0.0/24"])
    assert line.startswith("mcrd {")
    assert "\n" not in line
    command = exabgp_fastpath.parse_command(line)
    assert command.sessions == (("192.0.2.1", 3), ("2001:db8::1", 12))
    assert command.attributes is not None
    assert command.attributes == ATTRS  # the extended community's text is not compared (nor sent)
    assert command.nlri == ("10.0.0.0/24",)
    withdraw = exabgp_fastpath.parse_command(exabgp_fastpath.withdraw_command(["192.0.2.1#3"], ["10.0.0.0/24"]))
    assert (withdraw.op, withdraw.attributes, withdraw.nlri) == ("withdraw", None, ("10.0.0.0/24",))
    assert exabgp_fastpath.parse_command(exabgp_fastpath.eor_command(["192.0.2.1#3"], 6)).family == 6


@pytest.mark.parametrize(("line", "message"), [
    ("mcrd {", "not JSON"),
    ('mcrd {"op": "replace"}', "op announce, withdraw, eor, borr or eorr"),
    ('mcrd {"op": "withdraw", "sessions": ["192.0.2.1"]}', "PEER#INSTANCE"),
    ('mcrd {"op": "announce", "sessions": []}', "announce without attributes"),
    ('mcrd {"op": "eor", "sessions": [], "family": 5}', "family 5"),
])
def test_a_bad_command_is_named(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exabgp_fastpath.parse_command(line)


# --- the ordered byte queue -------------------------------------------------------------------------------------------


class _Connection:
    """What the ordered writer uses of ExaBGP's Connection: `io` and `close()`."""

    def __init__(self, io: socket.socket) -> None:
        self.io: socket.socket | None = io

    def close(self) -> None:
        self.io = None


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(type, length) of each message in a byte stream; fails on a broken marker."""
    frames = []
    while data:
        assert data[:16] == wire.MARKER, f"no marker where a message should start: {data[:24].hex()}"
        length, kind = struct.unpack("!HB", data[16:19])
        frames.append((kind, length))
        data = data[length:]
    return frames


@contextlib.contextmanager
def _half_sent_burst() -> Iterator[tuple[socket.socket, Any, list[bytes], list[Iterator[bool]]]]:
    """A socket pair with 4 KiB buffers, and the ordered writers of a burst of 64 KiB UPDATEs on our end, the first
    one started and not whole: (their end, our connection, the UPDATEs, their writers)."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours.setblocking(False)
        connection = _Connection(ours)
        attrs = PathAttributes("self", (65001,))
        nlris = [wire.nlri(f"10.{i // 256}.{i % 256}.0/24")[1] for i in range(16000)]
        updates = list(wire.announcements(attrs, 4, nlris, wire.Profile(max_size=wire.EXTENDED_SIZE), "192.0.2.2"))
        writers = [exabgp_fastpath.ordered_writer(connection, message) for message in updates]
        assert next(writers[0]) is False, "the socket took a whole 64 KiB UPDATE: the test proves nothing"
        yield theirs, connection, updates, writers


def _drain(sock: socket.socket) -> bytes:
    """What has arrived on `sock` and not been read yet."""
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := sock.recv(1 << 20, socket.MSG_DONTWAIT):
            data += chunk
    return data


def test_a_keepalive_written_while_an_update_is_half_sent_goes_after_it() -> None:
    with _half_sent_burst() as (theirs, connection, updates, writers):
        keepalive = exabgp_fastpath.ordered_writer(connection, rawbgp.keepalive())
        assert next(keepalive) is False  # behind the UPDATE's last byte
        received = bytearray()
        pending = [*writers, keepalive]
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                received += theirs.recv(1 << 20, socket.MSG_DONTWAIT)
            pending = [writer for writer in pending if next(writer) is False]
        assert not pending
        received += _drain(theirs)
        assert _frames(bytes(received)) == [(wire.UPDATE, len(m)) for m in updates] + [(4, 19)]


def test_a_notification_goes_right_after_the_message_being_sent() -> None:
    with _half_sent_burst() as (theirs, connection, updates, writers):
        for writer in writers[1:]:
            assert next(writer) is False
        cease = exabgp_fastpath.ordered_writer(connection, rawbgp.notification(6, 2))
        received = bytearray()
        deadline = time.monotonic() + 10
        while next(cease) is False:
            assert time.monotonic() < deadline
            with contextlib.suppress(BlockingIOError):
                received += theirs.recv(1 << 20, socket.MSG_DONTWAIT)
        received += _drain(theirs)
        # The UPDATE being sent goes whole, then the NOTIFICATION; what was queued behind it is dropped.
        assert _frames(bytes(received)) == [(wire.UPDATE, len(updates[0])), (3, 21)]
        assert all(next(writer) is True for writer in writers)  # their bytes count as gone: none waits for ever


def test_a_notification_a_peer_does_not_take_gives_up() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        connection = _Connection(ours)
        filler = exabgp_fastpath.ordered_writer(connection, wire.MARKER + struct.pack("!HB", 65535, wire.UPDATE)
                                                + bytes(65535 - 19))
        assert next(filler) is False
        cease = exabgp_fastpath.ordered_writer(connection, rawbgp.notification(4, 0))
        from exabgp.reactor.network.error import NetworkError

        def until_it_gives_up() -> None:
            while next(cease) is False:
                assert time.monotonic() < started + exabgp_fastpath.NOTIFY_WAIT + 5
                time.sleep(0.05)

        started = time.monotonic()
        with pytest.raises(NetworkError, match="took no NOTIFICATION"):
            until_it_gives_up()
        assert time.monotonic() - started >= exabgp_fastpath.NOTIFY_WAIT
        assert connection.io is None  # closed


# --- a real ExaBGP and a raw peer -------------------------------------------------------------------------------------


API_BRIDGE = """
import os, sys, threading
out, fifo = sys.argv[1], sys.argv[2]
def commands():
    with open(fifo, "rb", 0) as source:
        for line in source:
            os.write(1, line)
threading.Thread(target=commands, daemon=True).start()
with open(out, "ab", 0) as sink:
    while chunk := os.read(0, 65536):
        sink.write(chunk)
"""


class Hub:
    """ExaBGP through mcrd's launcher with the fast path on: one neighbor, the raw peer, that ExaBGP connects to."""

    def __init__(self, tmp: Path, port: int, environ: dict[str, str] | None = None,
                 api: str = "neighbor-changes;") -> None:
        self.out, self.fifo = tmp / "api.jsonl", tmp / "commands"
        os.mkfifo(self.fifo)
        bridge = tmp / "bridge.py"
        bridge.write_text(API_BRIDGE)
        (tmp / "exabgp.conf").write_text(f"""process mcrd {{
    run {sys.executable} {bridge} {self.out} {self.fifo};
    encoder json;
}}
neighbor {PEER} {{
    router-id {HUB}; local-address {HUB}; local-as {HUB_AS}; peer-as {PEER_AS}; hold-time 90; connect {port};
    adj-rib-out false; manual-eor true;
    family {{ ipv4 unicast; ipv6 unicast; }}
    capability {{ route-refresh disable; graceful-restart disable; extended-message enable; }}
    api {{ processes [ mcrd ]; {api} }}
}}
""")
        env = {**os.environ, **exabgp_config.environment(), exabgp_fastpath.FAST_PATH_ENV: "1",
               "exabgp_tcp_bind": "", "exabgp_tcp_port": str(port), **(environ or {})}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        self.stderr = (tmp / "stderr").open("w")
        command = [sys.executable, "-m", "mcrd.bgp.exabgp_launch", "server", str(tmp / "exabgp.conf")]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.commands = open(self.fifo, "w")  # noqa: SIM115  (blocks until the bridge opens it: ExaBGP started)

    def send(self, line: str) -> None:
        self.commands.write(line + "\n")
        self.commands.flush()

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def wait_line(self, match: Callable[[str], bool], after: int = 0, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines()[after:] if match(line)]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"ExaBGP exited: {self.proc.returncode}"
            time.sleep(0.05)
        raise AssertionError(f"no such line from ExaBGP in {timeout} s; got {self.lines()[after:]}")

    def stop(self) -> None:
        if self.commands.closed:
            return
        self.commands.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.stderr.close()


@pytest.fixture
def hub_and_listener() -> Iterator[tuple[Hub, socket.socket]]:
    listener = rawbgp.listener(PEER, 0)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the accepted connections inherit it
    port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Path(tmp), port, {exabgp_fastpath.SNDBUF_ENV: "4096"})  # a slow reader fills both soon
        try:
            yield hub, listener
        finally:
            hub.stop()
            listener.close()


def _session(hub: Hub, listener: socket.socket) -> tuple[rawbgp.RawPeer, int, int]:
    """A new session: the raw peer, its instance, the index of the line after its `up`."""
    seen = len(hub.lines())
    peer = rawbgp.RawPeer(PEER_AS, PEER, hold=30)
    peer.accept(listener)
    line = hub.wait_line(lambda text: '"state": "up"' in text, seen)
    return peer, int(json.loads(line)[exabgp_fastpath.INSTANCE_KEY]), len(hub.lines())


def _routes(peer: rawbgp.RawPeer) -> list[tuple[str, str, str]]:
    """(action, prefix, next hop) of every route the raw peer received, as ExaBGP reads them, in order."""
    negotiated = copy.copy(wire_session(True, True, False, 4).negotiated)  # a 4-byte AS session, both families
    negotiated.families = [*negotiated.families, *wire_session(True, True, False, 6).negotiated.families]
    routes = []
    for body in list(peer.received.updates):
        update = Update.unpack_message(body, Direction.IN, negotiated)
        if type(update).__name__ == "EOR":
            routes.append(("eor", str(update.nlris[0].afi), ""))
            continue
        for nlri in update.nlris:
            routes.append((nlri.action.name.lower(), canonical(nlri), str(nlri.nexthop)))
    return routes


def _wait(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_routes_reach_the_session_they_name_and_not_a_later_one(hub_and_listener: tuple[Hub, socket.socket]) -> None:
    hub, listener = hub_and_listener
    peer, instance, after = _session(hub, listener)
    name = exabgp_fastpath.session_name(PEER, instance)
    hub.send(exabgp_fastpath.announce_command([name], ATTRS, ["10.1.0.0/24", "10.2.0.0/16"]))
    hub.send(exabgp_fastpath.withdraw_command([name], ["10.2.0.0/16"]))
    hub.send(exabgp_fastpath.eor_command([name], 4))
    _wait(lambda: any(len(body) == 4 for body in peer.received.updates))  # End-of-RIB: an empty UPDATE
    assert _routes(peer) == [("announce", "10.1.0.0/24", HUB), ("announce", "10.2.0.0/16", HUB),
                             ("withdraw", "10.2.0.0/16", "no-nexthop"), ("eor", "ipv4", "")]
    assert [line for line in hub.lines()[after:] if line in ("done", "error")] == ["done", "done", "done"]

    # The session flaps: what was meant for the old one does not reach the new one.
    peer.close()
    hub.wait_line(lambda text: '"state": "down"' in text, after)
    peer, new_instance, after = _session(hub, listener)
    assert new_instance != instance
    hub.send(exabgp_fastpath.announce_command([name], ATTRS, ["10.66.0.0/16"]))
    hub.send(exabgp_fastpath.announce_command([exabgp_fastpath.session_name(PEER, new_instance)], ATTRS,
                                              ["10.3.0.0/24"]))
    _wait(lambda: bool(peer.received.updates))
    # Nothing more to wait for: the stale command came first, so its route would have arrived first.
    assert _routes(peer) == [("announce", "10.3.0.0/24", HUB)]
    peer.close()


def test_a_bad_command_answers_error_and_exabgp_goes_on(hub_and_listener: tuple[Hub, socket.socket]) -> None:
    hub, listener = hub_and_listener
    peer, instance, after = _session(hub, listener)
    name = exabgp_fastpath.session_name(PEER, instance)
    hub.send("mcrd {not json")
    hub.send(exabgp_fastpath.announce_command([name], ATTRS, ["10.1.0.0/33"]))  # packing fails: not a prefix
    hub.send(exabgp_fastpath.announce_command([name], ATTRS, ["2001:db8:5::/48"]))  # IPv4 session: no IPv6 address
    hub.send(exabgp_fastpath.announce_command([name], ATTRS, ["10.4.0.0/24"]))
    _wait(lambda: bool(peer.received.updates))
    assert [line for line in hub.lines()[after:] if line in ("done", "error")][:4] == ["error", "error", "error",
                                                                                      "done"]
    assert _routes(peer) == [("announce", "10.4.0.0/24", HUB)]
    assert peer.up
    assert hub.proc.poll() is None
    peer.close()


class StallingPeer(rawbgp.RawPeer):
    """A raw peer whose reader can stop (its keepalives go on): a slow reader. It keeps every message's type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading = threading.Event()
        self.reading.set()
        self.kinds: list[int] = []

    def _reader(self) -> None:
        try:
            while not self._stop.is_set():
                self.reading.wait()
                kind, body = self._read()
                self.kinds.append(kind)
                if kind == rawbgp.UPDATE:
                    self.received.updates.append(body)
                elif kind == rawbgp.NOTIFICATION:
                    self.received.notification = (body[0], body[1], body[2:])
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            self.received.closed = True


def _slow_reader(hub: Hub, listener: socket.socket, hold: int, stall: float, within: float) -> None:
    """A burst of 20,000 prefixes to a peer that stops reading for `stall` s: it keeps its session, and once it reads
    again it has every UPDATE, whole, within `within` s."""
    seen = len(hub.lines())
    peer = StallingPeer(PEER_AS, PEER, hold=hold)
    peer.accept(listener)
    instance = int(json.loads(hub.wait_line(lambda text: '"state": "up"' in text, seen))[exabgp_fastpath.INSTANCE_KEY])
    name = exabgp_fastpath.session_name(PEER, instance)
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(20000)]
    peer.reading.clear()
    for start in range(0, len(prefixes), 500):
        hub.send(exabgp_fastpath.announce_command([name], ATTRS, prefixes[start : start + 500]))
    _wait(lambda: hub.lines()[seen:].count("done") == len(prefixes) // 500)
    stalled = time.monotonic() + stall
    while time.monotonic() < stalled:
        assert hub.proc.poll() is None
        time.sleep(0.1)
    # The stall is real: the hub's send buffer is full (the rest waits in the launcher's queue).
    # Established only: an earlier test's connection to the same peer may still be closing. (With a state filter
    # ss leaves out the state column: Recv-Q, Send-Q, ...)
    [state] = subprocess.run(["ss", "-Htn", "state", "established", "src", HUB, "dst", PEER], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert int(state.split()[1]) > 2048, state
    peer.reading.set()
    _wait(lambda: sum(1 for route in _routes(peer) if route[0] == "announce") >= len(prefixes), timeout=within)
    routes = _routes(peer)  # every UPDATE parsed: the framing held
    assert sorted(prefix for _, prefix, _ in routes) == sorted(prefixes)
    assert peer.up
    assert not any('"state": "down"' in line for line in hub.lines()[seen:])
    if hold == 3:
        assert rawbgp.KEEPALIVE in peer.kinds[peer.kinds.index(rawbgp.UPDATE):], "no keepalive came with the burst"
    peer.close()


def test_a_slow_reader_with_hold_time_3_keeps_its_session_and_every_message_whole(
        hub_and_listener: tuple[Hub, socket.socket]) -> None:
    _slow_reader(*hub_and_listener, hold=3, stall=5, within=60)


def test_what_waits_for_a_slow_reader_goes_when_it_reads_not_with_the_next_keepalive(
        hub_and_listener: tuple[Hub, socket.socket]) -> None:
    _slow_reader(*hub_and_listener, hold=90, stall=2, within=5)  # keepalives every 30 s


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_peer_that_stops_costs_no_cpu_and_is_reset_after_its_hold_time(
        hub_and_listener: tuple[Hub, socket.socket]) -> None:
    """A peer that stops reading and sending (as one stopped by SIGSTOP) during a burst: ExaBGP's hold timer expires
    and its NOTIFICATION waits on the full socket. ExaBGP sleeps meanwhile (it looped without sleeping, ~66 % of a
    core, before `Peer.run` was hooked), gives up on the NOTIFICATION after NOTIFY_WAIT s, and reports the session
    down; the next session is exact."""
    hub, listener = hub_and_listener
    seen = len(hub.lines())
    peer = StallingPeer(PEER_AS, PEER, hold=3)
    peer.accept(listener)
    instance = int(json.loads(hub.wait_line(lambda text: '"state": "up"' in text, seen))[exabgp_fastpath.INSTANCE_KEY])
    name = exabgp_fastpath.session_name(PEER, instance)
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(20000)]
    peer.reading.clear()
    peer._stop.set()  # no more keepalives from it either
    stopped = time.monotonic()
    for start in range(0, len(prefixes), 500):
        hub.send(exabgp_fastpath.announce_command([name], ATTRS, prefixes[start : start + 500]))
    _wait(lambda: hub.lines()[seen:].count("done") == len(prefixes) // 500)
    hold_expired = stopped + 3 + 0.5
    while time.monotonic() < hold_expired:
        time.sleep(0.1)
    assert not any('"state": "down"' in line for line in hub.lines()[seen:])  # the NOTIFICATION is waiting
    before, started = _cpu_seconds(hub.proc.pid), time.monotonic()
    time.sleep(3)  # the measurement window, not a synchronisation
    share = (_cpu_seconds(hub.proc.pid) - before) / (time.monotonic() - started)
    assert share < 0.2, f"ExaBGP used {share:.0%} of a core while its NOTIFICATION waited"
    hub.wait_line(lambda text: '"state": "down"' in text, seen, timeout=exabgp_fastpath.NOTIFY_WAIT + 5)
    peer.close()
    # ExaBGP connects again: the new session gets only what is sent to it.
    again, instance, _ = _session(hub, listener)
    hub.send(exabgp_fastpath.announce_command([exabgp_fastpath.session_name(PEER, instance)], ATTRS, prefixes[:1000]))
    hub.send(exabgp_fastpath.announce_command([name], ATTRS, prefixes[1000:]))  # the old instance: dropped
    hub.send(exabgp_fastpath.eor_command([exabgp_fastpath.session_name(PEER, instance)], 4))
    _wait(lambda: any(len(body) == 4 for body in again.received.updates))
    routes = _routes(again)
    assert sorted(prefix for action, prefix, _ in routes if action == "announce") == sorted(prefixes[:1000])
    again.close()


def test_an_exabgp_started_again_does_not_repeat_the_last_ones_session_instances(
        hub_and_listener: tuple[Hub, socket.socket]) -> None:
    """A command for a session of an ExaBGP that died (sent to the next one) must name no session of the new one."""
    hub, listener = hub_and_listener
    peer, first, _ = _session(hub, listener)
    peer.close()
    hub.stop()
    with tempfile.TemporaryDirectory() as tmp:
        again = Hub(Path(tmp), listener.getsockname()[1])
        try:
            peer, second, _ = _session(again, listener)
            peer.close()
        finally:
            again.stop()
    assert second > first
