"""Each node's own view of BGP, read the way its operator would: FRR through `vtysh ... json`, BIRD through
`birdc`, mcrd through its looking glass (HTTP, from inside the node), GoBGP through `gobgp -j` (a host node whose
exec lines start gobgpd; `mcrd lab up` does not wait for its sessions). Parsers are pure; `Probe` feeds them what the
node answers through an `Access` (mcrd.lab.access). A daemon that does not answer raises `NoAnswerError`: the lab
cannot be judged, which is never the same as an intent failing.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcrd.lab.access import Access
from mcrd.lab.sessions import ESTABLISHED, parse_bird_protocols, parse_frr_neighbors
from mcrd.lab.topology import Node

ROUTING_ROLES = ("mcrd", "frr", "bird")
BASE = "/v2/product/mcr2"
# Fetch URLs from inside the node (standard library only, so any python3 there will do); one JSON list out.
_FETCH = ("import json,sys,urllib.request as u\n"
          "print(json.dumps([json.load(u.urlopen(x,timeout=5)) for x in sys.argv[1:]]))")


class NoAnswerError(Exception):
    """A node's daemon did not answer: the lab cannot be judged."""


@dataclass(frozen=True)
class Path:
    """One path of a node's BGP table."""

    prefix: str
    as_path: tuple[int, ...]
    next_hop: str
    med: int | None
    peer: str
    """The address of the neighbour it was learned from; "" for a route the node originates."""
    best: bool

    def show(self) -> str:
        path = " ".join(map(str, self.as_path)) or "(local)"
        med = f" med {self.med}" if self.med is not None else ""
        hop = f" via {self.next_hop}" if self.next_hop else ""
        return f"{self.prefix} [{path}]{hop}{med}{'' if self.best else ' (not best)'}"


@dataclass(frozen=True)
class PeerSession:
    address: str
    remote_as: str
    state: str
    received: str = ""
    sent: str = ""
    admin_down: bool = False
    """Shut down by configuration: not expected to be established (and not waited for)."""

    @property
    def established(self) -> bool:
        return self.state == ESTABLISHED


@dataclass(frozen=True)
class Rejection:
    session: str
    prefix: str
    code: str


# --- pure parsers -------------------------------------------------------------------------------------------------


def _as_path(text: str) -> tuple[int, ...]:
    return tuple(int(tok) for tok in re.findall(r"\d+", text))


def parse_frr_table(data: Mapping[str, Any]) -> list[Path]:
    """Paths from FRR's `show bgp ipv4|ipv6 unicast json`."""
    out = []
    for prefix, paths in (data.get("routes") or {}).items():
        for p in paths if isinstance(paths, list) else []:
            if not p.get("valid", True):
                continue
            hops = [h for h in p.get("nexthops") or [] if h.get("scope", "global") == "global"]
            peer = str(p.get("peerId", ""))
            out.append(Path(
                prefix=str(ipaddress.ip_network(prefix, strict=False)),
                as_path=_as_path(str(p.get("path", ""))),
                next_hop=str(hops[0].get("ip", "")) if hops else "",
                med=int(p["metric"]) if "metric" in p else None,
                peer="" if peer.startswith("(") else peer,
                best=bool(p.get("bestpath")),
            ))
    return out


def split_json(text: str) -> list[Any]:
    """Several JSON documents one after the other (vtysh with several -c)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        doc, i = decoder.raw_decode(text, i)
        out.append(doc)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


_BIRD_ROUTE = re.compile(r"^(?P<prefix>\S+)?\s+\S+\s+\[(?P<proto>[^\s\]]+)[^\]]*\](?P<best>\s+\*)?")


def parse_bird_routes(text: str, protocols: Mapping[str, str]) -> list[Path]:
    """Paths from BIRD 2's `birdc show route all`; `protocols` maps a BGP protocol name to its neighbour address."""
    out: list[Path] = []
    current: dict[str, Any] | None = None
    prefix = ""

    def flush() -> None:
        if current is None:
            return
        out.append(Path(prefix=current["prefix"], as_path=_as_path(current.get("as_path", "")),
                        next_hop=current.get("next_hop") or current.get("via", ""), med=current.get("med"),
                        peer=protocols.get(current["proto"], ""), best=current["best"]))

    for line in text.splitlines():
        if line.startswith(("\t", "  \t")):
            if current is None:
                continue
            item = line.strip()
            if item.startswith("via "):
                current["via"] = item.split()[1]
            key, _, value = item.partition(":")
            if key == "BGP.as_path":
                current["as_path"] = value
            elif key == "BGP.next_hop":
                current["next_hop"] = value.split()[0] if value.split() else ""
            elif key == "BGP.med":
                current["med"] = int(value.strip())
            continue
        m = _BIRD_ROUTE.match(line)
        if not m or line.startswith(("Table ", "BIRD ")):
            continue
        flush()
        if m.group("prefix"):
            prefix = str(ipaddress.ip_network(m.group("prefix"), strict=False))
        current = {"prefix": prefix, "proto": m.group("proto"), "best": bool(m.group("best"))}
    flush()
    return out


def parse_mcrd_bgp(rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Paths from the looking glass's `bgp` view."""
    return [Path(prefix=str(r["prefix"]), as_path=tuple(int(a) for a in r.get("asPath") or []),
                 next_hop=str(r.get("nextHop") or ""), med=r.get("med"), peer=str(r.get("neighborIp") or ""),
                 best=bool(r.get("best"))) for r in rows]


def parse_gobgp_rib(data: Mapping[str, Any]) -> list[Path]:
    """Paths from GoBGP's `gobgp -j global rib` (attributes by BGP type code: 2 AS_PATH, 3 NEXT_HOP, 4 MED,
    14 MP_REACH_NLRI for IPv6 next hops)."""
    out = []
    for prefix, paths in data.items():
        for p in paths if isinstance(paths, list) else []:
            attrs = {a.get("type"): a for a in p.get("attrs") or [] if isinstance(a, dict)}
            segments = (attrs.get(2) or {}).get("as_paths") or []
            hop = (attrs.get(3) or {}).get("nexthop") or next(iter((attrs.get(14) or {}).get("nexthops") or []), "")
            med = (attrs.get(4) or {}).get("metric")
            out.append(Path(prefix=str(ipaddress.ip_network(prefix, strict=False)),
                            as_path=tuple(int(a) for seg in segments for a in seg.get("asns") or []),
                            next_hop="" if hop in ("0.0.0.0", "::") else str(hop),
                            med=None if med is None else int(med),
                            peer=str(p.get("neighbor-ip") or ""), best=bool(p.get("best"))))
    return out


GOBGP_ESTABLISHED = 6  # apipb.PeerState.SessionState.ESTABLISHED


def parse_gobgp_neighbors(data: Sequence[Mapping[str, Any]]) -> list[PeerSession]:
    """Sessions from GoBGP's `gobgp -j neighbor`."""
    out = []
    for n in data:
        conf, state = n.get("conf") or {}, n.get("state") or {}
        up = state.get("session_state") == GOBGP_ESTABLISHED
        families = [f.get("state") or {} for f in n.get("afi_safis") or []]
        out.append(PeerSession(
            address=str(conf.get("neighbor_address") or state.get("neighbor_address", "")),
            remote_as=str(conf.get("peer_asn", "")),
            state=ESTABLISHED if up else f"session state {state.get('session_state', '?')}",
            received=str(sum(int(f.get("accepted", 0)) for f in families)) if up else "",
            sent=str(sum(int(f.get("advertised", 0)) for f in families)) if up else "",
            admin_down=state.get("admin_state") == 1,  # apipb.PeerState.AdminState.DOWN
        ))
    return out


def parse_mcrd_sessions(rows: Sequence[Mapping[str, Any]]) -> list[PeerSession]:
    return [PeerSession(address=str(r["neighborAddress"]), remote_as=str(r.get("neighborAsn", "")),
                        state=ESTABLISHED if r.get("status") == "UP" else str(r.get("stateReason") or "Down"),
                        received=str(r.get("prefixesIn", "")), sent=str(r.get("prefixesOut", "")),
                        admin_down=r.get("status") != "UP" and r.get("stateReason") == "shut down by config")
            for r in rows]


# --- reading nodes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McrdApi:
    url: str
    uid: str

    @classmethod
    def of(cls, node: Node) -> McrdApi:
        """The looking glass of an mcrd node, from its config (`api.listen`, `mcr.productName`)."""
        from mcrd.config.load import ConfigError, load_config

        listen, uid = "127.0.0.1:8080", ""
        if node.config is not None:
            try:
                config = load_config(node.config)
                listen, uid = config.api.listen, config.mcr.product_name
            except ConfigError:
                pass
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        if ":" in host:
            host = f"[{host}]"
        return cls(f"http://{host}:{port}", uid)

    def lg(self, path: str) -> str:
        return f"{self.url}{BASE}/{self.uid}/lookingGlass/{path}"


class Probe:
    """Read nodes of one lab. Roles come from the topology; answers are not cached (the lab changes)."""

    def __init__(self, access: Access, nodes: Mapping[str, Node]) -> None:
        self.access = access
        self.nodes = nodes
        self._apis: dict[str, McrdApi] = {}
        self._addresses: dict[str, set[str]] = {}

    def role(self, node: str) -> str:
        return self.nodes[node].role

    def _run(self, node: str, argv: Sequence[str], what: str, timeout: float = 10.0) -> str:
        proc = self.access.run(node, argv, timeout=timeout)
        if proc.returncode != 0:
            raise NoAnswerError(f"node {node}: {what} did not answer ({' '.join(argv)}: exit {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-300:]})")
        return proc.stdout

    def _vtysh_json(self, node: str, *commands: str) -> list[Any]:
        argv = ["vtysh"]
        for c in commands:
            argv += ["-c", c]
        text = self._run(node, argv, "FRR (vtysh)")
        try:
            docs = split_json(text)
        except ValueError:
            raise NoAnswerError(f"node {node}: FRR (vtysh) answered no JSON: {text.strip()[-300:]}") from None
        if len(docs) != len(commands) or not all(isinstance(d, dict) for d in docs):
            raise NoAnswerError(f"node {node}: FRR (vtysh) did not answer every command: {text.strip()[-300:]}")
        return docs

    def _mcrd(self, node: str, *paths: str) -> list[Any]:
        api = self._apis.get(node)
        if api is None:
            api = self._apis[node] = McrdApi.of(self.nodes[node])
        text = self._run(node, [self.access.python(), "-c", _FETCH, *(api.lg(p) for p in paths)],
                         f"mcrd (looking glass {api.url})")
        try:
            answers = json.loads(text)
        except ValueError:
            raise NoAnswerError(f"node {node}: mcrd's looking glass answered no JSON") from None
        return [a.get("data") or [] for a in answers]

    def _gobgp(self, node: str, *args: str) -> Any:
        """A host node that runs GoBGP (gobgpd started by its exec lines): `gobgp -j ARGS`."""
        proc = self.access.run(node, ["gobgp", "-j", *args])
        if proc.returncode != 0:
            raise NoAnswerError(f"node {node} is a {self.role(node)} node and no GoBGP answers in it (`gobgp "
                                f"{' '.join(args)}`: {(proc.stderr or proc.stdout).strip()[-200:] or 'failed'}); "
                                "give a routing node (mcrd, FRR, BIRD, or a host running gobgpd)")
        try:
            return json.loads(proc.stdout or "null")
        except ValueError:
            raise NoAnswerError(f"node {node}: GoBGP answered no JSON") from None

    def _bird_protocols(self, node: str) -> list[PeerSession]:
        text = self._run(node, ["birdc", "show", "protocols", "all"], "BIRD (birdc)")
        return [PeerSession(s.address, s.remote_as, s.state, s.received, s.sent)
                for s in parse_bird_protocols(node, text)]

    def paths(self, node: str) -> list[Path]:
        role = self.role(node)
        if role == "frr":
            docs = self._vtysh_json(node, "show bgp ipv4 unicast json", "show bgp ipv6 unicast json")
            return [p for d in docs for p in parse_frr_table(d)]
        if role == "bird":
            text = self._run(node, ["birdc", "show", "route", "all"], "BIRD (birdc)")
            names = {}
            for s in parse_bird_protocols(node, self._run(node, ["birdc", "show", "protocols", "all"], "BIRD")):
                names[s.neighbor.split(" (")[0]] = s.address
            return parse_bird_routes(text, names)
        if role == "mcrd":
            return parse_mcrd_bgp(self._mcrd(node, "bgp")[0])
        return [p for family in ("ipv4", "ipv6")
                for p in parse_gobgp_rib(self._gobgp(node, "global", "rib", "-a", family) or {})]

    def sessions(self, node: str) -> list[PeerSession]:
        role = self.role(node)
        if role == "frr":
            data = self._vtysh_json(node, "show bgp neighbors json")[0]
            return [PeerSession(x.address, x.remote_as, x.state, x.received, x.sent,
                                admin_down=bool((data.get(x.address) or {}).get("adminShutDown")))
                    for x in parse_frr_neighbors(node, data)]
        if role == "bird":
            return self._bird_protocols(node)
        if role == "mcrd":
            return parse_mcrd_sessions(self._mcrd(node, "bgpSessions")[0])
        return parse_gobgp_neighbors(self._gobgp(node, "neighbor") or [])

    def rejections(self, node: str, session: str | None = None) -> list[Rejection]:
        if self.role(node) != "mcrd":
            raise NoAnswerError(f"node {node} is a {self.role(node)} node: rejected: is read from an mcrd node's "
                           "looking glass")
        ids = [session] if session else [s.address for s in self.sessions(node)]
        answers = self._mcrd(node, *(f"bgpSessions/{i}/received?filtered=true" for i in ids))
        return [Rejection(i, str(r["prefix"]), str((r.get("rejection") or {}).get("code", "")))
                for i, rows in zip(ids, answers, strict=True) for r in rows]

    def addresses(self, node: str) -> set[str]:
        """The node's interface addresses (cached: a link going down keeps them)."""
        if node not in self._addresses:
            text = self._run(node, ["ip", "-j", "addr", "show"], "ip addr")
            self._addresses[node] = {str(a["local"]) for link in json.loads(text or "[]")
                                     for a in link.get("addr_info", []) if "local" in a}
        return self._addresses[node]

    def node_of(self, address: str) -> str | None:
        """The lab node that owns an address (a neighbour's node)."""
        return next((node for node in self.nodes if address in self.addresses(node)), None)

    def ping(self, node: str, address: str, count: int = 1, wait: float = 1.0) -> tuple[bool, str]:
        """True when any of `count` echo requests gets its reply within `wait` seconds."""
        proc = self.access.run(node, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", f"{wait:g}", address],
                               timeout=10.0 + count * wait)
        lines = [x for x in (proc.stdout + proc.stderr).splitlines() if "transmitted" in x or "ping:" in x]
        return proc.returncode == 0, (lines[-1].strip() if lines else f"exit {proc.returncode}")
