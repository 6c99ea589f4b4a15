"""BGP sessions as the lab's FRR and BIRD nodes see them (parsers are pure; the runner feeds them the output)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ESTABLISHED = "Established"


@dataclass(frozen=True)
class Session:
    node: str
    neighbor: str
    """FRR: the neighbor address; BIRD: `protocol (address)`."""
    remote_as: str
    state: str
    uptime: str = ""
    received: str = ""
    sent: str = ""
    address: str = ""
    """The neighbor's address (FRR: the same as `neighbor`)."""

    @property
    def established(self) -> bool:
        return self.state == ESTABLISHED

    def row(self) -> list[str]:
        return [self.node, self.neighbor, self.remote_as, self.state, self.uptime, self.received, self.sent]


SESSION_HEADERS = ["NODE", "NEIGHBOR", "REMOTE AS", "STATE", "UP FOR", "PREFIXES IN", "PREFIXES OUT"]


def parse_frr_neighbors(node: str, data: dict[str, Any]) -> list[Session]:
    """Sessions from FRR's `show bgp neighbors json` (one entry per neighbor address)."""
    out = []
    for address, entry in data.items():
        if not isinstance(entry, dict) or "bgpState" not in entry:
            continue
        families = [af for af in (entry.get("addressFamilyInfo") or {}).values() if isinstance(af, dict)]
        received = sum(int(af.get("acceptedPrefixCounter", 0)) for af in families)
        sent = sum(int(af.get("sentPrefixCounter", 0)) for af in families)
        state = str(entry["bgpState"])
        out.append(Session(
            node=node,
            neighbor=address,
            remote_as=str(entry.get("remoteAs", "")),
            state=state,
            uptime=str(entry.get("bgpTimerUpString", "")) if state == ESTABLISHED else "",
            received=str(received) if state == ESTABLISHED else "",
            sent=str(sent) if state == ESTABLISHED else "",
            address=address,
        ))
    return out


_BIRD_HEADER = re.compile(r"^(\S+)\s+BGP\s+\S+\s+(\S+)")


def parse_bird_protocols(node: str, text: str) -> list[Session]:
    """Sessions from BIRD 2's `birdc show protocols all` (BGP protocols only)."""
    out: list[Session] = []
    current: dict[str, Any] | None = None

    def flush() -> None:
        if current is None:
            return
        state = current.get("bgp_state") or current["proto_state"]
        address = current.get("address", "")
        out.append(Session(
            node=node,
            neighbor=f"{current['name']} ({address})" if address else current["name"],
            remote_as=current.get("asn", ""),
            state=state,
            uptime=current.get("since", "") if state == ESTABLISHED else "",
            received=str(current.get("imported", 0)) if state == ESTABLISHED else "",
            sent=str(current.get("exported", 0)) if state == ESTABLISHED else "",
            address=address,
        ))

    for line in text.splitlines():
        if line and not line[0].isspace():
            m = _BIRD_HEADER.match(line)
            flush()
            current = None
            if m:
                cols = line.split()
                since = cols[4] if len(cols) > 4 else ""
                if re.fullmatch(r"\d{4}-\d\d-\d\d", since) and len(cols) > 5:  # `timeformat protocol iso long`
                    since += " " + cols[5]
                current = {"name": m.group(1), "proto_state": m.group(2), "since": f"since {since}" if since else ""}
            continue
        if current is None:
            continue
        item = line.strip()
        key, _, value = item.partition(":")
        value = value.strip()
        if key == "BGP state":
            current["bgp_state"] = value
        elif key == "Neighbor address":
            current["address"] = value
        elif key == "Neighbor AS":
            current["asn"] = value
        elif key == "Routes":
            for count, what in re.findall(r"(\d+) (imported|exported)", value):
                current[what] = current.get(what, 0) + int(count)
    flush()
    return out
