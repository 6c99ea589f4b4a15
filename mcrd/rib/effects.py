"""What the route processor asks the edge to do, and what it reports, for one processing round."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcrd.route.attributes import PathAttributes


@dataclass(frozen=True, slots=True)
class Announce:
    """Send `prefixes` to `peer`, all with `attrs` (one ExaBGP command can carry them all)."""

    peer: str
    attrs: PathAttributes
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Withdraw:
    peer: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FibNextHop:
    gateway: str
    ifname: str  # the VXC's Linux interface ("" when unknown)


@dataclass(frozen=True, slots=True)
class FibInstall:
    """Install (or replace) `prefixes` in the kernel via `next_hop`."""

    next_hop: FibNextHop
    prefixes: tuple[str, ...]


# --- records, for logs, the looking glass and event publishing ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionChanged:
    peer: str
    vxc: str
    state: str  # "UP" or "DOWN"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReceivedChanged:
    """Prefixes that started or stopped being accepted from `peer` in this round."""

    peer: str
    accepted: tuple[str, ...]
    removed: tuple[str, ...]
    rejected: int  # routes received in this round and rejected by import policy


@dataclass(frozen=True, slots=True)
class RouteLimitReached:
    limit: int
    refused: int  # prefixes refused in this round
    waiting: int  # prefixes refused and waiting for room


@dataclass(frozen=True, slots=True)
class InputIgnored:
    """An input that could not be applied (unknown or down peer): the edge logs it."""

    what: str
    why: str


@dataclass(frozen=True, slots=True)
class ConfigApplied:
    peers_added: tuple[str, ...]
    peers_removed: tuple[str, ...]
    reevaluated: tuple[str, ...]  # peers whose stored routes went through import policy again


Record = SessionChanged | ReceivedChanged | RouteLimitReached | InputIgnored | ConfigApplied


@dataclass(frozen=True, slots=True)
class Effects:
    announce: tuple[Announce, ...] = ()
    withdraw: tuple[Withdraw, ...] = ()
    fib_install: tuple[FibInstall, ...] = ()
    fib_remove: tuple[str, ...] = ()
    best_added: tuple[str, ...] = ()
    best_removed: tuple[str, ...] = ()
    records: tuple[Record, ...] = field(default=())
