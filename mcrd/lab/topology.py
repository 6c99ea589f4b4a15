"""Read a containerlab topology file (`*.clab.yml`) into what `mcrd lab` builds, refusing what it cannot build.

The subset of containerlab that a namespace lab can honour (containerlab docs: "Topology definition"
`manual/topo-def-file`, "Nodes" `manual/nodes`, kinds `manual/kinds/linux` and `manual/kinds/frr`):

* top level: `name`, `topology`; `topology`: `nodes`, `links`;
* a node: `kind` (`linux`, or `frr`/`frrouting`), `image`, `binds`, `exec`, `env`, `sysctls`, and for `kind: frr`
  `startup-config` and `extras.frr.daemons`;
* a link: the brief form `endpoints: ["a:eth1", "b:eth1"]`, or the extended `type: veth` form with
  `endpoints: [{node, interface}, ...]` and an optional `mtu`.

What a node *is* follows from its kind and image, the way the container would behave:

| kind | image | role | its config |
| --- | --- | --- | --- |
| `linux` | contains `mcrd` | mcrd | bind to `/etc/mcrd/mcrd.yaml` |
| `linux` | contains `frr` | FRR | binds to `/etc/frr/frr.conf`, optionally `/etc/frr/daemons`, `/etc/frr/vtysh.conf` |
| `frr` | any | FRR | `startup-config` (a file or an embedded config), `extras.frr.daemons` |
| `linux` | contains `bird` | BIRD | bind to `/etc/bird/bird.conf` (or `/etc/bird.conf`) |
| `linux` | anything else | host | its `exec` lines |

Anything else (another key, kind or bind) is an error that names it: a lab that silently differs from the
containerlab one would prove nothing. Relative bind sources and `startup-config` paths are relative to the topology
file, as in containerlab. This module is pure: it reads files and returns data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

Role = Literal["mcrd", "frr", "bird", "host"]

TOP_KEYS = ("name", "topology")
TOPOLOGY_KEYS = ("nodes", "links")
NODE_KEYS = ("kind", "image", "binds", "exec", "env", "sysctls", "startup-config", "extras")
FRR_ONLY_KEYS = ("startup-config", "extras")
KINDS = ("linux", "frr", "frrouting")
LINK_KEYS = ("endpoints", "type", "mtu")

MCRD_CONFIG = "/etc/mcrd/mcrd.yaml"
FRR_CONF, FRR_DAEMONS, FRR_VTYSH = "/etc/frr/frr.conf", "/etc/frr/daemons", "/etc/frr/vtysh.conf"
BIRD_CONFS = ("/etc/bird/bird.conf", "/etc/bird.conf")

# FRR's daemons (FRR 8.4 `daemons` file and the containerlab frr kind's list); zebra and staticd always run.
FRR_DAEMONS_KNOWN = (
    "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "pimd", "pim6d", "ldpd", "nhrpd", "eigrpd", "babeld",
    "sharpd", "pbrd", "bfdd", "fabricd", "vrrpd", "pathd",
)
FRR_ALWAYS = ("zebra", "staticd")
FRR_DEFAULT = ("zebra", "bgpd", "staticd")

LAB_NAME_RE = _NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_DAEMON_LINE_RE = re.compile(r"^\s*([a-z0-9_]+)\s*=\s*\"?([A-Za-z0-9_-]*)\"?\s*(?:#.*)?$")


class TopologyError(Exception):
    """The topology cannot be built; `problems` holds one line per problem, each naming where it is."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    mode: str = "rw"


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    image: str
    role: Role
    config: Path | None = None
    """The config file of the node's daemon (mcrd.yaml, frr.conf, bird.conf), resolved; None for hosts."""
    config_text: str | None = None
    """An embedded FRR `startup-config` (then `config` is None)."""
    daemons: tuple[str, ...] = ()
    """FRR daemons to run, zebra first."""
    vtysh_conf: Path | None = None
    exec: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    sysctls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    node: str
    interface: str

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}"


@dataclass(frozen=True)
class Link:
    a: Endpoint
    b: Endpoint
    mtu: int | None = None


@dataclass(frozen=True)
class Topology:
    name: str
    path: Path
    nodes: Mapping[str, Node]
    links: tuple[Link, ...]

    def namespace(self, node: str) -> str:
        """The network namespace of a node: containerlab's container name, `clab-<lab>-<node>`."""
        return namespace_name(self.name, node)

    def interfaces(self, node: str) -> list[str]:
        """The data interfaces of a node, in link order (containerlab's `CLAB_INTFS` is their number)."""
        out = []
        for link in self.links:
            out += [e.interface for e in (link.a, link.b) if e.node == node]
        return out


def namespace_name(lab: str, node: str) -> str:
    return f"clab-{lab}-{node}"


def read_lab_name(path: Path | str) -> str:
    """Only the `name` of a topology (for `down`, which must work even when the rest no longer validates)."""
    data = _load_yaml(Path(path))
    _not_mcrd_config(path, data)
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise TopologyError(path, [f"name: {name!r} is not a lab name (letters, digits, '-' and '_')"])
    return name


def load_topology(path: Path | str) -> Topology:
    """Parse and check a topology file; raise TopologyError listing every problem found."""
    path = Path(path).resolve()
    data = _load_yaml(path)
    problems: list[str] = []
    if not isinstance(data, dict):
        raise TopologyError(path, ["the file is not a YAML mapping"])
    _not_mcrd_config(path, data)
    _unknown(problems, "", data, TOP_KEYS, "top-level key")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append(f"name: {name!r} is not a lab name (letters, digits, '-' and '_')")
        name = "invalid"
    topo = data.get("topology")
    if not isinstance(topo, dict):
        raise TopologyError(path, [*problems, "topology: missing, or not a mapping"])
    _unknown(problems, "topology.", topo, TOPOLOGY_KEYS, "key")
    raw_nodes = topo.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise TopologyError(path, [*problems, "topology.nodes: missing or empty"])
    nodes: dict[str, Node] = {}
    for node_name, spec in raw_nodes.items():
        node = _node(problems, path.parent, str(node_name), spec)
        if node is not None:
            nodes[node.name] = node
    links = _links(problems, topo.get("links") or [], set(raw_nodes))
    if problems:
        raise TopologyError(path, problems)
    return Topology(name=name, path=path, nodes=nodes, links=tuple(links))


def parse_daemons(text: str) -> tuple[str, ...]:
    """The daemons an FRR `daemons` file turns on (`bgpd=yes`), zebra and staticd always; other settings in the
    file (`vtysh_enable`, `*_options`, `MAX_FDS`, ...) are the init script's and do not matter here."""
    on = []
    for line in text.splitlines():
        m = _DAEMON_LINE_RE.match(line)
        if m and m.group(1) in FRR_DAEMONS_KNOWN and m.group(2) == "yes":
            on.append(m.group(1))
    return _frr_daemons(on)


def _frr_daemons(names: Sequence[str]) -> tuple[str, ...]:
    return ("zebra", *[d for d in names if d not in FRR_ALWAYS], "staticd")


# --- internals ------------------------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(path, [f"cannot read: {exc.strerror or exc}"]) from exc
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise TopologyError(path, [f"not valid YAML: {exc}"]) from exc


MCRD_KEYS = ("mcr", "vxcs", "prefixFilterLists", "api")


def _not_mcrd_config(path: Path | str, data: Any) -> None:
    """An mcrd config given where a topology belongs: say so, instead of a confusing `name: None`."""
    if isinstance(data, dict) and "topology" not in data and any(k in data for k in MCRD_KEYS):
        raise TopologyError(path, [
            "this is an mcrd config, not a topology: `mcrd lab` takes a containerlab topology (*.clab.yml) whose "
            f"mcrd node binds this file to {MCRD_CONFIG} (see containerlab/hub-spoke/hub-spoke.clab.yml); "
            "`mcrd check` checks the config, `mcrd run -c` runs it"
        ])


def _unknown(problems: list[str], where: str, data: Mapping[str, Any], allowed: Sequence[str], what: str) -> None:
    for key in data:
        if key not in allowed:
            problems.append(f"{where}{key}: unsupported {what} (mcrd lab supports: {', '.join(allowed)})")


def _scalar_map(problems: list[str], where: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float | bool) for v in value.values()):
        problems.append(f"{where}: must be a mapping of names to strings or numbers")
        return {}
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


def _node(problems: list[str], base: Path, name: str, spec: Any) -> Node | None:
    where = f"topology.nodes.{name}"
    if not _NAME_RE.match(name):
        problems.append(f"{where}: node name must be letters, digits, '-' and '_'")
        return None
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    before = len(problems)
    _unknown(problems, f"{where}.", spec, NODE_KEYS, "node key")
    kind = spec.get("kind")
    if kind is None:
        problems.append(f"{where}.kind: missing (mcrd lab supports kinds: linux, frr)")
        return None
    if kind not in KINDS:
        problems.append(f"{where}.kind: unsupported kind {kind!r} (mcrd lab supports kinds: linux, frr)")
        return None
    image = spec.get("image")
    if not isinstance(image, str) or not image:
        problems.append(f"{where}.image: missing")
        image = ""
    execs = spec.get("exec") or []
    if not isinstance(execs, list) or not all(isinstance(e, str) for e in execs):
        problems.append(f"{where}.exec: must be a list of command strings")
        execs = []
    env = _scalar_map(problems, f"{where}.env", spec.get("env"))
    sysctls = _scalar_map(problems, f"{where}.sysctls", spec.get("sysctls"))
    for key in sysctls:
        if not key.startswith("net."):
            problems.append(f"{where}.sysctls.{key}: only per-namespace net.* sysctls can be applied")
    binds = _binds(problems, base, where, spec.get("binds"))
    if kind == "linux":
        for key in FRR_ONLY_KEYS:
            if key in spec:
                problems.append(f"{where}.{key}: not a key of kind linux (mcrd lab takes it for kind frr only)")
    common: dict[str, Any] = {"name": name, "kind": kind, "image": image, "exec": tuple(execs), "env": env,
                              "sysctls": sysctls}
    lowered = image.lower()
    node: Node | None
    if kind in ("frr", "frrouting"):
        node = _frr_node(problems, base, where, spec, binds, common)
    elif "mcrd" in lowered:
        node = _mcrd_node(problems, where, binds, common)
    elif "frr" in lowered:
        node = _frr_node(problems, base, where, {}, binds, common)
    elif "bird" in lowered:
        node = _bird_node(problems, where, binds, common)
    else:
        if binds:
            problems.append(
                f"{where}.binds: a host node ({image}) cannot take binds: a network namespace has no container "
                "file system (put the commands in exec)"
            )
        node = Node(role="host", **common)
    return node if len(problems) == before else None


def _binds(problems: list[str], base: Path, where: str, value: Any) -> dict[str, Bind]:
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(b, str) for b in value):
        problems.append(f"{where}.binds: must be a list of 'source:target[:mode]' strings")
        return {}
    out: dict[str, Bind] = {}
    for i, text in enumerate(value):
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            problems.append(f"{where}.binds[{i}]: {text!r}: mcrd lab takes 'source:target[:ro|rw]' binds only")
            continue
        source = Path(parts[0]).expanduser()
        source = source if source.is_absolute() else (base / source)
        if not source.is_file():
            problems.append(f"{where}.binds[{i}]: {text!r}: no file {source}")
            continue
        mode = parts[2] if len(parts) == 3 else "rw"
        out[parts[1]] = Bind(source.resolve(), parts[1], mode)
    return out


def _extra_binds(problems: list[str], where: str, binds: Mapping[str, Bind], allowed: Sequence[str], role: str) -> None:
    for target in binds:
        if target not in allowed:
            problems.append(
                f"{where}.binds: unsupported bind target {target} for an {role} node (mcrd lab uses: "
                f"{', '.join(allowed)})"
            )


def _mcrd_node(problems: list[str], where: str, binds: Mapping[str, Bind], common: dict[str, Any]) -> Node:
    _extra_binds(problems, where, binds, (MCRD_CONFIG,), "mcrd")
    config = binds.get(MCRD_CONFIG)
    if config is None:
        problems.append(f"{where}.binds: an mcrd node needs its config bound to {MCRD_CONFIG}")
    return Node(role="mcrd", config=config.source if config else None, **common)


def _bird_node(problems: list[str], where: str, binds: Mapping[str, Bind], common: dict[str, Any]) -> Node:
    _extra_binds(problems, where, binds, BIRD_CONFS, "BIRD")
    config = next((binds[t] for t in BIRD_CONFS if t in binds), None)
    if config is None:
        problems.append(f"{where}.binds: a BIRD node needs its config bound to {BIRD_CONFS[0]}")
    return Node(role="bird", config=config.source if config else None, **common)


def _frr_node(
    problems: list[str], base: Path, where: str, spec: Mapping[str, Any], binds: Mapping[str, Bind],
    common: dict[str, Any],
) -> Node:
    _extra_binds(problems, where, binds, (FRR_CONF, FRR_DAEMONS, FRR_VTYSH), "FRR")
    config = binds[FRR_CONF].source if FRR_CONF in binds else None
    config_text = None
    startup = spec.get("startup-config")
    if startup is not None:
        if config is not None:
            problems.append(f"{where}: both startup-config and a bind to {FRR_CONF}: give one")
        if not isinstance(startup, str) or not startup.strip():
            problems.append(f"{where}.startup-config: must be a file path or an embedded config")
        elif "\n" in startup:
            config_text = startup
        else:
            path = Path(startup).expanduser()
            path = path if path.is_absolute() else base / path
            if path.is_file():
                config = path.resolve()
            else:
                problems.append(f"{where}.startup-config: no file {path}")
    if config is None and config_text is None and common["kind"] == "linux":
        problems.append(f"{where}.binds: an FRR node of kind linux needs its config bound to {FRR_CONF}")
    daemons: tuple[str, ...] = FRR_DEFAULT
    if FRR_DAEMONS in binds:
        daemons = parse_daemons(binds[FRR_DAEMONS].source.read_text())
    extras = spec.get("extras")
    if extras is not None:
        listed = extras.get("frr", {}).get("daemons") if isinstance(extras, dict) else None
        if not isinstance(extras, dict) or set(extras) != {"frr"} or not isinstance(extras["frr"], dict) \
                or set(extras["frr"]) != {"daemons"} or not isinstance(listed, list):
            problems.append(f"{where}.extras: mcrd lab supports only extras.frr.daemons (a list of daemon names)")
        else:
            bad = [d for d in listed if d not in (*FRR_DAEMONS_KNOWN, *FRR_ALWAYS, "mgmtd", "watchfrr")]
            if bad:
                problems.append(f"{where}.extras.frr.daemons: unknown FRR daemon(s): {', '.join(map(str, bad))}")
            if FRR_DAEMONS in binds:
                problems.append(f"{where}: both extras.frr.daemons and a bind to {FRR_DAEMONS}: give one")
            daemons = _frr_daemons([d for d in listed if d in FRR_DAEMONS_KNOWN])
    vtysh = binds[FRR_VTYSH].source if FRR_VTYSH in binds else None
    return Node(role="frr", config=config, config_text=config_text, daemons=daemons, vtysh_conf=vtysh, **common)


def _endpoint(problems: list[str], where: str, value: Any, nodes: set[str]) -> Endpoint | None:
    if isinstance(value, str):
        node, sep, iface = value.partition(":")
        if not sep:
            problems.append(f"{where}: {value!r} is not 'node:interface'")
            return None
    elif isinstance(value, dict) and set(value) <= {"node", "interface"}:
        node, iface = str(value.get("node", "")), str(value.get("interface", ""))
    else:
        problems.append(f"{where}: {value!r}: an endpoint is 'node:interface' or {{node, interface}}")
        return None
    if node not in nodes:
        problems.append(f"{where}: no node {node!r}")
        return None
    if not _IFNAME_RE.match(iface) or iface in ("lo", "eth0"):
        problems.append(
            f"{where}: interface {iface!r}: a Linux name of at most 15 characters, not lo or eth0 (eth0 is "
            "containerlab's management interface)"
        )
        return None
    return Endpoint(node, iface)


def _links(problems: list[str], raw: Any, nodes: set[str]) -> list[Link]:
    if not isinstance(raw, list):
        problems.append("topology.links: must be a list")
        return []
    links: list[Link] = []
    seen: set[Endpoint] = set()
    for i, spec in enumerate(raw):
        where = f"topology.links[{i}]"
        if not isinstance(spec, dict):
            problems.append(f"{where}: must be a mapping with endpoints")
            continue
        _unknown(problems, f"{where}.", spec, LINK_KEYS, "link key")
        if spec.get("type", "veth") != "veth":
            problems.append(f"{where}.type: unsupported link type {spec['type']!r} (mcrd lab builds veth links)")
            continue
        mtu = spec.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            problems.append(f"{where}.mtu: {mtu!r} is not an MTU (68-65535)")
            mtu = None
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or len(endpoints) != 2:
            problems.append(f"{where}.endpoints: must be a list of two endpoints")
            continue
        ends = [_endpoint(problems, f"{where}.endpoints[{j}]", e, nodes) for j, e in enumerate(endpoints)]
        a, b = ends
        if a is None or b is None:
            continue
        for end in (a, b):
            if end in seen:
                problems.append(f"{where}: {end} is already used by another link")
            seen.add(end)
        links.append(Link(a, b, mtu))
    return links
