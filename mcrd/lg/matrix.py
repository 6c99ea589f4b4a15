"""The reachability matrix (an mcrd extension of the looking glass): for each pair of VXCs, how many of the prefixes
one brings reach the other, and why the others do not.

A pure function of the route processor (no I/O, no clock). What reaches is read from the processor itself: a prefix
learned from session S reaches session T when S's path is the best one and T's Adj-RIB-Out holds it. Why the others
do not is asked of the policy functions that decide (`mcrd.policy.mcr`): the pair's gate (peer types, family, iBGP
split horizon, export control), then per prefix the target's export lists and the AS path. Nothing here restates a
rule of the MCR.

Rows: every VXC with a BGP session, and `null` for the routes the MCR originates (static routes, connected subnets
when advertised). Columns: every VXC with a BGP session. A cell sums its session pairs (a VXC may carry an IPv4 and
an IPv6 session), which are listed in it. `offered` counts the source's accepted prefixes (a down session offers
none); `blocked` groups the rest by reason (`code` as in `mcrd.policy.mcr`, or `not-best` and `session-down` here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from mcrd.policy import mcr
from mcrd.policy.peer import PeerPolicy
from mcrd.policy.prefix_list import parse_prefix, prefix_version
from mcrd.policy.rejection import Rejection
from mcrd.rib.entry import RouteEntry
from mcrd.rib.peer_state import PeerState
from mcrd.rib.processor import RouteProcessor

LOCAL = "local"  # the session name of the routes the MCR originates


class Blocked(TypedDict):
    code: str
    detail: str
    prefixes: int


class SessionPair(TypedDict):
    fromSession: str
    toSession: str
    offered: int
    reached: int
    blocked: list[Blocked]


class Cell(TypedDict):
    fromVxc: str | None
    toVxc: str
    offered: int
    reached: int
    blocked: list[Blocked]
    sessions: list[SessionPair]


class Matrix(TypedDict):
    vxcs: list[str]
    cells: list[Cell]


def matrix(processor: RouteProcessor) -> Matrix:
    peers = processor.peers()
    best = processor.best()
    vxcs = list(dict.fromkeys(peer.policy.vxc for peer in peers))
    originated = [(prefix, entry) for prefix, entry in best.items() if entry.source.local]
    sources: list[tuple[str | None, str, PeerPolicy | None, Iterable[tuple[str, RouteEntry]]]] = [
        (None, LOCAL, None, originated),
        *((peer.policy.vxc, peer.key, peer.policy, peer.accepted.items()) for peer in peers),
    ]
    cells: dict[tuple[str | None, str], Cell] = {}
    for vxc, name, policy, routes in sources:
        rows = list(routes)
        for target in peers:
            if target.key == name:
                continue
            pair = _pair(processor, name, policy, rows, target)
            cell = cells.get((vxc, target.policy.vxc))
            if cell is None:
                cell = cells[vxc, target.policy.vxc] = {"fromVxc": vxc, "toVxc": target.policy.vxc, "offered": 0,
                                                        "reached": 0, "blocked": [], "sessions": []}
            cell["sessions"].append(pair)
            cell["offered"] += pair["offered"]
            cell["reached"] += pair["reached"]
            cell["blocked"] = _merge(cell["blocked"], pair["blocked"])
    return {"vxcs": vxcs, "cells": list(cells.values())}


def _pair(
    processor: RouteProcessor,
    name: str,
    source: PeerPolicy | None,
    routes: list[tuple[str, RouteEntry]],
    target: PeerState,
) -> SessionPair:
    best = processor.best()
    out = processor.advertised(target.key)
    policy = target.policy
    reached = 0
    why: dict[tuple[str, str], int] = {}
    gate = mcr.export_refusal(source, policy)
    for prefix, entry in routes:
        reason: Rejection | None
        if gate is not None:
            reason = gate
        elif prefix_version(prefix) != policy.family:
            reason = mcr.wrong_family(policy)  # a static route of the other family: the processor's local gate
        elif not target.up:
            reason = Rejection("session-down", f"the session to {target.key} is down")
        elif not target.carries:
            reason = Rejection("not-negotiated", f"the session to {target.key} did not negotiate "
                               f"IPv{policy.family} unicast")
        elif best.get(prefix) is not entry:
            reason = Rejection("not-best", _beaten_by(best.get(prefix)))
        elif prefix in out:
            reached += 1
            continue
        else:
            reason = (mcr.export_list_refusal(policy, parse_prefix(prefix)) or mcr.path_refusal(entry.attrs, policy)
                      or Rejection("unexplained", "not in the Adj-RIB-Out, and no rule says why"))
        key = (reason.code, reason.detail)
        why[key] = why.get(key, 0) + 1
    return {"fromSession": name, "toSession": target.key, "offered": len(routes), "reached": reached,
            "blocked": _blocked(why)}


def _beaten_by(winner: RouteEntry | None) -> str:
    if winner is None:
        return "no best path"
    if winner.source.local:
        return f"the best path is the MCR's own ({winner.source.kind}), and BGP sends only the best path"
    return f"the best path comes from {winner.source.key}, and BGP sends only the best path"


def _merge(into: list[Blocked], more: list[Blocked]) -> list[Blocked]:
    counts: dict[tuple[str, str], int] = {(b["code"], b["detail"]): b["prefixes"] for b in into}
    for b in more:
        key = (b["code"], b["detail"])
        counts[key] = counts.get(key, 0) + b["prefixes"]
    return _blocked(counts)


def _blocked(counts: dict[tuple[str, str], int]) -> list[Blocked]:
    """The reasons, most prefixes first."""
    rows: list[Blocked] = [{"code": c, "detail": d, "prefixes": n} for (c, d), n in counts.items()]
    return sorted(rows, key=lambda b: (-b["prefixes"], b["code"], b["detail"]))
