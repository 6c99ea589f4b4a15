"""The reachability matrix (`mcrd.lg.matrix`) over route processors in known states, without root or network.

Each reason is the one docs/MCR-SEMANTICS.md section 2 gives; the counts are checked against the processor's own
Adj-RIB-Outs (every advertised prefix has exactly one source that reaches the target with it)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcrd.lg.matrix import LOCAL, Cell, Matrix, matrix
from mcrd.rib.inputs import ConfigChanged, PeerDown, PeerUp, RoutesAnnounced
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import PathAttributes
from tests.core.helpers import peer_config, peer_ip
from tests.lg.fixtures import processor

T0 = 1_000.0


def cell(m: Matrix, source: str | None, target: str) -> Cell:
    found = [c for c in m["cells"] if c["fromVxc"] == source and c["toVxc"] == target]
    assert len(found) == 1, (source, target, m["cells"])
    return found[0]


def reasons(c: Cell) -> dict[str, int]:
    return {b["code"]: b["prefixes"] for b in c["blocked"]}


def check_consistent(p: RouteProcessor, m: Matrix) -> None:
    """Every pair accounts for each offered prefix once, and what reaches a target is its whole Adj-RIB-Out."""
    reached_by_target: dict[str, int] = {}
    for c in m["cells"]:
        for pair in c["sessions"]:
            assert pair["reached"] + sum(b["prefixes"] for b in pair["blocked"]) == pair["offered"], pair
            reached_by_target[pair["toSession"]] = reached_by_target.get(pair["toSession"], 0) + pair["reached"]
        assert c["reached"] == sum(pair["reached"] for pair in c["sessions"])
    for peer in p.peers():
        assert reached_by_target.get(peer.key, 0) == len(p.advertised(peer.key)), peer.key


def build(peers: list[dict[str, Any]], lists: list[dict[str, Any]] | None = None) -> RouteProcessor:
    p = RouteProcessor()
    p.handle(ConfigChanged(peer_config(peers, lists)), T0)
    for n in range(1, len(peers) + 1):
        p.handle(PeerUp(peer_ip(n), f"10.255.0.{n}"), T0)
    return p


def announce(p: RouteProcessor, n: int, path: tuple[int, ...], *prefixes: str) -> None:
    p.handle(RoutesAnnounced(peer_ip(n), PathAttributes(peer_ip(n), path), prefixes), T0 + 1)


def test_the_lg_fixture() -> None:
    p = processor()
    m = matrix(p)
    check_consistent(p, m)
    assert m["vxcs"] == ["vxc1", "vxc2", "vxc3"]
    # AWS's two VPCs (10.50/16 was rejected on import, so it is not offered): Azure's Export Permit List lets one out.
    aws_to_azure = cell(m, "vxc1", "vxc2")
    assert (aws_to_azure["offered"], aws_to_azure["reached"]) == (2, 1)
    [why] = aws_to_azure["blocked"]
    assert why["code"] == "export-permit-list"
    assert "'to-azure'" in why["detail"]
    # Azure's 10.10/16 loses to AWS's shorter path; its VNet and subnet reach AWS.
    azure_to_aws = cell(m, "vxc2", "vxc1")
    assert (azure_to_aws["offered"], azure_to_aws["reached"]) == (3, 2)
    assert reasons(azure_to_aws) == {"not-best": 1}
    assert f"from {peer_ip(1)}" in azure_to_aws["blocked"][0]["detail"]
    # onprem is shut down: nothing reaches it, and it offers nothing.
    assert reasons(cell(m, "vxc1", "vxc3")) == {"session-down": 2}
    assert cell(m, "vxc3", "vxc1")["offered"] == 0
    # The static route 10.99/16 (the MCR's own, NON_CLOUD) reaches AWS, not Azure (its permit list).
    local = cell(m, None, "vxc1")
    assert (local["offered"], local["reached"]) == (1, 1)
    assert local["sessions"][0]["fromSession"] == LOCAL
    assert reasons(cell(m, None, "vxc2")) == {"export-permit-list": 1}
    assert not [c for c in m["cells"] if c["fromVxc"] == c["toVxc"]]  # one session per VXC: no diagonal


def test_peer_types_isolate_private_and_public_clouds() -> None:
    p = build([{"peerType": "PRIV_CLOUD"}, {"peerType": "PUB_CLOUD"}, {"peerType": "NON_CLOUD"}])
    announce(p, 1, (64601,), "10.1.0.0/16")
    announce(p, 2, (64602,), "10.2.0.0/16")
    announce(p, 3, (64603,), "10.3.0.0/16")
    m = matrix(p)
    check_consistent(p, m)
    assert reasons(cell(m, "vxc1", "vxc2")) == {"peer-type": 1}
    assert "PRIV_CLOUD" in cell(m, "vxc1", "vxc2")["blocked"][0]["detail"]
    assert reasons(cell(m, "vxc2", "vxc1")) == {"peer-type": 1}
    assert cell(m, "vxc1", "vxc3")["reached"] == 1
    assert cell(m, "vxc3", "vxc2")["reached"] == 1


def test_export_control_and_the_as_path() -> None:
    p = build([
        {"exportPolicy": "deny", "permitExportTo": [peer_ip(3)]},
        {"denyExportTo": [peer_ip(3)]},
        {},
        {"peerAsn": 65099},
    ])
    announce(p, 1, (64601,), "10.1.0.0/16")
    announce(p, 2, (64602,), "10.2.0.0/16")
    announce(p, 3, (64603, 65099), "10.3.0.0/16")  # holds the AS of peer 4, which has no asOverride
    m = matrix(p)
    check_consistent(p, m)
    assert reasons(cell(m, "vxc1", "vxc2")) == {"export-policy": 1}
    assert cell(m, "vxc1", "vxc3")["reached"] == 1
    assert reasons(cell(m, "vxc2", "vxc3")) == {"deny-export-to": 1}
    assert cell(m, "vxc2", "vxc1")["reached"] == 1
    assert reasons(cell(m, "vxc3", "vxc4")) == {"peer-as-in-path": 1}
    assert "65099" in cell(m, "vxc3", "vxc4")["blocked"][0]["detail"]


def test_a_withdrawn_session_offers_nothing_and_the_matrix_follows() -> None:
    p = build([{}, {}])
    announce(p, 1, (64601,), "10.1.0.0/16", "10.1.1.0/24")
    assert cell(matrix(p), "vxc1", "vxc2")["reached"] == 2
    p.handle(PeerDown(peer_ip(1), "hold timer expired"), T0 + 2)
    m = matrix(p)
    check_consistent(p, m)
    assert cell(m, "vxc1", "vxc2")["offered"] == 0


PREFIXES = [f"10.{i}.0.0/16" for i in range(6)]


@settings(max_examples=40, deadline=None)
@given(
    types=st.lists(st.sampled_from(["NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"]), min_size=2, max_size=4),
    routes=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(PREFIXES), st.integers(1, 3)), max_size=12),
    deny_list=st.booleans(),
)
def test_counts_match_the_processor(types: list[str], routes: list[tuple[int, str, int]], deny_list: bool) -> None:
    """Whatever the peer types, routes and export lists: each pair accounts for every prefix once, and the prefixes
    that reach a target are exactly its Adj-RIB-Out."""
    lists = [{"id": 1, "description": "no-10-2", "addressFamily": "IPv4",
              "entries": [{"action": "permit", "prefix": "10.2.0.0/16"}]}]
    peers: list[dict[str, Any]] = [{"peerType": t} for t in types]
    if deny_list:
        peers[0]["exportBlacklist"] = 1
    p = build(peers, lists)
    for n, prefix, length in routes:
        if n < len(types):
            announce(p, n + 1, (64601 + n,) * length, prefix)
    check_consistent(p, matrix(p))


def test_a_session_that_did_not_negotiate_its_family_is_blocked_with_that_reason() -> None:
    cfg = peer_config([{"peerAsn": 64512, "peerType": "NON_CLOUD"}, {"peerAsn": 64513, "peerType": "NON_CLOUD"}])
    p = RouteProcessor()
    p.handle(ConfigChanged(cfg), 0.0)
    p.handle(PeerUp(peer_ip(1), "10.0.0.1"), 0.0)
    p.handle(PeerUp(peer_ip(2), "10.0.0.2", frozenset()), 0.0)
    p.handle(RoutesAnnounced(peer_ip(1), PathAttributes(peer_ip(1), (64512,)), ("10.10.0.0/16",)), 0.0)
    [pair] = [pair for cell in matrix(p)["cells"] for pair in cell["sessions"]
              if pair["fromSession"] == peer_ip(1) and pair["toSession"] == peer_ip(2)]
    assert pair["reached"] == 0
    assert [b["code"] for b in pair["blocked"]] == ["not-negotiated"]
