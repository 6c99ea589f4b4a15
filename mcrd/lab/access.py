"""How `mcrd lab` reaches into a node: one small interface, `Access.run(node, argv)`.

`NamespaceAccess` is today's: `ip netns exec clab-<lab>-<node>` with the node's wrappers first on PATH (`vtysh` and
`birdc` that find the node's sockets, `mcrd`). `DockerAccess` is the same for a lab deployed by containerlab:
`docker exec clab-<lab>-<node> ARGV` (in the containers `vtysh`, `birdc` and `python3` are on PATH and use their
default sockets). Everything above this module (`mcrd.lab.probe`, `mcrd.lab.verify`) only calls `run`, so judging a
containerlab lab needs nothing more than a `DockerAccess` (see containerlab/hub-spoke/README.md).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mcrd.lab.system import LabError, run
from mcrd.lab.topology import namespace_name


class Access(Protocol):
    @property
    def lab(self) -> str: ...

    def run(self, node: str, argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run `argv` in `node`; never raises for a non-zero status (LabError when it cannot be run at all)."""
        ...

    def python(self) -> str:
        """A Python 3 interpreter inside the node."""
        ...


@dataclass(frozen=True)
class NamespaceAccess:
    lab: str
    namespaces: Mapping[str, str]
    """node -> namespace"""
    bins: Mapping[str, str] = field(default_factory=dict)
    """node -> the directory of its wrappers (`/run/mcrd-lab/<lab>/nodes/<node>/bin`)"""
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def run(self, node: str, argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        ns = self.namespaces.get(node)
        if ns is None:
            raise LabError(f"lab {self.lab} has no node {node!r}")
        env = dict(os.environ)
        env.update(self.env.get(node, {}))
        if node in self.bins:
            env["PATH"] = f"{self.bins[node]}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        return run(["ip", "netns", "exec", ns, *argv], check=False, timeout=timeout, env=env)

    def python(self) -> str:
        return "python3"


@dataclass(frozen=True)
class DockerAccess:
    """A lab deployed by containerlab: node N of lab L is the container `clab-L-N`."""

    lab: str
    docker: str = "docker"

    def run(self, node: str, argv: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return run([self.docker, "exec", namespace_name(self.lab, node), *argv], check=False, timeout=timeout)

    def python(self) -> str:
        return "python3"
