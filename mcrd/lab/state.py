"""The record of one lab: what `mcrd lab up` created, written *before* it creates it, so that `down` removes
exactly that, also after `up` crashed or was killed half-way.

`/run/mcrd-lab/<lab>/state.json` (atomic rewrite on every change) holds:

* `owner`: pid and start time of the `up` process (a live owner means a build is under way);
* `namespaces`: every namespace name, recorded with `created: false` before `ip netns add` and set to true after
  (up checks that the name is free before recording it, so a recorded name that exists is this lab's);
* `processes`: every daemon started (node, label, pid, start time): stopped by pid, and only while the pid still
  has the recorded start time (a recycled pid is never signalled);
* `nodes`: each node's role and working directory (configs, vty sockets, logs), all under the lab directory.

Everything a lab owns on disk is under its lab directory, so removing it is one `rmtree`.  Processes are also found
through `ip netns pids` of the recorded namespaces: a daemon started in the instant before `up` was killed, and not
yet recorded, lives in a recorded namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUN_DIR = Path(os.environ.get("MCRD_LAB_RUN_DIR", "/run/mcrd-lab"))
VERSION = 1


@dataclass
class NamespaceRecord:
    name: str
    node: str
    created: bool = False


@dataclass
class ProcessRecord:
    node: str
    label: str
    pid: int
    start_time: int | None
    log: str = ""


@dataclass
class NodeRecord:
    role: str
    dir: str


@dataclass
class LabState:
    lab: str
    topology: str
    dir: str
    owner_pid: int
    owner_start_time: int | None
    phase: str = "building"  # building -> up | failed
    started_at: float = field(default_factory=time.time)
    namespaces: list[NamespaceRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    version: int = VERSION

    @property
    def path(self) -> Path:
        return Path(self.dir) / "state.json"

    def save(self) -> None:
        """Atomic: a crash leaves the old or the new record, never half of one."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as out:
            json.dump(asdict(self), out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)

    @classmethod
    def load(cls, lab_dir: Path) -> LabState | None:
        try:
            data: dict[str, Any] = json.loads((lab_dir / "state.json").read_text())
        except FileNotFoundError:
            return None
        return cls(
            lab=data["lab"],
            topology=data["topology"],
            dir=data["dir"],
            owner_pid=int(data["owner_pid"]),
            owner_start_time=data.get("owner_start_time"),
            phase=data.get("phase", "building"),
            started_at=float(data.get("started_at", 0.0)),
            namespaces=[NamespaceRecord(**n) for n in data.get("namespaces", [])],
            processes=[ProcessRecord(**p) for p in data.get("processes", [])],
            nodes={k: NodeRecord(**v) for k, v in data.get("nodes", {}).items()},
            version=int(data.get("version", VERSION)),
        )

    def namespace(self, node: str) -> str | None:
        return next((n.name for n in self.namespaces if n.node == node), None)


def lab_dir(lab: str) -> Path:
    return RUN_DIR / lab


def proc_start_time(pid: int) -> int | None:
    """The start time of a live (non-zombie) process, in clock ticks since boot; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def same_process(pid: int, start_time: int | None) -> bool:
    """True while `pid` runs and is the process recorded (same start time)."""
    now = proc_start_time(pid)
    return now is not None and (start_time is None or now == start_time)


def proc_comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""
