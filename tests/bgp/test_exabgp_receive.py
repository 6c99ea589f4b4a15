"""The receive fast path's hooks (mcrd/bgp/exabgp_receive.py, exabgp_launch fix 10) on ExaBGP 5.0.15.

What the hooks rely on in ExaBGP's own code is checked on its source; which UPDATEs take the fast path on ExaBGP's own
negotiated sessions; the whole path on a real ExaBGP started through mcrd's launcher with `MCRD_FAST_PATH=1`,
connected over loopback to a raw BGP speaker (tests/bgp/rawbgp.py): no root needed.
"""

from __future__ import annotations

import inspect
import json
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcrd.bgp import exabgp_fastpath, exabgp_receive, wire, wire_decode
from mcrd.bgp.messages import Decoder, UpdateError
from mcrd.rib.inputs import RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import Origin, PathAttributes
from tests.bgp import rawbgp
from tests.bgp.test_exabgp_fastpath import PEER, PEER_AS, Hub, _wait
from tests.bgp.test_wire import session as wire_session

RECEIVE_API = "neighbor-changes; receive { parsed; update; }"


# --- what the hooks rely on in ExaBGP -----------------------------------------------------------------------------


def test_a_fast_update_goes_where_any_update_goes() -> None:
    """The hooks replace `Update.unpack_message` and `JSON.update` (names and signatures: tests/bgp/
    test_exabgp_launch.py); what a FastUpdate then goes through is ExaBGP's own code, as read here."""
    from exabgp.bgp.message import Message  # type: ignore[import-untyped]
    from exabgp.bgp.timer import ReceiveTimer  # type: ignore[import-untyped]
    from exabgp.reactor.api.processes import Processes  # type: ignore[import-untyped]
    from exabgp.reactor.peer import Peer  # type: ignore[import-untyped]
    from exabgp.reactor.protocol import Protocol  # type: ignore[import-untyped]

    assert "cls.klass(message).unpack_message(data, direction, negotiated)" in inspect.getsource(Message.unpack)
    read = inspect.getsource(Protocol.read_message)
    assert "message = Message.unpack(msg_id, body, Direction.IN, self.negotiated)" in read
    assert ("self.peer.reactor.processes.message(msg_id, self.neighbor, 'receive', message, negotiated, b'', b'')"
            in read)
    assert "self.peer.stats[code] += 1" in read  # counted before it is parsed
    # The hold timer: every message that is not a NOP resets it, an UPDATE whatever its content.
    timer = inspect.getsource(ReceiveTimer.check_ka_timer)
    assert "if ignore != message.TYPE:\n            self.last_read = now" in timer
    main = inspect.getsource(Peer._main)
    assert "for message in self.proto.read_message():\n                self.recv_timer.check_ka(message)" in main
    assert "for nlri in message.nlris:" in main  # a FastUpdate has none
    # The line is written by the same writer, in the same order, as ExaBGP's own JSON for the peer.
    update = inspect.getsource(sys.modules[Processes.__module__])  # `_update` is wrapped by `register_process`
    assert ("def _update(self, peer, direction, update, negotiated, header, body):\n"
            "        for process in self._notify(peer, f'{direction}-{Message.CODE.UPDATE.SHORT}'):\n"
            "            self.write(process, self._encoder[process].update(peer, direction, update, negotiated, header,"
            " body), peer)") in update


# --- which UPDATEs are fast ---------------------------------------------------------------------------------------

BODY = rawbgp.update(attributes=rawbgp.basic(PEER_AS, "192.0.2.1"), nlri=rawbgp.prefixes(["10.1.0.0/16"]))[19:]


@pytest.fixture
def fast_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """ExaBGP's negotiated IPv4 session, 4-byte AS, up with an instance and a process reading parsed UPDATEs."""
    from exabgp.protocol.family import AFI, SAFI  # type: ignore[import-untyped]

    s = wire_session(True, False, False, 4)
    negotiated = s.negotiated
    negotiated.__dict__.pop(exabgp_receive._SESSION, None)
    for key in ("receive-update", "receive-parsed"):
        monkeypatch.setitem(s.neighbor.api, key, ["mcrd"])
    monkeypatch.setitem(exabgp_fastpath._up_instances, "192.0.2.1", 7)
    yield lambda body=BODY: exabgp_receive.fast_line(body, negotiated, AFI, SAFI)
    negotiated.__dict__.pop(exabgp_receive._SESSION, None)


def test_a_plain_update_on_a_fast_session_becomes_a_line(fast_session: Any) -> None:
    line = fast_session()
    assert line == f"mcrd-update 192.0.2.1 4 4 {BODY.hex()}"
    assert Decoder().decode(line) == [RoutesAnnounced("192.0.2.1", PathAttributes("192.0.2.1", (PEER_AS,)),
                                                      ("10.1.0.0/16",))]


def test_an_odd_update_is_left_to_exabgp(fast_session: Any) -> None:
    odd = rawbgp.update(attributes=rawbgp.basic(PEER_AS, "192.0.2.1", rawbgp.atomic_aggregate()),
                        nlri=rawbgp.prefixes(["10.1.0.0/16"]))[19:]
    assert fast_session(odd) is None


@pytest.mark.parametrize("why", ["not up", "packets", "no parsed updates"])
def test_a_session_the_line_would_not_suit_is_left_to_exabgp(fast_session: Any, monkeypatch: pytest.MonkeyPatch,
                                                             why: str) -> None:
    s = wire_session(True, False, False, 4)
    if why == "not up":
        monkeypatch.delitem(exabgp_fastpath._up_instances, "192.0.2.1")
    elif why == "packets":
        monkeypatch.setitem(s.neighbor.api, "receive-packets", ["mcrd"])
    else:
        monkeypatch.setitem(s.neighbor.api, "receive-parsed", [])
    assert fast_session() is None


def test_a_line_the_daemon_cannot_take_is_a_malformed_update_of_its_peer() -> None:
    """The launcher sends only what wire_decode.parse takes; a line that still is not taken resets the session."""
    [bad] = Decoder().decode("mcrd-update 192.0.2.1 4 4 0000")
    assert (type(bad).__name__, getattr(bad, "peer", None)) == ("Malformed", "192.0.2.1")
    [bad] = Decoder().decode("mcrd-update 192.0.2.1 4 4 zz")
    assert (type(bad).__name__, getattr(bad, "peer", None)) == ("Malformed", "192.0.2.1")
    [bad] = Decoder().decode("mcrd-update 192.0.2.1 8 4 00")
    assert "AS number width" in getattr(bad, "why", "")


# --- a real ExaBGP ------------------------------------------------------------------------------------------------


class QuietPeer(rawbgp.RawPeer):
    """A raw peer that sends no KEEPALIVE once the session is up: only what the test sends."""

    def _keepalives(self) -> None:
        return


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = rawbgp.listener(PEER, 0)
    try:
        yield sock
    finally:
        sock.close()


def _hub(tmp: str, listener: socket.socket, **environ: str) -> Hub:
    return Hub(Path(tmp), listener.getsockname()[1], environ, api=RECEIVE_API)


def _up(hub: Hub, listener: socket.socket, peer: rawbgp.RawPeer) -> int:
    seen = len(hub.lines())
    peer.accept(listener)
    hub.wait_line(lambda text: '"state": "up"' in text, seen)
    return len(hub.lines())


def _updates(hub: Hub, after: int, count: int) -> list[str]:
    """The next `count` lines about received UPDATEs (fast or ExaBGP's JSON), in order."""
    def received(line: str) -> bool:
        return line.startswith(wire_decode.LINE) or ('"type": "update"' in line and '"receive"' in line)

    _wait(lambda: len([line for line in hub.lines()[after:] if received(line)]) >= count)
    return [line for line in hub.lines()[after:] if received(line)][:count]


def _mp_reach(hop: str, prefixes: list[str]) -> bytes:
    packed = socket.inet_pton(socket.AF_INET6, hop)
    return rawbgp.attr(rawbgp.MP_REACH, struct.pack("!HBB", 2, 1, 16) + packed + b"\0" + rawbgp.prefixes(prefixes))


def test_plain_updates_come_as_lines_and_a_malformed_one_as_exabgps_json_in_order(listener: socket.socket) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hub = _hub(tmp, listener)
        peer = rawbgp.RawPeer(PEER_AS, PEER, hold=30)
        try:
            after = _up(hub, listener, peer)
            peer.send(rawbgp.update(attributes=rawbgp.basic(PEER_AS, PEER, rawbgp.med(5), rawbgp.community((1, 2))),
                                    nlri=rawbgp.prefixes(["10.1.0.0/16", "10.2.0.0/24"])))
            bad_origin = rawbgp.origin(5) + rawbgp.basic(PEER_AS, PEER)[4:]  # RFC 7606 7.1: treat-as-withdraw
            peer.send(rawbgp.update(attributes=bad_origin, nlri=rawbgp.prefixes(["10.3.0.0/16"])))
            peer.send(rawbgp.update(attributes=rawbgp.origin(0) + rawbgp.as_path(PEER_AS)
                                    + _mp_reach("2001:db8::9", ["2001:db8:1::/48"])))
            peer.send(rawbgp.update(withdrawn=rawbgp.prefixes(["10.2.0.0/24"])))
            lines = _updates(hub, after, 4)
            assert [line.startswith(wire_decode.LINE) for line in lines] == [True, False, True, True], lines
            decoded = [Decoder().decode(line) for line in lines]
            assert decoded[0] == [RoutesAnnounced(PEER, PathAttributes(PEER, (PEER_AS,), Origin.IGP, med=5,
                                                                       communities=("1:2",)),
                                                  ("10.1.0.0/16", "10.2.0.0/24"))]
            # ExaBGP reports the ORIGIN as `invalid`, and messages.py treats the routes as withdrawn (as before).
            assert decoded[1] == [UpdateError(PEER, "treat-as-withdraw", "ORIGIN 'invalid' is undefined (RFC 7606 7.1)",
                                              1),
                                  RoutesWithdrawn(PEER, ("10.3.0.0/16",))]
            assert decoded[2] == [RoutesAnnounced(PEER, PathAttributes("2001:db8::9", (PEER_AS,)),
                                                  ("2001:db8:1::/48",))]
            assert decoded[3] == [RoutesWithdrawn(PEER, ("10.2.0.0/24",))]
            assert peer.up
        finally:
            peer.close()
            hub.stop()


@pytest.mark.parametrize("environ", [{exabgp_receive.RECEIVE_ENV: "0"}, {"MCRD_EXABGP_STOCK": "1"}])
def test_without_the_receive_fix_exabgp_parses_every_update(listener: socket.socket, environ: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hub = _hub(tmp, listener, **environ)
        peer = rawbgp.RawPeer(PEER_AS, PEER, hold=30)
        try:
            after = _up(hub, listener, peer)
            peer.send(rawbgp.update(attributes=rawbgp.basic(PEER_AS, PEER), nlri=rawbgp.prefixes(["10.1.0.0/16"])))
            [line] = _updates(hub, after, 1)
            assert json.loads(line)["type"] == "update"
            assert Decoder().decode(line) == [RoutesAnnounced(PEER, PathAttributes(PEER, (PEER_AS,)),
                                                              ("10.1.0.0/16",))]
        finally:
            peer.close()
            hub.stop()


def test_fast_updates_reset_the_hold_timer(listener: socket.socket) -> None:
    """Hold time 3, the peer sends UPDATEs only, no KEEPALIVE, for 6 s: the session stays up. Once they stop, the
    hold timer expires (so it was running all along)."""
    with tempfile.TemporaryDirectory() as tmp:
        hub = _hub(tmp, listener)
        peer = QuietPeer(PEER_AS, PEER, hold=3)
        try:
            after = _up(hub, listener, peer)
            start = time.monotonic()
            sent = 0
            while time.monotonic() - start < 6:
                peer.send(rawbgp.update(attributes=rawbgp.basic(PEER_AS, PEER),
                                        nlri=rawbgp.prefixes([f"10.{sent}.0.0/16"])))
                sent += 1
                time.sleep(0.5)  # the pace of the UPDATEs under test, not a synchronisation
            lines = _updates(hub, after, sent)
            assert all(line.startswith(wire_decode.LINE) for line in lines), "not the fast path"
            assert peer.up
            assert not any('"state": "down"' in line for line in hub.lines()[after:])
            _wait(lambda: peer.received.notification is not None, timeout=10)
            assert peer.received.notification is not None
            assert peer.received.notification[:2] == (4, 0)  # Hold Timer Expired
        finally:
            peer.close()
            hub.stop()


def test_the_line_carries_what_the_session_negotiated() -> None:
    s = wire_decode.Session(asn4=False, families=frozenset({4, 6}))
    line = wire_decode.update_line("192.0.2.1", s, b"\x00\x01")
    assert line == "mcrd-update 192.0.2.1 2 46 0001"
    assert wire_decode.read_line(line) == ("192.0.2.1", s, b"\x00\x01")
    assert wire.HEADER_LEN == 19
