"""Event payloads: what the route processor and the daemon report, as MQTT topic suffixes and JSON-ready dicts.

Pure: no I/O, no clock (the timestamp is passed in), no logging. docs/events.md is the reference for every payload.

One daemon round (the batch of queued items `Daemon._consume` handles before commands and kernel changes go out)
gives at most one `routes` message, whatever the number of processor rounds (`Effects`) in it: the prefixes are
merged as the net change over the round, a later action on the same (peer, prefix) replacing an earlier one.
Records that are events in their own right (session changes, config applied) keep one message each, in order.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mcrd.rib.effects import ConfigApplied, Effects, ReceivedChanged, RouteLimitReached, SessionChanged

if TYPE_CHECKING:
    from mcrd.config.load import ConfigProblem

Payload = dict[str, Any]
Message = tuple[str, Payload]  # (topic suffix, payload)

SESSION = "session"
ROUTES = "routes"
CONFIG = "config"
EXABGP = "exabgp"
ROUTE_LIMIT = "route-limit"
INTERFACE = "interface"
BFD = "bfd"
SUFFIXES = (SESSION, ROUTES, CONFIG, EXABGP, ROUTE_LIMIT, INTERFACE, BFD)

# Config fields whose value is a secret: a problem about one never quotes the value.
SECRET_FIELDS = frozenset({"password", "token"})
# Messages about a field that do not start with the offending value (mcrd.config's own wording): safe to keep.
_SAFE_STARTS = ("is ", "has ", "must ", "a list ", "a mapping ", "null ", "unknown field ")
_HIDDEN = "has an invalid value (not shown: the field holds a secret)"
_DUPLICATE_KEY = re.compile(r'duplicate key "(?P<key>[^"]*)" with value .*', re.DOTALL)
_TOPIC_UNSAFE = re.compile(r"[+#\x00]")


# --- helpers ------------------------------------------------------------------------------------------------------


def iso_utc(epoch: float) -> str:
    """`epoch` (seconds, as from time.time()) as ISO 8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def topic(prefix: str, product_name: str, suffix: str) -> str:
    """`{prefix}/{productName}/{suffix}`. MQTT wildcards (+, #) cannot be published to and become '_'; a '/' in
    the product name would add a topic level and becomes '_' too (the payload's `mcr` keeps the real name)."""
    base = _TOPIC_UNSAFE.sub("_", prefix).rstrip("/")
    name = _TOPIC_UNSAFE.sub("_", product_name).replace("/", "_")
    return f"{base}/{name}/{suffix}"


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced by ****, longest first (a secret inside another is not half-replaced)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


def weight(payload: Payload) -> int:
    """How big `payload` is, for the publisher's queue bound: 1, plus every list entry in it (the prefixes of a
    `routes` message, the lines of a rejected config)."""
    total = 1
    stack: list[Any] = [payload]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            total += len(value)
            stack.extend(v for v in value if isinstance(v, dict | list))
    return total


def _base(kind: str, mcr: str, timestamp: str) -> Payload:
    return {"type": kind, "mcr": mcr, "timestamp": timestamp}


# --- processor effects ---------------------------------------------------------------------------------------------


def effects_messages(
    rounds: Effects | Sequence[Effects], *, mcr: str, timestamp: str, secrets: Sequence[str] = ()
) -> list[Message]:
    """The messages for one daemon round: one per session change and per config applied, in the processor's
    order; then at most one `route-limit` and one `routes` message for the whole round."""
    batch: Sequence[Effects] = (rounds,) if isinstance(rounds, Effects) else rounds
    messages: list[Message] = []
    limits: list[RouteLimitReached] = []
    for effects in batch:
        for record in effects.records:
            if isinstance(record, SessionChanged):
                messages.append(session_message(record, mcr=mcr, timestamp=timestamp, secrets=secrets))
            elif isinstance(record, ConfigApplied):
                messages.append(config_applied_message(record, mcr=mcr, timestamp=timestamp))
            elif isinstance(record, RouteLimitReached):
                limits.append(record)
    if limits:
        messages.append(route_limit_message(limits, mcr=mcr, timestamp=timestamp))
    routes = routes_message(batch, mcr=mcr, timestamp=timestamp)
    if routes is not None:
        messages.append(routes)
    return messages


def session_message(record: SessionChanged, *, mcr: str, timestamp: str, secrets: Sequence[str] = ()) -> Message:
    payload = _base(SESSION, mcr, timestamp)
    payload.update(peer=record.peer, vxc=record.vxc, state=record.state,
                   reason=redact(record.reason, secrets) if record.reason else None)
    return SESSION, payload


def config_applied_message(record: ConfigApplied, *, mcr: str, timestamp: str) -> Message:
    payload = _base(CONFIG, mcr, timestamp)
    payload.update(result="applied", peers_added=list(record.peers_added),
                   peers_removed=list(record.peers_removed), reevaluated=list(record.reevaluated))
    return CONFIG, payload


def route_limit_message(records: Sequence[RouteLimitReached], *, mcr: str, timestamp: str) -> Message:
    """One message for the round: the limit and what is waiting as of its end, the refusals summed."""
    last = records[-1]
    payload = _base(ROUTE_LIMIT, mcr, timestamp)
    payload.update(limit=last.limit, refused=sum(r.refused for r in records), waiting=last.waiting)
    return ROUTE_LIMIT, payload


class _Net:
    """Prefixes added or removed over several rounds: the last action on a prefix wins; order is that of the last
    action."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[str, bool] = {}

    def mark(self, prefixes: Iterable[str], added: bool) -> None:
        last = self.last
        for prefix in prefixes:
            last.pop(prefix, None)  # re-inserted at the end: the order is that of the last action
            last[prefix] = added

    def split(self) -> tuple[list[str], list[str]]:
        added = [p for p, a in self.last.items() if a]
        removed = [p for p, a in self.last.items() if not a]
        return added, removed


class _Session:
    __slots__ = ("received", "rejected", "sent", "touched")

    def __init__(self) -> None:
        self.received = _Net()
        self.sent = _Net()
        self.rejected = 0
        self.touched = False


def routes_message(rounds: Sequence[Effects], *, mcr: str, timestamp: str) -> Message | None:
    """One `routes` message for `rounds`, or None when no route changed and none was rejected."""
    sessions: dict[str, _Session] = {}
    best = _Net()

    def session(peer: str) -> _Session:
        found = sessions.get(peer)
        if found is None:
            found = sessions[peer] = _Session()
        return found

    for effects in rounds:
        for record in effects.records:
            if isinstance(record, ReceivedChanged) and (record.accepted or record.removed or record.rejected):
                state = session(record.peer)
                state.received.mark(record.removed, False)
                state.received.mark(record.accepted, True)
                state.rejected += record.rejected
        # The daemon sends withdrawals before announcements: the same order here.
        for withdraw in effects.withdraw:
            session(withdraw.peer).sent.mark(withdraw.prefixes, False)
        for announce in effects.announce:
            session(announce.peer).sent.mark(announce.prefixes, True)
        best.mark(effects.best_removed, False)
        best.mark(effects.best_added, True)
    if not sessions and not best.last:
        return None
    out: list[Payload] = []
    for peer, state in sessions.items():
        accepted, removed = state.received.split()
        announced, withdrawn = state.sent.split()
        out.append({
            "peer": peer,
            "received": {"accepted": accepted, "removed": removed, "rejected": state.rejected},
            "sent": {"announced": announced, "withdrawn": withdrawn},
        })
    best_added, best_removed = best.split()
    payload = _base(ROUTES, mcr, timestamp)
    payload.update(rounds=len(rounds), sessions=out, best={"added": best_added, "removed": best_removed})
    return ROUTES, payload


# --- daemon happenings ---------------------------------------------------------------------------------------------


def config_rejected_message(
    problems: Sequence[ConfigProblem], *, mcr: str, timestamp: str, secrets: Sequence[str] = ()
) -> Message:
    """A reload that was refused: the running config stays. `problems` as `mcrd check` prints them, with the value
    of any secret field (password, token) held back and every configured secret replaced by ****."""
    payload = _base(CONFIG, mcr, timestamp)
    payload.update(result="rejected", problems=[problem_line(p, secrets) for p in problems])
    return CONFIG, payload


def problem_line(problem: ConfigProblem, secrets: Sequence[str] = ()) -> str:
    """`str(problem)` (FILE:LINE: path: message) without any secret in it.

    mcrd.config quotes the offending value in some messages ("123456 is not a string", ruamel's
    'duplicate key "password" with value "..." (original value: "...")'); for a secret field the value is held
    back. The rejected config's own secrets are not in `secrets` (it was never loaded), hence the field check."""
    message = problem.message
    field = re.sub(r"\[\d+\]", "", problem.path).rsplit(".", 1)[-1].lower()
    if field in SECRET_FIELDS and not message.startswith(_SAFE_STARTS):
        message = _HIDDEN
    duplicate = _DUPLICATE_KEY.search(message)
    if duplicate and duplicate["key"].lower() in SECRET_FIELDS:
        message = message[: duplicate.start()] + f'duplicate key "{duplicate["key"]}" (values not shown)'
    return redact(str(dataclasses.replace(problem, message=message)), secrets)


def exabgp_restart_message(
    reason: str, restarts: int, *, mcr: str, timestamp: str, secrets: Sequence[str] = ()
) -> Message:
    """ExaBGP died and is being restarted (every session went down with it)."""
    payload = _base(EXABGP, mcr, timestamp)
    payload.update(event="restart", reason=redact(reason, secrets), restarts=restarts)
    return EXABGP, payload


def interface_message(ifname: str, vxc: str, fault: str, *, mcr: str, timestamp: str) -> Message:
    """A VXC's Linux device went down (`fault` says why) or came back (`fault` empty): its sessions follow."""
    payload = _base(INTERFACE, mcr, timestamp)
    payload.update(interface=ifname, vxc=vxc, state="DOWN" if fault else "UP", reason=fault or None)
    return INTERFACE, payload


def bfd_message(peer: str, vxc: str, old: str, new: str, diag: str, *, mcr: str, timestamp: str) -> Message:
    """A BFD session changed state (`old` -> `new`, RFC 5880 state names as in mcrd.bfd.BfdState)."""
    payload = _base(BFD, mcr, timestamp)
    payload.update(peer=peer, vxc=vxc, state=new, previous=old, diagnostic=diag)
    return BFD, payload
