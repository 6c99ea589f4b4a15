"""The rendered ExaBGP configuration, checked by ExaBGP itself (`exabgp validate`)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from mcrd.bgp.exabgp_config import render
from mcrd.config.load import load_config

EXAMPLES = sorted((Path(__file__).parents[2] / "config").glob("*.yaml"))


@pytest.mark.parametrize("route_refresh", [False, True], ids=["plain", "route-refresh"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_exabgp_accepts_the_configuration_of_every_example(example: Path, route_refresh: bool, tmp_path: Path) -> None:
    conf = tmp_path / "exabgp.conf"
    # manual-eor (the send fast path) with route refresh: every keyword, each example once.
    conf.write_text(render(load_config(example), ["/bin/cat"], route_refresh=route_refresh, manual_eor=route_refresh))
    result = subprocess.run([sys.executable, "-m", "exabgp", "validate", str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_neighbor_per_connection_with_its_asns_key_and_family() -> None:
    config = load_config(EXAMPLES[0].parent / "aws-azure-hub.yaml")
    text = render(config, ["python", "-m", "mcrd.bgp.bridge", "/run/x.sock"])
    assert "run python -m mcrd.bgp.bridge /run/x.sock;" in text
    for _, _, conn in config.connections():
        block = text.split(f"neighbor {conn.peer_ip_address} {{")[1].split("\n}")[0]
        assert f"local-address {conn.local_ip_address};" in block
        assert f"peer-as {conn.peer_asn};" in block
        assert f"local-as {config.local_asn(conn)};" in block
        assert "listen 179;" in block  # an MCR accepts connections too (mcrd/bgp/exabgp_listen.py)
        family = "ipv4" if conn.peer_ip_address.version == 4 else "ipv6"
        assert f"family {{ {family} unicast; }}" in block
        if conn.password:
            # Never the key itself: base64, so no character of it can escape the syntax.
            assert conn.password not in text
            assert f"md5-password {base64.b64encode(conn.password.encode()).decode()};" in block


def test_shut_down_connections_get_no_neighbor(tmp_path: Path) -> None:
    source = (EXAMPLES[0].parent / "aws-azure-hub.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(source.replace("bgpShutdownDefault: false", "bgpShutdownDefault: true", 1))
    assert "neighbor " not in render(load_config(path), ["/bin/cat"])


def test_route_refresh_is_offered_only_when_the_daemon_answers_it() -> None:
    config = load_config(EXAMPLES[0].parent / "aws-azure-hub.yaml")
    assert "route-refresh disable;" in render(config, ["/bin/cat"])
    offered = render(config, ["/bin/cat"], route_refresh=True)
    assert "route-refresh enable;" in offered
    assert "route-refresh disable;" not in offered
    # The requests reach the daemon, and ExaBGP keeps no Adj-RIB-Out (exabgp_launch.py, fix 7 keeps it off).
    assert "receive { parsed; update; open; notification; refresh; }" in offered
    assert "adj-rib-out false;" in offered


LINK_LOCAL = """\
mcr: {routerId: 10.255.0.1}
vxcs:
  - productName: lab-router
    interface: eth5
    vlan: 100
    vrouter:
      interfaces:
        - ipAddresses: ["fe80::2/64", "169.254.0.1/30"]
          bgpConnections:
            - {peerAsn: 64512, localIpAddress: "fe80::2", peerIpAddress: "fe80::1%eth5.100"}
            - {peerAsn: 64512, localIpAddress: 169.254.0.1, peerIpAddress: 169.254.0.2}
  - productName: global
    interface: eth6
    vrouter:
      interfaces:
        - ipAddresses: ["2001:db8::1/64"]
          bgpConnections:
            - {peerAsn: 64513, localIpAddress: "2001:db8::1", peerIpAddress: "2001:db8::2"}
"""


def test_a_link_local_session_is_bound_to_its_vxcs_interface(tmp_path: Path) -> None:
    """The kernel refuses to bind or connect an IPv6 link-local address without an interface (EINVAL): such a
    session gets the VXC's layer-3 device (here its VLAN device) as `source-interface`. Global sessions and IPv4
    link-local ones (169.254/16, routed without a scope) get none. ExaBGP accepts the result."""
    path = tmp_path / "c.yaml"
    path.write_text(LINK_LOCAL)
    text = render(load_config(path), ["/bin/cat"])
    blocks = {block.split(" {")[0]: block for block in text.split("\nneighbor ")[1:]}
    assert "local-address fe80::2;" in blocks["fe80::1"]
    assert "source-interface eth5.100;" in blocks["fe80::1"]
    assert "source-interface" not in blocks["169.254.0.2"]
    assert "source-interface" not in blocks["2001:db8::2"]
    conf = tmp_path / "exabgp.conf"
    conf.write_text(text)
    result = subprocess.run([sys.executable, "-m", "exabgp", "validate", str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_manual_end_of_rib_only_on_the_fast_path() -> None:
    config = load_config(EXAMPLES[0].parent / "aws-azure-hub.yaml")
    assert "manual-eor" not in render(config, ["/bin/cat"])
    fast = render(config, ["/bin/cat"], manual_eor=True)
    assert fast.count("manual-eor true;") == fast.count("neighbor ")
