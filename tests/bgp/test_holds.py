"""Sessions held down: causes, and the races with ExaBGP's own view of the session."""

from __future__ import annotations

from mcrd.bgp.holds import BFD, INTERFACE, Holds


def test_a_session_is_held_while_any_cause_remains() -> None:
    holds = Holds()
    assert holds.hold("10.0.1.2", INTERFACE, "eth1 down")  # first cause: the session goes down now
    assert not holds.hold("10.0.1.2", BFD, "BFD down")  # already down
    assert holds.why("10.0.1.2") == "eth1 down; BFD down"
    assert not holds.release("10.0.1.2", INTERFACE)
    assert holds.held("10.0.1.2")
    assert holds.excluded() == {"10.0.1.2"}
    assert holds.release("10.0.1.2", BFD)
    assert not holds.held("10.0.1.2")
    assert holds.excluded() == frozenset()
    assert not holds.release("10.0.1.2", BFD)  # nothing to release


def test_messages_of_a_held_session_are_dropped_a_late_up_included() -> None:
    holds = Holds()
    holds.hold("10.0.1.2", INTERFACE, "eth1 down")
    holds.exabgp_up("10.0.1.2")  # came up before ExaBGP's reload removed the neighbor
    assert holds.drops("10.0.1.2")
    assert not holds.drops("10.0.2.2")


def test_a_release_before_exabgp_closed_the_session_waits_for_its_down() -> None:
    holds = Holds()
    holds.exabgp_up("10.0.1.2")
    holds.hold("10.0.1.2", INTERFACE, "eth1 down")
    holds.release("10.0.1.2", INTERFACE)  # the link flapped back before ExaBGP acted on the first reload
    assert holds.excluded() == {"10.0.1.2"}  # left out until ExaBGP says the old session is down
    assert holds.drops("10.0.1.2")
    holds.exabgp_down("10.0.1.2")
    assert holds.excluded() == frozenset()
    assert not holds.drops("10.0.1.2")


def test_a_session_exabgp_never_had_up_is_released_at_once() -> None:
    holds = Holds()
    holds.hold("10.0.1.2", INTERFACE, "eth1 down")
    holds.release("10.0.1.2", INTERFACE)
    assert holds.excluded() == frozenset()


def test_exabgp_lost_and_forgotten_peers() -> None:
    holds = Holds()
    for peer in ("10.0.1.2", "10.0.2.2"):
        holds.exabgp_up(peer)
        holds.hold(peer, BFD, "BFD down")
        holds.release(peer, BFD)
    holds.exabgp_lost(["10.0.1.2"])  # its ExaBGP process died: nothing to wait for
    assert holds.excluded() == {"10.0.2.2"}
    holds.hold("10.0.3.2", INTERFACE, "eth3 down")
    holds.forget(["10.0.1.2"])  # a reload removed the other two
    assert holds.excluded() == frozenset()
    assert holds.held_for(INTERFACE) == {}
