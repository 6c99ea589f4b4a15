"""`mcrd lab` end to end, as root: the shipped topologies come up on bare namespaces, converge and forward across
the hub; status and exec; down leaves nothing, also after `up` was killed half-way; what is not ours is not touched.

Every lab runs on a copy of its topology under a unique name (`<prefix>-<6 hex>`), and is brought down in a
`finally` whatever the test did, then checked: no namespace, process, state directory or FRR crash-log directory of
it may remain.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mcrd.lab.state import RUN_DIR
from tests.labcmd.conftest import (
    BIRD_SPOKE,
    REPO,
    SHIPPED,
    Lab,
    Snapshot,
    mcrd,
    namespaces,
    require_lab,
    running,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mcrd lab tests need root: they create network "
                                "namespaces (CI is root)")

MakeLab = Callable[..., Lab]
HOSTS = {"awshost": "10.10.1.10", "azurehost": "10.30.1.10", "gcphost": "10.50.1.10", "dchost": "10.100.1.10"}


def bgp_prefixes(lab: Lab, node: str, *, learned_from: str | None = None) -> dict[str, list[int]]:
    """Best routes in an FRR node's BGP table: prefix -> AS path (only those learned from `learned_from`)."""
    data = lab.vtysh_json(node, "show bgp ipv4 unicast")
    out = {}
    for prefix, paths in data.get("routes", {}).items():
        best = next((p for p in paths if p.get("bestpath")), None)
        if best is None:
            continue
        peer = best.get("peerId", "")
        if learned_from is None or peer == learned_from:
            out[prefix] = [int(a) for a in str(best.get("path", "")).split()]
    return out


def wait_for(fn: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} (last: {last!r})")


# --- hub-spoke: one lab for the module -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    with running(SHIPPED["hub-spoke"], tmp_path_factory.mktemp("hub"), "hs") as lab:
        yield lab


def test_hub_spoke_up_establishes_every_session_and_says_so(hub: Lab) -> None:
    assert hub.snapshot is not None
    assert len(hub.snapshot.namespaces) == 9
    assert set(namespaces()) >= {f"clab-{hub.name}-{n}" for n in ("mcr", "aws", "azure", "google", "onprem")}


def test_a_host_behind_aws_pings_hosts_behind_azure_google_and_onprem_across_the_hub(hub: Lab) -> None:
    for host in ("azurehost", "gcphost", "dchost"):
        hub.ping("awshost", HOSTS[host])
    hub.ping("azurehost", HOSTS["awshost"])
    trace = hub.exec("awshost", "ip", "route", "get", HOSTS["azurehost"])
    assert "via 10.10.1.1 dev eth1" in trace.stdout


def test_each_cloud_hears_the_others_through_the_mcr(hub: Lab) -> None:
    want = {"10.30.0.0/16": [133937, 12076], "10.50.0.0/16": [133937, 16550], "10.100.0.0/16": [133937, 65010]}
    wait_for(lambda: bgp_prefixes(hub, "aws", learned_from="169.254.100.1") == want, "AWS's routes from the MCR")
    onprem = bgp_prefixes(hub, "onprem", learned_from="10.200.0.1")
    assert set(onprem) == {"10.10.0.0/16", "10.20.0.0/16", "10.30.0.0/16", "10.50.0.0/16"}
    # The prefix limits the clouds enforce are configured on their side of the session.
    aws = hub.exec("aws", "vtysh", "-c", "show running-config").stdout
    assert "neighbor 169.254.100.1 maximum-prefix 100" in aws


def test_status_shows_nodes_processes_and_established_sessions(hub: Lab) -> None:
    proc = mcrd("lab", "status", str(hub.topology))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"lab {hub.name}: up" in proc.stdout
    for node in ("mcr", "aws", "azure", "google", "onprem", "awshost", "dchost"):
        assert f"clab-{hub.name}-{node}" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if "Established" in line]
    assert {line.split()[0] for line in lines} == {"aws", "azure", "google", "onprem"}
    assert "mcrd " in proc.stdout
    assert "bgpd " in proc.stdout


def test_exec_runs_in_the_node_with_its_tools_and_passes_the_exit_status(hub: Lab) -> None:
    summary = hub.vtysh_json("azure", "show bgp summary")
    assert summary["ipv4Unicast"]["as"] == 12076
    assert hub.exec("awshost", "sh", "-c", "exit 7").returncode == 7
    links = hub.exec("mcr", "ip", "-br", "link").stdout
    assert all(f"eth{i}@" in links for i in (1, 2, 3, 4))
    assert "eth0" not in links
    proc = mcrd("lab", "exec", str(hub.topology), "nosuch", "--", "true")
    assert proc.returncode == 1
    assert "has no node 'nosuch'" in proc.stderr


def test_the_image_entrypoint_waits_for_clab_interfaces_with_a_timeout(hub: Lab) -> None:
    script = str(REPO / "docker" / "entrypoint.sh")
    env = ["env", "MCRD_CONFIG=/nonexistent/mcrd.yaml", "MCRD_INTF_TIMEOUT=1"]
    short = hub.exec("awshost", *env, "CLAB_INTFS=3", "sh", script)  # awshost has one data interface
    assert short.returncode == 1
    assert "waiting up to 1s for 3 data interfaces (CLAB_INTFS)" in short.stderr
    assert "only 1 of 3 data interfaces after 1s: starting anyway" in short.stderr
    assert "no config at /nonexistent/mcrd.yaml" in short.stderr
    enough = hub.exec("mcr", *env, "CLAB_INTFS=4", "sh", script)
    assert "4 data interfaces present after 0s" in enough.stderr


@pytest.mark.skipif(importlib.util.find_spec("mcrd.lg") is None, reason="the looking glass API is not in this tree")
def test_the_image_healthcheck_answers_from_the_running_mcrd(hub: Lab) -> None:
    check = [str(REPO / "docker" / "healthcheck.sh")]
    wait_for(lambda: hub.exec("mcr", "sh", *check).returncode == 0, "mcrd-healthcheck in the mcr node")
    assert hub.exec("awshost", "sh", *check).returncode == 1  # nothing listens there


def test_the_shipped_hub_spoke_intents_hold(hub: Lab) -> None:
    proc = mcrd("lab", "verify", hub.name, str(SHIPPED["hub-spoke"].parent / "hub-spoke.intents.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: 16/16 intents hold, 1/1 scenarios pass" in proc.stdout


def test_up_printed_every_session_with_prefixes_in_and_out(hub: Lab) -> None:
    assert hub.up_output is not None
    assert "converged after " in hub.up_output
    rows = [line.split() for line in hub.up_output.splitlines() if line.startswith("mcr ") and "Established" in line]
    # mcr's four sessions from its own looking glass: AWS sends two VPCs and hears the three others
    assert ["mcr", "169.254.100.2", "(aws)", "64512", "Established", "2", "3"] in rows
    assert len(rows) == 4


def test_a_closed_pipe_is_quiet_and_lg_on_the_host_names_the_lab(hub: Lab) -> None:
    proc = subprocess.run(f"{sys.executable} -m mcrd lab status {hub.name} | head -1", shell=True, cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.stdout.startswith(f"lab {hub.name}: up")
    assert proc.stderr == ""
    env = {k: v for k, v in os.environ.items() if k != "MCRD_API"}
    lg = subprocess.run([sys.executable, "-m", "mcrd", "lg", "sessions"], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=30, check=False)
    if "is the daemon running?" in lg.stderr:  # nothing listens on the host's 127.0.0.1:8080 (the usual case)
        assert "mcrd lab exec " in lg.stderr
        assert "-- mcrd lg sessions" in lg.stderr


def test_up_of_an_mcrd_config_says_what_it_is() -> None:
    proc = mcrd("lab", "up", str(REPO / "containerlab" / "hub-spoke" / "mcr" / "mcrd.yaml"))
    assert proc.returncode == 1
    assert "this is an mcrd config, not a topology" in proc.stderr


def test_up_again_is_refused_while_the_lab_is_up(hub: Lab) -> None:
    proc = mcrd("lab", "up", str(hub.topology))
    assert proc.returncode == 1
    assert f"lab {hub.name} is already up" in proc.stderr


def test_down_deletes_only_what_the_lab_recorded(hub: Lab, tmp_path: Path) -> None:
    # A namespace with the lab's prefix that the lab did not create must survive its `down`; it is removed here.
    stranger = f"clab-{hub.name}-stranger"
    subprocess.run(["ip", "netns", "add", stranger], check=True)
    try:
        snapshot = Snapshot.take(hub.name)
        proc = mcrd("lab", "down", str(hub.topology))
        assert proc.returncode == 0, proc.stderr
        assert stranger in namespaces()
        assert [x for x in snapshot.leftovers() if stranger not in x] == []
        assert "is down: 9 namespaces" in proc.stdout
    finally:
        subprocess.run(["ip", "netns", "del", stranger], check=False)
    again = mcrd("lab", "down", str(hub.topology))
    assert again.returncode == 0
    assert "is not up: nothing to remove" in again.stdout
    hub.up()  # the module fixture's teardown brings it down again and checks


# --- the seed PoC -----------------------------------------------------------------------------------------------


def test_seed_poc_permit_lists_shape_what_each_cloud_hears(make_lab: MakeLab) -> None:
    lab = make_lab(SHIPPED["seed-poc"], "sp")
    lab.up()
    lab.ping("awshost", HOSTS["azurehost"])
    # Import permit list: 172.31.0.0/16 (not an AWS VPC in the list) never reaches Azure; export lists: each side
    # hears exactly the other's CIDRs.
    want_azure = {"10.10.0.0/16": [133937, 64512], "10.20.0.0/16": [133937, 64512]}
    wait_for(lambda: bgp_prefixes(lab, "azure", learned_from="192.168.30.1") == want_azure, "Azure's routes")
    wait_for(lambda: bgp_prefixes(lab, "aws", learned_from="169.254.100.1") == {"10.30.0.0/16": [133937, 12076]},
             "AWS's routes")


# --- BIRD, kind frr with an embedded config, env, the extended link form ----------------------------------------


def test_bird_and_kind_frr_nodes_come_up_and_forward(make_lab: MakeLab) -> None:
    lab = make_lab(BIRD_SPOKE, "bs")
    out = lab.up().stdout
    assert "azure: mcr (192.168.30.1) (AS 133937) Established" in out
    assert "aws: 169.254.100.1 (AS 133937) Established" in out
    lab.ping("awshost", HOSTS["azurehost"])
    assert lab.exec("aws", "sh", "-c", "echo $LAB_ROLE").stdout.strip() == "aws"
    # The link's mtu (mcrd sets its own side to the VXC's ipMtu, 1500 by default; BIRD leaves its side alone).
    assert "mtu 9000" in lab.exec("azure", "ip", "link", "show", "eth1").stdout
    assert "BGP state:          Established" in lab.exec("azure", "birdc", "show", "protocols", "all", "mcr").stdout
    status = mcrd("lab", "status", str(lab.topology))
    assert status.returncode == 0, status.stdout
    assert "bird " in status.stdout


# --- failures ------------------------------------------------------------------------------------------------------


def _wrong_aws_key(folder: Path) -> None:
    conf = folder / "aws" / "frr.conf"
    conf.write_text(conf.read_text().replace("password aws-md5-secret-01", "password not-the-key"))


def test_up_fails_naming_the_sessions_that_did_not_come_up(make_lab: MakeLab) -> None:
    lab = make_lab(SHIPPED["seed-poc"], "sf", edit=_wrong_aws_key)
    proc = lab.up("--timeout", "6", expect=1)
    assert "BGP sessions not established after 6s" in proc.stderr
    assert "aws -> 169.254.100.1 (AS 133937): " in proc.stderr
    assert "azure ->" not in proc.stderr
    status = mcrd("lab", "status", str(lab.topology))
    assert status.returncode == 1
    assert f"lab {lab.name}: failed" in status.stdout


def test_down_after_up_was_killed_half_way_removes_everything(make_lab: MakeLab) -> None:
    lab = make_lab(SHIPPED["hub-spoke"], "hk")
    up = subprocess.Popen([sys.executable, "-m", "mcrd", "lab", "up", str(lab.topology)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        assert up.stdout is not None
        for line in up.stdout:  # kill it once FRR runs on some nodes but not yet on others
            seen.append(line)
            if line.startswith("  start azure:"):
                break
        up.send_signal(signal.SIGKILL)
    finally:
        up.kill()
        up.wait(10)
    assert up.returncode == -signal.SIGKILL, "".join(seen)
    snapshot = Snapshot.take(lab.name)
    assert snapshot.processes, "processes had been started"
    assert len(snapshot.namespaces) == 9
    proc = mcrd("lab", "down", str(lab.topology))
    assert proc.returncode == 0, proc.stderr
    assert snapshot.leftovers() == []
    assert not (RUN_DIR / lab.name).exists()
    # The daemons the killed `up` had started were children of nothing we waited for: all stopped by pid.
    assert "stopping" in proc.stdout


def test_down_of_a_lab_that_never_came_up_is_harmless(lab_env: None, tmp_path: Path) -> None:
    topo = tmp_path / "x.clab.yml"
    topo.write_text(json.dumps({"name": f"never-{os.getpid()}", "topology": {"nodes": {}}}))
    proc = mcrd("lab", "down", str(topo))
    assert proc.returncode == 0
    assert "is not up: nothing to remove" in proc.stdout


def test_down_while_up_still_waits_stops_it_and_removes_everything(make_lab: MakeLab) -> None:
    lab = make_lab(SHIPPED["seed-poc"], "dw", edit=_wrong_aws_key)  # AWS never establishes: up keeps waiting
    up = subprocess.Popen([sys.executable, "-m", "mcrd", "lab", "up", str(lab.topology), "--timeout", "120"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if line.startswith("waiting for the BGP sessions"):
                break
        snapshot = Snapshot.take(lab.name)
        proc = mcrd("lab", "down", str(lab.topology))
        assert proc.returncode == 0, proc.stderr
        assert f"stopped the `mcrd lab up` still running (pid {up.pid})" in proc.stdout
        assert up.wait(10) != 0
        assert snapshot.leftovers() == []
    finally:
        up.kill()
        up.wait(10)
