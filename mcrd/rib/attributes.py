"""BGP path attributes as the route processor sees them: immutable and shared between routes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Origin(IntEnum):
    """Lower is preferred (RFC 4271 9.1.2.2 c)."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


@dataclass(frozen=True, slots=True)
class PathAttributes:
    """The attributes of one UPDATE; every prefix it carries shares this one object.

    `as_path` is the AS_SEQUENCE, `as_set` an AS_SET after it (counted as one hop, RFC 4271 9.1.2.2 a).
    """

    next_hop: str
    as_path: tuple[int, ...] = ()
    origin: Origin = Origin.IGP
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    as_set: tuple[int, ...] = ()

    @property
    def path_length(self) -> int:
        return len(self.as_path) + (1 if self.as_set else 0)

    @property
    def neighbor_as(self) -> int | None:
        """The AS the route came from, for comparing MEDs; None for a route from inside our AS."""
        return self.as_path[0] if self.as_path else None

    def holds_as(self, asn: int) -> bool:
        return asn in self.as_path or asn in self.as_set
