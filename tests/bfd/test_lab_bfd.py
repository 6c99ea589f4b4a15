"""mcrd's BFD engine alone (tests/bfd/driver.py: a BfdManager on uvloop in the hub namespace) against real FRR bfdd
and BIRD in network namespaces: sessions come Up over IPv4 and IPv6, changed timers are negotiated (read in the
peer's own view), a silent failure (the peer's BFD packets dropped by nft in its namespace) takes the session Down
with diag 1 within the Detection Time (measured and printed), it comes back when the rule goes, a peer without BFD
stays Down without flapping, and close() makes the peer see AdminDown.

Run: ``pytest -s tests/bfd/test_lab_bfd.py`` (as root) to see the measured detection times.
"""

from __future__ import annotations

import sys

import pytest

from tests.bfd.lab import (
    BIRD_CONF,
    FRR_BFDD,
    HUB4,
    HUB6,
    PEER4,
    PEER6,
    SOURCE_ROOT,
    Engine,
    bird_sessions,
    peer_config,
    setup,
    silent_failure,
    undrop_bfd,
)
from tests.lab.conftest import LAB_MARKS
from tests.lab.harness import BirdPeer, FrrPeer, Lab, Netns, assert_stays, frr_config, poll

pytestmark = LAB_MARKS


# ---- FRR ------------------------------------------------------------------------------------------------------------


def test_frr_up_timers_silent_failure_admin_down(lab: Lab) -> None:
    s = setup(lab)
    frr = FrrPeer(s.peer_ns, 65002, PEER4, frr_config(65002, PEER4, []), bfdd=FRR_BFDD)
    engine = Engine(lab, s.hub, [peer_config(s, PEER4, HUB4), peer_config(s, PEER6, HUB6)])
    for p in (PEER4, PEER6):
        engine.wait_state(p, "Up")
    poll(frr.bfd_peers, 10, "FRR: sessions not up",
         until=lambda peers: all(peers.get(h, {}).get("status") == "up" for h in (HUB4, HUB6)))
    view = frr.bfd_peers()[HUB4]
    assert (view["remote-transmit-interval"], view["remote-receive-interval"], view["remote-detect-multiplier"]) \
        == (300, 300, 3)
    assert engine.status()[PEER4]["detection_time_ms"] == 900

    # Changed timers (a reload): negotiated with a Poll Sequence, FRR's own view follows, the session stays Up.
    before = engine.transitions()
    engine.reconfigure([peer_config(s, PEER4, HUB4, tx_interval_ms=500, rx_interval_ms=600, multiplier=5),
                        peer_config(s, PEER6, HUB6)])
    poll(lambda: frr.bfd_peers()[HUB4], 10, "FRR did not see the new timers",
         until=lambda v: (v["remote-transmit-interval"], v["remote-receive-interval"], v["remote-detect-multiplier"])
         == (500, 600, 5))
    poll(lambda: engine.status()[PEER4], 5, "engine: timers not agreed",
         until=lambda st: (st["tx_interval_ms"], st["rx_interval_ms"], st["detection_time_ms"]) == (500, 600, 1800))
    assert frr.bfd_peers()[HUB4]["status"] == "up"
    assert engine.transitions() == before  # retiming moved no session
    engine.reconfigure([peer_config(s, PEER4, HUB4), peer_config(s, PEER6, HUB6)])
    poll(lambda: frr.bfd_peers()[HUB4]["remote-receive-interval"], 10, "FRR: timers not back", until=lambda v: v == 300)

    # The daemon's loop busy for 2.5 s (a route burst): the sessions live in their own thread and stay Up.
    uptime = {h: frr.bfd_peers()[h]["uptime"] for h in (HUB4, HUB6)}
    count = len(engine.transitions())
    engine.block_loop()
    after = frr.bfd_peers()
    assert all(after[h]["status"] == "up" and after[h]["uptime"] >= uptime[h] + 2 for h in (HUB4, HUB6)), after
    assert len(engine.transitions()) == count

    # A silent failure: FRR's packets dropped in its namespace, the link stays up.
    silent_failure(engine, s.peer_ns, [PEER4, PEER6], "FRR")
    undrop_bfd(s.peer_ns)
    for p in (PEER4, PEER6):
        engine.wait_state(p, "Up")

    # close(): AdminDown with diag 7, FRR's session goes down saying so.
    engine.close()
    poll(frr.bfd_peers, 10, "FRR did not see AdminDown",
         until=lambda peers: all(peers[h]["status"] == "down" for h in (HUB4, HUB6)))
    assert {frr.bfd_peers()[h]["remote-diagnostic"] for h in (HUB4, HUB6)} == {"administratively down"}


# ---- BIRD -----------------------------------------------------------------------------------------------------------


def test_bird_up_timers_silent_failure_admin_down(lab: Lab) -> None:
    s = setup(lab)
    bird = BirdPeer(s.peer_ns, BIRD_CONF)
    engine = Engine(lab, s.hub, [peer_config(s, PEER4, HUB4), peer_config(s, PEER6, HUB6)])
    for p in (PEER4, PEER6):
        engine.wait_state(p, "Up")
    poll(lambda: bird_sessions(bird), 10, "BIRD: sessions not Up",
         until=lambda v: all(v.get(h, {}).get("state") == "Up" for h in (HUB4, HUB6)))
    assert bird_sessions(bird)[HUB4] | {} == {"state": "Up", "interval": 0.3, "timeout": 0.9}

    # BIRD's Interval = max(its 300 ms, our Required Min RX); Timeout = our Detect Mult x max(its 300 ms, our TX).
    engine.reconfigure([peer_config(s, PEER4, HUB4, tx_interval_ms=500, rx_interval_ms=600, multiplier=5),
                        peer_config(s, PEER6, HUB6)])
    poll(lambda: bird_sessions(bird).get(HUB4), 10, "BIRD did not see the new timers",
         until=lambda v: v == {"state": "Up", "interval": 0.6, "timeout": 2.5})
    poll(lambda: engine.status()[PEER4], 5, "engine: timers not agreed",
         until=lambda st: (st["tx_interval_ms"], st["rx_interval_ms"], st["detection_time_ms"]) == (500, 600, 1800))
    engine.reconfigure([peer_config(s, PEER4, HUB4), peer_config(s, PEER6, HUB6)])
    poll(lambda: bird_sessions(bird).get(HUB4), 10, "BIRD: timers not back",
         until=lambda v: v == {"state": "Up", "interval": 0.3, "timeout": 0.9})

    silent_failure(engine, s.peer_ns, [PEER4, PEER6], "BIRD")
    undrop_bfd(s.peer_ns)
    for p in (PEER4, PEER6):
        engine.wait_state(p, "Up")

    engine.close()
    poll(lambda: bird_sessions(bird), 10, "BIRD did not see AdminDown",
         until=lambda v: all(v[h]["state"] == "Down" for h in (HUB4, HUB6)))


# ---- a peer without BFD ---------------------------------------------------------------------------------------------


def test_peer_without_bfd_stays_down_without_flapping(lab: Lab) -> None:
    s = setup(lab)
    engine = Engine(lab, s.hub, [peer_config(s, PEER4, HUB4), peer_config(s, PEER6, HUB6)])
    poll(lambda: engine.status()[PEER4]["tx_packets"], 10, "engine sends nothing", until=lambda n: n >= 2)
    assert_stays(lambda: all(v["state"] == "Down" and v["transitions"] == 0 for v in engine.status().values()),
                 3.0, "a session without a BFD peer left Down")
    assert engine.transitions() == []
    st = engine.status()[PEER4]
    # The slow rate of 6.8.3 (1 s, jittered) while not Up: a handful of packets in ~3.5 s, not one per 300 ms.
    assert 2 <= st["tx_packets"] <= 6, st
    engine.close()


@pytest.mark.parametrize("interface", [True, False])
def test_engine_to_engine(lab: Lab, interface: bool) -> None:
    """Two mcrd engines peer with each other (the containerlab case: two mcrd nodes joined by a VXC); a's
    configure() adds, removes and leaves sessions as the set says."""
    s = setup(lab)
    a_peer = peer_config(s, PEER4, HUB4) | ({} if interface else {"interface": None})
    a = Engine(lab, s.hub, [a_peer])
    b = Engine(lab, s.peer_ns, [{"peer": HUB4, "local": PEER4, "interface": None, "tx_interval_ms": 400}])
    a.wait_state(PEER4, "Up")
    b.wait_state(HUB4, "Up")
    poll(lambda: a.status()[PEER4]["rx_interval_ms"], 10, "timers not agreed", until=lambda v: v == 400)

    # The same set again: nothing moves (same discriminator, no transition).
    discr = a.status()[PEER4]["local_discriminator"]
    count = len(a.transitions())
    a.reconfigure([a_peer, peer_config(s, PEER6, HUB6)])
    poll(a.status, 5, "IPv6 session not added", until=lambda st: PEER6 in st)
    assert a.status()[PEER4]["local_discriminator"] == discr
    assert a.status()[PEER4]["state"] == "Up"
    assert len(a.transitions()) == count

    # Removed from the set: AdminDown first, so b goes Down at once with diag 3 (not after its Detection Time).
    a.reconfigure([peer_config(s, PEER6, HUB6)])
    b.wait_state(HUB4, "Down", timeout=0.8)
    assert b.status()[HUB4]["remote_state"] == "AdminDown"
    assert PEER4 not in a.status()

    # Back in the set: a new session comes Up again.
    a.reconfigure([a_peer])
    a.wait_state(PEER4, "Up")
    b.wait_state(HUB4, "Up")
    assert a.status()[PEER4]["local_discriminator"] != discr
    a.close()
    b.wait_state(HUB4, "Down")
    assert b.status()[HUB4]["remote_state"] == "AdminDown"
    last = b.transitions(HUB4)[-1]
    assert (last["new"], last["diag"], last["remote_state"]) == ("Down", "NEIGHBOR_SIGNALED_DOWN", "AdminDown")
    assert_stays(lambda: b.state(HUB4) == "Down", 1.0, "b left Down while a is gone")
    b.close()


SEND = """
import socket, sys
from mcrd.bfd.packet import BfdState, ControlPacket, encode
ttl, your, state, auth = int(sys.argv[1]), int(sys.argv[2]), BfdState[sys.argv[3]], sys.argv[4] == "auth"
p = ControlPacket(state, 3, 7, your, 1_000_000, 300_000, auth_present=auth, length=28 if auth else 24)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
s.bind((sys.argv[5], 49999))
s.sendto(encode(p) + (b"\\x01\\x04\\x00\\x00" if auth else b""), (sys.argv[6], 3784))
"""


def test_receive_checks_at_the_socket(lab: Lab) -> None:
    """RFC 5881 5: a packet whose TTL is not 255 is discarded; so are packets naming an unknown discriminator,
    carrying the Authentication bit, or arriving on another device than the session's (the peer's address spoofed
    from a second link).  Only then does a valid packet move the session."""
    s = setup(lab)
    other = lab.netns("other")
    link = lab.link(s.hub, "h1", other, "o0")
    other.add_address(link.if_b, f"{PEER4}/32")
    other.add_route(f"{HUB4}/32", dev=link.if_b)
    engine = Engine(lab, s.hub, [peer_config(s, PEER4, HUB4)])

    def send(ttl: int, your: int, state: str = "DOWN", auth: bool = False, ns: Netns = s.peer_ns) -> None:
        ns.run("env", f"PYTHONPATH={SOURCE_ROOT}", sys.executable, "-c", SEND, str(ttl), str(your), state,
               "auth" if auth else "-", PEER4, HUB4)

    discr = engine.status()[PEER4]["local_discriminator"]
    send(64, 0)
    send(254, 0)
    send(255, discr + 1 if discr < 0xFFFFFFFF else 1)
    send(255, 0, auth=True)
    send(255, 0, ns=other)
    poll(lambda: engine.status()[PEER4]["discarded"], 5, "packets not discarded", until=lambda n: n == 5)
    st = engine.status()[PEER4]
    assert (st["state"], st["remote_discriminator"], st["rx_packets"]) == ("Down", 0, 0)
    send(255, 0)
    engine.wait_state(PEER4, "Init", timeout=5)
    assert engine.status()[PEER4]["remote_discriminator"] == 7
    send(255, discr, "INIT")
    engine.wait_state(PEER4, "Up", timeout=5)
    engine.close()
