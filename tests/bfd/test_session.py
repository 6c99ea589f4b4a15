"""The pure BFD state machine (RFC 5880 6.2, 6.5, 6.8): state table, timers, Poll/Final, jitter."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.bfd import session as sm
from mcrd.bfd.packet import BfdDiag, BfdState, ControlPacket, decode, encode

T300 = sm.Timers(300_000, 300_000, 3)
DOWN, INIT, UP, ADMIN = BfdState.DOWN, BfdState.INIT, BfdState.UP, BfdState.ADMIN_DOWN


def wire(p: ControlPacket | None) -> ControlPacket:
    """What the peer would decode: every packet the state machine builds must pass the receive checks."""
    assert p is not None
    return decode(encode(p))


def from_peer(state: BfdState, *, discr: int = 99, your: int = 1, tx: int = 300_000, rx: int = 300_000,
              mult: int = 3, **flags: bool) -> ControlPacket:
    return ControlPacket(state, mult, discr, your, tx, rx, **flags)


def pair_up(a_timers: sm.Timers = T300, b_timers: sm.Timers = T300) -> tuple[sm.Session, sm.Session, float]:
    """Two sessions brought Up by exchanging their packets (the three-way handshake), and the time reached."""
    a = sm.new_session(1, a_timers, 0.0)
    b = sm.new_session(2, b_timers, 0.0)
    now = 0.0
    step = sm.expire(a, now, 0.5)
    a, pkt = step.session, step.send
    for _ in range(6):
        now += 0.01
        got = sm.receive(b, wire(pkt), now, 0.5)
        b = got.session
        pkt = got.send or sm.packet(b)
        now += 0.01
        got = sm.receive(a, wire(pkt), now, 0.5)
        a = got.session
        pkt = got.send or sm.packet(a)
        if a.state is UP and b.state is UP:
            return a, b, now
    raise AssertionError(f"not Up: {a.state} {b.state}")


# ---- state table (6.2, 6.8.6) ---------------------------------------------------------------------------------------

TABLE = [
    # local, received, new local state, diag
    (DOWN, ADMIN, DOWN, BfdDiag.NONE),
    (DOWN, DOWN, INIT, BfdDiag.NONE),
    (DOWN, INIT, UP, BfdDiag.NONE),
    (DOWN, UP, DOWN, BfdDiag.NONE),
    (INIT, ADMIN, DOWN, BfdDiag.NEIGHBOR_SIGNALED_DOWN),
    (INIT, DOWN, INIT, BfdDiag.NONE),
    (INIT, INIT, UP, BfdDiag.NONE),
    (INIT, UP, UP, BfdDiag.NONE),
    (UP, ADMIN, DOWN, BfdDiag.NEIGHBOR_SIGNALED_DOWN),
    (UP, DOWN, DOWN, BfdDiag.NEIGHBOR_SIGNALED_DOWN),
    (UP, INIT, UP, BfdDiag.NONE),
    (UP, UP, UP, BfdDiag.NONE),
]


@pytest.mark.parametrize(("local", "received", "new", "diag"), TABLE)
def test_state_table(local: BfdState, received: BfdState, new: BfdState, diag: BfdDiag) -> None:
    s = replace(sm.new_session(1, T300, 0.0), state=local)
    step = sm.receive(s, from_peer(received), 1.0, 0.5)
    assert step.session.state is new
    assert step.session.local_diag is diag
    if new is local:
        assert step.transition is None
        assert step.send is None
    else:
        assert step.transition == sm.Transition(local, new, diag, 1.0)
        assert wire(step.send).state is new  # a state change goes out at once
        assert step.session.transitions == 1
        assert step.session.last_change == 1.0


@pytest.mark.parametrize("received", list(BfdState))
def test_admin_down_ignores_everything(received: BfdState) -> None:
    s = sm.admin_down(sm.new_session(1, T300, 0.0), 0.0, 0.5).session
    step = sm.receive(s, from_peer(received, poll=True), 1.0, 0.5)
    assert step.session.state is ADMIN
    assert step.transition is None
    assert step.send is None
    assert step.session.detect_deadline is None


def test_admin_down_sends_diag_7_at_once() -> None:
    a, _, now = pair_up()
    step = sm.admin_down(a, now, 0.5)
    p = wire(step.send)
    assert (p.state, p.diag) == (ADMIN, BfdDiag.ADMINISTRATIVELY_DOWN)
    assert step.transition == sm.Transition(UP, ADMIN, BfdDiag.ADMINISTRATIVELY_DOWN, now)


def test_handshake_and_received_fields() -> None:
    a, b, _ = pair_up()
    assert (a.remote_discr, b.remote_discr) == (2, 1)
    assert (a.remote_state, b.remote_state) == (UP, UP)
    p = wire(sm.packet(a))
    assert (p.my_discriminator, p.your_discriminator, p.state, p.demand, p.auth_present, p.required_min_echo_rx_us) \
        == (1, 2, UP, False, False, 0)


# ---- timers ---------------------------------------------------------------------------------------------------------

def test_slow_tx_while_not_up() -> None:
    s = sm.new_session(1, T300, 0.0)
    assert wire(sm.packet(s)).desired_min_tx_us == 1_000_000  # 6.8.3: at least 1 s while not Up
    assert wire(sm.packet(s)).required_min_rx_us == 300_000
    s = sm.receive(s, from_peer(DOWN, tx=1_000_000, rx=300_000), 0.0, 0.5).session
    assert s.state is INIT
    assert s.tx_interval_us == 1_000_000
    step = sm.expire(s, s.next_tx or 0.0, 0.999)
    assert wire(step.send).desired_min_tx_us == 1_000_000


def test_coming_up_polls_for_the_fast_interval_and_uses_it_at_once() -> None:
    s = sm.new_session(1, T300, 0.0)
    step = sm.receive(s, from_peer(INIT, rx=300_000), 1.0, 0.0)
    assert step.session.state is UP
    p = wire(step.send)
    assert p.poll
    assert p.desired_min_tx_us == 300_000
    assert step.session.tx_interval_us == 300_000  # a decrease may be used before the Final
    assert step.session.next_tx == pytest.approx(1.0 + 0.75 * 0.3)
    done = sm.receive(step.session, from_peer(UP, final=True), 1.1, 0.0).session
    assert not done.poll
    assert not wire(sm.packet(done)).poll


@given(
    st.integers(1, 30_000), st.integers(0, 30_000), st.integers(1, 255),
    st.integers(1, 30_000), st.integers(1, 30_000), st.integers(1, 255),
)
def test_negotiated_intervals_and_detection_time(
    tx_ms: int, rx_ms: int, mult: int, rtx_ms: int, rrx_ms: int, rmult: int
) -> None:
    s = sm.new_session(1, sm.Timers(tx_ms * 1000, rx_ms * 1000, mult), 0.0)
    s = replace(s, state=UP, tx_in_use_us=tx_ms * 1000)
    s = sm.receive(s, from_peer(UP, tx=rtx_ms * 1000, rx=rrx_ms * 1000, mult=rmult), 5.0, 0.5).session
    assert s.tx_interval_us == max(tx_ms, rrx_ms) * 1000
    assert s.rx_interval_us == max(rx_ms, rtx_ms) * 1000
    assert s.detection_time_us == rmult * max(rx_ms, rtx_ms) * 1000
    assert s.detect_deadline == pytest.approx(5.0 + s.detection_time_us / 1e6)


@given(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255), st.integers(1, 30_000))
def test_jitter(rand: float, mult: int, tx_ms: int) -> None:
    a, _, now = pair_up(sm.Timers(tx_ms * 1000, 300_000, mult))
    a = sm.receive(a, from_peer(UP, your=1, final=True), now, 0.5).session  # poll over
    nxt = sm.jittered(a, now, rand)
    assert nxt is not None
    share = (nxt - now) / (a.tx_interval_us / 1e6)
    assert share + 1e-9 >= 0.75
    assert share <= (0.9 if mult == 1 else 1.0) + 1e-9


def test_periodic_transmission_follows_next_tx() -> None:
    a, _, _now = pair_up()
    nxt = a.next_tx
    assert nxt is not None
    assert sm.expire(a, nxt - 0.001, 0.5).send is None
    step = sm.expire(a, nxt, 0.5)
    assert wire(step.send).state is UP
    assert step.session.next_tx == pytest.approx(nxt + 0.3 * 0.875)


def test_no_periodic_tx_when_remote_required_rx_is_zero() -> None:
    a, _, now = pair_up()
    s = sm.receive(a, from_peer(UP, rx=0), now, 0.5).session
    assert s.next_tx is None
    assert sm.wakeup(s) == s.detect_deadline


def test_remote_demand_mode_stops_periodic_tx_when_both_up() -> None:
    a, _, now = pair_up()
    a = sm.receive(a, from_peer(UP, final=True), now, 0.5).session
    s = sm.receive(a, from_peer(UP, demand=True), now + 0.1, 0.5).session
    assert s.next_tx is None
    assert not wire(sm.packet(s)).demand  # our own Demand mode is off


def test_remote_lowering_its_rx_is_honoured_at_once() -> None:
    s = replace(sm.new_session(1, sm.Timers(300_000, 300_000, 3), 0.0), state=UP, tx_in_use_us=300_000)
    s = sm.receive(s, from_peer(UP, rx=5_000_000), 0.0, 0.0).session
    s = sm.expire(s, 0.0, 0.0).session
    assert s.next_tx == pytest.approx(0.75 * 5.0)
    s = sm.receive(s, from_peer(UP, rx=300_000), 0.1, 0.0).session
    assert s.next_tx == pytest.approx(0.1 + 0.75 * 0.3)


# ---- detection ------------------------------------------------------------------------------------------------------

def test_detection_time_expiry_takes_session_down_with_diag_1() -> None:
    a, _, now = pair_up()
    deadline = a.detect_deadline
    assert deadline is not None
    assert deadline == pytest.approx(now + 3 * 0.3)
    before = sm.expire(a, deadline - 0.001, 0.5)
    assert before.transition is None
    step = sm.expire(a, deadline, 0.5)
    assert step.transition == sm.Transition(UP, DOWN, BfdDiag.CONTROL_DETECTION_TIME_EXPIRED, deadline)
    p = wire(step.send)
    assert (p.state, p.diag, p.your_discriminator) == (DOWN, 1, 0)  # 6.8.1: remote discriminator forgotten
    assert step.session.desired_min_tx_us == 1_000_000  # back to the slow rate


def test_init_times_out_too() -> None:
    s = sm.receive(sm.new_session(1, T300, 0.0), from_peer(DOWN), 0.0, 0.5).session
    assert s.state is INIT
    step = sm.expire(s, s.detect_deadline or 0.0, 0.5)
    assert step.transition is not None
    assert step.transition.new is DOWN


def test_silence_while_down_forgets_the_remote_without_a_transition() -> None:
    s = sm.receive(sm.new_session(1, T300, 0.0), from_peer(UP), 0.0, 0.5).session  # Down stays Down on Up
    assert (s.state, s.remote_discr) == (DOWN, 99)
    step = sm.expire(s, s.detect_deadline or 0.0, 0.5)
    assert step.transition is None
    assert step.session.remote_discr == 0


def test_recovery_after_detection_timeout() -> None:
    a, _, now = pair_up()
    a = sm.expire(a, a.detect_deadline or 0.0, 0.5).session
    a = sm.receive(a, from_peer(DOWN, your=1), now + 2, 0.5).session
    assert a.state is INIT
    step = sm.receive(a, from_peer(UP, your=1), now + 2.1, 0.5)
    assert step.session.state is UP
    assert step.session.transitions == 4  # Up, Down (timeout), Init, Up
    assert step.session.local_diag is BfdDiag.NONE


# ---- Poll / Final (6.5, 6.8.3) --------------------------------------------------------------------------------------

def test_poll_is_answered_at_once_with_final() -> None:
    a, _, now = pair_up()
    step = sm.receive(a, from_peer(UP, poll=True, tx=500_000), now + 0.05, 0.5)
    p = wire(step.send)
    assert p.final
    assert not p.poll


def test_retime_up_slower_tx_waits_for_final() -> None:
    a, _, now = pair_up()
    a = sm.receive(a, from_peer(UP, final=True), now, 0.5).session
    step = sm.retime(a, sm.Timers(1_000_000, 300_000, 3), now + 0.1, 0.5)
    p = wire(step.send)
    assert p.poll
    assert p.desired_min_tx_us == 1_000_000
    assert step.session.tx_interval_us == 300_000  # not before the Final
    s = sm.expire(step.session, step.session.next_tx or 0.0, 0.5)
    assert s.transition is None
    assert wire(s.send).poll  # periodic packets carry the Poll bit until the Final
    done = sm.receive(s.session, from_peer(UP, final=True), now + 0.5, 0.5).session
    assert not done.poll
    assert done.tx_interval_us == 1_000_000


def test_retime_up_shorter_detection_waits_for_final() -> None:
    a, _, now = pair_up(sm.Timers(300_000, 1_000_000, 3))
    a = sm.receive(a, from_peer(UP, final=True, tx=300_000), now, 0.5).session
    assert a.detection_time_us == 3_000_000
    step = sm.retime(a, sm.Timers(300_000, 300_000, 3), now + 0.1, 0.5)
    assert wire(step.send).required_min_rx_us == 300_000
    s = sm.receive(step.session, from_peer(UP, tx=300_000), now + 0.2, 0.5).session
    assert s.detection_time_us == 3_000_000  # the old Required Min RX still counts
    s = sm.receive(s, from_peer(UP, tx=300_000, final=True), now + 0.3, 0.5).session
    assert s.detection_time_us == 900_000


def test_retime_longer_detection_and_faster_tx_apply_at_once() -> None:
    a, _, now = pair_up(sm.Timers(600_000, 300_000, 3))
    a = sm.receive(a, from_peer(UP, final=True), now, 0.5).session
    step = sm.retime(a, sm.Timers(300_000, 900_000, 5), now + 0.1, 0.5)
    s = sm.receive(step.session, from_peer(UP, tx=300_000), now + 0.2, 0.5).session
    assert s.tx_interval_us == 300_000
    assert s.detection_time_us == 3 * 900_000
    assert wire(sm.packet(s)).detect_mult == 5


def test_retime_while_down_needs_no_poll() -> None:
    s = sm.new_session(1, T300, 0.0)
    step = sm.retime(s, sm.Timers(2_000_000, 500_000, 4), 1.0, 0.5)
    p = wire(step.send)
    assert not p.poll
    assert (p.desired_min_tx_us, p.required_min_rx_us, p.detect_mult) == (2_000_000, 500_000, 4)


def test_retime_with_same_timers_changes_nothing() -> None:
    a, _, now = pair_up()
    step = sm.retime(a, T300, now, 0.5)
    assert step == sm.Step(a)


def test_final_without_poll_is_harmless() -> None:
    a, _, now = pair_up()
    a = sm.receive(a, from_peer(UP, final=True), now, 0.5).session
    b = sm.receive(a, from_peer(UP, final=True), now + 0.1, 0.5).session
    assert b.state is UP
    assert not b.poll


@given(st.lists(st.tuples(st.sampled_from(BfdState), st.booleans(), st.booleans(), st.floats(0, 2)), max_size=30))
def test_invariants_under_any_packet_sequence(events: list[tuple[BfdState, bool, bool, float]]) -> None:
    s = sm.new_session(1, T300, 0.0)
    now = 0.0
    for state, poll, timeout, dt in events:
        now += dt
        step = sm.expire(s, now, 0.5) if timeout else sm.receive(s, from_peer(state, your=1, poll=poll), now, 0.5)
        s = step.session
        if step.send is not None:
            p = wire(step.send)
            assert not (p.poll and p.final)
            assert p.desired_min_tx_us >= (300_000 if s.state is UP else 1_000_000)
        assert s.state is not ADMIN
        if s.state is not UP:
            assert not s.poll
        if step.transition is not None:
            assert step.transition.new is s.state


def test_change_during_a_poll_sequence_polls_again() -> None:
    a, _, now = pair_up()
    a = sm.receive(a, from_peer(UP, final=True), now, 0.5).session
    a = sm.retime(a, sm.Timers(600_000, 300_000, 3), now + 0.05, 0.5).session
    a = sm.retime(a, sm.Timers(900_000, 300_000, 3), now + 0.1, 0.5).session
    # This Final may answer the first Poll only: the slower TX waits and the Poll bit stays.
    a = sm.receive(a, from_peer(UP, final=True), now + 0.15, 0.5).session
    assert a.poll
    assert a.tx_interval_us == 300_000
    assert wire(sm.packet(a)).poll
    a = sm.receive(a, from_peer(UP, final=True), now + 0.2, 0.5).session
    assert not a.poll
    assert a.tx_interval_us == 900_000


# ---- two sessions over a simulated link -----------------------------------------------------------------------------

def simulate(a_timers: sm.Timers, b_timers: sm.Timers, cut_at: float, until: float, seed: int,
             loss: float = 0.0) -> tuple[list[sm.Transition], list[sm.Transition]]:
    """Two sessions exchanging every packet they send (1 ms delay, optional loss) in simulated time; from `cut_at`
    on nothing gets through.  Returns each side's transitions."""
    import heapq
    import random

    rng = random.Random(seed)
    sessions = [sm.new_session(1, a_timers, 0.0), sm.new_session(2, b_timers, 0.0)]
    seen: list[list[sm.Transition]] = [[], []]
    queue: list[tuple[float, int, int, ControlPacket | None]] = []  # (time, seq, side, packet or None = timer)
    seq = 0

    def push(at: float, side: int, p: ControlPacket | None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, side, p))

    def handle(side: int, step: sm.Step, now: float) -> None:
        sessions[side] = step.session
        if step.transition is not None:
            seen[side].append(step.transition)
        if step.send is not None and now < cut_at and rng.random() >= loss:
            push(now + 0.001, 1 - side, wire(step.send))
        wake = sm.wakeup(step.session)
        if wake is not None:
            push(max(wake, now), side, None)

    for side in (0, 1):
        push(0.0 if side == 0 else 0.137, side, None)
    while queue:
        now, _, side, p = heapq.heappop(queue)
        if now > until:
            break
        s = sessions[side]
        if p is None:
            due = sm.wakeup(s)
            if due is None or due > now:
                continue  # a stale timer: the session re-armed since
            handle(side, sm.expire(s, now, rng.random()), now)
        else:
            handle(side, sm.receive(s, p, now, rng.random()), now)
    return seen[0], seen[1]


TIMERS = st.builds(sm.Timers, st.sampled_from([300_000, 500_000, 1_000_000]),
                   st.sampled_from([300_000, 600_000, 1_000_000]), st.integers(2, 5))


@settings(max_examples=40, deadline=None)
@given(TIMERS, TIMERS, st.integers(0, 1000))
def test_two_sessions_come_up_and_detect_a_cut_within_the_detection_time(
    a_t: sm.Timers, b_t: sm.Timers, seed: int
) -> None:
    cut = 20.0
    a_seen, b_seen = simulate(a_t, b_t, cut, cut + 10, seed)
    for mine, theirs, seen in ((a_t, b_t, a_seen), (b_t, a_t, b_seen)):
        ups = [t for t in seen if t.new is UP]
        assert ups, seen
        assert ups[0].at < 3.5  # the handshake at the 1 s slow rate
        assert all(t.at >= cut for t in seen if t.new is DOWN)  # no flap while the link works
        down = [t for t in seen if t.new is DOWN]
        assert down, seen
        # Detection Time = the remote's Detect Mult x max(our Required Min RX, its Desired Min TX), counted from
        # the last packet, which left at most one of its intervals before the cut (1 ms delay).
        detect = theirs.detect_mult * max(mine.required_min_rx_us, theirs.desired_min_tx_us) / 1e6
        assert down[0].at - cut <= detect + 0.01
        assert down[0].diag in (BfdDiag.CONTROL_DETECTION_TIME_EXPIRED, BfdDiag.NEIGHBOR_SIGNALED_DOWN)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 1000))
def test_moderate_loss_does_not_flap_at_multiplier_5(seed: int) -> None:
    # 5 % loss: losing 5 packets in a row (what takes a 5 x session down) has a probability of 3e-7 per packet.
    t = sm.Timers(300_000, 300_000, 5)
    a_seen, b_seen = simulate(t, t, 60.0, 60.0, seed, loss=0.05)
    assert [x.new for x in a_seen if x.new is DOWN] == []
    assert [x.new for x in b_seen if x.new is DOWN] == []
