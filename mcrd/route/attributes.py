"""BGP path attributes as the route processor sees them: immutable and shared between routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Origin(IntEnum):
    """Lower is preferred (RFC 4271 9.1.2.2 c)."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


@dataclass(frozen=True, slots=True, order=True)
class ExtendedCommunity:
    """An RFC 4360 extended community: its 64-bit value, which is what is compared and sent on, and ExaBGP's text
    form of it (`target:65030:1`), which the looking glass shows. The text is not sent back: ExaBGP's text form
    does not always parse back to the same value (a 4-byte-AS route target prints as an IPv4 address)."""

    value: int
    text: str = field(compare=False)


@dataclass(frozen=True, slots=True)
class PathAttributes:
    """The attributes of one UPDATE; every prefix it carries shares this one object.

    `as_path` is the AS_SEQUENCE, `as_set` an AS_SET after it (counted as one hop, RFC 4271 9.1.2.2 a).
    `communities` are RFC 1997 communities (`65030:100`), `large_communities` RFC 8092 ones (`4200000001:30:1`);
    each kind sorted and once each, as ExaBGP reports them.
    """

    next_hop: str
    as_path: tuple[int, ...] = ()
    origin: Origin = Origin.IGP
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    as_set: tuple[int, ...] = ()
    extended_communities: tuple[ExtendedCommunity, ...] = ()
    large_communities: tuple[str, ...] = ()

    @property
    def path_length(self) -> int:
        return len(self.as_path) + (1 if self.as_set else 0)

    @property
    def neighbor_as(self) -> int | None:
        """The AS the route came from, for comparing MEDs; None for a route from inside our AS."""
        return self.as_path[0] if self.as_path else None

    def community_texts(self) -> list[str]:
        """Every community of the three kinds as text: standard, then extended, then large."""
        return [*self.communities, *(ext.text for ext in self.extended_communities), *self.large_communities]

    def holds_as(self, asn: int) -> bool:
        return asn in self.as_path or asn in self.as_set
