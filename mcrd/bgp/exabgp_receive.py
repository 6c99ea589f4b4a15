"""The receive fast path's hooks into ExaBGP 5.0.15 (issue 14, exabgp_launch's `receive`): on with the send one.

ExaBGP keeps terminating the sessions and reading every message off the socket (`Protocol.read_message`: message
counts, the hold timer, NOTIFICATION, OPEN, KEEPALIVE, ROUTE-REFRESH). An UPDATE it has read whole, received on a
session that is up with a fast path instance (exabgp_fastpath.py) and that mcrd's strict decoder takes
(`wire_decode.parse`, the same function the daemon runs), skips ExaBGP's parse (~5 us per prefix) and JSON (~1.8 us)
and goes to mcrd as one line, `mcrd-update PEER WIDTH FAMILIES HEX` (`wire_decode.update_line`), which the daemon
decodes (mcrd.bgp.messages). Everything else, every malformed or unusual UPDATE included, is parsed by ExaBGP as
stock, so RFC 7606 (treat-as-withdraw, attribute discard, session reset) stays exactly as ExaBGP does it.

Two hooks, each tested against ExaBGP's own classes (tests/bgp/test_exabgp_receive.py):

- `Update.unpack_message`: for an UPDATE the decoder takes, a `FastUpdate` (an Update with no NLRI and no attribute,
  carrying the line) instead of ExaBGP's parse. `read_message` and `Peer._main` go on as for any UPDATE: the receive
  timer is reset (`ReceiveTimer.check_ka` counts every message that is not a NOP), the message counted, and its
  (empty) NLRI given to ExaBGP's Adj-RIB-In, which mcrd does not use.
- `JSON.update`: a `FastUpdate`'s line instead of ExaBGP's JSON, written by `Processes.write` like every other line
  for the peer, so the fast lines and ExaBGP's own stay in the order the messages came.

An exception in the first hook leaves the UPDATE to ExaBGP's parser (and is written to stderr once per kind); the
second cannot raise. Only sessions whose process gets parsed UPDATEs, with no `packets` or `consolidate` and no
add-path receive, are fast: what the JSON would have said is exactly what the line says.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from mcrd.bgp import exabgp_fastpath, wire_decode
from mcrd.bgp.exabgp_hook import Hook

RECEIVE_ENV = "MCRD_FAST_RECEIVE"  # 0: the send fast path without this one (exabgp_launch.OPT_OUT)
_SESSION = "_mcrd_receive_session"  # on an ExaBGP Negotiated: its wire_decode.Session, None when add-path is on
_reported: set[str] = set()


def session_of(negotiated: Any, afi: Any, safi: Any) -> wire_decode.Session | None:
    """What the decoder needs to know of the session `negotiated` describes; None when it receives add-path."""
    cached = negotiated.__dict__.get(_SESSION, False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    families = frozenset(family for family, afi_ in ((4, afi.ipv4), (6, afi.ipv6))
                         if (afi_, safi.unicast) in negotiated.families)
    session: wire_decode.Session | None = wire_decode.Session(bool(negotiated.asn4), families)
    if any(negotiated.addpath.receive(afi_, safi.unicast) for afi_ in (afi.ipv4, afi.ipv6)):
        session = None
    negotiated.__dict__[_SESSION] = session
    return session


def fast_line(data: bytes, negotiated: Any, afi: Any, safi: Any) -> str | None:
    """The line for an UPDATE body received on the session of `negotiated`, or None: ExaBGP parses it."""
    neighbor = negotiated.neighbor
    address = str(neighbor["peer-address"])
    if address not in exabgp_fastpath._up_instances:  # not a fast path session (or not up)
        return None
    api = neighbor.api
    if not api["receive-update"] or not api["receive-parsed"] or api["receive-packets"] or api["receive-consolidate"]:
        return None
    session = session_of(negotiated, afi, safi)
    if session is None or wire_decode.parse(data, session) is None:
        return None
    return wire_decode.update_line(address, session, data)


def replacements(find: Callable[[Hook], Any]) -> list[tuple[Any, str, Any]]:
    """The two hooks, as (class, attribute, new value) for exabgp_launch.install() to make (and undo if need be)."""
    update = find(Hook("exabgp.bgp.message.update", "Update"))
    attributes = find(Hook("exabgp.bgp.message.update.attribute", "Attributes"))
    encoder = find(Hook("exabgp.reactor.api.response.json", "JSON"))
    incoming = find(Hook("exabgp.bgp.message.direction", "Direction.IN"))
    afi, safi = find(Hook("exabgp.protocol.family", "AFI")), find(Hook("exabgp.protocol.family", "SAFI"))
    unpack = vars(update)["unpack_message"].__func__
    json_update = encoder.update

    class FastUpdate(update):  # type: ignore[misc, valid-type]
        """An UPDATE the daemon decodes: nothing for ExaBGP to act on, the line for the API."""

        def __init__(self, line: str) -> None:
            super().__init__([], attributes())
            self.line = line

    def _unpack_message(cls: Any, data: bytes, direction: Any, negotiated: Any) -> Any:
        if direction == incoming and negotiated is not None and cls is update:
            try:
                line = fast_line(data, negotiated, afi, safi)
            except Exception as exc:  # ExaBGP's parser reads it: an exception here would reset the session
                kind = type(exc).__name__
                if kind not in _reported:
                    _reported.add(kind)
                    sys.stderr.write(f"mcrd: receive fast path failed, ExaBGP parses instead: {exc!r}\n")
                line = None
            if line is not None:
                return FastUpdate(line)
        return unpack(cls, data, direction, negotiated)

    def _json_update(self: Any, neighbor: Any, direction: Any, message: Any, negotiated: Any, header: Any,
                     body: Any) -> Any:
        if type(message) is FastUpdate:
            return message.line
        return json_update(self, neighbor, direction, message, negotiated, header, body)

    return [(update, "unpack_message", classmethod(_unpack_message)), (encoder, "update", _json_update)]
