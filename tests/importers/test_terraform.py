"""`mcrd import terraform` on `terraform show -json` fixtures built from the megaport provider's documented schema
(docs/resources/{mcr,vxc,mcr_prefix_filter_list}.md): every imported field checked, and every config passed through
mcrd's own loader (what `mcrd check` runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcrd.cli import main
from mcrd.config.load import parse_config
from mcrd.config.model import Config
from mcrd.importers.terraform import Imported, TerraformImportError, import_terraform, parse_json

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str, mcr: str | None = None) -> tuple[Imported, Config]:
    path = FIXTURES / name
    imported = import_terraform(parse_json(path.read_text(), name), mcr, name)
    return imported, parse_config(imported.text(), name)


def conn_of(config: Config, vxc: int, iface: int = 0, conn: int = 0) -> Any:
    return config.vxcs[vxc].vrouter.interfaces[iface].bgp_connections[conn]


def dump(model: Any) -> dict[str, Any]:
    return json.loads(model.model_dump_json(by_alias=True, exclude_defaults=True))  # type: ignore[no-any-return]


# --- a state: inline and separate prefix lists, vrouter, AWS, Azure, Google -----------------------------------------


def test_state_mcr_and_prefix_lists() -> None:
    imported, config = load("state-hub.json")
    assert imported.mcr_address == "megaport_mcr.hub"
    assert not imported.plan
    assert (config.mcr.product_name, config.mcr.mcr_asn, config.mcr.port_speed) == ("syd-hub-mcr", 133937, 1000)
    lists = {pl.description: pl for pl in config.prefix_filter_lists}
    assert [(pl.id, pl.description) for pl in config.prefix_filter_lists] == [
        (11, "aws-vpcs"), (12, "azure-vnet"), (13, "dc-ranges")]
    assert dump(lists["dc-ranges"]) == {"id": 13, "description": "dc-ranges", "addressFamily": "IPv4", "entries": [
        {"action": "permit", "prefix": "10.100.0.0/16", "ge": 16, "le": 24},
        {"action": "deny", "prefix": "10.100.99.0/24", "ge": 24, "le": 32}]}
    assert [str(e.prefix) for e in lists["aws-vpcs"].entries] == ["10.10.0.0/16", "10.20.0.0/16"]
    text = imported.text()
    assert "# megaport_mcr.hub: prefix_filter_lists[0]" in text
    assert "# megaport_mcr_prefix_filter_list.dc" in text


def test_state_vxcs_only_those_on_the_mcr() -> None:
    imported, config = load("state-hub.json")
    assert [(v.product_name, v.interface, v.vlan, v.rate_limit) for v in config.vxcs] == [
        ("aws-hosted-vif", "eth1", 191, 500), ("azure-expressroute", "eth2", 300, 200),
        ("gcp-zone1", "eth3", 182, 500), ("dc-port", "eth4", 181, 1000)]
    assert [f.address for f in imported.far_ends] == [
        "megaport_vxc.aws", "megaport_vxc.azure", "megaport_vxc.gcp", "megaport_vxc.dc"]
    assert [f.kind for f in imported.far_ends] == ["aws", "azure", "google", "port"]
    assert "port-to-mve" not in imported.text()  # a VXC between a port and an MVE has no end on the MCR
    assert "megaport_mve.edge: megaport_mve: not carried: an MVE" in imported.warnings[0]


def test_state_aws_vrouter_config_on_the_mcr_end() -> None:
    imported, config = load("state-hub.json")
    iface = config.vxcs[0].vrouter.interfaces[0]
    assert [str(a) for a in iface.ip_addresses] == ["169.254.100.1/30"]
    assert (iface.ip_mtu, iface.description) == (1500, "AWS hosted VIF")
    assert dump(iface.bgp_connections[0]) == {
        "peerAsn": 64551, "localIpAddress": "169.254.100.1", "peerIpAddress": "169.254.100.2",
        "password": "aws-md5-secret-01", "shutdown": False, "description": "AWS VPCs",
        "importWhitelist": "aws-vpcs", "peerType": "PRIV_CLOUD"}
    # peer_type unset: the provider's default for the far end, and the comment says so
    assert "(peer_type unset: PRIV_CLOUD, the default when the far end is aws)" in imported.text()


def test_state_azure_private_peering() -> None:
    imported, config = load("state-hub.json")
    iface = config.vxcs[1].vrouter.interfaces[0]
    # port_choice primary: the primary /30; the MCR takes the first usable address, Microsoft the second
    assert [str(a) for a in iface.ip_addresses] == ["192.168.30.1/30"]
    assert iface.vlan == 100
    assert dump(iface.bgp_connections[0]) == {
        "peerAsn": 12076, "localIpAddress": "192.168.30.1", "peerIpAddress": "192.168.30.2",
        "password": "azure-key-1", "peerType": "PRIV_CLOUD"}  # peer_asn 133937 is the MCR's own: no localAsn
    assert "# megaport_vxc.azure: b_end_partner_config.azure_config.peers[0]: ExpressRoute private peering" in \
        imported.text()


def test_state_google_addresses_are_a_warned_placeholder() -> None:
    imported, config = load("state-hub.json")
    iface = config.vxcs[2].vrouter.interfaces[0]
    assert [str(a) for a in iface.ip_addresses] == ["169.254.200.2/29"]
    assert dump(iface.bgp_connections[0]) == {
        "peerAsn": 16550, "localIpAddress": "169.254.200.2", "peerIpAddress": "169.254.200.1",
        "peerType": "PRIV_CLOUD"}
    assert any(w.startswith("megaport_vxc.gcp: b_end_partner_config.google_config") and "169.254.200.0/29" in w
               for w in imported.warnings)


def test_state_vrouter_every_field() -> None:
    imported, config = load("state-hub.json")
    vxc = config.vxcs[3]
    iface = vxc.vrouter.interfaces[0]
    assert dump(iface) == {
        "ipAddresses": ["10.200.0.1/30"], "description": "VXC to the data centre",
        "ipRoutes": [{"prefix": "10.110.0.0/16", "nextHop": "10.200.0.2", "description": "legacy DC range"}],
        "bgpConnections": [{
            "peerAsn": 65010, "localIpAddress": "10.200.0.1", "peerIpAddress": "10.200.0.2", "password": "dc-md5",
            "shutdown": False, "description": "data centre core", "medIn": 50, "medOut": 100,
            "exportPolicy": "deny", "permitExportTo": ["169.254.100.2"], "denyExportTo": ["192.168.30.2"],
            "importWhitelist": "dc-ranges", "exportBlacklist": "azure-vnet", "asPathPrependCount": 2}]}
    assert (iface.bfd.tx_interval, iface.bfd.rx_interval, iface.bfd.multiplier) == (300, 300, 3)
    assert "# megaport_vxc.dc (b_end is the MCR)" in imported.text()


def test_lab_variant_drops_vlan_tags_only() -> None:
    imported, _ = load("state-hub.json")
    lab = parse_config(imported.text(lab=True))
    assert [(v.vlan, v.inner_vlan) for v in lab.vxcs] == [(None, None)] * 4
    assert lab.vxcs[1].vrouter.interfaces[0].vlan is None
    assert "(vlan, inner VLANs left out: in the lab each VXC is its own veth)" in imported.text(lab=True)
    full = parse_config(imported.text())
    assert lab.connections()[0][2] == full.connections()[0][2]


# --- a plan: the MCR in a module, unknown ids and uids resolved through `configuration` ------------------------------


def test_plan_module_and_references() -> None:
    imported, config = load("plan-module.json")
    assert imported.plan
    assert imported.mcr_address == "module.network.megaport_mcr.hub"
    assert (config.mcr.product_name, config.mcr.mcr_asn, config.mcr.port_speed) == ("mel-hub-mcr", 65200, 2500)
    # ids are unknown until apply: assigned in order, and the comment says so
    # the separate lists: one in the MCR's module (mcr_id = megaport_mcr.hub.product_uid), one in another module
    # (mcr_id = var.mcr_uid, given module.network.mcr_uid, an output of megaport_mcr.hub.product_uid)
    assert [(pl.id, pl.description, pl.address_family) for pl in config.prefix_filter_lists] == [
        (1, "onprem", "IPv4"), (2, "v6-nets", "IPv6"), (3, "aws-tgw", "IPv4"), (4, "extra-ranges", "IPv4")]
    assert '# module.network.megaport_mcr_prefix_filter_list.cloud["aws"] (id assigned by the import' in imported.text()
    assert [v.product_name for v in config.vxcs] == ["aws-transit-vif", "aws-public-vif", "azure-er-secondary",
                                                      "branch"]


def test_plan_aws_transit_and_public_vifs() -> None:
    imported, config = load("plan-module.json")
    tgw, pub = conn_of(config, 0), conn_of(config, 1)
    assert (tgw.peer_asn, tgw.peer_type, tgw.local_asn, tgw.password) == (64512, "PRIV_CLOUD", None, None)
    assert any(w.startswith("megaport_vxc.tgw: b_end_partner_config.aws_config (customer and provider addresses)")
               for w in imported.warnings)
    assert (pub.peer_asn, pub.peer_type, str(pub.local_ip_address), str(pub.peer_ip_address), pub.password) == (
        7224, "PUB_CLOUD", "203.0.113.1", "203.0.113.2", "pub-key")
    assert pub.local_asn is None  # asn 65200 is the MCR's
    assert any(w.startswith("megaport_vxc.pub: b_end_partner_config.aws_config.prefixes:") for w in imported.warnings)


def test_plan_azure_secondary_path_two_peerings() -> None:
    imported, config = load("plan-module.json")
    vxc = config.vxcs[2]
    assert vxc.vlan is None  # ordered_vlan 0: Megaport assigns it
    assert "megaport_vxc.er: a_end.ordered_vlan: Megaport assigns the VLAN at apply: imported untagged" in \
        imported.warnings
    private, microsoft = vxc.vrouter.interfaces
    assert ([str(a) for a in private.ip_addresses], private.vlan) == (["192.168.40.5/30"], 410)
    assert ([str(a) for a in microsoft.ip_addresses], microsoft.vlan) == (["198.51.100.5/30"], 411)
    p, m = private.bgp_connections[0], microsoft.bgp_connections[0]
    assert (p.peer_asn, p.local_asn, p.peer_type, str(p.peer_ip_address)) == (12076, 65201, "PRIV_CLOUD",
                                                                              "192.168.40.6")
    assert (m.peer_asn, m.local_asn, m.peer_type) == (12076, None, "PUB_CLOUD")


def test_plan_vrouter_ipv6_shutdown_ipsec_and_unknown_list() -> None:
    imported, config = load("plan-module.json")
    vxc = config.vxcs[3]
    assert vxc.vlan == -1
    assert len(vxc.vrouter.interfaces) == 1  # the IPsec tunnel interface is left out
    iface = vxc.vrouter.interfaces[0]
    assert ([str(a) for a in iface.ip_addresses], [str(a) for a in iface.nat_ip_addresses], iface.ip_mtu) == (
        ["10.250.0.1/29", "2001:db8:250::1/64"], ["10.250.0.1"], 9000)
    v4, v6 = iface.bgp_connections
    assert dump(v4) == {"peerAsn": 65300, "localAsn": 65201, "localIpAddress": "10.250.0.1",
                        "peerIpAddress": "10.250.0.2", "shutdown": True, "bfdEnabled": True,
                        "importWhitelist": "onprem", "exportWhitelist": "aws-tgw", "asOverride": True}
    assert (v6.import_whitelist, v6.import_blacklist, v6.peer_type) == ("v6-nets", None, "NON_CLOUD")
    warnings = "\n".join(imported.warnings)
    assert "megaport_vxc.branch: a_end_partner_config.vrouter_config.interfaces[1].ip_sec_tunnel_options: an IPsec" \
        in warnings
    assert "interfaces[0].bgp_connections[1].import_blacklist: no prefix filter list 'no-such-list'" in warnings
    assert "module.network.megaport_mcr_ipsec_addon.vpn: megaport_mcr_ipsec_addon: not carried" in warnings


def test_plan_without_configuration_finds_no_vxc_of_a_new_mcr() -> None:
    doc = json.loads((FIXTURES / "plan-module.json").read_text())
    del doc["configuration"]
    imported = import_terraform(doc, None, "plan")
    assert "vxcs" not in imported.document  # the MCR's uid is unknown and nothing says which VXC uses it


# --- several MCRs; Oracle, IBM, transit -----------------------------------------------------------------------------


def test_several_mcrs_need_a_choice() -> None:
    with pytest.raises(TerraformImportError, match=r"2 MCRs: megaport_mcr.east \(mcr-east\), megaport_mcr.west "
                                                   r"\(mcr-west\); choose one with --mcr ADDRESS"):
        load("state-two-mcrs.json")
    with pytest.raises(TerraformImportError, match=r"no MCR 'megaport_mcr\.north'; the MCRs are"):
        load("state-two-mcrs.json", "megaport_mcr.north")
    east, config = load("state-two-mcrs.json", "mcr-east")  # by product name too
    assert (east.mcr_address, config.mcr.mcr_asn) == ("megaport_mcr.east", 133937)
    assert "(asn unset: Megaport's default 133937)" in east.text()
    assert [f.kind for f in east.far_ends] == ["mcr"]


def test_oracle_ibm_transit() -> None:
    imported, config = load("state-two-mcrs.json", "megaport_mcr.west")
    interconnect, oci, ibm = conn_of(config, 0), conn_of(config, 1), conn_of(config, 2)
    assert (interconnect.peer_asn, interconnect.peer_type) == (133937, "NON_CLOUD")
    assert (oci.peer_asn, oci.peer_type) == (31898, "PRIV_CLOUD")
    assert (ibm.peer_asn, str(ibm.local_ip_address), str(ibm.peer_ip_address)) == (13884, "169.254.30.1",
                                                                                   "169.254.30.2")
    assert config.vxcs[3].vrouter.interfaces == ()
    warnings = "\n".join(imported.warnings)
    assert "megaport_vxc.oci: b_end_partner_config.oracle_config.virtual_circuit_id:" in warnings
    assert "megaport_vxc.internet: a_end_partner_config: no vrouter_config on the MCR's end" in warnings
    assert "transit connection" in warnings


# --- what cannot be imported ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not JSON"),
    ('{"resources": []}', "not Terraform JSON"),
    ('{"format_version": "1.0", "values": []}', "not Terraform JSON"),
])
def test_not_terraform_json(text: str, message: str) -> None:
    with pytest.raises(TerraformImportError, match=message):
        parse_json(text, "f.json")


def test_empty_state_has_no_mcr() -> None:
    with pytest.raises(TerraformImportError, match=r"empty\.json: no MCR .*: it holds no managed resource"):
        import_terraform(parse_json('{"format_version": "1.0"}', "empty.json"), None, "empty.json")


def test_no_mcr() -> None:
    with pytest.raises(TerraformImportError, match=r"state-no-mcr.json: no MCR \(no megaport_mcr resource\): it holds "
                                                   "megaport_port"):
        load("state-no-mcr.json")


# --- the command line -----------------------------------------------------------------------------------------------


def test_cli_writes_a_config_that_check_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mcrd.yaml"
    assert main(["import", "terraform", str(FIXTURES / "state-hub.json"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: megaport_mve.edge: megaport_mve: not carried" in err
    assert main(["check", str(out)]) == 0
    assert "MCR syd-hub-mcr (AS 133937), 4 VXCs, 4 BGP connections, 3 prefix filter lists, 1 static route" in \
        capsys.readouterr().out


def test_cli_stdout_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["import", "terraform", str(FIXTURES / "plan-module.json")]) == 0
    assert capsys.readouterr().out.startswith("# Imported by `mcrd import terraform`")
    assert main(["import", "terraform", str(FIXTURES / "state-two-mcrs.json")]) == 1
    assert "choose one with --mcr ADDRESS" in capsys.readouterr().err
    assert main(["import", "terraform", str(FIXTURES / "state-no-mcr.json")]) == 1
    assert "no MCR" in capsys.readouterr().err
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    assert main(["import", "terraform", str(bad)]) == 1
    assert "not Terraform JSON" in capsys.readouterr().err
    assert main(["import", "terraform", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["import", "terraform", str(FIXTURES / "state-hub.json"), "--prefixes", str(bad)]) == 1
    assert "--prefixes says what the lab's routers announce: it needs --lab DIR" in capsys.readouterr().err
    assert main(["import", "terraform", str(FIXTURES / "state-hub.json"), "--lab", str(tmp_path / "lab"),
                 "--prefixes", str(bad)]) == 1
    assert "must map a VXC's product name or Terraform address to a list of prefixes" in capsys.readouterr().err


def test_cli_reports_a_design_mcrd_refuses(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "state-hub.json").read_text())
    doc["values"]["root_module"]["resources"][0]["values"]["asn"] = 23456  # AS_TRANS: reserved
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert main(["import", "terraform", str(path)]) == 1
    err = capsys.readouterr().err
    assert "mcr.mcrAsn: 23456 is reserved" in err
    assert "is not a config mcrd accepts" in err
