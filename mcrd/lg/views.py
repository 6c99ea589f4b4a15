"""The looking glass views: Megaport-shaped rows built from the route processor, the config and the time.

Pure functions (no I/O, no clock: `now` is passed in); the HTTP layer only wraps what they return. Field names are
those of Megaport's MCR looking glass (docs/MCR-SEMANTICS.md section 3, Go SDK `mcr_looking_glass_types.go`); `age`,
`uptime` and `lastStateChange` are whole seconds. mcrd has no numeric VXC ids: `vxcId` is always null and `vxcName`
is the VXC's `productName`.

Decisions (where Megaport's documentation says nothing), kept here:
- `sessionId` is the peer address (`peerIpAddress`), unique on an MCR.
- `interface` is the Linux device that carries the VXC (`mcrd.config.devices`).
- CONNECTED and LOCAL routes have next hop `0.0.0.0` (`::` for IPv6): directly connected.
- `metric` is the MED for BGP routes and 0 for STATIC, CONNECTED and LOCAL routes.
- In `routes` (the IP routing table) `best` marks the route the kernel uses: a connected subnet wins over a static or
  BGP route for the same prefix, a static route over a BGP route (docs/MCR-SEMANTICS.md 2.4).
- In `bgp`, routes the MCR originates (static routes, and connected subnets when `advertiseConnected` is set) have
  `neighborIp` and `neighborAsn` null and weight 32768; learned routes have weight 0 and local preference 100
  (`mcrd.policy.mcr.LOCAL_PREF`); only accepted routes are candidates, so `valid` is true there.
- `received` holds the routes import policy accepted, with their attributes after import policy (`medIn` applied);
  `received` with `filtered` (an mcrd extension) holds the rejected ones as the peer sent them, each with the rule
  that rejected it (`rejection.code`, `rejection.detail`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from mcrd.config.devices import layer3_ifnames
from mcrd.config.model import Config, IPNetwork
from mcrd.policy.mcr import LOCAL_PREF, STATIC_ORIGIN
from mcrd.policy.prefix_list import ParsedPrefix, parse_prefix
from mcrd.rib.entry import RouteEntry
from mcrd.rib.peer_state import PeerState
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import Origin, PathAttributes

PROTOCOLS = ("BGP", "STATIC", "CONNECTED", "LOCAL")
LOCAL_WEIGHT = 32768  # vendors' weight for routes the router originates (see mcrd.rib.decision step 0)
LEARNED_WEIGHT = 0


class IpRoute(TypedDict):
    """One route of the IP routing table (`routes`)."""

    prefix: str
    nextHop: str
    protocol: str
    metric: int | None
    localPref: int | None
    asPath: list[int]
    age: int | None
    interface: str
    vxcId: int | None
    vxcName: str
    communities: list[str]
    origin: str
    med: int | None
    best: bool | None


class BgpRoute(TypedDict):
    """One path of the BGP table (`bgp`); `bestReason` is an mcrd extension."""

    prefix: str
    nextHop: str
    asPath: list[int]
    localPref: int | None
    med: int | None
    origin: str
    communities: list[str]
    weight: int | None
    valid: bool
    best: bool
    neighborIp: str | None
    neighborAsn: int | None
    age: int | None
    vxcId: int | None
    vxcName: str
    bestReason: str | None  # on the best path: the decision step that chose it (MCR-SEMANTICS.md 2.4)


class BgpSession(TypedDict):
    """One BGP connection (`bgpSessions`); `prefixesRejected`, `stateReason`, `bfdStatus`, `addressFamilies` and
    `routeRefresh` are mcrd extensions."""

    sessionId: str
    neighborAddress: str
    neighborAsn: int
    localAsn: int
    status: str
    uptime: int | None
    prefixesIn: int | None
    prefixesOut: int | None
    vxcId: int | None
    vxcName: str
    lastStateChange: int | None
    description: str
    prefixesRejected: int
    stateReason: str
    bfdStatus: str | None  # UP, DOWN, INIT, ADMIN_DOWN; null without bfdEnabled
    addressFamilies: list[str] | None  # negotiated: IPv4, IPv6 (unicast); null when down or not known
    routeRefresh: str | None  # negotiated: ENHANCED, NORMAL, NONE; null when down or not known


class BfdSession(TypedDict):
    """One BFD session (`bfdSessions`, an mcrd extension: Megaport's looking glass has no BFD view). Intervals and
    the detection time are in milliseconds, as negotiated (RFC 5880 6.8.2, 6.8.4)."""

    sessionId: str
    neighborAddress: str
    localAddress: str
    interface: str | None
    vxcName: str
    status: str
    remoteStatus: str
    localDiagnostic: str
    remoteDiagnostic: str
    localDiscriminator: int
    remoteDiscriminator: int
    txInterval: float
    rxInterval: float
    detectionTime: float
    remoteMultiplier: int
    transitions: int
    lastStateChange: int | None
    bgpStatus: str


class Rejected(TypedDict):
    code: str
    detail: str


class NeighborRoute(TypedDict):
    """One route received from or advertised to a peer (`bgpSessions/{id}/received`, `.../advertised`)."""

    prefix: str
    nextHop: str
    asPath: list[int]
    localPref: int | None
    med: int | None
    origin: str
    communities: list[str]
    valid: bool
    best: bool


class FilteredRoute(NeighborRoute):
    rejection: Rejected  # mcrd extension: why import policy rejected the route



# --- queries -----------------------------------------------------------------------------------------------------


class QueryError(ValueError):
    """A bad query value; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True, slots=True)
class IpQuery:
    """`ip=`: an address selects the longest matching prefixes, a prefix the equal and covered ones."""

    network: IPNetwork
    address: bool

    def select(self, prefixes: Iterable[str]) -> set[str]:
        """The prefixes (canonical strings, as the RIB holds them) that the query selects. Integer arithmetic on
        parsed prefixes: a view of 100,000 routes must not hold the event loop for long."""
        version = self.network.version
        bits = self.network.max_prefixlen
        query = int(self.network.network_address)
        if self.address:
            hits: list[tuple[str, int]] = []
            for prefix in prefixes:
                v, net, length = parse_prefix(prefix)
                if v == version and (query >> (bits - length)) == (net >> (bits - length)):
                    hits.append((prefix, length))
            longest = max((length for _, length in hits), default=-1)
            return {prefix for prefix, length in hits if length == longest}
        qlen = self.network.prefixlen
        shift = bits - qlen
        selected: set[str] = set()
        for prefix in prefixes:
            v, net, length = parse_prefix(prefix)
            if v == version and length >= qlen and (net >> shift) == (query >> shift):
                selected.add(prefix)
        return selected


def _keeper(query: IpQuery | None, prefixes: Iterable[str]) -> Callable[[str], bool]:
    """Whether a prefix is in the answer: all of them without a query."""
    if query is None:
        return _everything
    return query.select(prefixes).__contains__


def _everything(_: str) -> bool:
    return True


def parse_ip(text: str | None) -> IpQuery | None:
    """The `ip` parameter: an address (`10.1.2.3`) or a prefix (`10.1.0.0/16`; host bits are ignored)."""
    if text is None or text == "":
        return None
    value = text.strip()
    try:
        if "/" in value:
            return IpQuery(ipaddress.ip_network(value, strict=False), address=False)
        address = ipaddress.ip_address(value)
    except ValueError:
        raise QueryError("ip", f"{text!r} is not an IP address or prefix (e.g. 10.1.2.3 or 10.1.0.0/16)") from None
    return IpQuery(ipaddress.ip_network(address), address=True)


def parse_protocol(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    value = text.strip().upper()
    if value not in PROTOCOLS:
        raise QueryError("protocol", f"{text!r} is not one of {', '.join(PROTOCOLS)}")
    return value


def parse_bool(parameter: str, text: str | None) -> bool:
    if text is None or text == "":
        return False
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise QueryError(parameter, f"{text!r} is not true or false")
    return value == "true"


# --- helpers -----------------------------------------------------------------------------------------------------


def _age(now: float, since: float) -> int:
    age = int(now - since)
    return age if age > 0 else 0


_ORIGIN = {origin: origin.name for origin in Origin}  # Enum.name is a slow property; views call it per route


def _prefix_order() -> Callable[[str], ParsedPrefix]:
    """A sort key for prefixes, parsed once each (a prefix has one row per path in `bgp`)."""
    keys: dict[str, ParsedPrefix] = {}

    def key(prefix: str) -> ParsedPrefix:
        found = keys.get(prefix)
        if found is None:
            found = keys[prefix] = parse_prefix(prefix)
        return found

    return key


def _path(attrs: PathAttributes) -> list[int]:
    # The AS_SET, if any, follows the sequence (the Megaport field is a flat list of integers).
    return [*attrs.as_path, *attrs.as_set]


def _unspecified(version: int) -> str:
    return "0.0.0.0" if version == 4 else "::"


@dataclass(frozen=True, slots=True)
class _Static:
    prefix: str
    next_hop: str
    ifname: str
    vxc: str


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the config puts things: static routes, interface addresses, VXC of each Linux device."""

    statics: list[_Static]
    addresses: list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str, str]]  # (address, ifname, vxc)
    vxc_of: dict[str, str]  # Linux device -> VXC name


def _layout(config: Config) -> _Layout:
    ifnames = layer3_ifnames(config)
    statics: list[_Static] = []
    addresses: list[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str, str]] = []
    vxc_of: dict[str, str] = {}
    for v, vxc in enumerate(config.vxcs):
        for i, iface in enumerate(vxc.vrouter.interfaces):
            ifname = ifnames[v, i]
            vxc_of.setdefault(ifname, vxc.product_name)
            statics.extend(_Static(str(r.prefix), str(r.next_hop), ifname, vxc.product_name) for r in iface.ip_routes)
            addresses.extend((address, ifname, vxc.product_name) for address in iface.ip_addresses)
    return _Layout(statics, addresses, vxc_of)


def _static_entry(best: Mapping[str, RouteEntry], static: _Static) -> RouteEntry | None:
    """The Loc-RIB entry of a configured static route when it is the best route for its prefix."""
    entry = best.get(static.prefix)
    if entry is None or entry.source.kind != "static":
        return None
    return entry if entry.attrs.next_hop == static.next_hop and entry.ifname == static.ifname else None


# --- views -------------------------------------------------------------------------------------------------------


def routes(
    processor: RouteProcessor,
    config: Config,
    now: float,
    *,
    protocol: str | None = None,
    ip: IpQuery | None = None,
) -> list[IpRoute]:
    """The IP routing table: best BGP routes, static routes, connected subnets and the MCR's own addresses."""
    best = processor.best()
    connected = processor.connected()
    layout = _layout(config)
    learned = [(p, e) for p, e in best.items() if e.source.kind == "bgp"] if protocol in (None, "BGP") else []
    statics = layout.statics if protocol in (None, "STATIC") else []
    attached = list(connected.items()) if protocol in (None, "CONNECTED") else []
    hosts = _hosts(layout) if protocol in (None, "LOCAL") else []
    keep = _keeper(ip, [*(p for p, _ in learned), *(s.prefix for s in statics), *(p for p, _ in attached),
                        *(h for h, _, _ in hosts)])
    rows: list[IpRoute] = []
    for prefix, entry in learned:
        if not keep(prefix):
            continue
        peer = processor.peer(entry.source.key)
        attrs = entry.attrs
        rows.append({
            "prefix": prefix, "nextHop": attrs.next_hop, "protocol": "BGP", "metric": attrs.med,
            "localPref": LOCAL_PREF, "asPath": _path(attrs), "age": _age(now, entry.since),
            "interface": entry.ifname, "vxcId": None,
            "vxcName": peer.policy.vxc if peer is not None else layout.vxc_of.get(entry.ifname, ""),
            "communities": attrs.community_texts(), "origin": _ORIGIN[attrs.origin], "med": attrs.med,
            "best": prefix not in connected,
        })
    for static in statics:
        if not keep(static.prefix):
            continue
        mine = _static_entry(best, static)
        rows.append({
            "prefix": static.prefix, "nextHop": static.next_hop, "protocol": "STATIC", "metric": 0,
            "localPref": None, "asPath": [], "age": _age(now, mine.since) if mine else None,
            "interface": static.ifname, "vxcId": None, "vxcName": static.vxc, "communities": [], "origin": "",
            "med": None, "best": mine is not None and static.prefix not in connected,
        })
    rows.extend(_attached(p, "CONNECTED", ifname, layout.vxc_of.get(ifname, "")) for p, ifname in attached if keep(p))
    rows.extend(_attached(host, "LOCAL", ifname, vxc) for host, ifname, vxc in hosts if keep(host))
    order = {name: n for n, name in enumerate(("CONNECTED", "LOCAL", "STATIC", "BGP"))}
    rows.sort(key=lambda row: (parse_prefix(row["prefix"]), order[row["protocol"]]))
    return rows


def _hosts(layout: _Layout) -> list[tuple[str, str, str]]:
    """The MCR's own addresses as host prefixes, each once: (prefix, Linux device, VXC)."""
    seen: dict[str, tuple[str, str, str]] = {}
    for address, ifname, vxc in layout.addresses:
        host = str(ipaddress.ip_network(address.ip))
        seen.setdefault(host, (host, ifname, vxc))
    return list(seen.values())


def _attached(prefix: str, protocol: str, ifname: str, vxc: str) -> IpRoute:
    return {
        "prefix": prefix, "nextHop": _unspecified(ipaddress.ip_network(prefix).version), "protocol": protocol,
        "metric": 0, "localPref": None, "asPath": [], "age": None, "interface": ifname, "vxcId": None,
        "vxcName": vxc, "communities": [], "origin": "", "med": None, "best": True,
    }


def bgp(processor: RouteProcessor, config: Config, now: float, *, ip: IpQuery | None = None) -> list[BgpRoute]:
    """Every path in the BGP table: the MCR's own routes and every accepted route of every session that is up."""
    best = processor.best()
    layout = _layout(config)
    originated = processor.connected() if config.mcr.advertise_connected else {}
    up = [peer for peer in processor.peers() if peer.up]
    keep = _keeper(ip, {*(s.prefix for s in layout.statics), *originated,
                        *(prefix for peer in up for prefix in peer.accepted)})
    rows: list[BgpRoute] = []
    for static in layout.statics:
        if keep(static.prefix):
            mine = _static_entry(best, static)
            rows.append(_local_bgp(static.prefix, static.next_hop, static.vxc, mine, now,
                                   _reason(processor, static.prefix, mine)))
    for prefix, ifname in originated.items():
        if keep(prefix):
            entry = best.get(prefix)
            mine = entry if entry is not None and entry.source.kind == "connected" else None
            hop = _unspecified(ipaddress.ip_network(prefix).version)
            rows.append(_local_bgp(prefix, hop, layout.vxc_of.get(ifname, ""), mine, now,
                                   _reason(processor, prefix, mine)))
    for peer in up:
        policy = peer.policy
        for prefix, path in peer.accepted.items():
            if not keep(prefix):
                continue
            attrs = path.attrs
            is_best = best.get(prefix) is path
            rows.append({
                "prefix": prefix, "nextHop": attrs.next_hop, "asPath": _path(attrs), "localPref": LOCAL_PREF,
                "med": attrs.med, "origin": _ORIGIN[attrs.origin], "communities": attrs.community_texts(),
                "weight": LEARNED_WEIGHT, "valid": True, "best": is_best, "neighborIp": policy.key,
                "neighborAsn": policy.peer_asn, "age": _age(now, path.since), "vxcId": None, "vxcName": policy.vxc,
                "bestReason": _reason(processor, prefix, path if is_best else None),
            })
    order = _prefix_order()
    rows.sort(key=lambda row: (order(row["prefix"]), not row["best"]))
    return rows


def _reason(processor: RouteProcessor, prefix: str, best: RouteEntry | None) -> str | None:
    """Why `best`, the best path of `prefix`, won; None for a path that is not the best."""
    if best is None:
        return None
    step = processor.best_reason(prefix)
    return None if step is None else step.value


def _local_bgp(
    prefix: str, next_hop: str, vxc: str, best: RouteEntry | None, now: float, reason: str | None
) -> BgpRoute:
    """A route the MCR originates; `best` is its Loc-RIB entry when it is the best route for the prefix."""
    return {
        "prefix": prefix, "nextHop": next_hop, "asPath": [], "localPref": LOCAL_PREF, "med": None,
        "origin": STATIC_ORIGIN.name, "communities": [], "weight": LOCAL_WEIGHT, "valid": True,
        "best": best is not None, "neighborIp": None, "neighborAsn": None,
        "age": _age(now, best.since) if best else None, "vxcId": None, "vxcName": vxc, "bestReason": reason,
    }


def sessions(processor: RouteProcessor, now: float, bfd: Mapping[str, Any] | None = None) -> list[BgpSession]:
    """Every BGP connection of the config, in config order. `bfd`: the BFD sessions (mcrd.bfd.BfdStatus) by peer
    address."""
    bfd = bfd or {}
    return [_session(peer, now, bfd.get(peer.key)) for peer in processor.peers()]


def bfd_sessions(processor: RouteProcessor, bfd: Mapping[str, Any], monotonic_now: float) -> list[BfdSession]:
    """Every BFD session (mcrd.bfd.BfdStatus by peer address), in config order. `monotonic_now`: BFD keeps its times
    on the monotonic clock."""
    rows: list[BfdSession] = []
    for peer in processor.peers():
        status = bfd.get(peer.key)
        if status is None:
            continue
        rows.append({
            "sessionId": peer.key,
            "neighborAddress": peer.key,
            "localAddress": status.local,
            "interface": status.interface,
            "vxcName": peer.policy.vxc,
            "status": status.state.name,
            "remoteStatus": status.remote_state.name,
            "localDiagnostic": status.local_diag.name,
            "remoteDiagnostic": status.remote_diag.name,
            "localDiscriminator": status.local_discriminator,
            "remoteDiscriminator": status.remote_discriminator,
            "txInterval": status.tx_interval_ms,
            "rxInterval": status.rx_interval_ms,
            "detectionTime": status.detection_time_ms,
            "remoteMultiplier": status.remote_multiplier,
            "transitions": status.transitions,
            "lastStateChange": None if status.last_change is None else _age(monotonic_now, status.last_change),
            "bgpStatus": "UP" if peer.up else "DOWN",
        })
    return rows


def _session(peer: PeerState, now: float, bfd: Any = None) -> BgpSession:
    policy = peer.policy
    reason = peer.state_reason
    if not peer.up and policy.shutdown:
        reason = "shut down by config"
    known = peer.up and peer.families is not None
    if known and not peer.carries:
        reason = (f"the session did not negotiate IPv{policy.family} unicast (the peer's OPEN did not offer it): "
                  "no route can be sent to it")
    return {
        "sessionId": policy.key,
        "neighborAddress": policy.key,
        "neighborAsn": policy.peer_asn,
        "localAsn": policy.local_asn,
        "status": "UP" if peer.up else "DOWN",
        "uptime": _age(now, peer.since) if peer.up else None,
        "prefixesIn": len(peer.accepted),
        "prefixesOut": len(peer.out),
        "vxcId": None,
        "vxcName": policy.vxc,
        "lastStateChange": _age(now, peer.since) if peer.since else None,
        "description": policy.description,
        "prefixesRejected": len(peer.rejected),
        "stateReason": reason if not peer.up or (known and not peer.carries) else "",
        "bfdStatus": None if bfd is None else bfd.state.name,
        "addressFamilies": sorted(f"IPv{family}" for family in peer.families or ()) if known else None,
        "routeRefresh": _REFRESH.get(peer.refresh) if peer.up else None,
    }


_REFRESH = {"enhanced": "ENHANCED", "normal": "NORMAL", "absent": "NONE"}


def find_session(processor: RouteProcessor, session_id: str) -> PeerState | None:
    """The session named `session_id` (its peer address, in any spelling of it)."""
    try:
        key = str(ipaddress.ip_address(session_id.strip()))
    except ValueError:
        return None
    return processor.peer(key)


def advertised(processor: RouteProcessor, peer: PeerState, *, ip: IpQuery | None = None) -> list[NeighborRoute]:
    """What the MCR sends this peer (its Adj-RIB-Out), with the attributes as sent."""
    out = processor.advertised(peer.key)
    keep = _keeper(ip, out)
    rows = [_neighbor_route(prefix, attrs, best=True) for prefix, attrs in out.items() if keep(prefix)]
    rows.sort(key=lambda row: parse_prefix(row["prefix"]))
    return rows


def received(processor: RouteProcessor, peer: PeerState, *, ip: IpQuery | None = None) -> list[NeighborRoute]:
    """What import policy accepted from this peer, with the attributes after import policy."""
    best = processor.best()
    keep = _keeper(ip, peer.accepted)
    rows = [
        _neighbor_route(prefix, entry.attrs, best=best.get(prefix) is entry)
        for prefix, entry in peer.accepted.items()
        if keep(prefix)
    ]
    rows.sort(key=lambda row: parse_prefix(row["prefix"]))
    return rows


def filtered(peer: PeerState, *, ip: IpQuery | None = None) -> list[FilteredRoute]:
    """What the peer sent and the MCR rejected (import lists, AS-path loop, family, route limit, unusable next hop,
    martian, own address, no AS path), and why."""
    keep = _keeper(ip, peer.rejected)
    rows: list[FilteredRoute] = []
    for prefix, (entry, rejection) in peer.rejected.items():
        if not keep(prefix):
            continue
        attrs = entry.received
        rows.append({
            "prefix": prefix, "nextHop": attrs.next_hop, "asPath": _path(attrs), "localPref": attrs.local_pref,
            "med": attrs.med, "origin": _ORIGIN[attrs.origin], "communities": attrs.community_texts(), "valid": False,
            "best": False, "rejection": {"code": rejection.code, "detail": rejection.detail},
        })
    rows.sort(key=lambda row: parse_prefix(row["prefix"]))
    return rows


def _neighbor_route(prefix: str, attrs: PathAttributes, *, best: bool) -> NeighborRoute:
    return {
        "prefix": prefix, "nextHop": attrs.next_hop, "asPath": _path(attrs), "localPref": attrs.local_pref,
        "med": attrs.med, "origin": _ORIGIN[attrs.origin], "communities": attrs.community_texts(), "valid": True,
        "best": best,
    }


def products(config: Config) -> list[dict[str, object]]:
    """The extension index `GET /v2/product/mcr2`: the one MCR this daemon plays."""
    return [{"productUid": config.mcr.product_name, "productName": config.mcr.product_name,
             "productType": "MCR2", "mcrAsn": config.mcr.mcr_asn, "provisioningStatus": "LIVE"}]
