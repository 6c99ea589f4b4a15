"""Configs of the benchmark: the mcrd config of a topology, and the BIRD and FRR hub configs translated from it.

`mcr_config()` is the single source: `bird_hub()` and `frr_hub()` read the same document through mcrd's own loader
(`mcrd.config.load.parse_config`) and translate what the MCR does (docs/MCR-SEMANTICS.md section 2) into each daemon's
language:

- import on S: the AS-path loop check (both daemons do it), then S's import permit list / deny list (first-match
  prefix lists: BIRD functions of `net ~ [...]` tests in entry order, FRR `ip prefix-list`), then a large community
  (133937:0:1 NON_CLOUD, :2 PRIV_CLOUD, :3 PUB_CLOUD; the MCR ASN does not fit a standard community) marking S's
  peer type;
- export to T: the peer-type gate on those communities (PRIV never to PUB and back), T's export permit/deny list,
  the marking communities removed, next hop self, T's `asPathPrependCount` and `medOut`;
- the best routes into the kernel (BIRD `protocol kernel`, FRR zebra), unless the FIB is off.

What the shapes do not use (exportPolicy deny, permit/denyExportTo, asOverride, medIn, static routes, IPv6) is
refused with a clear error rather than translated half-way.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bench.hub.shapes import HUB_ASN, ROUTER_ID, Spoke, Topology
from mcrd.config.load import parse_config
from mcrd.config.model import BgpConnection, Config, PrefixFilterList

CLASS_COMMUNITY = {"NON_CLOUD": 1, "PRIV_CLOUD": 2, "PUB_CLOUD": 3}
HOLD_TIME = 90


def hub_ifname(run_id: str, spoke: Spoke) -> str:
    return f"{spoke.name}-{run_id}"


def mcr_config(topo: Topology, run_id: str, *, fib: bool = True) -> str:
    """The MCR config (JSON, which mcrd reads like YAML) of the hub. `fib=False`: `mcr.kernelRoutes: false`, which
    mcrd applies itself and the BIRD and FRR translations follow (no kernel export)."""
    lists = []
    vxcs = []
    for spoke in topo.spokes:
        entries: list[dict[str, Any]] = [
            {"action": "deny", "prefix": p, "ge": "24", "le": "24"} for p in spoke.rejected
        ]
        entries.append({"action": "permit", "prefix": str(spoke.block), "ge": "24", "le": "24"})
        list_id = spoke.index + 1
        lists.append({"id": list_id, "description": f"{spoke.name}-in", "addressFamily": "IPv4", "entries": entries})
        conn = {
            "peerAsn": spoke.asn, "localIpAddress": spoke.hub_ip, "peerIpAddress": spoke.spoke_ip,
            "peerType": spoke.peer_type, "importWhitelist": list_id, "holdTime": HOLD_TIME,
            "description": f"spoke {spoke.name}",
        }
        interface = {"ipAddresses": [f"{spoke.hub_ip}/30"], "bgpConnections": [conn]}
        vxcs.append({"productName": f"{spoke.name}-vxc", "interface": hub_ifname(run_id, spoke),
                     "vrouter": {"interfaces": [interface]}})
    config = {
        "mcr": {"productName": "bench-hub", "mcrAsn": HUB_ASN, "routerId": ROUTER_ID,
                # the MCR's cap is 10,000 routes; S4 needs more (the issue: run it with mcr.maxRoutes raised)
                "maxRoutes": max(10_000, topo.total_accepted + 100), "kernelRoutes": fib},
        "prefixFilterLists": lists,
        "vxcs": vxcs,
    }
    return json.dumps(config, indent=1) + "\n"


def load(text: str) -> Config:
    return parse_config(text, "<bench mcr config>")


def _unsupported(config: Config) -> None:
    for vxc, iface, conn in config.connections():
        problems = []
        if conn.export_policy != "permit" or conn.permit_export_to or conn.deny_export_to:
            problems.append("exportPolicy/permitExportTo/denyExportTo")
        if conn.as_override:
            problems.append("asOverride")
        if conn.med_in is not None:
            problems.append("medIn")
        if conn.peer_ip_address.version != 4:
            problems.append("IPv6")
        if iface.ip_routes:
            problems.append("ipRoutes")
        if problems:
            raise ValueError(f"{vxc.product_name}: the translator does not handle {', '.join(problems)}")


def _connections(config: Config) -> list[BgpConnection]:
    _unsupported(config)
    return [conn for vxc, _, conn in config.connections() if not config.shutdown(vxc, conn)]


def _runs(plist: PrefixFilterList) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """Consecutive entries with the same action, merged: [(action, [(prefix, ge, le), ...]), ...]."""
    out: list[tuple[str, list[tuple[str, int, int]]]] = []
    for entry in plist.entries:
        item = (str(entry.prefix), entry.effective_ge, entry.effective_le)
        if out and out[-1][0] == entry.action:
            out[-1][1].append(item)
        else:
            out.append((entry.action, [item]))
    return out


# --- BIRD 2 -----------------------------------------------------------------------------------------------------


def _bird_list_function(plist: PrefixFilterList) -> str:
    """`function mcr_list_N()`: true when the MCR list *matches* the route (first containing entry permits)."""
    lines = [f"function mcr_list_{plist.id}()", "{"]
    for action, items in _runs(plist):
        members = ", ".join(f"{p}{{{ge},{le}}}" for p, ge, le in items)
        lines.append(f"  if net ~ [ {members} ] then return {'true' if action == 'permit' else 'false'};")
    lines += ["  return false;", "}"]
    return "\n".join(lines)


def bird_hub(config: Config, *, log: str = "stderr") -> str:
    conns = _connections(config)
    asn = config.mcr.mcr_asn
    out = [
        f"log {log} {{ info, remote, warning, error, auth, fatal, bug }};",
        f"router id {config.effective_router_id()};",
        "protocol device { scan time 10; }",
    ]
    if config.mcr.kernel_routes:  # mcr.kernelRoutes: false, as mcrd would
        out.append("protocol kernel fib4 { ipv4 { import none; export where source = RTS_BGP; }; }")
    used = {ref for c in conns for ref in (c.import_whitelist, c.import_blacklist, c.export_whitelist,
                                           c.export_blacklist) if ref is not None}
    for ref in sorted(used, key=str):
        plist = config.find_list(ref)
        assert plist is not None
        out.append(_bird_list_function(plist))
    for n, conn in enumerate(conns):
        name = f"c{n}"
        body = ["  if bgp_path.len = 0 then reject;"]  # only routes learned over BGP (no statics here)
        if conn.import_whitelist is not None:
            body.append(f"  if ! mcr_list_{config.find_list(conn.import_whitelist).id}() then reject;")  # type: ignore[union-attr]
        if conn.import_blacklist is not None:
            body.append(f"  if mcr_list_{config.find_list(conn.import_blacklist).id}() then reject;")  # type: ignore[union-attr]
        body.append(f"  bgp_large_community.add(({asn},0,{CLASS_COMMUNITY[conn.peer_type]}));")
        out += [f"filter {name}_in", "{", *body, "  accept;", "}"]
        body = ["  if source != RTS_BGP then reject;"]
        if conn.peer_type == "PRIV_CLOUD":
            body.append(f"  if ({asn},0,{CLASS_COMMUNITY['PUB_CLOUD']}) ~ bgp_large_community then reject;")
        elif conn.peer_type == "PUB_CLOUD":
            body.append(f"  if ! (({asn},0,{CLASS_COMMUNITY['NON_CLOUD']}) ~ bgp_large_community) then reject;")
        if conn.export_whitelist is not None:
            body.append(f"  if ! mcr_list_{config.find_list(conn.export_whitelist).id}() then reject;")  # type: ignore[union-attr]
        if conn.export_blacklist is not None:
            body.append(f"  if mcr_list_{config.find_list(conn.export_blacklist).id}() then reject;")  # type: ignore[union-attr]
        body.append(f"  bgp_large_community.delete([({asn},0,*)]);")
        local = config.local_asn(conn)
        body += [f"  bgp_path.prepend({local});"] * conn.as_path_prepend_count
        if conn.med_out is not None:
            body.append(f"  bgp_med = {conn.med_out};")
        out += [f"filter {name}_out", "{", *body, "  accept;", "}"]
        out += [
            f"protocol bgp {name} {{",
            f"  description \"{conn.peer_ip_address}\";",
            f"  local {conn.local_ip_address} as {local};",
            f"  neighbor {conn.peer_ip_address} as {conn.peer_asn};",
            f"  hold time {conn.hold_time};",
            "  connect delay time 1;", "  connect retry time 1;", "  error wait time 1, 5;",
            f"  ipv4 {{ import filter {name}_in; export filter {name}_out; next hop self; }};",
            "}",
        ]
    return "\n".join(out) + "\n"


# --- FRR 8.4 ----------------------------------------------------------------------------------------------------


def _frr_prefix_list(plist: PrefixFilterList) -> list[str]:
    lines = []
    for seq, entry in enumerate(plist.entries, start=1):
        plen, ge, le = entry.prefix.prefixlen, entry.effective_ge, entry.effective_le
        # FRR wants len < ge <= le, and `ge G` alone means `le 32`: write each bound that differs from the length
        rng = (f" ge {ge}" if ge > plen else "") + (f" le {le}" if le > plen else "")
        lines.append(f"ip prefix-list mcr-list-{plist.id} seq {seq * 5} {entry.action} {entry.prefix}{rng}")
    return lines


def frr_hub(config: Config, *, hostname: str = "bench-hub") -> str:
    conns = _connections(config)
    asn = config.mcr.mcr_asn
    out = ["frr defaults traditional", f"hostname {hostname}", "log stdout warnings", "!"]
    used = {ref for c in conns for ref in (c.import_whitelist, c.import_blacklist, c.export_whitelist,
                                           c.export_blacklist) if ref is not None}
    for ref in sorted(used, key=str):
        plist = config.find_list(ref)
        assert plist is not None
        out += _frr_prefix_list(plist)
    for kind, value in CLASS_COMMUNITY.items():
        out.append(f"bgp large-community-list standard mcr-{kind.lower()} seq 5 permit {asn}:0:{value}")
        out.append(f"bgp large-community-list standard mcr-all seq {value * 5} permit {asn}:0:{value}")
    route_maps: dict[str, str] = {}  # body -> name: equal policies share one route-map (and so an update group)

    def route_map(prefix: str, body: list[str]) -> str:
        key = "\n".join(body)
        if key not in route_maps:
            name = f"{prefix}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
            route_maps[key] = name
            out.extend(line.replace("@", name) for line in body)
        return route_maps[key]

    neighbors = []
    for conn in conns:
        body = []
        if conn.import_blacklist is not None:
            body += ["route-map @ deny 10", f" match ip address prefix-list "
                     f"mcr-list-{config.find_list(conn.import_blacklist).id}"]  # type: ignore[union-attr]
        body += ["route-map @ permit 20"]
        if conn.import_whitelist is not None:
            body.append(f" match ip address prefix-list mcr-list-{config.find_list(conn.import_whitelist).id}")  # type: ignore[union-attr]
        body.append(f" set large-community {asn}:0:{CLASS_COMMUNITY[conn.peer_type]} additive")
        body.append("!")
        rm_in = route_map("mcr-in", body)
        body = []
        if conn.peer_type == "PRIV_CLOUD":
            body += ["route-map @ deny 10", " match large-community mcr-pub_cloud"]
        elif conn.peer_type == "PUB_CLOUD":
            body += ["route-map @ deny 10", " match large-community mcr-priv_cloud",
                     "route-map @ deny 11", " match large-community mcr-pub_cloud"]
        if conn.export_blacklist is not None:
            body += ["route-map @ deny 15",
                     f" match ip address prefix-list mcr-list-{config.find_list(conn.export_blacklist).id}"]  # type: ignore[union-attr]
        body.append("route-map @ permit 20")
        if conn.export_whitelist is not None:
            body.append(f" match ip address prefix-list mcr-list-{config.find_list(conn.export_whitelist).id}")  # type: ignore[union-attr]
        body.append(" set large-comm-list mcr-all delete")
        if conn.as_path_prepend_count:
            body.append(f" set as-path prepend {' '.join([str(config.local_asn(conn))] * conn.as_path_prepend_count)}")
        if conn.med_out is not None:
            body.append(f" set metric {conn.med_out}")
        body.append("!")
        rm_out = route_map("mcr-out", body)
        neighbors.append((conn, rm_in, rm_out))
    if not config.mcr.kernel_routes:
        out.append("bgp no-rib")  # a global command: bgpd keeps its routes out of zebra (and so the kernel)
    out += [
        f"router bgp {asn}",
        f" bgp router-id {config.effective_router_id()}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " coalesce-time 50",
    ]
    for conn, _, _ in neighbors:
        peer = conn.peer_ip_address
        out += [
            f" neighbor {peer} remote-as {conn.peer_asn}",
            f" neighbor {peer} local-as {config.local_asn(conn)} no-prepend replace-as"
            if config.local_asn(conn) != asn else "",
            f" neighbor {peer} update-source {conn.local_ip_address}",
            f" neighbor {peer} timers connect 1",
            f" neighbor {peer} timers {max(1, conn.hold_time // 3)} {conn.hold_time}",
            f" neighbor {peer} advertisement-interval 0",
        ]
    out.append(" address-family ipv4 unicast")
    for conn, rm_in, rm_out in neighbors:
        peer = conn.peer_ip_address
        out += [f"  neighbor {peer} activate", f"  neighbor {peer} next-hop-self",
                f"  neighbor {peer} route-map {rm_in} in", f"  neighbor {peer} route-map {rm_out} out"]
    out += [" exit-address-family", "!"]
    return "\n".join(line for line in out if line) + "\n"


# --- spokes (generators and observers) ----------------------------------------------------------------------------


def spoke_bird(spoke: Spoke) -> str:
    """A spoke: originates its prefixes from a static protocol that starts *disabled* (the go signal enables it),
    and imports everything the hub sends (it is also an observer). Route times print as epoch seconds with
    milliseconds: `show route` then tells when each route last changed."""
    routes = "\n".join(f"  route {p} blackhole;" for p in spoke.prefixes)
    return f"""log stderr {{ warning, error, fatal, bug }};
timeformat route "%s.%3f";
router id 10.254.{spoke.index}.2;
protocol device {{ scan time 10; }}
protocol static gen {{
  disabled;
  ipv4;
{routes}
}}
protocol bgp hub {{
  local {spoke.spoke_ip} as {spoke.asn};
  neighbor {spoke.hub_ip} as {HUB_ASN};
  hold time {HOLD_TIME};
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
  ipv4 {{ import all; export where source = RTS_STATIC; }};
}}
"""
