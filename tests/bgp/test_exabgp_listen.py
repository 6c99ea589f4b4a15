"""The pure parts of mcrd's listening fixes (mcrd/bgp/exabgp_listen.py): who wins a connection collision (RFC 4271
6.8, RFC 6286 2.3) and reading the BGP identifier from the first bytes of a new connection. The lab tests
(tests/lab/test_listen.py, tests/lab/test_two_mcr.py) run them in ExaBGP against real peers."""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from mcrd.bgp.exabgp_listen import PeekedOpen, keep_new, link_of, read_open_prefix, unscoped

ids = st.binary(min_size=4, max_size=4)
asns = st.integers(min_value=1, max_value=2**32 - 1)


def _open(identifier: str, asn: int = 64512, hold: int = 90) -> bytes:
    body = struct.pack("!BHH4sB", 4, asn, hold, socket.inet_aton(identifier), 0)
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body


def test_the_connection_initiated_by_the_higher_identifier_survives() -> None:
    low, high = socket.inet_aton("10.255.0.1"), socket.inet_aton("10.255.0.2")
    assert keep_new(low, high, 133937, 65020)  # the peer is higher: its connection (the new one) survives
    assert not keep_new(high, low, 65020, 133937)  # we are higher: ours (the existing one) survives
    # Unsigned 32-bit comparison, not signed and not textual: 128.0.0.0 is above 9.0.0.0.
    assert keep_new(socket.inet_aton("9.0.0.0"), socket.inet_aton("128.0.0.0"), 1, 1)
    assert not keep_new(socket.inet_aton("10.0.0.10"), socket.inet_aton("10.0.0.9"), 1, 1)


def test_equal_identifiers_fall_back_to_the_larger_as() -> None:
    same = socket.inet_aton("10.255.0.1")
    assert keep_new(same, same, 65001, 65002)
    assert not keep_new(same, same, 65002, 65001)


@given(ids, ids, asns, asns)
def test_both_ends_agree_on_the_survivor(a: bytes, b: bytes, as_a: int, as_b: int) -> None:
    """Each end decides alone; exactly one of the two connections must survive: A keeps B's connection exactly when
    B keeps it too (B's 'existing' is B's own connection, A's 'new' one)."""
    if (a, as_a) == (b, as_b):
        return  # the same speaker twice: no collision between two ends
    a_keeps_bs = keep_new(a, b, as_a, as_b)
    b_keeps_own = not keep_new(b, a, as_b, as_a)
    assert a_keeps_bs == b_keeps_own


def test_the_identifier_is_read_from_an_open_however_it_arrives() -> None:
    message = _open("10.255.0.2")
    assert read_open_prefix(message) == PeekedOpen(identifier=socket.inet_aton("10.255.0.2"))
    for cut in range(1, 28):
        assert read_open_prefix(message[:cut]) is None, cut  # too few bytes yet: wait
    assert read_open_prefix(b"") == PeekedOpen(closed=True)


def test_anything_but_an_open_is_invalid() -> None:
    keepalive = b"\xff" * 16 + struct.pack("!HB", 19, 4)
    assert read_open_prefix(keepalive) == PeekedOpen(invalid=True)
    assert read_open_prefix(b"GET / HTTP/1.1\r\n") == PeekedOpen(invalid=True)
    assert read_open_prefix(b"\xff" * 5 + b"\x00") == PeekedOpen(invalid=True)


def test_a_link_local_listening_socket_is_bound_to_its_sessions_interface() -> None:
    """Fix 3: only a link-local address needs an interface to listen, the `source-interface` of its session."""
    links = {"fe80::2": "eth1", "2001:db8::1": "eth2"}
    assert link_of("fe80::2", links) == "eth1"
    assert link_of("FE80:0::2", links) == "eth1"  # ExaBGP's spelling of the address need not be canonical
    assert link_of("2001:db8::1", links) is None  # a global address binds without one
    assert link_of("169.254.0.1", {"169.254.0.1": "eth3"}) is None  # IPv4 link-local too
    assert link_of("fe80::9", links) is None  # no session of that address: ExaBGP reports the bind it cannot do
    assert link_of("not an address", links) is None


def test_the_scope_of_an_accepted_link_local_connection_is_dropped() -> None:
    assert unscoped("fe80::1%eth1") == "fe80::1"
    assert unscoped("2001:db8::1") == "2001:db8::1"
    assert unscoped("10.0.0.1") == "10.0.0.1"
