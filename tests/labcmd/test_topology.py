"""`mcrd lab` topology reading (no root needed): the shipped topologies, what is refused and how, session parsers."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from mcrd.lab.sessions import parse_bird_protocols, parse_frr_neighbors
from mcrd.lab.topology import TopologyError, load_topology, parse_daemons
from tests.labcmd.conftest import BIRD_SPOKE, REPO, SHIPPED, mcrd

# --- the shipped topologies use only what containerlab documents --------------------------------------------------
#
# Allowlists from containerlab's documentation (containerlab.dev):
# - "Topology definition" (manual/topo-def-file): top level `name`, `topology`; `topology.nodes`, `topology.links`;
#   a link in the brief form `endpoints: ["node:iface", "node:iface"]`.
# - "Nodes" (manual/nodes): the node keys `kind`, `image`, `binds`, `exec`, `env`, `sysctls` (all kinds) and
#   `startup-config` ("for all Network OS kinds").
# - "Linux container" (manual/kinds/linux): `kind: linux` takes image, binds, ports, env, user, cmd, publish (plus
#   the all-kinds `exec` and `sysctls` of the Nodes page); FRR as `kind: linux` with `/etc/frr/frr.conf` and
#   `/etc/frr/daemons` binds (manual/kinds/frr "FRR via the linux kind", lab example frr01).
# - "FRRouting" (manual/kinds/frr): `kind: frr` with `startup-config` and `extras.frr.daemons`, data interfaces
#   `eth1`, `eth2`, ... (`eth0` is management).
DOCUMENTED_TOP = {"name", "topology"}
DOCUMENTED_TOPOLOGY = {"nodes", "links", "defaults", "kinds", "groups"}
DOCUMENTED_NODE_KEYS = {
    "linux": {"kind", "image", "binds", "exec", "env", "sysctls", "ports", "user", "cmd", "publish"},
    "frr": {"kind", "image", "binds", "exec", "env", "sysctls", "startup-config", "extras"},
}
DOCUMENTED_FRR_LINUX_BINDS = {"/etc/frr/frr.conf", "/etc/frr/daemons"}
DOCUMENTED_LINK_KEYS = {"endpoints"}


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_topologies_use_only_documented_containerlab_keys(name: str) -> None:
    data = _yaml(SHIPPED[name])
    assert set(data) <= DOCUMENTED_TOP
    assert set(data["topology"]) <= DOCUMENTED_TOPOLOGY
    for node, spec in data["topology"]["nodes"].items():
        kind = spec["kind"]
        assert kind in DOCUMENTED_NODE_KEYS, f"{node}: kind {kind}"
        assert set(spec) <= DOCUMENTED_NODE_KEYS[kind], f"{node}: {set(spec) - DOCUMENTED_NODE_KEYS[kind]}"
        if kind == "frr" and "extras" in spec:
            assert set(spec["extras"]) == {"frr"}
            assert set(spec["extras"]["frr"]) == {"daemons"}
        if kind == "linux" and "frr" in spec["image"]:
            targets = {b.split(":")[1] for b in spec["binds"]}
            assert targets <= DOCUMENTED_FRR_LINUX_BINDS, node
        for bind in spec.get("binds", []):
            source = bind.split(":")[0]
            assert not Path(source).is_absolute(), f"{node}: {bind} (relative to the topology file)"
            assert (SHIPPED[name].parent / source).is_file(), f"{node}: {bind}"
    for link in data["topology"]["links"]:
        assert set(link) <= DOCUMENTED_LINK_KEYS
        for end in link["endpoints"]:
            node, iface = end.split(":")
            assert node in data["topology"]["nodes"]
            assert iface.startswith("eth"), end
            assert iface != "eth0", end


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_topologies_load_with_the_roles_of_their_images(name: str) -> None:
    topo = load_topology(SHIPPED[name])
    assert topo.name == name
    roles = {n.name: n.role for n in topo.nodes.values()}
    mcrs = ("syd", "mel") if name == "two-metro" else ("mcr",)  # two-metro: an MCR in each metro
    assert {node for node, role in roles.items() if role == "mcrd"} == set(mcrs)
    assert roles["aws"] == roles["azure"] == "frr"
    assert roles["awshost"] == roles["azurehost"] == "host"
    for mcr in mcrs:
        assert topo.nodes[mcr].config == SHIPPED[name].parent / mcr / "mcrd.yaml"
    assert topo.namespace("aws") == f"clab-{name}-aws"
    bfd = ("bfdd",) if name == "failover" else ()  # the failover lab's AWS runs BFD on its sessions to the MCR
    assert topo.nodes["aws"].daemons == ("zebra", "bgpd", *bfd, "staticd")
    for node in topo.nodes.values():  # every config is a file next to the topology
        assert node.config is None or node.config.is_relative_to(SHIPPED[name].parent)


def test_spokes_play_the_clouds_asns_addressing_and_prefix_limits() -> None:
    base = SHIPPED["hub-spoke"].parent
    aws, azure, google = ((base / n / "frr.conf").read_text() for n in ("aws", "azure", "google"))
    assert "router bgp 64512" in aws
    assert "password aws-md5-secret-01" in aws
    assert "maximum-prefix 100\n" in aws
    assert "ip address 169.254.100.2/30" in aws
    assert "router bgp 12076" in azure
    assert "maximum-prefix 4000\n" in azure
    assert "/30" in azure
    assert "router bgp 16550" in google
    assert "ip address 169.254.67.201/29" in google
    config = (base / "mcr" / "mcrd.yaml").read_text()
    assert "password: aws-md5-secret-01" in config


def test_the_mcrd_configs_of_the_topologies_are_valid() -> None:
    for topo in (*SHIPPED.values(), BIRD_SPOKE):
        mcrs = [node for node in load_topology(topo).nodes.values() if node.role == "mcrd"]
        assert mcrs, topo
        for node in mcrs:
            proc = mcrd("check", str(node.config))
            assert proc.returncode == 0, proc.stderr


# --- refused, with the name of what is refused ---------------------------------------------------------------------


def _write(tmp_path: Path, text: str, files: tuple[str, ...] = ()) -> Path:
    for name in files:
        (tmp_path / name).write_text("x\n")
    path = tmp_path / "t.clab.yml"
    path.write_text(textwrap.dedent(text))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return info.value.problems


def test_an_unknown_kind_and_unknown_keys_are_refused_by_the_cli_naming_them(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
        name: bad
        mgmt: {network: x}
        topology:
          nodes:
            srl: {kind: nokia_srlinux, image: ghcr.io/nokia/srlinux}
            h1: {kind: linux, image: alpine, ports: ["80:8080"]}
            h2: {kind: linux, image: alpine}
          links:
            - endpoints: ["h1:eth1", "h2:eth1"]
              vars: {x: 1}
        """)
    proc = mcrd("lab", "up", str(path))
    assert proc.returncode == 1
    assert f"{path}: topology.nodes.srl.kind: unsupported kind 'nokia_srlinux'" in proc.stderr
    assert "topology.nodes.h1.ports: unsupported node key" in proc.stderr
    assert "mgmt: unsupported top-level key" in proc.stderr
    assert "topology.links[0].vars: unsupported link key" in proc.stderr
    assert proc.stdout == ""  # nothing was built
    assert not Path("/run/mcrd-lab/bad").exists()


def test_what_a_namespace_lab_cannot_honour_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
        name: bad2
        topology:
          defaults: {kind: linux}
          nodes:
            h1: {kind: linux, image: alpine, binds: ["script.sh:/script.sh"], sysctls: {kernel.pid_max: 1000}}
            r1: {kind: linux, image: frrouting/frr:v8.4.1, binds: ["frr.conf:/etc/frr/frr.conf", "x:/etc/hosts"]}
            m1: {kind: linux, image: mcrd:latest, binds: ["missing.yaml:/etc/mcrd/mcrd.yaml"]}
            f1: {kind: frr, image: frrouting/frr:v8.4.1, extras: {frr: {daemons: [bgpd, nosuchd]}}}
            b1: {kind: linux, image: local/bird2, startup-config: bird.conf}
            noimage: {kind: linux}
          links:
            - endpoints: ["h1:eth0", "r1:eth1"]
            - endpoints: ["h1:eth1", "ghost:eth1"]
            - type: vxlan
              endpoints: ["h1:eth2", "r1:eth2"]
        """, files=("script.sh", "frr.conf", "x"))
    problems = "\n".join(_problems(path))
    assert "topology.defaults: unsupported key" in problems
    assert "topology.nodes.h1.binds: a host node (alpine) cannot take binds" in problems
    assert "topology.nodes.h1.sysctls.kernel.pid_max: only per-namespace net.* sysctls" in problems
    assert "topology.nodes.r1.binds: unsupported bind target /etc/hosts for an FRR node" in problems
    assert "topology.nodes.m1.binds[0]: 'missing.yaml:/etc/mcrd/mcrd.yaml': no file" in problems
    assert "topology.nodes.f1.extras.frr.daemons: unknown FRR daemon(s): nosuchd" in problems
    assert "topology.nodes.b1.startup-config: not a key of kind linux" in problems
    assert "topology.nodes.noimage.image: missing" in problems
    assert "topology.links[0].endpoints[0]: interface 'eth0'" in problems
    assert "topology.links[1].endpoints[1]: no node 'ghost'" in problems
    assert "topology.links[2].type: unsupported link type 'vxlan'" in problems


def test_binds_and_startup_config_resolve_relative_to_the_topology_file(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "frr.conf").write_text("frr defaults traditional\n")
    daemons = 'bgpd=yes\nospfd=no\nbfdd=yes\nvtysh_enable=yes\nzebra_options=" -A x"\n'
    (tmp_path / "r1" / "daemons").write_text(daemons)
    path = _write(tmp_path, """\
        name: rel
        topology:
          nodes:
            r1: {kind: linux, image: quay.io/frrouting/frr:8.4.1, binds: ["r1/frr.conf:/etc/frr/frr.conf:ro",
                                                                         "r1/daemons:/etc/frr/daemons"]}
            r2: {kind: frr, image: quay.io/frrouting/frr:8.4.1, startup-config: r1/frr.conf}
            r3:
              kind: frr
              image: quay.io/frrouting/frr:8.4.1
              startup-config: |
                frr defaults traditional
                router bgp 65000
          links:
            - endpoints: ["r1:eth1", "r2:eth1"]
        """)
    topo = load_topology(path)
    assert topo.nodes["r1"].config == tmp_path / "r1" / "frr.conf"
    assert topo.nodes["r1"].daemons == ("zebra", "bgpd", "bfdd", "staticd")
    assert topo.nodes["r2"].config == tmp_path / "r1" / "frr.conf"
    assert topo.nodes["r2"].daemons == ("zebra", "bgpd", "staticd")
    assert topo.nodes["r3"].config is None
    assert topo.nodes["r3"].config_text is not None
    assert "router bgp 65000" in topo.nodes["r3"].config_text
    assert topo.interfaces("r1") == ["eth1"]


def test_daemons_file_turns_on_only_what_says_yes() -> None:
    text = "# comment\nbgpd=yes\nospfd=no\nisisd=yes # trailing\nvtysh_enable=yes\nfrr_profile=\"traditional\"\n"
    assert parse_daemons(text) == ("zebra", "bgpd", "isisd", "staticd")
    assert parse_daemons("") == ("zebra", "staticd")


# --- session parsers (output captured from FRR 8.4 and BIRD 2.0.12) ------------------------------------------------

BIRD_OUTPUT = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     20:18:21.416
mcr        BGP        ---        up     20:18:21.417  Established
  BGP state:          Established
    Neighbor address: 192.168.30.1
    Neighbor AS:      133937
    Local AS:         12076
  Channel ipv4
    State:          UP
    Routes:         2 imported, 1 exported, 2 preferred
spare      BGP        ---        start  20:18:21.417  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 192.168.31.1
    Neighbor AS:      65001
"""


def test_bird_sessions_are_read_from_show_protocols_all() -> None:
    sessions = parse_bird_protocols("azure", BIRD_OUTPUT)
    assert [(s.neighbor, s.address, s.remote_as, s.state, s.received, s.sent, s.established)
            for s in sessions] == [
        ("mcr (192.168.30.1)", "192.168.30.1", "133937", "Established", "2", "1", True),
        ("spare (192.168.31.1)", "192.168.31.1", "65001", "Active", "", "", False),
    ]
    assert sessions[0].uptime == "since 20:18:21.417"


def test_frr_sessions_are_read_from_show_bgp_neighbors_json() -> None:
    data = {
        "169.254.100.1": {"remoteAs": 133937, "bgpState": "Established", "bgpTimerUpString": "00:01:02",
                          "addressFamilyInfo": {"ipv4Unicast": {"acceptedPrefixCounter": 3, "sentPrefixCounter": 4}}},
        "10.0.0.9": {"remoteAs": 65009, "bgpState": "Active"},
    }
    sessions = parse_frr_neighbors("aws", data)
    assert [s.row() for s in sessions] == [
        ["aws", "169.254.100.1", "133937", "Established", "00:01:02", "3", "4"],
        ["aws", "10.0.0.9", "65009", "Active", "", "", ""],
    ]


def test_the_cli_says_what_lab_does() -> None:
    proc = mcrd("lab", "--help")
    assert proc.returncode == 0
    for action in ("up", "verify", "list", "status", "down", "exec"):
        assert action in proc.stdout
    assert (REPO / "containerlab" / "hub-spoke" / "README.md").is_file()
