"""One BFD session's state machine (RFC 5880 6.2, 6.5, 6.8.1-6.8.7, asynchronous mode): pure values, no I/O, no clock.

A `Session` is a frozen snapshot of the RFC's state variables plus two deadlines the I/O edge turns into one timer:
`next_tx` (the next periodic packet) and `detect_deadline` (the Detection Time running out).  Every event is a
function `(session, ..., now) -> Step`: the new session, the packet to send at once (if any) and the state
change (if any).  `now` is in seconds of any monotonic clock; intervals are microseconds as on the wire.

What the functions implement:
* the state table of 6.2/6.8.6 (Down -> Init on Down, Down/Init -> Up on Init/Up, Up -> Down on Down, AdminDown
  received -> Down with diag 3, Detection Time expired in Init/Up -> Down with diag 1);
* negotiated intervals: TX = max(bfd.DesiredMinTxInterval, bfd.RemoteMinRxInterval) (6.8.2, 6.8.3); Detection Time
  = remote Detect Mult x max(bfd.RequiredMinRxInterval, last received Desired Min TX) (6.8.4);
* 1 s minimum Desired Min TX while not Up (6.8.3), so coming Up changes it and starts a Poll Sequence;
* Poll Sequences (6.5) on timer changes, with 6.8.3's rules: an increased TX interval and a reduced RX interval only
  take effect once the Final arrives; a Poll is answered at once with a Final;
* jitter of 75-100 % of the interval, 75-90 % with Detect Mult 1 (6.8.7); nothing periodic when the remote's Required
  Min RX is 0, or when the remote runs Demand mode and both ends are Up (6.8.7);
* bfd.RemoteDiscr reset after a Detection Time of silence (6.8.1).
Not here: Demand mode of our own, the Echo function, authentication (packets with the A bit never get this far).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mcrd.bfd.packet import BfdDiag, BfdState, ControlPacket

SLOW_TX_US = 1_000_000  # 6.8.3: bfd.DesiredMinTxInterval while not Up


@dataclass(frozen=True, slots=True)
class Timers:
    """What is configured locally (microseconds)."""

    desired_min_tx_us: int
    required_min_rx_us: int
    detect_mult: int

    def __post_init__(self) -> None:
        if not (1 <= self.desired_min_tx_us <= 0xFFFFFFFF and 0 <= self.required_min_rx_us <= 0xFFFFFFFF):
            raise ValueError(f"BFD intervals out of range: {self}")
        if not 1 <= self.detect_mult <= 255:
            raise ValueError(f"BFD detect multiplier {self.detect_mult} out of range 1..255")


@dataclass(frozen=True, slots=True)
class Transition:
    old: BfdState
    new: BfdState
    diag: BfdDiag
    at: float


@dataclass(frozen=True, slots=True)
class Session:
    local_discr: int
    timers: Timers
    state: BfdState = BfdState.DOWN
    remote_state: BfdState = BfdState.DOWN
    local_diag: BfdDiag = BfdDiag.NONE
    remote_diag: BfdDiag = BfdDiag.NONE
    remote_discr: int = 0
    remote_min_rx_us: int = 1  # 6.8.1: initialised to 1
    remote_desired_tx_us: int = 0  # 0: nothing received yet
    remote_detect_mult: int = 0
    remote_demand: bool = False
    # The values in force for the TX interval and the Detection Time; they trail the advertised ones during a Poll
    # Sequence that makes them more conservative only once the peer acknowledged (6.8.3).
    tx_in_use_us: int = SLOW_TX_US
    rx_in_use_us: int = 0
    poll: bool = False
    poll_again: bool = False  # changed again during a Poll Sequence: one more once this one ends (6.5)
    next_tx: float | None = None
    detect_deadline: float | None = None
    transitions: int = 0
    last_change: float | None = None

    @property
    def desired_min_tx_us(self) -> int:
        """bfd.DesiredMinTxInterval as advertised: at least 1 s while not Up (6.8.3)."""
        if self.state is BfdState.UP:
            return self.timers.desired_min_tx_us
        return max(SLOW_TX_US, self.timers.desired_min_tx_us)

    @property
    def tx_interval_us(self) -> int:
        """The negotiated transmit interval (6.8.2)."""
        return max(self.tx_in_use_us, self.remote_min_rx_us)

    @property
    def rx_interval_us(self) -> int:
        """The interval the remote sends at, as agreed: max(our Required Min RX, its Desired Min TX)."""
        return max(self.rx_in_use_us, self.remote_desired_tx_us)

    @property
    def detection_time_us(self) -> int:
        """Asynchronous-mode Detection Time (6.8.4); 0 before anything was received."""
        return self.remote_detect_mult * self.rx_interval_us


@dataclass(frozen=True, slots=True)
class Step:
    session: Session
    send: ControlPacket | None = None
    transition: Transition | None = None


def new_session(local_discr: int, timers: Timers, now: float) -> Session:
    """A session in Down that sends its first packet at once."""
    if not 1 <= local_discr <= 0xFFFFFFFF:
        raise ValueError(f"BFD local discriminator {local_discr} out of range 1..2^32-1")
    s = Session(local_discr=local_discr, timers=timers, rx_in_use_us=timers.required_min_rx_us, next_tx=now)
    return replace(s, tx_in_use_us=s.desired_min_tx_us)


def packet(s: Session, *, final: bool = False) -> ControlPacket:
    """The Control packet this session sends now (6.8.7); `final` answers a Poll (and then carries no Poll bit)."""
    return ControlPacket(
        state=s.state,
        diag=int(s.local_diag),
        detect_mult=s.timers.detect_mult,
        my_discriminator=s.local_discr,
        your_discriminator=s.remote_discr,
        desired_min_tx_us=s.desired_min_tx_us,
        required_min_rx_us=s.timers.required_min_rx_us,
        poll=s.poll and not final,
        final=final,
    )


def jittered(s: Session, now: float, rand: float) -> float | None:
    """When the next periodic packet is due (6.8.7): 75-100 % of the interval (75-90 % with Detect Mult 1), or None
    when nothing may be sent periodically.  `rand` is uniform in [0, 1)."""
    if s.remote_min_rx_us == 0:
        return None
    if s.remote_demand and s.state is BfdState.UP and s.remote_state is BfdState.UP and not s.poll:
        return None
    span = 0.15 if s.timers.detect_mult == 1 else 0.25
    return now + s.tx_interval_us * (0.75 + span * rand) / 1e6


def _set_state(s: Session, new: BfdState, diag: BfdDiag, now: float) -> tuple[Session, Transition | None]:
    if new is s.state:
        return s, None
    moved = replace(s, state=new, local_diag=diag, transitions=s.transitions + 1, last_change=now)
    before = s.desired_min_tx_us
    after = moved.desired_min_tx_us
    if new is BfdState.UP:
        # Coming Up drops the 1 s floor: a change of bfd.DesiredMinTxInterval, so a Poll Sequence (6.8.3); a faster
        # TX may be used at once.
        if after != before:
            moved = replace(moved, poll=True, tx_in_use_us=min(moved.tx_in_use_us, after))
    else:
        # Outside Up nothing needs the peer's agreement: the advertised values are the ones in force.
        moved = replace(moved, poll=False, poll_again=False, tx_in_use_us=after,
                        rx_in_use_us=moved.timers.required_min_rx_us)
    return moved, Transition(s.state, new, diag, now)


def _with_next_tx(s: Session, now: float, rand: float) -> Session:
    return replace(s, next_tx=jittered(s, now, rand))


def receive(s: Session, p: ControlPacket, now: float, rand: float) -> Step:
    """A valid packet for this session arrived (decode() and the session lookup already passed): 6.8.6."""
    s = replace(
        s,
        remote_discr=p.my_discriminator,
        remote_state=p.state,
        remote_diag=BfdDiag.of(p.diag),
        remote_demand=p.demand,
        remote_min_rx_us=p.required_min_rx_us,
        remote_desired_tx_us=p.desired_min_tx_us,
        remote_detect_mult=p.detect_mult,
    )
    if p.final and s.poll:
        if s.poll_again:
            # The Final may answer a Poll sent before the last change: keep the values in force, poll once more.
            s = replace(s, poll_again=False)
        else:
            s = replace(s, poll=False, tx_in_use_us=s.desired_min_tx_us, rx_in_use_us=s.timers.required_min_rx_us)
    if s.state is BfdState.ADMIN_DOWN:
        return Step(s)  # 6.8.6: discard further processing
    s = replace(s, detect_deadline=now + s.detection_time_us / 1e6)
    new = s.state
    diag = s.local_diag
    if p.state is BfdState.ADMIN_DOWN:
        if s.state is not BfdState.DOWN:
            new, diag = BfdState.DOWN, BfdDiag.NEIGHBOR_SIGNALED_DOWN
    elif s.state is BfdState.DOWN:
        if p.state is BfdState.DOWN:
            new, diag = BfdState.INIT, BfdDiag.NONE
        elif p.state is BfdState.INIT:
            new, diag = BfdState.UP, BfdDiag.NONE
    elif s.state is BfdState.INIT:
        if p.state in (BfdState.INIT, BfdState.UP):
            new, diag = BfdState.UP, BfdDiag.NONE
    elif p.state is BfdState.DOWN:  # Up
        new, diag = BfdState.DOWN, BfdDiag.NEIGHBOR_SIGNALED_DOWN
    s, change = _set_state(s, new, diag, now)
    # A state change is sent at once (it is what moves the peer's state machine) and restarts the period.
    s = _with_next_tx(s, now, rand) if change is not None else _keep_pace(s, now, rand)
    if p.poll:
        return Step(s, packet(s, final=True), change)  # answered at once (6.5)
    return Step(s, packet(s) if change is not None else None, change)


def _keep_pace(s: Session, now: float, rand: float) -> Session:
    """Re-time the next periodic packet after the remote's parameters changed: stop when periodic packets are no
    longer allowed, start again when they are, and honour a lowered Required Min RX at once (6.8.3)."""
    due = jittered(s, now, rand)
    if due is None:
        return replace(s, next_tx=None)
    if s.next_tx is None or s.next_tx - now > s.tx_interval_us / 1e6:
        return replace(s, next_tx=due)
    return s


def expire(s: Session, now: float, rand: float) -> Step:
    """The timer fired at `now`: the Detection Time (6.8.4) and the periodic transmission (6.8.7)."""
    change = None
    if s.detect_deadline is not None and now >= s.detect_deadline:
        # 6.8.1: after a Detection Time of silence the remote's discriminator is forgotten.
        s = replace(s, detect_deadline=None, remote_discr=0, remote_state=BfdState.DOWN)
        if s.state in (BfdState.INIT, BfdState.UP):
            s, change = _set_state(s, BfdState.DOWN, BfdDiag.CONTROL_DETECTION_TIME_EXPIRED, now)
    if change is not None:
        return Step(_with_next_tx(s, now, rand), packet(s), change)
    if s.next_tx is not None and now >= s.next_tx:
        return Step(_with_next_tx(s, now, rand), packet(s))
    return Step(s)


def retime(s: Session, timers: Timers, now: float, rand: float) -> Step:
    """New local timers (a reload): a Poll Sequence when Up (6.5, 6.8.3), sent at once."""
    if timers == s.timers:
        return Step(s)
    old_tx, old_rx = s.desired_min_tx_us, s.timers.required_min_rx_us
    s = replace(s, timers=timers)
    new_tx, new_rx = s.desired_min_tx_us, timers.required_min_rx_us
    if s.state is not BfdState.UP:
        s = replace(s, tx_in_use_us=new_tx, rx_in_use_us=new_rx)
        return Step(_with_next_tx(s, now, rand), packet(s))
    # Up: a faster TX and a longer Detection Time are safe at once; the others wait for the Final.
    s = replace(
        s,
        poll=True,
        poll_again=s.poll,
        tx_in_use_us=min(s.tx_in_use_us, new_tx) if new_tx < old_tx else s.tx_in_use_us,
        rx_in_use_us=max(s.rx_in_use_us, new_rx) if new_rx > old_rx else s.rx_in_use_us,
    )
    return Step(_with_next_tx(s, now, rand), packet(s))


def admin_down(s: Session, now: float, rand: float) -> Step:
    """Take the session administratively down (6.8.16): AdminDown with diag 7, sent at once."""
    s, change = _set_state(s, BfdState.ADMIN_DOWN, BfdDiag.ADMINISTRATIVELY_DOWN, now)
    s = replace(s, detect_deadline=None)
    return Step(_with_next_tx(s, now, rand), packet(s), change)


def wakeup(s: Session) -> float | None:
    """When `expire` must run next."""
    times = [t for t in (s.next_tx, s.detect_deadline) if t is not None]
    return min(times) if times else None
