"""`mcrd import terraform --lab`: the topology and router configs it writes (pure), and one imported design brought
up with `mcrd lab up` (root, network namespaces) and checked from the peers' RIBs, then `mcrd lab down`."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from mcrd.config.load import parse_config
from mcrd.importers.lab import write_lab
from mcrd.importers.terraform import import_terraform, parse_json
from mcrd.lab.topology import load_topology
from tests.labcmd.conftest import Lab, mcrd, require_lab

FIXTURES = Path(__file__).parent / "fixtures"
PREFIXES = {"azure-expressroute": ["10.30.0.0/16"], "megaport_vxc.gcp": ["10.50.0.0/16"]}


def lab_files(prefixes: dict[str, list[str]] | None) -> tuple[dict[str, str], list[str]]:
    imported = import_terraform(parse_json((FIXTURES / "state-hub.json").read_text(), "state-hub.json"))
    text = imported.text(lab=True)
    return write_lab(parse_config(text), imported.far_ends, text, "hub", "state-hub.json", prefixes)


def write(files: dict[str, str], folder: Path) -> None:
    for rel, body in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(body)


def test_files_and_topology_mcrd_lab_accepts(tmp_path: Path) -> None:
    files, warnings = lab_files(PREFIXES)
    assert sorted(files) == ["aws/daemons", "aws/frr.conf", "azure/daemons", "azure/frr.conf", "dc/daemons",
                             "dc/frr.conf", "google/daemons", "google/frr.conf", "hub.clab.yml", "mcr/mcrd.yaml"]
    assert warnings == []
    write(files, tmp_path)
    topo = load_topology(tmp_path / "hub.clab.yml")
    assert {n.name: n.role for n in topo.nodes.values()} == {
        "mcr": "mcrd", "aws": "frr", "azure": "frr", "google": "frr", "dc": "frr", "aws-host": "host",
        "azure-host": "host", "google-host": "host", "dc-host": "host"}
    assert [(str(link.a), str(link.b)) for link in topo.links][:4] == [
        ("mcr:eth1", "aws:eth1"), ("mcr:eth2", "azure:eth1"), ("mcr:eth3", "google:eth1"), ("mcr:eth4", "dc:eth1")]
    assert parse_config(files["mcr/mcrd.yaml"]).vxcs[0].vlan is None


def test_router_configs_follow_the_design() -> None:
    files, _ = lab_files(PREFIXES)
    aws = files["aws/frr.conf"]
    for line in ("router bgp 64551", " neighbor 169.254.100.1 remote-as 133937",
                 " neighbor 169.254.100.1 password aws-md5-secret-01", " ip address 169.254.100.2/30",
                 "  network 10.10.0.0/16", "  network 10.20.0.0/16", "  neighbor 169.254.100.1 maximum-prefix 100"):
        assert line in aws.splitlines()
    assert "import permit list's entries: a starting point" in aws
    azure = files["azure/frr.conf"]
    assert " ip address 192.168.30.2/30" in azure
    assert " neighbor 192.168.30.1 password azure-key-1" in azure
    assert "! 10.30.0.0/16: --prefixes (azure-expressroute)" in azure
    dc = files["dc/frr.conf"]
    assert "! 10.110.0.0/16: the MCR's static route via 10.200.0.2" in dc
    assert "  network 10.110.0.0/16" not in dc  # routed statically by the MCR, not announced
    assert "bfdd=no" in files["dc/daemons"]


def test_no_prefix_is_invented() -> None:
    files, warnings = lab_files(None)
    assert warnings == [
        "megaport_vxc.azure: lab: no prefixes for azure: its router announces nothing (give them with --prefixes "
        "FILE)",
        "megaport_vxc.gcp: lab: no prefixes for google: its router announces nothing (give them with --prefixes "
        "FILE)",
    ]
    assert "network" not in files["google/frr.conf"]
    assert "google-host" not in files["hub.clab.yml"]
    _, warnings = lab_files({"no-such-vxc": ["10.1.0.0/16"]})
    assert "--prefixes: no-such-vxc: no imported VXC has this product name or address" in warnings


def _routes(lab: Lab, node: str) -> dict[str, Any]:
    data = lab.vtysh_json(node, "show bgp ipv4 unicast")
    return dict(data.get("routes") or {})


def _wait_routes(lab: Lab, node: str, wanted: set[str], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        routes = _routes(lab, node)
        if wanted <= set(routes):
            return routes
        assert time.monotonic() < deadline, f"{node} has {sorted(routes)}, wants {sorted(wanted)}"
        time.sleep(0.5)


def _path(routes: dict[str, Any], prefix: str) -> str:
    best = next(p for p in routes[prefix] if p.get("bestpath") or p.get("best"))
    return str(best.get("path", ""))


@pytest.mark.lab
def test_imported_design_runs_in_mcrd_lab(tmp_path: Path) -> None:
    require_lab()
    name = f"tfimp-{secrets.token_hex(3)}"
    folder = tmp_path / name
    prefixes = tmp_path / "prefixes.yaml"
    prefixes.write_text(json.dumps(PREFIXES))
    proc = mcrd("import", "terraform", str(FIXTURES / "state-hub.json"), "-o", str(tmp_path / "hub.yaml"),
                "--lab", str(folder), "--prefixes", str(prefixes))
    assert proc.returncode == 0, proc.stderr
    lab = Lab(folder / f"{name}.clab.yml")
    try:
        lab.up()
        aws = _wait_routes(lab, "aws", {"10.30.0.0/16", "10.50.0.0/16", "10.100.0.0/16", "10.110.0.0/16"})
        assert _path(aws, "10.30.0.0/16") == "133937 12076"
        assert _path(aws, "10.100.0.0/16") == "133937 65010"
        assert _path(aws, "10.110.0.0/16") == "133937"  # the MCR's static route, redistributed
        azure = _wait_routes(lab, "azure", {"10.10.0.0/16", "10.20.0.0/16", "10.50.0.0/16"})
        # the dc connection exports by exception (export_policy deny, permit_export_to: the AWS peer only)
        assert "10.100.0.0/16" not in azure
        dc = _wait_routes(lab, "dc", {"10.10.0.0/16", "10.50.0.0/16"})
        assert "10.30.0.0/16" not in dc  # export_blacklist azure-vnet
        assert _path(dc, "10.10.0.0/16") == "133937 133937 133937 64551"  # as_path_prepend_count 2
        assert next(p for p in dc["10.10.0.0/16"] if p.get("bestpath"))["metric"] == 100  # med_out
        lab.ping("aws-host", "10.30.0.10")
        lab.ping("google-host", "10.10.0.10")
    except BaseException:
        lab.dump_logs()
        raise
    finally:
        lab.down()


def test_cli_writes_the_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcrd.cli import main

    prefixes = tmp_path / "prefixes.yaml"
    prefixes.write_text("azure-expressroute: [10.30.0.0/16]\nmegaport_vxc.gcp: 10.50.0.0/16\n")
    folder = tmp_path / "My Lab"
    assert main(["import", "terraform", str(FIXTURES / "state-hub.json"), "-o", str(tmp_path / "hub.yaml"),
                 "--lab", str(folder), "--prefixes", str(prefixes)]) == 0
    err = capsys.readouterr().err
    assert f"bring it up with `mcrd lab up {folder / 'my-lab.clab.yml'}`" in err
    topo = load_topology(folder / "my-lab.clab.yml")
    assert topo.name == "my-lab"
    assert (folder / "mcr" / "mcrd.yaml").read_text().startswith("# Imported by `mcrd import terraform`")
    assert main(["check", str(folder / "mcr" / "mcrd.yaml"), str(tmp_path / "hub.yaml")]) == 0
