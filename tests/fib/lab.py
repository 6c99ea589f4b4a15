"""Network-namespace fixtures for the kernel tests (tests/fib and tests/iface).

Every namespace and veth carries a per-run unique suffix and is removed on the way out, also when a test fails.
Code under test runs in a thread that entered the namespace with the production `enter_netns`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from mcrd.fib.netns import enter_netns

T = TypeVar("T")
NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN) to create network namespaces and veths"
)
NO_VLAN_REASON = (
    "this kernel has no 802.1Q VLAN support (Unknown device type); VLAN devices are tested on kernels that have it"
)


def unique(prefix: str) -> str:
    """`prefix` + 8 hex digits, unique per run (interface names stay within 15 characters for short prefixes)."""
    return f"{prefix}{secrets.token_hex(4)}"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def ip_json(ns: str, *args: str) -> list[dict[str, Any]]:
    out = sh("ip", "-n", ns, "-j", *args).stdout.strip()
    result: list[dict[str, Any]] = json.loads(out) if out else []
    return result


def our_routes(ns: str) -> dict[str, dict[str, Any]]:
    """{dst: route} of `ip route show proto 252`, IPv4 and IPv6."""
    routes = ip_json(ns, "-4", "route", "show", "proto", "252") + ip_json(ns, "-6", "route", "show", "proto", "252")
    return {r["dst"]: r for r in routes}


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that entered namespace `ns` (the thread ends with it)."""

    def job() -> T:
        enter_netns(ns)
        return fn()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(job).result(timeout=120)


@dataclass(frozen=True)
class Lab:
    """A namespace with a veth pair: `near` (192.0.2.1/24, 2001:db8:1::1/64) and `far`, both up."""

    ns: str
    near: str
    far: str
    gw4: str = "192.0.2.2"
    gw6: str = "2001:db8:1::2"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", self.ns, *args, check=check)


@contextmanager
def namespace(tag: str) -> Iterator[str]:
    name = unique(f"mcrdt-{tag}-")
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


@contextmanager
def veth_lab(tag: str, addresses: bool = True) -> Iterator[Lab]:
    with namespace(tag) as ns:
        lab = Lab(ns, unique("mva"), unique("mvb"))
        try:
            lab.ip("link", "add", lab.near, "type", "veth", "peer", "name", lab.far)
            lab.ip("link", "set", lab.near, "up")
            lab.ip("link", "set", lab.far, "up")
            if addresses:
                lab.ip("addr", "add", "192.0.2.1/24", "dev", lab.near)
                lab.ip("addr", "add", "2001:db8:1::1/64", "dev", lab.near, "nodad")
            yield lab
        finally:
            lab.ip("link", "del", lab.near, check=False)  # the namespace takes it too; be explicit


def kernel_has_8021q() -> bool:
    """Try to make a VLAN device in a throwaway namespace."""
    with namespace("vlanprobe") as ns:
        return sh("ip", "-n", ns, "link", "add", "link", "lo", "name", "lo.5", "type", "vlan", "id", "5",
                  check=False).returncode == 0
