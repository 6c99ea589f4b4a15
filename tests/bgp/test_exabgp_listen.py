"""The pure parts of mcrd's listening fixes (mcrd/bgp/exabgp_listen.py): who wins a connection collision (RFC 4271
6.8, RFC 6286 2.3) and reading the BGP identifier from the first bytes of a new connection. The lab tests
(tests/lab/test_listen.py, tests/lab/test_two_mcr.py) run them in ExaBGP against real peers."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mcrd.bgp.exabgp_listen import (
    ANSWERED_HOLD,
    KEEPALIVE_HOLD,
    TCP_ESTABLISHED,
    Own,
    PeekedOpen,
    Verdict,
    any_ready,
    hold_keepalive,
    keep_new,
    link_of,
    proc_net_tcp,
    read_open_prefix,
    tcp_state,
    unaccepted,
    unscoped,
    verdict,
)
from tests.bgp import rawbgp

ids = st.binary(min_size=4, max_size=4)
asns = st.integers(min_value=1, max_value=2**32 - 1)


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
    message = rawbgp.open_message(64512, "10.255.0.2")
    assert read_open_prefix(message) == PeekedOpen(identifier=socket.inet_aton("10.255.0.2"))
    for cut in range(1, 28):
        assert read_open_prefix(message[:cut]) is None, cut  # too few bytes yet: wait
    assert read_open_prefix(b"") == PeekedOpen(closed=True)


def test_anything_but_an_open_is_invalid() -> None:
    assert read_open_prefix(rawbgp.keepalive()) == PeekedOpen(invalid=True)
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


def test_the_listening_sockets_are_polled_once_and_accepted_from_only_with_a_connection_waiting() -> None:
    """Fix 4, on real loopback sockets: `any_ready` says whether ExaBGP's accept() loop has anything to take, and
    follows the sockets ExaBGP listens on as they come and go."""

    class Listener:  # ExaBGP's Listener, as far as any_ready reads it: socket -> (local, port, peer, md5)
        def __init__(self) -> None:
            self._sockets: dict[socket.socket, tuple[str, int, str, bool]] = {}

    def listening() -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        return sock

    listener, first, second = Listener(), listening(), listening()
    clients: list[socket.socket] = []
    try:
        listener._sockets[first] = ("127.0.0.1", first.getsockname()[1], "127.0.0.2", False)
        assert not any_ready(listener)
        listener._sockets[second] = ("127.0.0.1", second.getsockname()[1], "127.0.0.3", False)
        assert not any_ready(listener)
        clients.append(socket.create_connection(second.getsockname()))  # the set changed since the last poll
        assert any_ready(listener)
        second.accept()[0].close()
        assert not any_ready(listener)
        del listener._sockets[second]
        clients.append(socket.create_connection(second.getsockname()))  # no longer ExaBGP's: not looked at
        assert not any_ready(listener)
        clients.append(socket.create_connection(first.getsockname()))
        assert any_ready(listener)
    finally:
        for sock in (first, second, *clients):
            sock.close()


def test_the_scope_of_an_accepted_link_local_connection_is_dropped() -> None:
    assert unscoped("fe80::1%eth1") == "fe80::1"
    assert unscoped("2001:db8::1") == "2001:db8::1"
    assert unscoped("10.0.0.1") == "10.0.0.1"


def test_a_collision_is_decided_before_either_connection_is_established() -> None:
    """RFC 4271 6.8 at the new connection's OPEN: nothing of the peer's own to collide with (or its own attempt still
    in the TCP handshake, which the other side never accepted) takes the new one; an Established session is kept;
    otherwise the connection initiated by the higher identifier survives and the other gets the Cease."""
    assert verdict(Own.NONE, new_survives=False) is Verdict.ACCEPT
    assert verdict(Own.NONE, new_survives=True) is Verdict.ACCEPT
    assert verdict(Own.ESTABLISHED, new_survives=True) is Verdict.REFUSE
    assert verdict(Own.OPENING, new_survives=False) is Verdict.REFUSE
    assert verdict(Own.OPENING, new_survives=True) is Verdict.REPLACE


def test_on_a_connection_it_opened_the_keepalive_waits_for_the_peers_answer_up_to_the_hold_time() -> None:
    """OpenConfirm: on a connection mcrd opened the KEEPALIVE waits for the peer's answer to our OPEN past
    KEEPALIVE_HOLD (an OPEN the network delivers late must not reach FRR with our KEEPALIVE), up to the hold time
    (KEEPALIVE_HOLD when there is none); then, while a connection from the same peer is being decided or refused and
    not yet closed by the peer, at most ANSWERED_HOLD (before FRR's start timer). On a connection the peer opened,
    while one is pending, at most KEEPALIVE_HOLD."""
    def hold(waited: float, answered_for: float | None, hold_time: int = 9, *, outgoing: bool = True,
             pending: bool = False) -> bool:
        return hold_keepalive(waited, answered_for, hold_time, outgoing=outgoing, pending=lambda: pending)

    late = KEEPALIVE_HOLD + 1
    assert [hold(0.0, None), hold(late, None), hold(8.9, None), hold(9.0, None)] == [True, True, True, False]
    assert [hold(0.0, None, 0), hold(late, None, 0)] == [True, False]
    assert not hold(late, 0.0)  # answered, nothing pending: at once
    assert [hold(late, 0.0, pending=True), hold(late, ANSWERED_HOLD, pending=True)] == [True, False]
    assert ANSWERED_HOLD < 1.0  # FRR 8.4's start timer: a new connection of its own 1 s after a stop at the soonest
    incoming = functools.partial(hold, outgoing=False)
    assert [incoming(0.0, 0.0, pending=True), incoming(1.0, 1.0, pending=True)] == [True, True]
    assert [incoming(late, late, pending=True), incoming(0.0, 0.0)] == [False, False]


def test_a_connection_not_yet_accepted_is_read_from_the_kernels_table() -> None:
    """A connection in the listening socket's queue (the peer's side open, ExaBGP not told yet) is in
    /proc/net/tcp, ESTABLISHED; `unaccepted` finds one from the peer to port 179 of the session's address, in the
    handshake (SYN_RECV) or queued, and nothing else."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            port, client_port = server.getsockname()[1], client.getsockname()[1]
            with open("/proc/net/tcp") as table:
                sockets = proc_net_tcp(table.read())
    assert ("127.0.0.1", port, "127.0.0.1", client_port, TCP_ESTABLISHED) in sockets
    v6 = proc_net_tcp("  sl  local_address remote_address st\n"
                      "   0: 000080FE000000000000000001000000:00B3 000080FE000000000000000002000000:A0F1 03 0\n")
    assert v6 == [("fe80::1", 179, "fe80::2", 0xA0F1, 3)]
    hub, peer = "169.254.10.1", "169.254.10.2"
    assert unaccepted([(hub, 179, peer, 40000, 3)], hub, peer)  # SYN_RECV
    assert unaccepted([(hub, 179, peer, 40000, 1)], hub, peer)  # in the accept queue
    assert not unaccepted([(hub, 179, peer, 40000, 6)], hub, peer)  # TIME_WAIT: closed
    assert not unaccepted([(hub, 40000, peer, 179, 1)], hub, peer)  # our own connection
    assert not unaccepted([(hub, 179, "169.254.10.3", 40000, 3)], hub, peer)


def test_the_kernel_tells_a_connection_being_opened_from_an_open_one() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert tcp_state(client) == TCP_ESTABLISHED
        port = server.getsockname()[1]
    with socket.socket() as refused:
        refused.setblocking(False)
        refused.connect_ex(("127.0.0.1", port))  # nobody listens any more: refused, never established
        assert tcp_state(refused) != TCP_ESTABLISHED


# A real ExaBGP Peer, with the listen fix installed, opening its own connection to a speaker played by plain sockets on
# loopback while that speaker's connection comes in. The speaker's listening socket has its accept queue full, so the
# kernel drops the peer's SYN: the peer's own connection stays in the TCP handshake (ExaBGP's Peer._connect, FSM Idle,
# `peer.proto` None) until the queue has room (the SYN is sent again after 1 s). Stock ExaBGP takes an incoming
# connection in that state at once and drops its own attempt, whatever the other side has already made of it.
COLLISION_PROBE = r"""
import json, select, socket, struct, sys, tempfile, time, os
from mcrd.bgp import exabgp_launch, exabgp_listen
from tests.bgp import rawbgp
assert exabgp_launch.install(["listen"]).fixes == ("listen",)
from exabgp.bgp.fsm import FSM
from exabgp.configuration.configuration import Configuration
from exabgp.environment import getenv
from exabgp.logger.option import option
from exabgp.protocol.family import AFI
from exabgp.reactor.asynchronous import ASYNC
from exabgp.reactor.network.incoming import Incoming
from exabgp.reactor.peer import Peer

option.setup(getenv())
LOCAL, REMOTE = "127.0.0.1", "127.0.0.2"
speaker = socket.socket()
speaker.bind((REMOTE, 0))
speaker.listen(0)
queued = [socket.create_connection(speaker.getsockname())]  # the accept queue is full from now on
path = os.path.join(tempfile.mkdtemp(), "exabgp.conf")
with open(path, "w") as handle:
    handle.write(f"neighbor {REMOTE} {{ router-id 10.255.0.1; local-address {LOCAL}; local-as 133937; peer-as 64512; "
                 f"connect {speaker.getsockname()[1]}; hold-time 9; family {{ ipv4 unicast; }} }}")
conf = Configuration([path])
assert conf.reload()
[neighbor] = conf.neighbors.values()
ours = socket.socket()
ours.bind((LOCAL, 0))
ours.listen()


class Reactor:
    asynchronous, _poller = ASYNC(), select.poll()


def opening_peer():
    peer = Peer(neighbor, Reactor())
    peer.generator = peer._run()
    while exabgp_listen.connecting(peer) is None:
        next(peer.generator)
    return peer


def incoming(peer):
    remote = socket.create_connection(ours.getsockname(), source_address=(REMOTE, 0))
    io, _ = ours.accept()
    connection = Incoming(AFI.ipv4, REMOTE, LOCAL, io)
    peer.handle_connection(connection)
    return remote, connection


def open_from(remote, identifier):
    remote.sendall(rawbgp.open_message(64512, identifier, 9))


def decide(peer):
    collisions = peer.reactor._mcrd_collisions
    deadline = time.monotonic() + 5
    while collisions.waiting and time.monotonic() < deadline:
        collisions.resolve()
    while peer.reactor.asynchronous.run():
        pass


def handshake_done(peer):
    deadline = time.monotonic() + 5
    while exabgp_listen.tcp_state(exabgp_listen.connecting(peer).io) != exabgp_listen.TCP_ESTABLISHED:
        assert time.monotonic() < deadline, "the peer's own connection never completed"
        time.sleep(0.01)


def read_all(sock):
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except OSError:
        pass
    return data


def received(sock):
    sock.settimeout(5)
    return read_all(sock).hex()


# The reactor's poll: the refused connections the other side has closed are closed at ours.
def settle(peer):
    collisions = peer.reactor._mcrd_collisions
    deadline = time.monotonic() + 5
    while collisions.closing and time.monotonic() < deadline:
        collisions.resolve()


# Run the peer's generator, as the reactor does, until done() (AssertionError naming `what` after `timeout`).
def pump(peer, done, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        next(peer.generator)
        time.sleep(0.01)  # the reactor's LATER: the peer's I/O has time to arrive


# Run the peer's generator while reading what it writes to `sock`: the types of the messages it wrote, once
# until(types) holds or after `timeout` seconds (a bounded check that something was NOT written).
def pump_reading(peer, sock, until, timeout):
    sock.setblocking(False)
    data, deadline = b"", time.monotonic() + timeout
    while True:
        next(peer.generator)
        try:
            data += sock.recv(4096)
        except BlockingIOError:
            pass
        types, rest = [], data
        while len(rest) >= 19 and len(rest) >= struct.unpack("!H", rest[16:18])[0]:
            length = struct.unpack("!H", rest[16:18])[0]
            types.append(rest[18])
            rest = rest[length:]
        if until(types) or time.monotonic() >= deadline:
            return types
        time.sleep(0.01)


def state(peer, connection):
    return {"taken": peer.proto is not None and peer.proto.connection is connection,
            "waiting": bool(peer.reactor._mcrd_collisions.waiting),
            "connecting": exabgp_listen.connecting(peer) is not None}


result = {}
# 1. Its own connection still in the handshake: the new one waits for its OPEN, then is taken (no collision).
peer = opening_peer()
attempt = exabgp_listen.connecting(peer).io
result["syn-sent"] = exabgp_listen.tcp_state(attempt)
remote, connection = incoming(peer)
result["1 arrived"] = state(peer, connection)
open_from(remote, "10.0.0.1")
decide(peer)
result["1 decided"] = state(peer, connection)
result["1 attempt closed"] = attempt.fileno() == -1
# 2. Its own connection's handshake done, not yet taken by ExaBGP, and ours is the higher identifier: the new one is
# refused with a Cease 6/7 and the peer goes on with its own.
peer = opening_peer()
remote, connection = incoming(peer)
result["2 arrived"] = state(peer, connection)
queued.append(speaker.accept()[0])  # room in the queue: the SYN sent again gets through
handshake_done(peer)
open_from(remote, "10.0.0.1")
decide(peer)
result["2 decided"] = state(peer, connection)
result["2 refused with"] = received(remote)
while peer.proto is None:
    next(peer.generator)
result["2 own taken"] = peer.proto.connection.io.getpeername()[0] == REMOTE
# 3. The same, but the other side has the higher identifier: our connection gets the Cease 6/7, the new one is taken.
peer = opening_peer()
remote, connection = incoming(peer)
queued.append(speaker.accept()[0])
handshake_done(peer)
open_from(remote, "10.255.0.9")
decide(peer)
result["3 decided"] = state(peer, connection)
ours_at_speaker = speaker.accept()[0]
result["3 own closed with"] = received(ours_at_speaker)
# 4. Its own connection taken, OPENs exchanged: it keeps its KEEPALIVE (which would make the session Established at
# the other end) until the connection that arrived meanwhile is decided.
peer = opening_peer()
at_speaker = speaker.accept()[0]
pump(peer, lambda: peer.fsm == FSM.OPENSENT, "OpenSent")
remote, connection = incoming(peer)
result["4 arrived"] = state(peer, connection)
open_from(at_speaker, "10.0.0.1")
pump(peer, lambda: peer.fsm == FSM.OPENCONFIRM, "OpenConfirm")
# Held: nothing after the OPEN for 0.5 s of the peer running (it writes its KEEPALIVE within ms when not held).
result["4 before"] = pump_reading(peer, at_speaker, lambda types: 4 in types, 0.5)
result["4 held in"] = peer.fsm.name()
open_from(remote, "10.0.0.1")
decide(peer)
result["4 refused with"] = received(remote)
# Refused, the connection stays open at our end until the other side closes it: until then the other side may still
# have events of its own about it to run, and the session keeps its KEEPALIVE.
result["4 kept"] = exabgp_listen.collision_pending(peer)
remote.close()
settle(peer)
result["4 closed by them"] = not exabgp_listen.collision_pending(peer)
# 5. Decided; on the connection it opened it still waits for the other side's KEEPALIVE, then sends its own.
result["5 before their keepalive"] = pump_reading(peer, at_speaker, lambda types: bool(types), 0.5)
at_speaker.sendall(rawbgp.keepalive())
result["5 after their keepalive"] = pump_reading(peer, at_speaker, lambda types: bool(types), 5.0)
print(json.dumps(result))
"""

def cease_collision(data: str) -> bool:
    """Whether these bytes start with a NOTIFICATION Cease (6), subcode 7 "Connection Collision Resolution"."""
    raw = bytes.fromhex(data)
    return raw[:16] == b"\xff" * 16 and raw[18:21] == bytes([3, 6, 7])


def test_a_connection_arriving_while_the_peer_opens_its_own_waits_for_its_open() -> None:
    out = subprocess.run([sys.executable, "-c", COLLISION_PROBE], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["syn-sent"] == 2  # TCP_SYN_SENT: the peer's own connection is in the handshake
    # Not taken at once (stock ExaBGP would have), and the peer's own attempt goes on meanwhile.
    assert got["1 arrived"] == {"taken": False, "waiting": True, "connecting": True}
    assert got["1 decided"] == {"taken": True, "waiting": False, "connecting": False}
    assert got["1 attempt closed"]
    assert got["2 arrived"] == {"taken": False, "waiting": True, "connecting": True}
    assert got["2 decided"] == {"taken": False, "waiting": False, "connecting": True}
    assert cease_collision(got["2 refused with"])
    assert got["2 own taken"]
    assert got["3 decided"] == {"taken": True, "waiting": False, "connecting": False}
    assert cease_collision(got["3 own closed with"])
    # 4: OPEN (1) sent on its own connection, then nothing while the other connection waits; KEEPALIVE (4) after.
    assert got["4 arrived"] == {"taken": False, "waiting": True, "connecting": False}
    assert (got["4 held in"], got["4 before"]) == ("OPENCONFIRM", [1])
    assert cease_collision(got["4 refused with"])
    assert (got["4 kept"], got["4 closed by them"]) == (True, True)
    assert got["5 before their keepalive"] == []
    assert got["5 after their keepalive"][:1] == [4]
