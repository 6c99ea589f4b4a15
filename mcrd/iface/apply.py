"""Apply link plans to the kernel with pyroute2: VLAN devices, MTU, link up, addresses, forwarding sysctls.

`LinkApplier` is synchronous and owns a pyroute2 `IPRoute`: create and use it in one thread (the `FibWorker`
thread does). It is idempotent: what is already right is kept (addresses, devices), what exists but is wrong is
reported, never deleted. Problems come back in the report, one message per VXC, never as exceptions:

* the carrying interface does not exist yet: "waiting for interface eth1 (VXC aws-vxc)";
* a VLAN device cannot be made: "VXC 'aws-vxc': cannot create VLAN device eth1.100: this kernel has no 802.1Q
  support (Unknown device type)".
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from mcrd.config.devices import ETH_P_8021Q, VlanDevice
from mcrd.iface.plan import LinkPlan

IFF_UP = 0x1
IFA_F_NODAD = 0x02
GLOBAL_SYSCTLS = (
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
    ("net/ipv4/conf/all/rp_filter", "0"),  # the kernel uses max(all, interface): both must be 0 for transit
    ("net/ipv4/conf/default/rp_filter", "0"),
)


class Netlink(Protocol):
    """The part of pyroute2's `IPRoute` used here (a recording fake stands in for it in tests)."""

    def link(self, command: str, **kwargs: Any) -> Any: ...

    def addr(self, command: str, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkState:
    index: int
    name: str
    mtu: int
    up: bool
    kind: str | None
    parent: int | None  # IFLA_LINK of a VLAN device
    vlan_id: int | None
    vlan_protocol: int | None


@dataclass(frozen=True, slots=True)
class LinkProblem:
    vxc: str
    ifname: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class LinkReport:
    ready: tuple[str, ...] = ()  # devices that carry their addresses and are up
    created: tuple[str, ...] = ()  # VLAN devices made in this call
    addresses_added: int = 0
    waiting: tuple[LinkProblem, ...] = ()  # the carrying interface does not exist (yet)
    errors: tuple[LinkProblem, ...] = ()


def link_state(msg: Any) -> LinkState:
    """The fields we need from a pyroute2 ifinfmsg."""
    kind = msg.get(("linkinfo", "kind"))
    return LinkState(
        index=msg["index"],
        name=msg.get("ifname"),
        mtu=msg.get("mtu") or 0,
        up=bool(msg["flags"] & IFF_UP),
        kind=kind,
        parent=msg.get("link") if kind == "vlan" else None,
        vlan_id=msg.get(("linkinfo", "data", "vlan_id")) if kind == "vlan" else None,
        vlan_protocol=(msg.get(("linkinfo", "data", "vlan_protocol")) or ETH_P_8021Q) if kind == "vlan" else None,
    )


def vlan_request(device: VlanDevice, parent_index: int) -> dict[str, Any]:
    """The keyword arguments of `IPRoute.link("add", ...)` for one VLAN device."""
    return {
        "ifname": device.name,
        "kind": "vlan",
        "link": parent_index,
        "vlan_id": device.vlan_id,
        "vlan_protocol": device.ethertype,
    }


def _error_text(exc: Exception) -> str:
    if isinstance(exc, NetlinkError):
        text = str(exc.args[1]) if len(exc.args) > 1 else ""
        return text or os.strerror(exc.code)
    return str(exc)


@dataclass
class _Run:
    ready: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    added: int = 0
    waiting: list[LinkProblem] = field(default_factory=list)
    errors: list[LinkProblem] = field(default_factory=list)


class LinkApplier:
    def __init__(self, ipr: Netlink | None = None, sysctl_root: Path = Path("/proc/sys")) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        if ipr is None:
            # pyroute2 runs its synchronous API on an asyncio loop of its own. Give it a plain selector loop, not
            # one from the global policy: a uvloop loop cannot open netlink sockets (svinota/pyroute2#1335), so
            # this keeps working even in a program that called uvloop.install().
            self._loop = asyncio.SelectorEventLoop()
            ipr = IPRoute(ext_ack=True, use_event_loop=self._loop)
        self.ipr: Netlink = ipr
        self.sysctl_root = sysctl_root

    def close(self) -> None:
        self.ipr.close()
        if self._loop is not None:
            self._loop.close()

    def links(self) -> dict[str, LinkState]:
        return {state.name: state for state in map(link_state, self.ipr.link("dump"))}

    def missing(self, names: Iterable[str]) -> set[str]:
        present = self.links()
        return {name for name in names if name not in present}

    def wait_for_links(self, names: Iterable[str], timeout: float, interval: float = 0.1) -> set[str]:
        """Poll the link table until every name exists or `timeout` passes; the names still missing."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while (missing := self.missing(wanted)) and time.monotonic() < deadline:
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        return missing

    def apply(self, plans: Sequence[LinkPlan]) -> LinkReport:
        run = _Run()
        for path, value in GLOBAL_SYSCTLS:
            self._sysctl(run, "", path, value)
        links = self.links()
        for plan in plans:
            if plan.interface not in links:
                problem = f"waiting for interface {plan.interface} (VXC {plan.vxc})"
                run.waiting.append(LinkProblem(plan.vxc, plan.interface, problem))
                continue
            try:
                links = self._apply_one(plan, links, run)
            except (NetlinkError, OSError) as exc:  # a change refused by the kernel; the other VXCs go on
                message = f"VXC {plan.vxc!r}: cannot configure {plan.ifname}: {_error_text(exc)}"
                run.errors.append(LinkProblem(plan.vxc, plan.ifname, message))
        return LinkReport(tuple(dict.fromkeys(run.ready)), tuple(run.created), run.added, tuple(run.waiting),
                          tuple(run.errors))

    def _apply_one(self, plan: LinkPlan, links: dict[str, LinkState], run: _Run) -> dict[str, LinkState]:
        for device in plan.devices:
            have = links.get(device.name)
            if have is None:
                try:
                    self.ipr.link("add", **vlan_request(device, links[device.link].index))
                except NetlinkError as exc:
                    run.errors.append(LinkProblem(plan.vxc, device.name, _create_failed(plan.vxc, device, exc)))
                    return links
                run.created.append(device.name)
                links = self.links()
            elif (have.kind, have.parent, have.vlan_id, have.vlan_protocol) != (
                "vlan", links[device.link].index, device.vlan_id, device.ethertype
            ):
                message = f"VXC {plan.vxc!r}: {device.name} exists but is not {device.describe()}: remove or rename it"
                run.errors.append(LinkProblem(plan.vxc, device.name, message))
                return links
        if plan.mtu is not None:
            for name in plan.chain[:-1]:  # a VLAN device cannot be larger than what carries it: raise, never lower
                if links[name].mtu < plan.mtu:
                    self.ipr.link("set", index=links[name].index, mtu=plan.mtu)
            if links[plan.ifname].mtu != plan.mtu:
                self.ipr.link("set", index=links[plan.ifname].index, mtu=plan.mtu)
        for name in plan.chain:
            if not links[name].up:
                self.ipr.link("set", index=links[name].index, state="up")
            self._sysctl(run, plan.vxc, f"net/ipv4/conf/{name}/rp_filter", "0")
        index = links[plan.ifname].index
        have_addrs = {(a.get("address"), a["prefixlen"]) for a in self.ipr.addr("dump") if a["index"] == index}
        for address in plan.addresses:
            if (str(address.ip), address.network.prefixlen) in have_addrs:
                continue
            extra = {"flags": IFA_F_NODAD} if address.version == 6 else {}  # usable at once, no DAD wait
            try:
                self.ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen, **extra)
                run.added += 1
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
        run.ready.append(plan.ifname)
        return self.links() if plan.mtu is not None or plan.devices else links

    def _sysctl(self, run: _Run, vxc: str, path: str, value: str) -> None:
        target = self.sysctl_root / path
        try:
            if target.read_text().strip() != value:
                target.write_text(value + "\n")
        except OSError as exc:
            message = f"cannot set {target} to {value}: {exc.strerror or exc}" + (f" (VXC {vxc!r})" if vxc else "")
            run.errors.append(LinkProblem(vxc, path, message))


def _create_failed(vxc: str, device: VlanDevice, exc: NetlinkError) -> str:
    text = _error_text(exc)
    if exc.code == errno.EOPNOTSUPP or "Unknown device type" in text:  # no 8021q module, for 802.1ad as well
        return f"VXC {vxc!r}: cannot create VLAN device {device.name}: this kernel has no 802.1Q support ({text})"
    return f"VXC {vxc!r}: cannot create VLAN device {device.name} ({device.describe()}): {text}"
