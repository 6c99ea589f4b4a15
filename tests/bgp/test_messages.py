"""Decoding ExaBGP 5.0.15 API output: real lines captured from a session with FRR 8.4 (fixtures/)."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.bgp.messages import (
    Ack,
    Decoder,
    Ignored,
    Malformed,
    Negotiated,
    Notification,
    RefreshRequested,
    UpdateError,
    _prefix,
    negotiate,
)
from mcrd.rib.inputs import EndOfRib, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.route.attributes import ExtendedCommunity, Origin, PathAttributes

FIXTURE = Path(__file__).parent / "fixtures" / "exabgp-5.0.15-frr-8.4.jsonl"


def decode_fixture() -> list[object]:
    decoder = Decoder()
    return [parsed for line in FIXTURE.read_text().splitlines() for parsed in decoder.decode(line)]


def test_a_session_from_open_to_routes() -> None:
    parsed = decode_fixture()
    ups = [p for p in parsed if isinstance(p, PeerUp)]
    # The router id comes from the peer's OPEN, which ExaBGP reports before the session is up.
    # FRR offers route refresh and enhanced route refresh; a Decoder() knows of no route refresh offered by mcrd.
    assert PeerUp("169.254.10.2", "1.1.1.1", frozenset({4}), "absent") in ups
    assert PeerUp("2001:db8:a::2", "1.1.1.1", frozenset({6}), "absent") in ups
    announced = [p for p in parsed if isinstance(p, RoutesAnnounced) and p.peer == "169.254.10.2"]
    first = announced[0]
    assert first.attrs == PathAttributes("169.254.10.2", (64512,), Origin.IGP, med=0)
    assert set(first.prefixes) == {"10.10.0.0/16", "10.60.0.0/24", "10.50.0.0/16", "10.20.0.0/16"}
    assert EndOfRib("169.254.10.2", 4) in parsed
    assert EndOfRib("2001:db8:a::2", 6) in parsed


def test_ipv6_routes_listed_under_a_link_local_next_hop_too_use_the_global_one() -> None:
    announced = [p for p in decode_fixture() if isinstance(p, RoutesAnnounced) and p.peer == "2001:db8:a::2"]
    assert announced, "the fixture holds IPv6 announcements"
    for event in announced:
        assert event.attrs.next_hop == "2001:db8:a::2"
        assert len(set(event.prefixes)) == len(event.prefixes)


def test_notification_then_down_with_the_reason() -> None:
    parsed = decode_fixture()
    assert Notification("169.254.10.2", "receive", 6, 2) in parsed
    assert PeerDown("169.254.10.2", "notification received (6,2)") in parsed


def _update(message: dict[str, object], peer: str = "10.0.0.2", local: str = "10.0.0.1") -> str:
    return json.dumps({
        "exabgp": "5.0.0", "type": "update",
        "neighbor": {"address": {"local": local, "peer": peer}, "direction": "receive",
                     "message": {"update": message}},
    })


def _v6_next_hops(peer: str, *hops: str) -> str:
    """The next hop mcrd uses for a route ExaBGP lists under each of `hops` (RFC 2545: global, then link-local)."""
    line = _update({"attribute": {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65020]}}},
                    "announce": {"ipv6 unicast": {hop: [{"nlri": "2001:db8:30::/48"}] for hop in hops}}},
                   peer=peer, local="fe80::4" if peer.startswith("fe80") else "2001:db8:e::1")
    [announced] = Decoder().decode(line)
    assert isinstance(announced, RoutesAnnounced)
    assert announced.prefixes == ("2001:db8:30::/48",)
    return announced.attrs.next_hop


@pytest.mark.parametrize(("peer", "hops", "used"), [
    # A session over global addresses: the global next hop, as before.
    ("2001:db8:e::2", ("2001:db8:e::2", "fe80::3"), "2001:db8:e::2"),
    ("2001:db8:e::2", ("fe80::3", "2001:db8:e::2"), "2001:db8:e::2"),
    # Over link-local addresses: the link-local one, the only one sure to be on the VXC's link (FRR sends the global
    # address of its interface, in a subnet the MCR may have no address in: the kernel refuses a route through it).
    ("fe80::3", ("2001:db8:f::2", "fe80::3"), "fe80::3"),
    # `::` (BIRD with no global address on the link) is never used before a link-local next hop, on either kind.
    ("fe80::3", ("::", "fe80::e410:aaff:fed5:558d"), "fe80::e410:aaff:fed5:558d"),
    ("2001:db8:e::2", ("::", "fe80::3"), "fe80::3"),
    # A single next hop is used whatever it is (a link-local one alone, from a global session too).
    ("2001:db8:e::2", ("fe80::3",), "fe80::3"),
    ("fe80::3", ("2001:db8:e::2",), "2001:db8:e::2"),
])
def test_which_ipv6_next_hop_is_used(peer: str, hops: tuple[str, ...], used: str) -> None:
    assert _v6_next_hops(peer, *hops) == used


def test_withdrawals_as_paths_with_sets_and_communities() -> None:
    decoder = Decoder()
    [withdrawn] = decoder.decode(_update({"withdraw": {"ipv4 unicast": [{"nlri": "10.1.0.0/16"}]}}))
    assert withdrawn == RoutesWithdrawn("10.0.0.2", ("10.1.0.0/16",))
    [announced] = decoder.decode(_update({
        "attribute": {"origin": "incomplete", "med": 7, "community": [[65000, 1]],
                      "as-path": {"0": {"element": "as-sequence", "value": [1, 2]},
                                  "1": {"element": "as-set", "value": [3, 4]}}},
        "announce": {"ipv4 unicast": {"10.0.0.2": [{"nlri": "10.2.0.0/16"}]}},
    }))
    assert announced == RoutesAnnounced(
        "10.0.0.2",
        PathAttributes("10.0.0.2", (1, 2), Origin.INCOMPLETE, 7, communities=("65000:1",), as_set=(3, 4)),
        ("10.2.0.0/16",),
    )


def test_extended_and_large_communities_are_kept() -> None:
    """ExaBGP 5.0.15's JSON for the three kinds (captured from its parser, tests/bgp/test_commands.py)."""
    [announced] = Decoder().decode(_update({
        "attribute": {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65030]}},
                      "community": [[65030, 100]],
                      "extended-community": [{"value": 842251676680193, "string": "target:65030:1"}],
                      "large-community": [[1, 2, 3], [4200000001, 30, 1]]},
        "announce": {"ipv4 unicast": {"10.0.0.2": [{"nlri": "10.2.0.0/16"}]}},
    }))
    assert isinstance(announced, RoutesAnnounced)
    attrs = announced.attrs
    assert attrs.extended_communities == (ExtendedCommunity(0x0002FE0600000001, "target:65030:1"),)
    assert attrs.large_communities == ("1:2:3", "4200000001:30:1")
    assert attrs.community_texts() == ["65030:100", "target:65030:1", "1:2:3", "4200000001:30:1"]


def test_acks_and_bad_lines_never_raise() -> None:
    decoder = Decoder()
    assert decoder.decode("done\n") == [Ack(True)]
    assert decoder.decode("error") == [Ack(False)]
    for bad in ['{"type": "update"', '{"type": "update", "neighbor": {}}', "[1, 2]", '{"type": "state"}',
                _update({"announce": {"ipv4 unicast": {"10.0.0.2": [{"nlri": "300.0.0.0/8"}]}}})]:
        [result] = decoder.decode(bad)
        assert isinstance(result, Malformed), bad
    # A next hop that is not an address (ExaBGP's `no-nexthop`): treat-as-withdraw (RFC 7606 3.d), not a bad line.
    error, withdrawn = decoder.decode(_update({"attribute": {"origin": "igp"},
                                               "announce": {"ipv4 unicast": {"not-an-ip": [{"nlri": "10.0.0.0/8"}]}}}))
    assert error == UpdateError("10.0.0.2", "treat-as-withdraw", "no NEXT_HOP (RFC 7606 3.d)", 1)
    assert withdrawn == RoutesWithdrawn("10.0.0.2", ("10.0.0.0/8",))


def test_exabgps_own_shutdown_notice_is_not_a_peers_notification() -> None:
    # Written by ExaBGP 5.0.15 on its API as it stops (captured from `mcrd run` here).
    line = ('{ "exabgp": "5.0.0", "time": 1795906087.6247003, "host" : "vm", "pid" : 19228, "ppid" : 19174, '
            '"type": "notification", "notification": "shutdown" }')
    assert Decoder().decode(line) == [Ignored("exabgp shutdown")]


_V4 = st.builds(lambda a, n: f"{ipaddress.IPv4Address(a)}/{n}", st.integers(0, 2**32 - 1), st.integers(0, 33))
_V6 = st.builds(lambda a, n: f"{ipaddress.IPv6Address(a)}/{n}",
                st.integers(0, 2**128 - 1) | st.integers(0, 2**16 - 1).map(lambda x: x << 112)
                | st.integers(0, 2**32 - 1).map(lambda x: 0xFFFF << 32 | x), st.integers(0, 129))
_ODD = st.sampled_from(["10.0.0.0/08", "1.2.3.4", "1.2.3.4/", "1.2.3/24", "01.2.3.0/24", "2001:DB8::/32",
                        "2001:db8:0:0::/64", "fe80::1%eth0/64", "::ffff:1.2.3.4/128", "10.0.0.0/ 8", "10.0.0.0/٨"])


@settings(max_examples=2000)
@given(text=_V4 | _V6 | _ODD | st.text(max_size=20))
def test_prefixes_read_like_ipaddress_writes_them(text: str) -> None:
    # The decoder's fast path for canonical prefixes must give what ipaddress gives, and refuse what it refuses.
    try:
        want = str(ipaddress.ip_network(text, strict=False))
    except ValueError as refused:
        with pytest.raises(ValueError, match=re.escape(str(refused))):
            _prefix(text)
        return
    assert _prefix(text) == want


# --- what a session negotiated, and ROUTE-REFRESH requests -----------------------------------------------------------

FRR_CAPABILITIES = {
    "1": {"name": "multiprotocol", "families": ["ipv4/unicast"]}, "128": {"name": "route-refresh", "variant": "Cisco"},
    "2": {"name": "route-refresh", "variant": "RFC"}, "70": {"name": "enhanced-route-refresh"},
    "65": {"name": "asn4", "asn4": 64512},
}


def test_frr_negotiates_its_family_and_enhanced_route_refresh() -> None:
    assert negotiate("10.0.0.2", FRR_CAPABILITIES, route_refresh=True, implied_ipv4=True) == \
        Negotiated(frozenset({4}), "enhanced")
    assert negotiate("10.0.0.2", FRR_CAPABILITIES, route_refresh=False, implied_ipv4=True).refresh == "absent"
    plain = {code: cap for code, cap in FRR_CAPABILITIES.items() if code != "70"}
    assert negotiate("10.0.0.2", plain, route_refresh=True, implied_ipv4=True).refresh == "normal"
    cisco_only = {code: cap for code, cap in plain.items() if code != "2"}  # ExaBGP counts the RFC code only
    assert negotiate("10.0.0.2", cisco_only, route_refresh=True, implied_ipv4=True).refresh == "absent"


def test_a_peer_without_multiprotocol_gets_ipv4_unicast_only_with_the_launcher_fix() -> None:
    # BIRD's `capabilities off`: an OPEN with no capabilities at all.
    assert negotiate("10.0.0.2", {}, route_refresh=True, implied_ipv4=True) == Negotiated(frozenset({4}), "absent")
    assert negotiate("10.0.0.2", {}, route_refresh=True, implied_ipv4=False).families == frozenset()
    assert negotiate("2001:db8::2", {}, route_refresh=True, implied_ipv4=True).families == frozenset()  # needs MP
    only_v6 = {"1": {"name": "multiprotocol", "families": ["ipv6/unicast"]}}
    assert negotiate("10.0.0.2", only_v6, route_refresh=True, implied_ipv4=True).families == frozenset()


def _open(capabilities: dict[str, object]) -> str:
    return json.dumps({"exabgp": "5.0.0", "type": "open", "neighbor": {
        "address": {"local": "10.0.0.1", "peer": "10.0.0.2"}, "direction": "receive",
        "open": {"version": 4, "asn": 64512, "hold_time": 90, "router_id": "10.0.0.2", "capabilities": capabilities}}})


def _state(state: str) -> str:
    return json.dumps({"exabgp": "5.0.0", "type": "state", "neighbor": {
        "address": {"local": "10.0.0.1", "peer": "10.0.0.2"}, "state": state}})


def test_the_session_up_carries_what_its_open_negotiated_and_down_forgets_it() -> None:
    decoder = Decoder(route_refresh=True, implied_ipv4=False)
    decoder.decode(_open({}))
    assert decoder.decode(_state("up")) == [PeerUp("10.0.0.2", "10.0.0.2", frozenset(), "absent")]
    decoder.decode(_state("down"))
    assert decoder.decode(_state("up")) == [PeerUp("10.0.0.2", "0.0.0.0")]  # no OPEN seen: not known


def _refresh(subtype: str, afi: str = "ipv4", direction: str = "receive") -> str:
    # As ExaBGP 5.0.15 writes it (reactor/api/response/json.py, `refresh`).
    return json.dumps({"exabgp": "5.0.0", "type": "refresh", "neighbor": {
        "address": {"local": "10.0.0.1", "peer": "10.0.0.2"}, "asn": {"local": 133937, "peer": 64512},
        "direction": direction, "route-refresh": {"afi": afi, "safi": "unicast", "subtype": subtype}}})


def test_a_route_refresh_request_is_decoded_and_borr_eorr_are_not_requests() -> None:
    assert Decoder().decode(_refresh("query")) == [RefreshRequested("10.0.0.2", 4)]
    assert Decoder().decode(_refresh("query", "ipv6")) == [RefreshRequested("10.0.0.2", 6)]
    for line in (_refresh("begin"), _refresh("end"), _refresh("query", "l2vpn"), _refresh("query", direction="send")):
        assert [type(p) for p in Decoder().decode(line)] == [Ignored]


def test_the_fast_paths_session_instance_comes_with_up() -> None:
    line = json.loads(_state("up"))
    decoder = Decoder()
    assert decoder.decode(json.dumps({"mcrd-instance": 7, **line})) == [PeerUp("10.0.0.2", "0.0.0.0", instance=7)]
    assert decoder.decode(_state("up")) == [PeerUp("10.0.0.2", "0.0.0.0")]  # ExaBGP's own path: no instance
