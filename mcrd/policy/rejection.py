"""Why a received route is not used."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejection:
    """`code` is stable for scripts (as-loop, family, import-permit-list, import-deny-list, route-limit, next-hop,
    martian, own-address, as-path); `detail` names the rule, for the looking glass."""

    code: str
    detail: str

    def __str__(self) -> str:
        return self.detail
