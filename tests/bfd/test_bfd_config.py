"""bfd_peers: which connections get a BFD session, with which timers and device."""

from __future__ import annotations

from ipaddress import ip_address

from mcrd.bfd import BfdPeerConfig, bfd_peers
from mcrd.config.load import parse_config

CONFIG = """\
mcr: {productName: t}
vxcs:
  - productName: aws
    interface: eth1
    vlan: 100
    vrouter:
      interfaces:
        - ipAddresses: [192.0.2.1/29, "2001:db8::1/64"]
          bfd: {txInterval: 500, rxInterval: 400, multiplier: 5}
          bgpConnections:
            - {peerAsn: 64512, localIpAddress: 192.0.2.1, peerIpAddress: 192.0.2.2, bfdEnabled: true}
            - {peerAsn: 64512, localIpAddress: 192.0.2.1, peerIpAddress: 192.0.2.3}
            - {peerAsn: 64512, localIpAddress: 192.0.2.1, peerIpAddress: 192.0.2.4, bfdEnabled: true, shutdown: true}
            - {peerAsn: 64512, localIpAddress: "2001:db8::1", peerIpAddress: "2001:db8::2", bfdEnabled: true}
  - productName: azure
    interface: eth2
    vrouter:
      interfaces:
        - ipAddresses: [198.51.100.1/30]
          bgpConnections:
            - {peerAsn: 12076, localIpAddress: 198.51.100.1, peerIpAddress: 198.51.100.2, bfdEnabled: true}
  - productName: off
    interface: eth3
    shutdown: true
    vrouter:
      interfaces:
        - ipAddresses: [203.0.113.1/30]
          bgpConnections:
            - {peerAsn: 12076, localIpAddress: 203.0.113.1, peerIpAddress: 203.0.113.2, bfdEnabled: true}
"""


def test_bfd_peers() -> None:
    assert bfd_peers(parse_config(CONFIG)) == [
        BfdPeerConfig(ip_address("192.0.2.2"), ip_address("192.0.2.1"), "eth1.100", 500, 400, 5),
        BfdPeerConfig(ip_address("2001:db8::2"), ip_address("2001:db8::1"), "eth1.100", 500, 400, 5),
        # Megaport's defaults: 300 ms, 300 ms, 3.
        BfdPeerConfig(ip_address("198.51.100.2"), ip_address("198.51.100.1"), "eth2", 300, 300, 3),
    ]


def test_no_bfd_peers_without_bfd_enabled() -> None:
    assert bfd_peers(parse_config(CONFIG.replace("bfdEnabled: true", "bfdEnabled: false"))) == []
