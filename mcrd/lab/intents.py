"""The intents file of `mcrd lab verify`: what a lab must hold, checked from each node's own view.

Pure: parse and validate a YAML document into frozen dataclasses, every problem as `FILE:LINE: path: message` (the
line bookkeeping of `mcrd check`, `mcrd.config.load`). The keys are a contract (issue 10), so that intents written
by others run unchanged: an unknown key is refused by name, never ignored.

    intents:                         # each one of five kinds, told apart by its key
      - {name, at, route, present, orLonger, asPath, nextHop, med, from, within}   # a route in `at`'s BGP table
      - {name, at, from, exactly, within}       # exactly these prefixes (learned from `from`, when given)
      - {name, at, sessions: established, within}
      - {name, from, ping, reach, within}       # `from` is the host that pings
      - {name, at, rejected, reason, session, within}   # mcrd nodes: refused by import policy
    scenarios:
      - {name, do: [STEP...], expect: [INTENT...], undo: [STEP...]}
    # STEP: {linkDown: NODE:IFACE} | {linkUp: NODE:IFACE} | {stop: NODE} | {start: NODE}
    #       | {exec: {node: NODE, cmd: [ARG...]}}
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcrd.config.load import ConfigError, ConfigProblem, Loc, format_path, parse_document, read_document

DEFAULT_WITHIN = 30.0
MAX_WITHIN = 3600.0
SESSIONS_STATES = ("established",)

COMMON = ("name", "within")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "route": ("at", "route", "present", "orLonger", "asPath", "nextHop", "med", "from"),
    "exactly": ("at", "from", "exactly"),
    "sessions": ("at", "sessions"),
    "ping": ("from", "ping", "reach"),
    "rejected": ("at", "rejected", "reason", "session"),
}
TOP_KEYS = ("intents", "scenarios")
SCENARIO_KEYS = ("name", "do", "expect", "undo")
LINK_STEPS = ("linkDown", "linkUp")
NODE_STEPS = ("stop", "start")
STEP_KEYS = (*LINK_STEPS, *NODE_STEPS, "exec")
EXEC_KEYS = ("node", "cmd")

_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_IFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m)?$")


# --- the model ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """One expectation. `kind` says which fields matter (see the module docstring)."""

    name: str
    kind: str
    line: int
    within: float = DEFAULT_WITHIN
    at: str = ""
    route: str = ""
    present: bool = True
    or_longer: bool = False
    as_path: tuple[int, ...] | None = None
    next_hop: str | None = None
    med: int | None = None
    from_node: str | None = None
    exactly: tuple[str, ...] = ()
    ping: str = ""
    reach: bool = True
    rejected: str = ""
    reason: str | None = None
    session: str | None = None

    def nodes(self) -> tuple[str, ...]:
        """The nodes this intent names (each must exist in the lab)."""
        return tuple(n for n in (self.at, self.from_node) if n)


@dataclass(frozen=True)
class Step:
    """One action of a scenario: `linkDown`/`linkUp` (node, interface), `stop`/`start` (node), `exec` (node, cmd)."""

    action: str
    node: str
    line: int
    interface: str = ""
    cmd: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.action in LINK_STEPS:
            return f"{self.action} {self.node}:{self.interface}"
        if self.action == "exec":
            return f"exec {self.node}: {' '.join(self.cmd)}"
        return f"{self.action} {self.node}"


@dataclass(frozen=True)
class Scenario:
    name: str
    line: int
    do: tuple[Step, ...]
    expect: tuple[Intent, ...]
    undo: tuple[Step, ...]


@dataclass(frozen=True)
class IntentsFile:
    source: str
    intents: tuple[Intent, ...]
    scenarios: tuple[Scenario, ...]

    def nodes(self) -> set[str]:
        out = {n for i in self.intents for n in i.nodes()}
        for s in self.scenarios:
            out |= {n for i in s.expect for n in i.nodes()}
            out |= {step.node for step in (*s.do, *s.undo)}
        return out


# --- parsing ------------------------------------------------------------------------------------------------------


def load_intents(path: str | Path) -> IntentsFile:
    path = Path(path)
    return parse_intents(read_document(path, "intents"), str(path))


def parse_intents(text: str, source: str = "<intents>") -> IntentsFile:
    """Parse and check an intents document; raise ConfigError listing every problem, in file order."""
    data, lines = parse_document(text, source)
    p = _Parser(source, lines)
    if not isinstance(data, dict):
        p.add((), "the intents file must be a mapping with intents: (and optionally scenarios:)")
        raise ConfigError(p.problems)
    p.unknown((), data, TOP_KEYS)
    intents = p.intents(("intents",), data.get("intents"), required=True)
    scenarios = []
    raw = data.get("scenarios")
    if raw is not None:
        if not isinstance(raw, list):
            p.add(("scenarios",), "must be a list of scenarios")
        else:
            scenarios = [s for i, item in enumerate(raw) if (s := p.scenario(("scenarios", i), item)) is not None]
    if p.problems:
        raise ConfigError(sorted(p.problems, key=lambda x: (x.line, x.path)))
    return IntentsFile(source, tuple(intents), tuple(scenarios))


def parse_duration(value: object) -> float | None:
    """`30s`, `500ms`, `2m` or a number of seconds; None when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value.strip())
        if m:
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
            return float(m.group(1)) * scale
    return None


class _Parser:
    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[ConfigProblem] = []

    def line(self, loc: Loc) -> int:
        while loc not in self.lines:
            loc = loc[:-1]
        return self.lines[loc]

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, self.line(loc), format_path(loc), message))

    def unknown(self, loc: Loc, data: dict[str, Any], allowed: tuple[str, ...], what: str = "") -> None:
        for key in data:
            if key not in allowed:
                self.add((*loc, key), f"unknown key {key!r}{what} (allowed: {', '.join(allowed)})")

    # -- intents -------------------------------------------------------------------------------------------------
    def intents(self, loc: Loc, raw: Any, *, required: bool) -> list[Intent]:
        if raw is None:
            if required:
                self.add(loc, "is required: a list of intents")
            return []
        if not isinstance(raw, list):
            self.add(loc, "must be a list of intents")
            return []
        return [i for n, item in enumerate(raw) if (i := self.intent((*loc, n), item)) is not None]

    def intent(self, loc: Loc, raw: Any) -> Intent | None:
        if not isinstance(raw, dict):
            self.add(loc, "an intent must be a mapping (name:, at:, route: ...)")
            return None
        before = len(self.problems)
        kinds = [k for k in ("route", "exactly", "sessions", "ping", "rejected") if k in raw]
        if len(kinds) != 1:
            what = f"has {', '.join(kinds)}: give one" if kinds else "says nothing to check"
            self.add(loc, f"{what} (one of route:, exactly:, sessions:, ping:, rejected:)")
            return None
        kind = kinds[0]
        self.unknown(loc, raw, (*COMMON, *KIND_KEYS[kind]), f" for a {kind}: intent")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.add((*loc, "name"), "is required: a name for the report")
            name = ""
        within = DEFAULT_WITHIN
        if "within" in raw:
            w = parse_duration(raw["within"])
            if w is None or not 0 < w <= MAX_WITHIN:
                self.add((*loc, "within"), f"{raw['within']!r} is not a duration up to 1h (30s, 500ms, 2m)")
            else:
                within = w
        fields: dict[str, Any] = {"name": name, "kind": kind, "line": self.line(loc), "within": within}
        if kind == "ping":
            fields["from_node"] = self.node(loc, raw, "from", required=True)
            fields["ping"] = self.address(loc, raw, "ping")
            fields["reach"] = self.boolean(loc, raw, "reach", True)
        else:
            fields["at"] = self.node(loc, raw, "at", required=True)
        if kind == "route":
            fields["route"] = self.prefix(loc, raw, "route")
            fields["present"] = self.boolean(loc, raw, "present", True)
            fields["or_longer"] = self.boolean(loc, raw, "orLonger", False)
            fields["from_node"] = self.node(loc, raw, "from", required=False)
            if "asPath" in raw:
                path = raw["asPath"]
                if not isinstance(path, list) or not all(_asn(a) for a in path):
                    self.add((*loc, "asPath"), "must be a list of AS numbers (1..4294967295), e.g. [133937, 12076]")
                else:
                    fields["as_path"] = tuple(path)
            if "nextHop" in raw:
                fields["next_hop"] = self.address(loc, raw, "nextHop")
            if "med" in raw:
                med = raw["med"]
                if isinstance(med, bool) or not isinstance(med, int) or not 0 <= med <= 4294967295:
                    self.add((*loc, "med"), f"{med!r} is not a MED (0..4294967295)")
                else:
                    fields["med"] = med
            if fields["present"] is False and any(k in raw for k in ("asPath", "nextHop", "med")):
                self.add(loc, "present: false takes no asPath, nextHop or med (the route must be absent)")
        elif kind == "exactly":
            fields["from_node"] = self.node(loc, raw, "from", required=False)
            prefixes = raw["exactly"]
            if not isinstance(prefixes, list):
                self.add((*loc, "exactly"), "must be a list of prefixes ([] for none)")
            else:
                got = [self.prefix((*loc, "exactly"), {i: p}, i) for i, p in enumerate(prefixes)]
                fields["exactly"] = tuple(sorted(set(got), key=prefix_key))
        elif kind == "sessions":
            if raw["sessions"] not in SESSIONS_STATES:
                self.add((*loc, "sessions"), f"{raw['sessions']!r}: the only state checked is 'established'")
        elif kind == "rejected":
            fields["rejected"] = self.prefix(loc, raw, "rejected")
            for key in ("reason", "session"):
                if key in raw:
                    if not isinstance(raw[key], str) or not raw[key]:
                        self.add((*loc, key), f"{raw[key]!r} is not a string")
                    else:
                        fields[key] = raw[key]
        if len(self.problems) != before:
            return None
        return Intent(**fields)

    def node(self, loc: Loc, raw: dict[Any, Any], key: str, *, required: bool) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.add((*loc, key), "is required: a node of the lab")
            return None
        if not isinstance(value, str) or not _NODE_RE.match(value):
            self.add((*loc, key), f"{value!r} is not a node name")
            return None
        return value

    def prefix(self, loc: Loc, raw: dict[Any, Any], key: str | int) -> str:
        value = raw.get(key)
        try:
            return str(ipaddress.ip_network(str(value), strict=True)) if isinstance(value, str) else _fail()
        except ValueError:
            self.add((*loc, key), f"{value!r} is not a prefix (10.20.0.0/16, host bits zero)")
            return ""

    def address(self, loc: Loc, raw: dict[Any, Any], key: str) -> str:
        value = raw.get(key)
        try:
            return str(ipaddress.ip_address(value)) if isinstance(value, str) else _fail()
        except ValueError:
            self.add((*loc, key), f"{value!r} is not an IP address")
            return ""

    def boolean(self, loc: Loc, raw: dict[Any, Any], key: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.add((*loc, key), f"{value!r} is not true or false")
            return default
        return value

    # -- scenarios -----------------------------------------------------------------------------------------------
    def scenario(self, loc: Loc, raw: Any) -> Scenario | None:
        if not isinstance(raw, dict):
            self.add(loc, "a scenario must be a mapping (name:, do:, expect:, undo:)")
            return None
        before = len(self.problems)
        self.unknown(loc, raw, SCENARIO_KEYS, " for a scenario")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.add((*loc, "name"), "is required: a name for the report")
        do = self.steps((*loc, "do"), raw.get("do"), required=True)
        expect = self.intents((*loc, "expect"), raw.get("expect"), required=True)
        undo = self.steps((*loc, "undo"), raw.get("undo"), required=False)
        if len(self.problems) != before:
            return None
        return Scenario(str(name), self.line(loc), tuple(do), tuple(expect), tuple(undo))

    def steps(self, loc: Loc, raw: Any, *, required: bool) -> list[Step]:
        if raw is None:
            if required:
                self.add(loc, "is required: a list of steps (linkDown:, linkUp:, stop:, start:, exec:)")
            return []
        if not isinstance(raw, list):
            self.add(loc, "must be a list of steps")
            return []
        return [s for i, item in enumerate(raw) if (s := self.step((*loc, i), item)) is not None]

    def step(self, loc: Loc, raw: Any) -> Step | None:
        if not isinstance(raw, dict) or len(raw) != 1:
            self.add(loc, "a step is a mapping with one key: linkDown, linkUp, stop, start or exec")
            return None
        (action, value), = raw.items()
        where = (*loc, action)
        if action not in STEP_KEYS:
            self.add(where, f"unknown step {action!r} (allowed: {', '.join(STEP_KEYS)})")
            return None
        line = self.line(where)
        if action in LINK_STEPS:
            node, _, iface = value.partition(":") if isinstance(value, str) else ("", "", "")
            if not _NODE_RE.match(node) or not _IFACE_RE.match(iface):
                self.add(where, f"{value!r} is not NODE:INTERFACE (mcr:eth1)")
                return None
            return Step(action, node, line, interface=iface)
        if action in NODE_STEPS:
            if not isinstance(value, str) or not _NODE_RE.match(value):
                self.add(where, f"{value!r} is not a node name")
                return None
            return Step(action, value, line)
        if not isinstance(value, dict):
            self.add(where, "must be a mapping {node: NODE, cmd: [ARG, ...]}")
            return None
        before = len(self.problems)
        self.unknown(where, value, EXEC_KEYS, " for exec")
        exec_node = self.node(where, value, "node", required=True)
        cmd = value.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str | int | float) for c in cmd):
            self.add((*where, "cmd"), "must be a non-empty list of arguments ([vtysh, -c, 'clear bgp *'])")
        if len(self.problems) != before or exec_node is None or not isinstance(cmd, list):
            return None
        return Step("exec", exec_node, line, cmd=tuple(str(c) for c in cmd))


def _fail() -> str:
    raise ValueError


def _asn(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4294967295


def prefix_key(prefix: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(prefix) if prefix else ipaddress.ip_network("0.0.0.0/0")
    return (net.version, int(net.network_address), net.prefixlen)
