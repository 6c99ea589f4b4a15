"""Changes a reload may not make (docs/MCR-SEMANTICS.md 2.6)."""

from __future__ import annotations

from mcrd.config.diff import change_problems
from tests.core.helpers import peer_config


def test_mcr_asn_cannot_change_while_vxcs_are_attached() -> None:
    running = peer_config([{}])
    new = peer_config([{}], mcr={"mcrAsn": 64999})
    assert list(change_problems(running, new)) == [
        (("mcr", "mcrAsn"), "cannot change from 133937 to 64999 while VXCs are attached")
    ]


def test_local_asn_may_not_turn_ebgp_into_ibgp() -> None:
    running = peer_config([{"peerAsn": 65010}])
    new = peer_config([{"peerAsn": 65010, "localAsn": 65010}])
    [(path, message)] = list(change_problems(running, new))
    assert path == ("vxcs", 0, "vrouter", "interfaces", 0, "bgpConnections", 0, "localAsn")
    assert message == (
        "would turn the session with 10.0.1.2 from eBGP into iBGP: delete the connection and add it again"
    )


def test_filter_and_attribute_changes_are_allowed() -> None:
    running = peer_config([{"peerAsn": 65010}])
    new = peer_config([{"peerAsn": 65010, "medOut": 5, "asPathPrependCount": 2}])
    assert list(change_problems(running, new)) == []
