"""Small builders for core tests: configs from plain data, in the Megaport field names."""

from __future__ import annotations

from typing import Any

from mcrd.config.model import Config


def peer_config(
    peers: list[dict[str, Any]],
    lists: list[dict[str, Any]] | None = None,
    mcr: dict[str, Any] | None = None,
) -> Config:
    """One VXC per peer on 10.0.N.0/24 (peer .2, MCR .1), in the order given.

    Each peer dict holds BGP connection fields; `peerIpAddress` may be omitted, and `ipRoutes` goes to the
    interface."""
    vxcs = []
    for n, conn in enumerate(peers, start=1):
        conn = dict(conn)
        routes = conn.pop("ipRoutes", [])
        conn.setdefault("peerIpAddress", f"10.0.{n}.2")
        conn.setdefault("localIpAddress", f"10.0.{n}.1")
        conn.setdefault("peerAsn", 64600 + n)
        vxcs.append(
            {
                "productName": f"vxc{n}",
                "interface": f"eth{n}",
                "vrouter": {
                    "interfaces": [
                        {"ipAddresses": [f"10.0.{n}.1/24"], "ipRoutes": routes, "bgpConnections": [conn]}
                    ]
                },
            }
        )
    data: dict[str, Any] = {"mcr": {"productName": "t", **(mcr or {})}, "vxcs": vxcs}
    if lists:
        data["prefixFilterLists"] = lists
    return Config.model_validate(data)


def peer_ip(n: int) -> str:
    return f"10.0.{n}.2"
