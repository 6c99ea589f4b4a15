"""Render the ExaBGP configuration for a config: one neighbor per BGP connection that is not shut down and not held
down (interface or BFD down, mcrd.bgp.holds)."""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Collection, Sequence

from mcrd.bgp import exabgp_launch
from mcrd.config.devices import layer3_ifnames
from mcrd.config.model import Config

PROCESS_NAME = "mcrd"
BGP_PORT = 179


def render(config: Config, api_command: Sequence[str], holds: Callable[[str], bool] | None = None,
           held_down: Collection[str] = frozenset(), *, route_refresh: bool = False, manual_eor: bool = False) -> str:
    """`api_command` runs the bridge that connects ExaBGP's API to the daemon. `holds(peer address)`: the sessions
    this ExaBGP process has, when there are several (all by default). `held_down`: peer addresses left out (ExaBGP
    closes a neighbor removed at a reload and does not try it again until it is back). `route_refresh`: offer route
    refresh and enhanced route refresh (RFC 2918, 7313); only with exabgp_launch's fix 7, which lets the daemon
    answer (ExaBGP, with no Adj-RIB-Out of its own, would answer with nothing). `manual_eor`: the daemon sends
    End-of-RIB after it sent a new session its table (the send fast path, exabgp_fastpath.py)."""
    router_id = config.effective_router_id()
    lines = [
        f"process {PROCESS_NAME} {{",
        f"    run {shlex.join(api_command)};",
        "    encoder json;",
        "}",
        "",
    ]
    ifnames = layer3_ifnames(config)
    sessions = [(vxc, ifnames[v, i], conn) for v, vxc in enumerate(config.vxcs)
                for i, iface in enumerate(vxc.vrouter.interfaces) for conn in iface.bgp_connections]
    for vxc, ifname, conn in sessions:
        peer = str(conn.peer_ip_address)
        if config.shutdown(vxc, conn) or peer in held_down or (holds is not None and not holds(peer)):
            continue
        family = "ipv4" if conn.peer_ip_address.version == 4 else "ipv6"
        lines += [
            f"neighbor {conn.peer_ip_address} {{",
            f"    router-id {router_id};",
            f"    local-address {conn.local_ip_address};",
            f"    local-as {config.local_asn(conn)};",
            f"    peer-as {conn.peer_asn};",
            f"    hold-time {conn.hold_time};",
            # Both ways, as an MCR: mcrd connects (a lab peer may be passive) and listens on port 179 of the
            # session's local address, with its MD5 key (a peer may only connect; two MCRs both connect, and
            # exabgp_listen.py resolves the collision).
            "    passive false;",
            f"    listen {BGP_PORT};",
            "    group-updates true;",
            # mcrd keeps the Adj-RIB-Out and sends the whole table when a session comes up; a copy kept by
            # ExaBGP would be replayed on reconnect, routes withdrawn meanwhile included.
            "    adj-rib-out false;",
        ]
        if manual_eor:
            lines.append("    manual-eor true;")
        if conn.peer_ip_address.version == 6 and (conn.local_ip_address.is_link_local
                                                  or conn.peer_ip_address.is_link_local):
            # An IPv6 link-local address means nothing without its link: the kernel refuses to bind or connect one
            # (EINVAL) until the socket names an interface, and ExaBGP's `source-interface` does (SO_BINDTODEVICE).
            lines.append(f"    source-interface {ifname};")
        if conn.password:
            # Base64 so that no character of the key can break out of the configuration syntax.
            encoded = base64.b64encode(conn.password.encode()).decode()
            lines += [f"    md5-password {encoded};", "    md5-base64 true;"]
        lines += [
            f"    family {{ {family} unicast; }}",
            # No graceful restart: peers would keep our routes as stale after ExaBGP dies while the hub has
            # withdrawn them from its kernel. Route refresh: the daemon answers a ROUTE-REFRESH it reads on the API.
            f"    capability {{ route-refresh {'enable' if route_refresh else 'disable'}; graceful-restart disable; }}",
            "    api {",
            f"        processes [ {PROCESS_NAME} ];",
            "        receive { parsed; update; open; notification; refresh; }",
            "        neighbor-changes;",
            "    }",
            "}",
            "",
        ]
    return "\n".join(lines)


def environment(log_file: str | None = None) -> dict[str, str]:
    """ExaBGP settings passed as environment variables (`exabgp env` lists them)."""
    return {
        # Stock ExaBGP's speed: the launcher raises it when it installs its fixes (exabgp_launch.reactor_speed),
        # so the speed always fits what actually runs.
        "exabgp_reactor_speed": exabgp_launch.SPEED_STOCK,
        "exabgp_api_ack": "true",  # one `done`/`error` per command: lets the daemon bound what is in flight
        "exabgp_api_encoder": "json",
        # A dead bridge means the daemon lost ExaBGP: stop and let the daemon restart both with a clean state.
        "exabgp_api_respawn": "false",
        "exabgp_api_terminate": "true",
        "exabgp_api_cli": "false",
        "exabgp_daemon_daemonize": "false",
        "exabgp_daemon_user": "root",
        "exabgp_daemon_drop": "false",
        "exabgp_log_destination": log_file or "stderr",
        "exabgp_log_short": "true",
        "exabgp_log_statistics": "false",
        "exabgp_log_packets": "false",
        "exabgp_log_rib": "false",
        "exabgp_log_routes": "false",
        "exabgp_log_processes": "false",  # it would log every command, routes and all
    }
