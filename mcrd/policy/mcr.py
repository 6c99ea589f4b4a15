"""The MCR's routing rules (docs/MCR-SEMANTICS.md section 2), one function per rule.

`import_verdict` (2.2) and `export_to` (2.3) apply the rules in their order; the route processor calls them once
per route (and target) and nothing else of the import and export rules. Every "Decision" (a choice mcrd makes
where Megaport's sources are silent) is a named constant or function here, so it can be found and changed in one
place: the route limit, connected routes in the kernel and LOCAL_PREF included.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from mcrd.config.model import Config
from mcrd.policy.peer import PeerPolicy, PeerType
from mcrd.policy.prefix_list import CompiledPrefixList, ParsedPrefix, parse_prefix, prefix_version
from mcrd.policy.rejection import Rejection
from mcrd.route.attributes import Origin, PathAttributes

# --- 2.1 Default propagation by peer type ------------------------------------------------------------------

_MAY_PROPAGATE: dict[PeerType, frozenset[PeerType]] = {
    "NON_CLOUD": frozenset({"NON_CLOUD", "PRIV_CLOUD", "PUB_CLOUD"}),
    "PRIV_CLOUD": frozenset({"NON_CLOUD", "PRIV_CLOUD"}),
    "PUB_CLOUD": frozenset({"NON_CLOUD"}),
}

# Decision: routes the MCR originates (static routes) count as NON_CLOUD.
STATIC_PEER_TYPE: PeerType = "NON_CLOUD"


def may_propagate(learned_from: PeerType, to: PeerType) -> bool:
    """MCR does not exchange routes between private and public cloud peerings (DOC route-advertisement)."""
    return to in _MAY_PROPAGATE[learned_from]


# --- 2.3 step 2: per-peer export control, configured on the source ------------------------------------------


def export_control_refusal(source: PeerPolicy, target: PeerPolicy) -> Rejection | None:
    """Why the source's export control keeps its routes from `target` (None: it lets them go)."""
    if target.key in source.deny_export_to:
        return Rejection("deny-export-to", f"the source session {source.key} lists {target.key} in denyExportTo")
    if target.key in source.permit_export_to or source.export_policy == "permit":
        return None
    return Rejection("export-policy", f"the source session {source.key} has exportPolicy deny and does not list "
                                      f"{target.key} in permitExportTo")


def export_control_permits(source: PeerPolicy, target: PeerPolicy) -> bool:
    return export_control_refusal(source, target) is None


# Decision: iBGP-learned routes are not sent to other iBGP peers (RFC 4271 9.2; the MCR does no route
# reflection).
IBGP_SPLIT_HORIZON = True


def export_refusal(source: PeerPolicy | None, target: PeerPolicy) -> Rejection | None:
    """Why routes learned from `source` (None: originated by the MCR) may not be offered to `target` at all,
    before the target's export lists; None when they may. The looking glass's matrix shows it."""
    if source is None:
        if may_propagate(STATIC_PEER_TYPE, target.peer_type):
            return None
        return Rejection("peer-type", f"routes the MCR originates count as {STATIC_PEER_TYPE}: not sent to "
                                      f"{target.peer_type} peers")
    if source.key == target.key:
        return Rejection("same-session", "routes are not sent back to the session they came from")
    if source.family != target.family:
        return Rejection("family", f"IPv{source.family} routes do not go to an IPv{target.family} session")
    # Decision: a permit in the export control never overrides the PRIV/PUB isolation of 2.1.
    if not may_propagate(source.peer_type, target.peer_type):
        return Rejection("peer-type", f"routes learned from a {source.peer_type} peer are not sent to a "
                                      f"{target.peer_type} peer")
    if IBGP_SPLIT_HORIZON and source.ibgp and target.ibgp:
        return Rejection("ibgp-split-horizon", "routes learned over iBGP are not sent to another iBGP peer")
    return export_control_refusal(source, target)


def may_export(source: PeerPolicy | None, target: PeerPolicy) -> bool:
    """Whether routes learned from `source` (None: originated by the MCR) may be offered to `target` at all,
    before the target's export lists. Does not depend on the prefix, so the processor caches it per pair."""
    return export_refusal(source, target) is None


# --- 2.2 Import ----------------------------------------------------------------------------------------------


def as_loop(peer: PeerPolicy, attrs: PathAttributes) -> Rejection | None:
    if attrs.holds_as(peer.local_asn):
        return Rejection("as-loop", f"AS path holds the local AS {peer.local_asn} (loop)")
    return None


def wrong_family(peer: PeerPolicy) -> Rejection:
    # Decision: a connection carries the unicast family of its peer address only.
    return Rejection("family", f"an IPv{peer.family} session carries IPv{peer.family} routes only")


def import_rejection(peer: PeerPolicy, parsed: ParsedPrefix) -> Rejection | None:
    """Import Permit List then Import Deny List; both apply when both are set."""
    return _lists_refusal(peer.import_whitelist, peer.import_blacklist, parsed, "import")


def _lists_refusal(
    permit: CompiledPrefixList | None, deny: CompiledPrefixList | None, parsed: ParsedPrefix, role: str
) -> Rejection | None:
    if permit is not None:
        rejected = permit.verdict(parsed, permit_list=True, role=role)
        if rejected is not None:
            return rejected
    if deny is not None:
        return deny.verdict(parsed, permit_list=False, role=role)
    return None


def import_attributes(peer: PeerPolicy, attrs: PathAttributes) -> PathAttributes:
    """medIn overwrites the MED of every route received on the session."""
    if peer.med_in is None or attrs.med == peer.med_in:
        return attrs
    return _replace(attrs, med=peer.med_in)


# --- 2.7 Received routes that are never used -------------------------------------------------------------------
# Refused at import like a filtered route: kept with the code, shown by the looking glass (received?filtered=true),
# not propagated, not in the kernel.


def own_addresses(config: Config) -> frozenset[str]:
    """The MCR's own addresses: every interface's ipAddresses, on every VXC."""
    return frozenset(str(address.ip) for vxc in config.vxcs for iface in vxc.vrouter.interfaces
                     for address in iface.ip_addresses)


def own_host_prefixes(own: frozenset[str]) -> frozenset[str]:
    return frozenset(f"{address}/{32 if ':' not in address else 128}" for address in own)


@functools.lru_cache(maxsize=4096)
def _unusable_address(address: str) -> str | None:
    """Why `address` can never be a next hop (RFC 4271 6.3 "not a valid IP host address"), or None."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        if ip in _THIS_NETWORK:
            return "in 0.0.0.0/8"
        if ip.is_loopback:
            return "a loopback address"
        if ip.is_multicast:
            return "a multicast address"
        if ip in _RESERVED or ip == _BROADCAST:
            return "in 240.0.0.0/4 (reserved)"
        return None
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "the loopback address"
    if ip.is_multicast:
        return "a multicast address"
    return None


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_RESERVED = ipaddress.IPv4Network("240.0.0.0/4")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def next_hop_rejection(next_hop: str, own: frozenset[str]) -> Rejection | None:
    """RFC 4271 6.3: a route whose NEXT_HOP is 0.0.0.0, loopback, multicast or one of the MCR's own addresses
    (the session's or any other VXC's) is not used. Per UPDATE: every prefix of it shares the next hop."""
    why = _unusable_address(next_hop)
    if why is None and next_hop in own:
        why = "one of the MCR's own addresses"
    if why is None:
        return None
    return Rejection("next-hop", f"NEXT_HOP {next_hop} is {why}: the route is not used (RFC 4271 6.3)")


_EMPTY_PATH = Rejection("as-path", "no AS path from an eBGP peer (RFC 4271 6.3; a missing AS_PATH is "
                                   "treat-as-withdraw, RFC 7606 3.d)")


def path_rejection(peer: PeerPolicy, attrs: PathAttributes) -> Rejection | None:
    """An eBGP route always carries the peer's AS; ExaBGP reports a missing AS_PATH as an empty one."""
    if not peer.ibgp and not attrs.as_path and not attrs.as_set:
        return _EMPTY_PATH
    return None


# Decision: martians are the blocks no route may point into: IPv4 0.0.0.0/8 (this network), 127.0.0.0/8
# (loopback), 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved, with the broadcast address); IPv6 ::/128
# (unspecified), ::1/128 (loopback), ff00::/8 (multicast) and fe80::/10 (link-local unicast: valid on one link
# only, RFC 4291 2.5.6). A prefix is a martian when it lies inside one; a shorter prefix that covers one and more
# (0.0.0.0/0, 0.0.0.0/5) is not. Private, documentation and shared ranges are not martians: labs use them.
_V4_MARTIANS: dict[str, tuple[int, str]] = {
    "0": (8, "0.0.0.0/8"),
    "127": (8, "127.0.0.0/8"),
    # 224.0.0.0/3 is exactly 224.0.0.0/4 + 240.0.0.0/4: any canonical prefix of length >= 3 starting there.
    **{str(octet): (3, "224.0.0.0/4" if octet < 240 else "240.0.0.0/4") for octet in range(224, 256)},
}
_V6_MARTIANS = tuple(ipaddress.IPv6Network(block) for block in ("::/128", "::1/128", "ff00::/8", "fe80::/10"))


def martian(prefix: str) -> str | None:
    """The martian block a canonical prefix lies in, or None. On the hot path: one partition and one dict lookup
    for an ordinary IPv4 prefix."""
    head, dot, _ = prefix.partition(".")
    if dot:
        block = _V4_MARTIANS.get(head)
        if block is None or int(prefix[prefix.index("/") + 1 :]) < block[0]:
            return None
        return block[1]
    if prefix.startswith(("f", "::")):
        return _v6_martian(prefix)
    return None


@functools.lru_cache(maxsize=1024)
def _v6_martian(prefix: str) -> str | None:
    net = ipaddress.IPv6Network(prefix)
    for block in _V6_MARTIANS:
        if net.subnet_of(block):
            return str(block)
    return None


@functools.lru_cache(maxsize=64)
def _martian_rejection(block: str) -> Rejection:
    return Rejection("martian", f"inside the martian block {block}: never routed")


def prefix_rejection(prefix: str, own_hosts: frozenset[str]) -> Rejection | None:
    """Martians, and the MCR's own addresses as host routes (a peer may not take traffic for them)."""
    block = martian(prefix)
    if block is not None:
        return _martian_rejection(block)
    if prefix in own_hosts:
        return Rejection("own-address", f"{prefix} is one of the MCR's own addresses")
    return None


# --- 2.3 steps 3-5: export lists and attributes --------------------------------------------------------------


def export_list_refusal(target: PeerPolicy, parsed: ParsedPrefix) -> Rejection | None:
    """Export Permit List then Export Deny List of the target; both apply when both are set."""
    return _lists_refusal(target.export_whitelist, target.export_blacklist, parsed, "export")


def export_lists_permit(target: PeerPolicy, parsed: ParsedPrefix) -> bool:
    return export_list_refusal(target, parsed) is None


# RFC 1997 well-known communities, as the decoder writes them.
NO_EXPORT = "65535:65281"
NO_ADVERTISE = "65535:65282"
NO_EXPORT_SUBCONFED = "65535:65283"
_NOT_TO_EBGP = frozenset({NO_EXPORT, NO_EXPORT_SUBCONFED})

# Decision: RFC 8326 GRACEFUL_SHUTDOWN (65535:0) is passed on unchanged and not acted upon: RFC 8326 has the
# receiver lower LOCAL_PREF to 0, and the MCR exposes no LOCAL_PREF control (its best path ignores it, 2.4), so
# mcrd does not change best path selection for it either.
GRACEFUL_SHUTDOWN = "65535:0"


def well_known_communities_permit(attrs: PathAttributes, target: PeerPolicy) -> bool:
    """RFC 1997: NO_ADVERTISE goes to no peer; NO_EXPORT goes to no eBGP peer (mcrd has no confederation, so
    its AS ends at every eBGP session). Decision: NO_EXPORT_SUBCONFED is treated as NO_EXPORT, as RFC 1997 has it
    without confederations. Other communities of all three kinds do not affect export."""
    communities = attrs.communities
    if not communities:
        return True
    if NO_ADVERTISE in communities:
        return False
    return target.ibgp or _NOT_TO_EBGP.isdisjoint(communities)


# Decision: every learned route has LOCAL_PREF 100 in best-path selection, and iBGP peers are sent 100 (the MCR
# has no local-preference setting; RFC 4271's usual default).
LOCAL_PREF = 100


def export_attributes(attrs: PathAttributes, target: PeerPolicy) -> PathAttributes | None:
    """The attributes `target` receives for a route with `attrs`, or None when it must not receive it."""
    if not well_known_communities_permit(attrs, target):
        return None
    path = attrs.as_path
    if attrs.holds_as(target.peer_asn) and not target.ibgp:
        if not target.as_override:
            # Decision: the peer would drop a route holding its own AS; do not send it.
            return None
        path = tuple(target.local_asn if asn == target.peer_asn else asn for asn in path)
    if target.ibgp:
        out_path, local_pref = path, LOCAL_PREF
    else:
        out_path, local_pref = (target.local_asn,) * (1 + target.prepend) + path, None
    return PathAttributes(
        next_hop=target.local_ip,
        as_path=out_path,
        origin=attrs.origin,
        # A MED is not passed from one neighbouring AS to another (RFC 4271 5.1.4): medOut or none.
        med=target.med_out,
        local_pref=local_pref,
        # Decision: communities are transitive and pass unchanged (the MCR offers no community config).
        communities=attrs.communities,
        as_set=attrs.as_set,
        extended_communities=attrs.extended_communities,
        large_communities=attrs.large_communities,
    )


def path_refusal(attrs: PathAttributes, target: PeerPolicy) -> Rejection | None:
    """Why `export_attributes` sends `target` nothing for a route with `attrs` (None: it sends something)."""
    if export_attributes(attrs, target) is not None:
        return None
    return Rejection("peer-as-in-path", f"the AS path holds the peer's AS {target.peer_asn} and asOverride is off")


# --- 2.5 What the MCR originates -----------------------------------------------------------------------------

# Static routes are redistributed into BGP with origin INCOMPLETE, as `redistribute static` does.
STATIC_ORIGIN = Origin.INCOMPLETE

# Decision: connected subnets are not advertised over BGP unless `mcr.advertiseConnected` is set.


def in_kernel(prefix: str, connected: Container[str]) -> bool:
    """Whether the best route for `prefix` goes into the kernel. Decision: not for a connected subnet, which the
    kernel holds already (CONNECTED beats every other protocol)."""
    return prefix not in connected


# --- The route limit -----------------------------------------------------------------------------------------

# Decision: when the MCR's route limit is reached, a new prefix is refused (kept as rejected with this reason
# and counted), and admitted in arrival order when room frees up. Routes for prefixes already in the table
# are never refused; lowering the limit evicts nothing; static routes are config and always enter.
ROUTE_LIMIT = "route-limit"


def route_limit_refusal(prefix_held: bool, held: int, limit: int) -> Rejection | None:
    """Why an accepted route for a prefix may not enter a table of `held` prefixes (None: it may)."""
    if prefix_held or held < limit:
        return None
    return _limit_rejection(limit)


def room_for(held: int, new: int, limit: int) -> bool:
    """Whether `new` more prefixes may all enter a table of `held` prefixes: then `route_limit_refusal` refuses
    none of them (a table grows by one prefix at most per route)."""
    return held + new <= limit


def has_room(held: int, limit: int) -> bool:
    """Whether a route refused by the limit may enter now (the oldest refused first)."""
    return held < limit


@functools.lru_cache(maxsize=8)
def _limit_rejection(limit: int) -> Rejection:
    return Rejection(ROUTE_LIMIT, f"the MCR holds its limit of {limit} routes; waiting for room")


# --- 2.2 Import, in order ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnAddresses:
    """The MCR's own addresses (never a usable next hop) and the same as /32 and /128 prefixes (never accepted)."""

    addresses: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()


def own_of(config: Config) -> OwnAddresses:
    own = own_addresses(config)
    return OwnAddresses(own, own_host_prefixes(own))


def update_verdict(peer: PeerPolicy, attrs: PathAttributes, own: OwnAddresses) -> PathAttributes | Rejection:
    """The steps of `import_verdict` that depend on the attributes only, which every prefix of an UPDATE shares:
    the attributes after import policy, or why every route of the UPDATE is rejected."""
    rejection = as_loop(peer, attrs) or next_hop_rejection(attrs.next_hop, own.addresses) or path_rejection(peer, attrs)
    if rejection is not None:
        return rejection
    return import_attributes(peer, attrs)


def import_verdict(
    peer: PeerPolicy, prefix: str, attrs: PathAttributes, own: OwnAddresses,
    update: PathAttributes | Rejection | None = None,
) -> PathAttributes | Rejection:
    """Import on `peer` (docs/MCR-SEMANTICS.md 2.2 with 2.7), every step in order: the attributes the route is stored
    with, or why it is rejected.

    1. AS-path loop; 2.7: unusable NEXT_HOP; no AS path from an eBGP peer (these depend on the attributes only:
       `update` is `update_verdict(peer, attrs, own)` when the caller has it, once per UPDATE);
    then per prefix: the connection's family; martian; one of the MCR's own addresses as a host route;
    2. import permit list, then import deny list;
    3. medIn overwrites the MED (an attribute change: it rejects nothing, so its place in the order is free).
    The route limit comes after, where the table is known (`route_limit_refusal`)."""
    if update is None:
        update = update_verdict(peer, attrs, own)
    if isinstance(update, Rejection):
        return update
    if prefix_version(prefix) != peer.family:
        return wrong_family(peer)
    rejected = prefix_rejection(prefix, own.hosts)
    if rejected is None and (peer.import_whitelist is not None or peer.import_blacklist is not None):
        rejected = import_rejection(peer, parse_prefix(prefix))
    return update if rejected is None else rejected


def import_rejections(
    peer: PeerPolicy, prefixes: Sequence[str], own: OwnAddresses, update: PathAttributes | Rejection
) -> list[Rejection | None]:
    """`import_verdict` of every prefix of one UPDATE whose `update_verdict` is `update`, as the rejection, or None
    for a route accepted (with `update`): the same steps in the same order, what the prefixes share looked up once
    (the route processor's import path, once per received route)."""
    if isinstance(update, Rejection):
        return [update] * len(prefixes)
    family, hosts = peer.family, own.hosts
    permit, deny = peer.import_whitelist, peer.import_blacklist
    lists = permit is not None or deny is not None
    out: list[Rejection | None] = []
    append = out.append
    for prefix in prefixes:
        if prefix_version(prefix) != family:
            append(wrong_family(peer))
            continue
        rejected = prefix_rejection(prefix, hosts)
        if rejected is None and lists:
            rejected = _lists_refusal(permit, deny, parse_prefix(prefix), "import")
        append(rejected)
    return out


# --- 2.3 Export, in order ------------------------------------------------------------------------------------

_MEMO_MAX = 4096
_NOTHING = object()


@dataclass(slots=True)
class ExportMemo:
    """What `export_to` remembers for one target between calls: the verdict of steps 1-2 per source (they depend on
    the two sessions only) and the attributes of steps 4-5 per attributes object (shared by every prefix of an
    UPDATE, so that equal results are one object and one announcement). The last source and attributes are kept
    apart as well: successive routes mostly share both, and an identity test is the cheapest lookup there is.
    Valid for one config: make a new one when the config changes."""

    gate: dict[str, bool] = field(default_factory=dict)  # source key ("" for the MCR) -> may send at all
    sent: dict[int, tuple[PathAttributes, PathAttributes | None]] = field(default_factory=dict)
    last_source: object = _NOTHING
    last_allowed: bool = False
    last_attrs: object = _NOTHING
    last_sent: PathAttributes | None = None


def export_to(
    source: PeerPolicy | None, target: PeerPolicy, prefix: str, attrs: PathAttributes, memo: ExportMemo
) -> PathAttributes | None:
    """Export (docs/MCR-SEMANTICS.md 2.3 with 2.7) of the best route for `prefix`, learned from `source` (None: the MCR
    originates it), to `target`, every step in order: the attributes `target` receives, or None.

    1. peer-type gate (2.1), never back to its own session, the session's family, no iBGP to iBGP;
    2. the source's export control (denyExportTo, permitExportTo, exportPolicy);
    3. the target's export permit list, then its export deny list;
    4-5. well-known communities, the peer's AS in the path (asOverride), then the attributes sent."""
    if source is not memo.last_source:
        key = "" if source is None else source.key
        allowed = memo.gate.get(key)
        if allowed is None:
            allowed = memo.gate[key] = export_refusal(source, target) is None
        memo.last_source, memo.last_allowed = source, allowed
    if not memo.last_allowed or (source is None and prefix_version(prefix) != target.family):
        return None
    if (target.export_whitelist is not None or target.export_blacklist is not None) and not export_lists_permit(
        target, parse_prefix(prefix)
    ):
        return None
    if attrs is memo.last_attrs:
        return memo.last_sent
    cached = memo.sent.get(id(attrs))
    if cached is not None and cached[0] is attrs:
        out = cached[1]
    else:
        out = export_attributes(attrs, target)
        if len(memo.sent) >= _MEMO_MAX:
            memo.sent.clear()
        memo.sent[id(attrs)] = (attrs, out)  # holding attrs keeps its id from being reused while it is a key
    memo.last_attrs, memo.last_sent = attrs, out
    return out


def export_by_prefix(source: PeerPolicy | None, target: PeerPolicy) -> bool:
    """Whether `export_to` may answer differently for two prefixes of one route (source, attributes): only the
    target's export lists (step 3) and the family of a route the MCR originates look at the prefix. When not, the
    caller may export a route once for all its prefixes."""
    return source is None or target.export_whitelist is not None or target.export_blacklist is not None


def _replace(attrs: PathAttributes, *, med: int | None) -> PathAttributes:
    return PathAttributes(attrs.next_hop, attrs.as_path, attrs.origin, med, attrs.local_pref, attrs.communities,
                          attrs.as_set, attrs.extended_communities, attrs.large_communities)
