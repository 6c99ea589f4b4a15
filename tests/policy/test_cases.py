"""Policy cases as data: every `cases/*.yaml` file is a list of cases (format in `cases/README.md`).

Each case is played through a `RouteProcessor`. At every `expect` (inside the steps and at the end) the
processor's state is compared with the expectation, and the Announce/Withdraw effects received since the start,
applied to one dict per peer, must reproduce every Adj-RIB-Out exactly (likewise FIB installs/removals and the
FIB): the effects are all the daemon sends to ExaBGP and the kernel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from mcrd.config.load import ConfigError, parse_config
from mcrd.rib.effects import Effects, FibNextHop
from mcrd.rib.entry import Source
from mcrd.rib.inputs import ConfigChanged, Input, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

CASES = Path(__file__).parent / "cases"
CASE_KEYS = {"name", "description", "config", "steps", "expect", "configError", "xfail"}
REQUIRED_KEYS = {"name", "description", "config"}
EXPECT_KEYS = {"advertised", "rejected", "best", "fib"}


def load_cases() -> list[Any]:
    params, seen = [], set()
    for path in sorted(CASES.glob("*.yaml")):
        for case in YAML(typ="safe").load(path.read_text(encoding="utf-8")):
            where = f"{path.name}: {case.get('name')}"
            assert REQUIRED_KEYS <= set(case) <= CASE_KEYS, f"{where}: keys {sorted(case)}"
            assert ("expect" in case) != ("configError" in case), f"{where}: give expect or configError"
            assert case["name"] not in seen, f"case name {case['name']} is used twice"
            seen.add(case["name"])
            marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
            params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


def attributes_as_data(attrs: PathAttributes) -> dict[str, Any]:
    """The Adj-RIB-Out entry in the case format, every field present (omitted fields of a case are defaults)."""
    return {
        "nextHop": attrs.next_hop,
        "asPath": list(attrs.as_path),
        "origin": attrs.origin.name,
        "med": attrs.med,
        "localPref": attrs.local_pref,
        "communities": attrs.community_texts(),  # all three kinds, as the looking glass shows them
    }


def expected_route(data: dict[str, Any]) -> dict[str, Any]:
    assert set(data) <= {"nextHop", "asPath", "origin", "med", "localPref", "communities"}, data
    defaults: dict[str, Any] = {"origin": "IGP", "med": None, "localPref": None, "communities": []}
    return {**defaults, **data, "asPath": list(data["asPath"])}


class Player:
    """Plays steps into a processor and mirrors, from its effects alone, what ExaBGP and the kernel hold."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.processor = RouteProcessor()
        self.now = 0
        self.sent: dict[str, dict[str, PathAttributes]] = {}  # peer -> prefix -> attributes, from effects
        self.kernel: dict[str, FibNextHop] = {}
        self.play({"config": config})

    def sessions(self) -> dict[str, Source | None]:
        return {peer.key: peer.source for peer in self.processor.peers()}

    def play(self, step: dict[str, Any]) -> None:
        before = self.sessions()
        self.now += 1
        effects = self.processor.handle(event_of(step), self.now)
        after = self.sessions()
        # A session that went down or came up again starts with an empty Adj-RIB-Out: nothing is withdrawn from it.
        self.sent = {key: {} if after[key] is not before.get(key) else self.sent.get(key, {}) for key in after}
        self.apply(effects)

    def apply(self, effects: Effects) -> None:
        for announce in effects.announce:
            for prefix in announce.prefixes:
                self.sent[announce.peer][prefix] = announce.attrs
        for withdraw in effects.withdraw:
            for prefix in withdraw.prefixes:
                assert self.sent[withdraw.peer].pop(prefix, None) is not None, f"withdraw of {prefix} never sent"
        for install in effects.fib_install:
            self.kernel.update(dict.fromkeys(install.prefixes, install.next_hop))
        for prefix in effects.fib_remove:
            assert self.kernel.pop(prefix, None) is not None, f"FIB removal of {prefix} never installed"

    def check(self, expect: dict[str, Any]) -> None:
        assert set(expect) <= EXPECT_KEYS, f"unknown expect keys {set(expect) - EXPECT_KEYS}"
        p = self.processor
        keys = [peer.key for peer in p.peers()]
        assert {key: p.advertised(key) for key in keys} == self.sent, "the effects do not reproduce the Adj-RIB-Out"
        assert p.fib() == self.kernel, "the FIB effects do not reproduce the FIB"
        advertised = expect.get("advertised", {})
        assert sorted(advertised) == sorted(keys), "`advertised` must list every peer (`{}` for nothing)"
        actual = {key: {prefix: attributes_as_data(a) for prefix, a in p.advertised(key).items()} for key in keys}
        wanted = {key: {prefix: expected_route(r) for prefix, r in (advertised[key] or {}).items()} for key in keys}
        assert actual == wanted
        rejected = {
            peer.key: {prefix: why.code for prefix, (_, why) in peer.rejected.items()}
            for peer in p.peers()
            if peer.rejected
        }
        assert rejected == expect.get("rejected", {})
        if "best" in expect:
            assert {prefix: entry.source.key for prefix, entry in p.best().items()} == expect["best"]
        if "fib" in expect:
            assert {prefix: hop.gateway for prefix, hop in p.fib().items()} == expect["fib"]


def event_of(step: dict[str, Any]) -> Input:
    kind = next(iter(step))
    if kind == "config":
        return ConfigChanged(parse_config(json.dumps(step["config"]), "case"))
    if kind == "up":
        assert set(step) <= {"up", "routerId"}, step
        peer = step["up"]
        return PeerUp(peer, step.get("routerId", peer if ":" not in peer else "0.0.0.1"))
    if kind == "down":
        return PeerDown(step["down"])
    if kind == "withdraw":
        return RoutesWithdrawn(step["withdraw"]["peer"], tuple(step["withdraw"]["prefixes"]))
    assert kind == "announce", f"unknown step {step}"
    route = step["announce"]
    assert set(route) <= {"peer", "prefixes", "asPath", "med", "origin", "nextHop", "communities",
                          "extendedCommunities", "largeCommunities"}, route
    attrs = PathAttributes(
        next_hop=route.get("nextHop", route["peer"]),
        as_path=tuple(route["asPath"]),
        origin=Origin[route.get("origin", "IGP")],
        med=route.get("med"),
        communities=tuple(route.get("communities", ())),
        extended_communities=tuple(ExtendedCommunity(int(ext["value"]), ext["text"])
                                   for ext in route.get("extendedCommunities", ())),
        large_communities=tuple(route.get("largeCommunities", ())),
    )
    return RoutesAnnounced(route["peer"], attrs, tuple(route["prefixes"]))


@pytest.mark.parametrize("case", load_cases())
def test_case(case: dict[str, Any]) -> None:
    if "configError" in case:
        with pytest.raises(ConfigError, match=case["configError"]):
            parse_config(json.dumps(case["config"]), case["name"])
        return
    player = Player(case["config"])
    for step in case.get("steps", []):
        if set(step) == {"expect"}:
            player.check(step["expect"])
        else:
            player.play(step)
    player.check(case["expect"])
