"""The example configs in config/ load cleanly, and each plays the cloud it is named after."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcrd.config.load import load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
EXAMPLES = sorted(CONFIG_DIR.glob("*.yaml"))

# The peer ASN (docs/MCR-SEMANTICS.md section 4) and peer type each example must have at least once.
CLOUD_PEERS = {
    "aws-azure-hub.yaml": {(64512, "PRIV_CLOUD"), (12076, "PRIV_CLOUD")},
    "google.yaml": {(16550, "PRIV_CLOUD")},
    "onprem.yaml": {(65010, "NON_CLOUD")},
    "aws-public-vif.yaml": {(7224, "PUB_CLOUD")},
    "oracle.yaml": {(31898, "PRIV_CLOUD")},
    "ibm.yaml": {(13884, "PRIV_CLOUD")},
    "full-lab.yaml": {(64512, "PRIV_CLOUD"), (12076, "PRIV_CLOUD"), (65010, "NON_CLOUD"), (7224, "PUB_CLOUD")},
}


def test_every_expected_example_exists() -> None:
    assert {path.name for path in EXAMPLES} >= set(CLOUD_PEERS)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_loads_cleanly(path: Path) -> None:
    config = load_config(path)
    assert config.vxcs
    assert str(config.api.listen) == "127.0.0.1:8080"


@pytest.mark.parametrize("name", sorted(CLOUD_PEERS))
def test_example_plays_its_cloud(name: str) -> None:
    config = load_config(CONFIG_DIR / name)
    peers = {(conn.peer_asn, conn.peer_type) for _, _, conn in config.connections()}
    assert peers >= CLOUD_PEERS[name]


def test_the_seed_poc_filters() -> None:
    config = load_config(CONFIG_DIR / "aws-azure-hub.yaml")
    aws = next(conn for _, _, conn in config.connections() if conn.peer_asn == 64512)
    imported = config.find_list(aws.import_whitelist)
    exported = config.find_list(aws.export_whitelist)
    assert imported is not None
    assert exported is not None
    assert aws.password
    assert [str(e.prefix) for e in imported.entries] == ["10.10.0.0/16", "10.20.0.0/16"]
    assert [str(e.prefix) for e in exported.entries] == ["10.30.0.0/16"]
    azure = [conn for _, _, conn in config.connections() if conn.peer_asn == 12076]
    assert {conn.peer_ip_address.version for conn in azure} == {4, 6}
    assert any(vxc.inner_vlan for vxc in config.vxcs)


def test_the_full_lab_uses_every_policy_knob() -> None:
    conns = [conn for _, _, conn in load_config(CONFIG_DIR / "full-lab.yaml").connections()]
    assert any(c.export_policy == "deny" and c.permit_export_to for c in conns)
    assert any(c.import_blacklist is not None for c in conns)
    assert any(c.as_path_prepend_count for c in conns)
    assert any(c.med_in is not None for c in conns)
    assert any(c.med_out is not None for c in conns)
    assert {c.peer_ip_address.version for c in conns} == {4, 6}
