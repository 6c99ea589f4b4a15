"""Best-path selection.

RFC 4271 9.1.2.2, as "MCR follows standard BGP policies" (DOC mcr-looking-glass):
  a) highest LOCAL_PREF; b) shortest AS_PATH; c) lowest ORIGIN; d) lowest MED among routes from the same
  neighbouring AS; e) eBGP over iBGP; f) lowest IGP cost to the next hop; g) lowest BGP identifier;
  h) lowest peer address.

Our implementation:
  0) routes the MCR originates (static, connected) win over learned ones, as vendors do with weight 32768;
  a) LOCAL_PREF is 100 for every learned route (`mcrd.policy.mcr.LOCAL_PREF`: the MCR has no setting);
  f) is skipped: every next hop is on a directly connected subnet;
  the "oldest eBGP route" tie-break vendors add is not used, so the result never depends on arrival order;
  i) two static routes for one prefix: the lowest next hop (Decision).
Each step is a small comparator; the first that decides names the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

from mcrd.rib.entry import RouteEntry


class Step(Enum):
    ONLY_CANDIDATE = "only candidate"
    LOCAL_ORIGIN = "originated by the MCR"
    LOCAL_PREF = "higher local preference"
    AS_PATH = "shorter AS path"
    ORIGIN = "lower origin"
    MED = "lower MED"
    EBGP = "eBGP over iBGP"
    ROUTER_ID = "lower router ID"
    PEER_ADDRESS = "lower peer address"
    NEXT_HOP = "lower next hop"
    EQUAL = "equal"


def _local_origin(a: RouteEntry, b: RouteEntry) -> int:
    return (not a.source.local) - (not b.source.local)


def _local_pref(a: RouteEntry, b: RouteEntry) -> int:
    return 0  # both mcrd.policy.mcr.LOCAL_PREF; kept as a step so a later setting has its place


def _as_path(a: RouteEntry, b: RouteEntry) -> int:
    return a.attrs.path_length - b.attrs.path_length


def _origin(a: RouteEntry, b: RouteEntry) -> int:
    return a.attrs.origin - b.attrs.origin


def _med(a: RouteEntry, b: RouteEntry) -> int:
    if a.attrs.neighbor_as != b.attrs.neighbor_as:
        return 0
    # A route without MED has the lowest possible MED (RFC 4271 9.1.2.2 d).
    return (a.attrs.med or 0) - (b.attrs.med or 0)


def _ebgp(a: RouteEntry, b: RouteEntry) -> int:
    return (not a.source.ebgp) - (not b.source.ebgp)


def _router_id(a: RouteEntry, b: RouteEntry) -> int:
    return _sign(a.source.router_id - b.source.router_id)


def _peer_address(a: RouteEntry, b: RouteEntry) -> int:
    return _sign_tuple(a.source.address_key, b.source.address_key)


def _next_hop(a: RouteEntry, b: RouteEntry) -> int:
    return _sign_tuple(a.next_hop_key, b.next_hop_key)


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def _sign_tuple(a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a > b) - (a < b)


_STEPS: tuple[tuple[Callable[[RouteEntry, RouteEntry], int], Step], ...] = (
    (_local_origin, Step.LOCAL_ORIGIN),
    (_local_pref, Step.LOCAL_PREF),
    (_as_path, Step.AS_PATH),
    (_origin, Step.ORIGIN),
    (_med, Step.MED),
    (_ebgp, Step.EBGP),
    (_router_id, Step.ROUTER_ID),
    (_peer_address, Step.PEER_ADDRESS),
    (_next_hop, Step.NEXT_HOP),
)


def compare(a: RouteEntry, b: RouteEntry) -> tuple[int, Step]:
    """Negative when `a` is better, positive when `b` is, with the step that decided."""
    for step, reason in _STEPS:
        result = step(a, b)
        if result:
            return (-1 if result < 0 else 1), reason
    return 0, Step.EQUAL


def select(candidates: Iterable[RouteEntry]) -> tuple[RouteEntry | None, Step]:
    """The best of `candidates`, which the caller gives in a fixed order (config order), so that the
    non-transitive MED step still gives a result that does not depend on arrival order."""
    best: RouteEntry | None = None
    reason = Step.ONLY_CANDIDATE
    for candidate in candidates:
        if best is None:
            best = candidate
            continue
        result, step = compare(candidate, best)
        if result < 0:
            best, reason = candidate, step
        elif result > 0 and reason is Step.ONLY_CANDIDATE:
            reason = step
    return best, reason
