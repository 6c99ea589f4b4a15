"""Helpers for the `mcrd lab` tests: copies of topologies under unique lab names, the CLI as a subprocess, and the
check that a lab left nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcrd.lab.state import RUN_DIR, LabState, same_process
from mcrd.lab.system import FRR_TMP

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {
    "hub-spoke": REPO / "containerlab" / "hub-spoke" / "hub-spoke.clab.yml",
    "seed-poc": REPO / "containerlab" / "seed-poc" / "seed-poc.clab.yml",
    "failover": REPO / "containerlab" / "failover" / "failover.clab.yml",
    "two-metro": REPO / "containerlab" / "two-metro" / "two-metro.clab.yml",
}
BIRD_SPOKE = Path(__file__).resolve().parent / "topologies" / "bird-spoke" / "bird-spoke.clab.yml"
APT_PACKAGES = "frr bird2 iputils-ping iproute2"


def mcrd(*args: str, timeout: float = 180.0, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m mcrd ARGS` (the installed CLI, as a user runs it)."""
    proc = subprocess.run([sys.executable, "-m", "mcrd", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"mcrd {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_topology(source: Path, dest: Path, prefix: str, edit: Callable[[Path], None] | None = None) -> Path:
    """Copy the topology's folder to `dest` under a unique lab name (`<prefix>-<6 hex>`) so runs never collide."""
    folder = dest / source.parent.name
    shutil.copytree(source.parent, folder)
    topo = folder / source.name
    name = f"{prefix}-{secrets.token_hex(3)}"
    text, n = re.subn(r"^name: .*$", f"name: {name}", topo.read_text(), count=1, flags=re.M)
    assert n == 1, f"{source} has no name: line"
    topo.write_text(text)
    if edit is not None:
        edit(folder)
    return topo


def lab_name(topology: Path) -> str:
    m = re.search(r"^name: (\S+)$", topology.read_text(), re.M)
    assert m
    return m.group(1)


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout.strip()
    return {entry["name"] for entry in json.loads(out)} if out else set()


@dataclass
class Snapshot:
    """What a lab had, read from its state file while it existed: to prove afterwards that all of it is gone."""

    name: str
    namespaces: list[str]
    processes: list[tuple[int, int | None, str]]
    dir: Path

    @classmethod
    def take(cls, name: str) -> Snapshot:
        state = LabState.load(RUN_DIR / name)
        assert state is not None, f"lab {name} has no state"
        return cls(name, [n.name for n in state.namespaces],
                   [(p.pid, p.start_time, p.label) for p in state.processes], Path(state.dir))

    def leftovers(self) -> list[str]:
        left = [f"namespace {n}" for n in namespaces() if n.startswith(f"clab-{self.name}-")]
        left += [f"process {label} {pid}" for pid, start, label in self.processes if same_process(pid, start)]
        left += [f"FRR crash-log dir {FRR_TMP / f'{label}.{pid}'}" for pid, _, label in self.processes
                 if (FRR_TMP / f"{label}.{pid}").exists()]
        if self.dir.exists():
            left.append(f"directory {self.dir}")
        return left


def require_lab() -> None:
    """Skip when not root; when root but FRR/BIRD are missing: skip locally, fail under CI (a skip would hide a
    missing install step)."""
    if os.geteuid() != 0:
        pytest.skip("mcrd lab tests need root: they create network namespaces (CI is root)")
    missing = [tool for tool in ("ip", "ping", "bird", "birdc", "vtysh") if shutil.which(tool) is None]
    missing += [p for p in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/staticd") if not Path(p).exists()]
    if missing:
        message = f"mcrd lab tests need {', '.join(missing)} (apt-get install {APT_PACKAGES})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def lab_env() -> None:
    require_lab()


class Lab:
    """One lab under test: `up` it, and `down` it at teardown whatever happened (then check nothing is left)."""

    def __init__(self, topology: Path) -> None:
        self.topology = topology
        self.name = lab_name(topology)
        self.snapshot: Snapshot | None = None
        self.up_output: str | None = None

    def up(self, *extra: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        proc = mcrd("lab", "up", str(self.topology), *extra)
        self.up_output = proc.stdout
        if (RUN_DIR / self.name / "state.json").exists():
            self.snapshot = Snapshot.take(self.name)
        assert proc.returncode == expect, f"mcrd lab up exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def exec(self, node: str, *command: str) -> subprocess.CompletedProcess[str]:
        return mcrd("lab", "exec", str(self.topology), node, "--", *command)

    def ping(self, node: str, address: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self.exec(node, "ping", "-n", "-q", "-c", "1", "-W", "1", address)
            if proc.returncode == 0:
                return
            assert time.monotonic() < deadline, f"{node} cannot ping {address}: {proc.stdout}{proc.stderr}"
            time.sleep(0.5)

    def vtysh_json(self, node: str, command: str) -> Any:
        proc = self.exec(node, "vtysh", "-c", f"{command} json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def down(self) -> subprocess.CompletedProcess[str]:
        if self.snapshot is None and (RUN_DIR / self.name / "state.json").exists():
            self.snapshot = Snapshot.take(self.name)
        proc = mcrd("lab", "down", str(self.topology))
        assert proc.returncode == 0, f"mcrd lab down exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        if self.snapshot is not None:
            assert self.snapshot.leftovers() == []
        return proc

    def dump_logs(self) -> None:
        folder = RUN_DIR / self.name / "nodes"
        for log in sorted(folder.glob("*/*.log")):
            lines = log.read_text(errors="replace").splitlines()[-30:]
            print(f"----- {log}\n" + "\n".join(lines))


@contextlib.contextmanager
def running(source: Path, dest: Path, prefix: str) -> Iterator[Lab]:
    """A lab on a copy of `source`, up for the `with` block and down (checked) after it, whatever happened."""
    lab = Lab(copy_topology(source, dest, prefix))
    try:
        lab.up()
        yield lab
    except BaseException:
        lab.dump_logs()
        raise
    finally:
        lab.down()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    # Keep each phase's report on the item so that a fixture can tell at teardown whether the test failed.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def make_lab(lab_env: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """`make_lab(source, prefix, edit=None)`: a Lab on a copy of `source`; torn down (and checked) at teardown."""
    labs: list[Lab] = []

    def make(source: Path, prefix: str, edit: Callable[[Path], None] | None = None) -> Lab:
        lab = Lab(copy_topology(source, tmp_path, prefix, edit))
        labs.append(lab)
        return lab

    try:
        yield make
    finally:
        report = getattr(request.node, "rep_call", None)
        errors = []
        for lab in labs:
            if report is None or report.failed:
                lab.dump_logs()  # before down removes them
            try:
                lab.down()
            except AssertionError as exc:
                errors.append(str(exc))
        if errors:
            pytest.fail("\n".join(errors))
