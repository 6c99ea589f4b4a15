"""ExaBGP API commands rendered from the processor's effects."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcrd.bgp import exabgp_fastpath
from mcrd.bgp.commands import (
    FAST_PREFIXES_PER_COMMAND,
    PREFIXES_PER_COMMAND,
    attributes_text,
    effects_commands,
    fast_effects_commands,
    first_neighbor,
    refresh_commands,
)
from mcrd.bgp.messages import _attributes
from mcrd.rib.effects import Announce, Effects, Withdraw
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

ASN = st.integers(1, 4_294_967_295)
COMMUNITY = st.tuples(st.integers(0, 65535), st.integers(0, 65535))
LARGE = st.tuples(ASN | st.just(0), st.integers(0, 4_294_967_295), st.integers(0, 4_294_967_295))
ATTRIBUTES = st.builds(
    PathAttributes,
    next_hop=st.just("self"),
    as_path=st.lists(ASN, max_size=6).map(tuple),
    origin=st.sampled_from(Origin),
    med=st.none() | st.integers(0, 4_294_967_295),
    local_pref=st.none() | st.integers(0, 4_294_967_295),
    # ExaBGP keeps communities sorted and once each: the property compares such lists.
    communities=st.sets(COMMUNITY, max_size=5).map(lambda c: tuple(f"{a}:{b}" for a, b in sorted(c))),
    as_set=st.lists(ASN, max_size=3, unique=True).map(tuple),
    # Any 64-bit value: ExaBGP prints some types in a text form it cannot parse back, so mcrd sends the value.
    # The text is ExaBGP's and not compared.
    extended_communities=st.sets(st.integers(0, 2**64 - 1), max_size=4).map(
        lambda values: tuple(ExtendedCommunity(value, "") for value in sorted(values))),
    large_communities=st.sets(LARGE, max_size=4).map(lambda c: tuple(f"{a}:{b}:{d}" for a, b, d in sorted(c))),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attrs=ATTRIBUTES)
def test_exabgp_reads_every_command_back_as_the_attributes_mcrd_meant(exabgp: Any, attrs: PathAttributes) -> None:
    """Round trip through ExaBGP's own parser: what mcrd renders, ExaBGP parses, and ExaBGP's JSON of the parsed
    route (the format mcrd reads from peers) decodes to the same attributes."""
    conf, api = exabgp
    command = f"announce attributes {attributes_text(attrs)} nlri 10.0.0.0/24"
    [change] = api.api_attributes(command, list(conf.neighbors))
    parsed = _attributes(json.loads("{" + change.attributes.json() + "}"), "self")
    assert parsed == attrs


def test_prefixes_sharing_attributes_go_in_one_command() -> None:
    attrs = PathAttributes("169.254.10.1", (133937, 133937, 12076), Origin.IGP, med=50, communities=("65000:1",))
    [command] = effects_commands(Effects(announce=(Announce("169.254.10.2", attrs, ("10.30.0.0/16", "10.31.0.0/16")),)))
    assert command == (
        "neighbor 169.254.10.2 announce attributes next-hop self origin igp "
        "as-path [ 133937 133937 12076 ] med 50 community [ 65000:1 ] nlri 10.30.0.0/16 10.31.0.0/16"
    )


def test_the_same_change_for_several_sessions_is_one_command_with_next_hop_self() -> None:
    prefixes = ("10.10.0.0/16", "10.20.0.0/16")
    to_azure = PathAttributes("169.254.20.1", (133937, 64512))
    to_onprem = PathAttributes("172.16.1.1", (133937, 64512))
    to_pub = PathAttributes("169.254.40.1", (133937, 133937, 64512))  # prepended: other attributes
    effects = Effects(
        withdraw=(Withdraw("169.254.20.2", ("10.50.0.0/16",)), Withdraw("172.16.1.2", ("10.50.0.0/16",))),
        announce=(Announce("169.254.20.2", to_azure, prefixes), Announce("172.16.1.2", to_onprem, prefixes),
                  Announce("169.254.40.2", to_pub, prefixes)),
    )
    assert list(effects_commands(effects)) == [
        "neighbor 169.254.20.2, neighbor 172.16.1.2 withdraw attributes nlri 10.50.0.0/16",
        "neighbor 169.254.20.2, neighbor 172.16.1.2 announce attributes next-hop self origin igp "
        "as-path [ 133937 64512 ] nlri 10.10.0.0/16 10.20.0.0/16",
        "neighbor 169.254.40.2 announce attributes next-hop self origin igp as-path [ 133937 133937 64512 ] "
        "nlri 10.10.0.0/16 10.20.0.0/16",
    ]


def test_extended_and_large_communities_in_exabgps_syntax() -> None:
    attrs = PathAttributes("self", (65030,), communities=("65030:100",), large_communities=("4200000001:30:1",),
                           extended_communities=(ExtendedCommunity(0x0002FE0600000001, "target:65030:1"),))
    assert attributes_text(attrs) == (
        "next-hop self origin igp as-path [ 65030 ] community [ 65030:100 ] extended-community [ 0x0002fe0600000001 ] "
        "large-community [ 4200000001:30:1 ]")


def test_ibgp_local_preference_and_as_sets() -> None:
    attrs = PathAttributes("10.0.0.1", (), Origin.INCOMPLETE, local_pref=100, as_set=(1, 2))
    [command] = effects_commands(Effects(announce=(Announce("10.0.0.2", attrs, ("10.9.0.0/16",)),)))
    assert "origin incomplete as-path ( 1 2 ) local-preference 100 nlri 10.9.0.0/16" in command


def test_as_path_segments_in_exabgps_syntax() -> None:
    # A set goes after the sequence, in its own brackets (ExaBGP refuses `[ 1 ( 2 ) ]`); both forms are parsed by
    # ExaBGP itself in tests/bgp/test_exabgp_launch.py.
    def rendered(path: tuple[int, ...], as_set: tuple[int, ...]) -> str:
        return attributes_text(PathAttributes("self", path, as_set=as_set)).split(" as-path ", 1)[1]

    assert rendered((133937, 64512), (64600, 64601)) == "[ 133937 64512 ] ( 64600 64601 )"
    assert rendered((133937,), ()) == "[ 133937 ]"
    assert rendered((), ()) == "[  ]"


def test_long_lists_are_split_and_nothing_is_lost() -> None:
    prefixes = tuple(f"10.{i // 256}.{i % 256}.0/24" for i in range(1234))
    commands = list(effects_commands(Effects(withdraw=(Withdraw("10.0.0.2", prefixes),)), size=500))
    assert len(commands) == 3
    sent = [p for c in commands for p in c.removeprefix("neighbor 10.0.0.2 withdraw attributes nlri ").split()]
    assert tuple(sent) == prefixes


def test_a_route_refresh_is_answered_with_the_whole_adj_rib_out_between_borr_and_eorr() -> None:
    shared = PathAttributes("10.0.0.1", (133937, 64512), Origin.IGP)
    other = PathAttributes("10.0.0.1", (133937, 12076), Origin.IGP, med=100)
    out = {"10.10.0.0/16": shared, "10.20.0.0/16": shared, "10.30.0.0/16": other}
    plain = list(refresh_commands("10.0.0.2", 4, out, enhanced=False))
    assert plain == [
        f"neighbor 10.0.0.2 announce attributes {attributes_text(dataclasses.replace(shared, next_hop='self'))} "
        "nlri 10.10.0.0/16 10.20.0.0/16",
        f"neighbor 10.0.0.2 announce attributes {attributes_text(dataclasses.replace(other, next_hop='self'))} "
        "nlri 10.30.0.0/16",
    ]
    enhanced = list(refresh_commands("10.0.0.2", 4, out, enhanced=True))
    assert enhanced == ["neighbor 10.0.0.2 announce borr ipv4 unicast", *plain,
                        "neighbor 10.0.0.2 announce eorr ipv4 unicast"]
    # Nothing to send: an enhanced answer is still a BoRR and an EoRR, so the peer drops what it held from us.
    assert list(refresh_commands("2001:db8::2", 6, {}, enhanced=True)) == [
        "neighbor 2001:db8::2 announce borr ipv6 unicast", "neighbor 2001:db8::2 announce eorr ipv6 unicast"]


def test_the_fast_path_names_session_instances_and_leaves_the_other_sessions_to_exabgp() -> None:
    attrs = PathAttributes("192.0.2.2", (133937, 65001))
    effects = Effects(
        announce=(Announce("192.0.2.1", dataclasses.replace(attrs, next_hop="192.0.2.2"), ("10.0.0.0/24",)),
                  Announce("198.51.100.1", dataclasses.replace(attrs, next_hop="198.51.100.2"), ("10.0.0.0/24",)),
                  Announce("203.0.113.1", dataclasses.replace(attrs, next_hop="203.0.113.2"), ("10.0.0.0/24",))),
        withdraw=(Withdraw("192.0.2.1", ("10.9.0.0/16",)), Withdraw("198.51.100.1", ("10.9.0.0/16",))))
    commands = list(fast_effects_commands(effects, {"192.0.2.1": 3, "198.51.100.1": 9}))
    assert commands[0].startswith("neighbor 203.0.113.1 announce attributes next-hop self")  # not on the fast path
    fast = [exabgp_fastpath.parse_command(command) for command in commands[1:]]
    assert [(c.op, c.sessions, c.nlri) for c in fast] == [
        ("withdraw", (("192.0.2.1", 3), ("198.51.100.1", 9)), ("10.9.0.0/16",)),
        ("announce", (("192.0.2.1", 3), ("198.51.100.1", 9)), ("10.0.0.0/24",))]
    assert fast[1].attributes == dataclasses.replace(attrs, next_hop="self")
    assert [first_neighbor(command) for command in commands] == ["203.0.113.1", "192.0.2.1", "192.0.2.1"]


def test_a_fast_path_command_takes_a_whole_round_and_an_exabgp_command_500() -> None:
    prefixes = tuple(f"10.{i // 256}.{i % 256}.0/24" for i in range(4500))
    effects = Effects(withdraw=(Withdraw("192.0.2.1", prefixes), Withdraw("203.0.113.1", prefixes)))
    commands = list(fast_effects_commands(effects, {"192.0.2.1": 3}))
    stock = [c for c in commands if c.startswith("neighbor ")]
    fast = [exabgp_fastpath.parse_command(c) for c in commands if not c.startswith("neighbor ")]
    assert [len(c.split(" nlri ")[1].split()) for c in stock] == [PREFIXES_PER_COMMAND] * 9
    assert [len(c.nlri) for c in fast] == [FAST_PREFIXES_PER_COMMAND, FAST_PREFIXES_PER_COMMAND, 500]
    assert sum((c.nlri for c in fast), ()) == prefixes


def test_a_route_refresh_on_the_fast_path_is_bracketed_there_too() -> None:
    attrs = PathAttributes("192.0.2.2", (133937,))
    commands = [exabgp_fastpath.parse_command(c) for c in
                refresh_commands("192.0.2.1", 4, {"10.0.0.0/24": attrs}, enhanced=True, instance=4)]
    assert [(c.op, c.sessions, c.nlri) for c in commands] == [
        ("borr", (("192.0.2.1", 4),), ()), ("announce", (("192.0.2.1", 4),), ("10.0.0.0/24",)),
        ("eorr", (("192.0.2.1", 4),), ())]
