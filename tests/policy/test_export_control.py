"""docs/MCR-SEMANTICS.md 2.3 step 2, the order the config validator makes unreachable: an address in both
denyExportTo and permitExportTo is denied (deny is checked first). See export.yaml,
export-control-address-in-both-lists-is-refused."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from mcrd.config.load import parse_config
from mcrd.policy import mcr
from mcrd.policy.peer import compile_peers

TWO_PEERS = """
vxcs:
  - productName: dc1
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [169.254.1.1/30]
          bgpConnections: [{peerAsn: 65001, localIpAddress: 169.254.1.1, peerIpAddress: 169.254.1.2}]
  - productName: dc2
    interface: eth2
    vrouter:
      interfaces:
        - ipAddresses: [169.254.2.1/30]
          bgpConnections: [{peerAsn: 65002, localIpAddress: 169.254.2.1, peerIpAddress: 169.254.2.2}]
"""


@pytest.mark.parametrize("policy", ["permit", "deny"])
def test_deny_export_to_wins_over_permit_export_to(policy: Literal["permit", "deny"]) -> None:
    source, target = compile_peers(parse_config(TWO_PEERS, "two-peers"))
    both = dataclasses.replace(
        source, export_policy=policy, permit_export_to=frozenset({target.key}), deny_export_to=frozenset({target.key})
    )
    assert not mcr.export_control_permits(both, target)
    assert not mcr.may_export(both, target)
