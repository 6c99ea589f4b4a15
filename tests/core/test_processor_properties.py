"""Properties of the route processor that must hold for any input: the arrival order of the same announcements does
not change the result, the effects reproduce every Adj-RIB-Out, withdrawing everything empties every table,
withdrawing some routes ends where never announcing them does, and a filter change ends where a fresh start with
the new filter does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.rib.effects import Effects
from mcrd.rib.inputs import ConfigChanged, Input, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import PathAttributes
from tests.core.helpers import peer_config, peer_ip

LISTS = [
    {"id": 1, "description": "tens", "addressFamily": "IPv4",
     "entries": [{"action": "deny", "prefix": "10.1.3.0/24"}, {"action": "permit", "prefix": "10.0.0.0/8"}]},
    {"id": 2, "description": "no-20", "addressFamily": "IPv4",
     "entries": [{"action": "permit", "prefix": "20.0.0.0/8"}]},
]
CONFIG = peer_config(
    [
        {"peerType": "PRIV_CLOUD", "importWhitelist": "tens", "peerAsn": 64512},
        {"peerType": "PRIV_CLOUD", "medIn": 50, "asPathPrependCount": 2, "peerAsn": 12076},
        {"peerType": "NON_CLOUD", "exportBlacklist": "no-20", "medOut": 7},
        {"peerType": "PUB_CLOUD", "peerAsn": 7224},
        {"peerType": "NON_CLOUD", "exportPolicy": "deny", "permitExportTo": ["10.0.3.2"], "peerAsn": 64601},
    ],
    LISTS,
)
PEERS = [peer_ip(n) for n in range(1, 6)]
PREFIXES = [f"10.1.{i}.0/24" for i in range(6)] + [f"20.0.{i}.0/24" for i in range(3)]


@st.composite
def announcements(draw: st.DrawFn) -> list[RoutesAnnounced]:
    """Each (peer, prefix) at most once, so that every arrival order means the same final state."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(PEERS), st.sampled_from(PREFIXES)), unique=True, max_size=25))
    out = []
    for peer, prefix in pairs:
        path = draw(st.lists(st.sampled_from([65010, 65020, 64512, 133937]), min_size=0, max_size=3))
        first = 64600 + PEERS.index(peer) + 1
        attrs = PathAttributes(peer, (first, *path), med=draw(st.none() | st.integers(0, 3)))
        out.append(RoutesAnnounced(peer, attrs, (prefix,)))
    return out


def started() -> tuple[RouteProcessor, dict[str, dict[str, PathAttributes]]]:
    processor = RouteProcessor()
    sent: dict[str, dict[str, PathAttributes]] = {peer: {} for peer in PEERS}
    apply(sent, processor.handle(ConfigChanged(CONFIG), 0.0))
    for n, peer in enumerate(PEERS, start=1):
        apply(sent, processor.handle(PeerUp(peer, f"1.1.1.{n}"), 0.0))
    return processor, sent


def apply(sent: dict[str, dict[str, PathAttributes]], effects: Effects) -> None:
    """What each peer holds if the edge carries out every effect."""
    for withdraw in effects.withdraw:
        for prefix in withdraw.prefixes:
            del sent[withdraw.peer][prefix]
    for announce in effects.announce:
        for prefix in announce.prefixes:
            sent[announce.peer][prefix] = announce.attrs


def play(events: Sequence[Input]) -> tuple[RouteProcessor, dict[str, dict[str, PathAttributes]]]:
    processor, sent = started()
    for event in events:
        if isinstance(event, PeerDown):
            sent[event.peer].clear()  # a closed session takes the peer's routes from us with it
        apply(sent, processor.handle(event, 1.0))
    return processor, sent


def state(processor: RouteProcessor) -> dict[str, Any]:
    return {
        "best": {prefix: (entry.source.key, entry.attrs) for prefix, entry in processor.best().items()},
        "fib": processor.fib(),
        "out": {peer: processor.advertised(peer) for peer in PEERS},
        "accepted": {peer: {p: e.attrs for p, e in processor.peer(peer).accepted.items()} for peer in PEERS},  # type: ignore[union-attr]
        "rejected": {peer: {p: r.code for p, (_, r) in processor.peer(peer).rejected.items()} for peer in PEERS},  # type: ignore[union-attr]
    }


@settings(max_examples=150, deadline=None)
@given(announcements(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_result(events: list[RoutesAnnounced], rnd: Any) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    first, sent_first = play(list(events))
    second, sent_second = play(shuffled)
    assert state(first) == state(second)
    assert sent_first == sent_second


@settings(max_examples=200, deadline=None)
@given(announcements(), st.lists(st.tuples(st.sampled_from(PEERS), st.lists(st.sampled_from(PREFIXES), max_size=8)),
                                 max_size=6))
def test_withdrawing_routes_ends_where_never_announcing_them_does(
    events: list[RoutesAnnounced], withdrawals: list[tuple[str, list[str]]]
) -> None:
    # Withdrawals of several prefixes in one UPDATE (some twice, some never announced or rejected by the import
    # policy), after announcements of the same prefixes by several peers: the best routes fall back to the other
    # peers' routes, and every table ends as if the withdrawn routes had never come.
    gone = {(peer, prefix) for peer, prefixes in withdrawals for prefix in prefixes}
    processor, sent = play([*events, *(RoutesWithdrawn(peer, tuple(prefixes)) for peer, prefixes in withdrawals)])
    kept = [event for event in events if (event.peer, event.prefixes[0]) not in gone]
    fresh, sent_fresh = play(kept)
    assert state(processor) == state(fresh)
    assert sent == sent_fresh


@settings(max_examples=150, deadline=None)
@given(announcements())
def test_effects_reproduce_every_adj_rib_out(events: list[RoutesAnnounced]) -> None:
    processor, sent = play(list(events))
    assert sent == {peer: processor.advertised(peer) for peer in PEERS}


@settings(max_examples=150, deadline=None)
@given(announcements(), st.booleans())
def test_announcing_then_withdrawing_everything_leaves_every_table_empty(
    events: list[RoutesAnnounced], by_peer_down: bool
) -> None:
    undo: list[Input]
    if by_peer_down:
        undo = [PeerDown(peer, "test") for peer in PEERS]
    else:
        undo = [RoutesWithdrawn(event.peer, event.prefixes) for event in reversed(events)]
    processor, sent = play([*events, *undo])
    assert processor.best() == {}
    assert processor.fib() == {}
    for peer in PEERS:
        assert processor.advertised(peer) == {}
        assert sent[peer] == {}
        held = processor.peer(peer)
        assert held is not None
        assert not held.accepted
        assert not held.rejected


@settings(max_examples=60, deadline=None)
@given(announcements())
def test_a_filter_change_equals_a_fresh_start_with_the_new_filter(events: list[RoutesAnnounced]) -> None:
    """Re-evaluating stored routes after a config change ends where a processor started on it ends."""
    changed_lists = [LISTS[0] | {"entries": [{"action": "permit", "prefix": "10.1.0.0/16", "ge": 24, "le": 24}]},
                     LISTS[1]]
    peers = [dict(p) for p in _peers_of(CONFIG)]
    peers[1]["importBlacklist"] = "tens"
    peers[1]["medIn"] = 9
    new_config = peer_config(peers, changed_lists)
    reloaded, sent = play([*events, ConfigChanged(new_config)])
    fresh = RouteProcessor()
    fresh.handle(ConfigChanged(new_config), 0.0)
    for n, peer in enumerate(PEERS, start=1):
        fresh.handle(PeerUp(peer, f"1.1.1.{n}"), 0.0)
    for event in events:
        fresh.handle(event, 1.0)
    assert state(reloaded) == state(fresh)
    assert sent == {peer: reloaded.advertised(peer) for peer in PEERS}


def _peers_of(config: Any) -> list[dict[str, Any]]:
    out = []
    for _, _, conn in config.connections():
        data = conn.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        out.append(data)
    return out
