"""`mcrd lab verify` against real FRR and mcrd in namespaces (root): the shipped intents hold; wrong intents fail
with the evidence; --record then verify passes; a stopped daemon means exit 2; the failover scenario passes and
reports its convergence time. One lab per module (seed-poc, then failover)."""

from __future__ import annotations

import json
import os
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcrd.lab.state import RUN_DIR, LabState
from mcrd.lab.system import stop_pids
from tests.labcmd.conftest import SHIPPED, Lab, mcrd, require_lab, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mcrd lab tests need root: they create network "
                                "namespaces (CI is root)")


def intents_of(name: str) -> str:
    return str(SHIPPED[name].parent / f"{name}.intents.yaml")


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    with running(SHIPPED["seed-poc"], tmp_path_factory.mktemp("seed"), "vs") as lab:
        yield lab


def test_up_waits_for_convergence_and_prints_prefixes_in_and_out(seed: Lab) -> None:
    listed = mcrd("lab", "list")
    assert seed.name in listed.stdout
    assert " up " in listed.stdout
    status = mcrd("lab", "status", seed.name)  # by name
    assert status.returncode == 0, status.stdout + status.stderr
    proc = mcrd("lab", "verify", seed.name, "--record")
    assert proc.returncode == 0, proc.stderr
    # What `up` printed: the MCR's sessions too, with prefixes both ways (the shipped intents check the same).
    assert "exactly: [10.10.0.0/16, 10.20.0.0/16]" in proc.stdout


def test_the_shipped_intents_hold_with_junit_and_json(seed: Lab, tmp_path: Path) -> None:
    junit, report = tmp_path / "r.xml", tmp_path / "r.json"
    proc = mcrd("lab", "verify", seed.name, intents_of("seed-poc"), "--junit", str(junit), "--json", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: 11/11 intents hold" in proc.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("11", "0", "0")
    data = json.loads(report.read_text())
    assert data["result"] == "pass"
    rejected = next(i for i in data["intents"] if i["kind"] == "rejected")
    assert "172.31.0.0/16 from 169.254.100.2 (import-permit-list)" in rejected["held"]


def test_wrong_intents_fail_with_the_evidence(seed: Lab, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(textwrap.dedent("""\
        intents:
          - {name: right, at: azure, route: 10.10.0.0/16, asPath: [133937, 64512]}
          - {name: a leak claimed absent, at: azure, route: 10.20.0.0/16, present: false, within: 1s}
          - {name: a wrong AS path, at: azure, route: 10.10.0.0/16, asPath: [133937, 65000, 64512], within: 1s}
          - {name: an unreachable host claimed reachable, from: awshost, ping: 10.99.1.10, reach: true, within: 1s}
        """))
    junit = tmp_path / "w.xml"
    proc = mcrd("lab", "verify", seed.name, str(wrong), "--junit", str(junit))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "FAIL: 1/4 intents hold" in out
    assert "FAIL  a leak claimed absent" in out
    assert "expected: no 10.20.0.0/16 as best route" in out
    assert "held:     azure holds 10.20.0.0/16 [133937 64512] via 192.168.30.1" in out
    assert "expected: 10.10.0.0/16 as best route [133937 65000 64512]" in out
    assert "held:     azure holds 10.10.0.0/16 [133937 64512] via 192.168.30.1" in out
    assert "awshost -> 10.99.1.10: " in out
    assert ", 0 received" in out
    failures = [c for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["a leak claimed absent", "a wrong AS path",
                                                 "an unreachable host claimed reachable"]


def test_record_then_verify_passes(seed: Lab, tmp_path: Path) -> None:
    recorded = tmp_path / "rec.yaml"
    proc = mcrd("lab", "verify", str(seed.topology), "--record")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# Recorded by")
    assert "WARNING" in proc.stdout.splitlines()[1]
    recorded.write_text(proc.stdout)
    check = mcrd("lab", "verify", seed.name, str(recorded))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "exactly: [10.10.0.0/16, 10.20.0.0/16]" in proc.stdout  # Azure's routes from the MCR, no 172.31/16
    assert "reach: true" in proc.stdout


def test_an_unknown_node_or_a_lab_that_is_not_up_cannot_be_judged(seed: Lab, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("intents:\n  - {name: x, at: gcp, sessions: established}\n")
    proc = mcrd("lab", "verify", seed.name, str(bad))
    assert proc.returncode == 2
    assert "no node gcp in lab" in proc.stderr
    proc = mcrd("lab", "verify", "nosuchlab", intents_of("seed-poc"))
    assert proc.returncode == 2
    assert "lab nosuchlab is not up" in proc.stderr


def test_stop_start_and_exec_steps(seed: Lab, tmp_path: Path) -> None:
    steps = tmp_path / "steps.yaml"
    steps.write_text(textwrap.dedent("""\
        intents:
          - {name: aws hears the vnet, at: aws, from: mcr, exactly: [10.30.0.0/16]}
          - {name: azure up, at: azure, sessions: established}
        scenarios:
          - name: azure's router stops
            do: [{stop: azure}]
            expect:
              - {name: aws no longer hears the vnet, at: aws, from: mcr, exactly: []}
              - {name: the vnet is unreachable, from: awshost, ping: 10.30.1.10, reach: false}
            undo: [{start: azure}]
          - name: a failing command is an error, not a failure
            do: [{exec: {node: aws, cmd: [sh, -c, "exit 3"]}}]
            expect: [{name: never judged, at: aws, sessions: established}]
        """))
    proc = mcrd("lab", "verify", seed.name, str(steps))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "restored in" in proc.stdout  # azure's daemons started again, its session back
    assert "ERROR step exec aws: sh -c exit 3 (line 12) failed (3)\n" in proc.stdout
    state = LabState.load(RUN_DIR / seed.name)
    assert state is not None
    assert {p.label for p in state.processes if p.node == "azure"} == {"zebra", "bgpd", "staticd"}


def test_a_containerlab_lab_is_judged_through_docker_exec(seed: Lab, tmp_path: Path) -> None:
    # A stand-in for `docker exec clab-<lab>-<node> ARGV`: the same command in the node's namespace, with the
    # node's tools first on PATH as they would be in its container.
    docker = tmp_path / "docker"
    docker.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        [ "$1" = exec ] || exit 125
        name=$2; shift 2
        PATH={RUN_DIR}/{seed.name}/nodes/${{name#clab-{seed.name}-}}/bin:$PATH exec ip netns exec "$name" "$@"
        """))
    docker.chmod(0o755)
    proc = mcrd("lab", "verify", str(seed.topology), intents_of("seed-poc"), "--docker", str(docker))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: 11/11 intents hold" in proc.stdout


def test_a_stopped_daemon_gives_exit_2(seed: Lab) -> None:
    # Last in the module: it leaves Azure's bgpd stopped (the fixture's teardown removes the lab anyway).
    state = LabState.load(RUN_DIR / seed.name)
    assert state is not None
    bgpd = next(p for p in state.processes if p.node == "azure" and p.label == "bgpd")
    stop_pids({bgpd.pid: bgpd.start_time})
    proc = mcrd("lab", "verify", seed.name, intents_of("seed-poc"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the lab cannot be judged: node azure: FRR (vtysh) did not answer" in proc.stderr


# --- failover -----------------------------------------------------------------------------------------------------


def test_the_failover_scenarios_move_traffic_to_the_backup_and_back(lab_env: None, tmp_path: Path) -> None:
    topology = SHIPPED["failover"]
    from tests.labcmd.conftest import copy_topology

    copy = copy_topology(topology, tmp_path, "fo")
    intents = tmp_path / "failover" / "failover.intents.yaml"
    report = tmp_path / "fo.json"
    proc = mcrd("lab", "verify", str(copy), str(intents), "--up", "--json", str(report), timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert [s["name"] for s in data["scenarios"]] == ["the primary AWS VXC fails",
                                                       "the AWS end of the primary VXC fails",
                                                       "the primary AWS VXC dies silently (BFD)"]
    for scenario in data["scenarios"]:
        assert scenario["result"] == "pass"
        assert scenario["convergenceSeconds"] is not None
        assert scenario["restoreSeconds"] is not None
    assert "converged in" in proc.stdout
    assert "restored in" in proc.stdout
    # --up took it down again
    assert not (RUN_DIR / copy.read_text().split("name: ", 1)[1].split()[0]).exists()


# --- two metros ---------------------------------------------------------------------------------------------------


def test_two_mcrs_joined_by_a_vxc_carry_routes_and_packets_between_their_clouds(lab_env: None, tmp_path: Path) -> None:
    """containerlab/two-metro: two mcrd nodes, each listening and connecting on their VXC; the shipped intents (both
    MCRs' sessions up, AS paths across both, pings end to end, the MCR-to-MCR VXC failing and back) all hold."""
    from tests.labcmd.conftest import copy_topology

    copy = copy_topology(SHIPPED["two-metro"], tmp_path, "tm")
    intents = tmp_path / "two-metro" / "two-metro.intents.yaml"
    report = tmp_path / "tm.json"
    proc = mcrd("lab", "verify", str(copy), str(intents), "--up", "--json", str(report), timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    assert len(data["intents"]) == 8
    assert all(intent["result"] == "pass" for intent in data["intents"]), data["intents"]
    assert [s["result"] for s in data["scenarios"]] == ["pass"]
