"""`LinkMonitor`: the kernel's links and addresses, event-driven, for interface tracking (mcrd.iface.tracking).

One dedicated thread (the thread model of mcrd.fib.worker: pyroute2 fails on a uvloop loop, svinota/pyroute2#1335)
holds two netlink sockets: a plain socket subscribed to link and address changes (RTMGRP_LINK, RTMGRP_IPV4_IFADDR,
RTMGRP_IPV6_IFADDR), used only to wake up, and pyroute2's `IPRoute`, unsubscribed, that dumps links and addresses.
On every wake-up the thread reads all pending notifications, dumps the whole state (a few ms for a handful of
links) and hands a new `LinkSnapshot` to the event loop when it differs from the last one. Dumping instead of
applying deltas keeps the snapshot exact whatever was missed: after ENOBUFS (the kernel dropped notifications
because the socket buffer was full) the subscribed socket is recreated and the state dumped again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from mcrd.fib.netns import enter_netns
from mcrd.iface.tracking import LinkInfo, LinkSnapshot

RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x08, 0x40
RETRY = 0.5  # seconds before dumping again after a failed dump


def snapshot_of(links: list[Any], addresses: list[Any]) -> LinkSnapshot:
    """A `LinkSnapshot` from pyroute2 ifinfmsg and ifaddrmsg dumps."""
    by_index: dict[int, set[str]] = {}
    for msg in addresses:
        flags = msg.get("flags") or msg["flags"]  # IFA_FLAGS (32 bits) when present, else the header's 8 bits
        if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            continue  # not usable yet (or ever): a session cannot bind to it
        address = msg.get("local") or msg.get("address")
        if address:
            by_index.setdefault(msg["index"], set()).add(str(ipaddress.ip_address(address.split("%")[0])))
    infos = {}
    for msg in links:
        name = msg.get("ifname")
        if not name:
            continue
        infos[name] = LinkInfo(name, bool(msg["flags"] & IFF_UP), bool(msg["flags"] & IFF_LOWER_UP),
                               str(msg.get("operstate") or "UNKNOWN"), frozenset(by_index.get(msg["index"], ())))
    return LinkSnapshot(infos)


class LinkMonitor:
    """`snapshot = await start()`, then `on_change(snapshot)` on the event loop at every change; `close()`."""

    def __init__(self, on_change: Callable[[LinkSnapshot], None], log: Any, *, netns: str | None = None,
                 rcvbuf: int = 1 << 20) -> None:
        self.on_change = on_change
        self.log = log
        self.netns = netns
        self.rcvbuf = rcvbuf
        self.overruns = 0  # ENOBUFS seen (notifications lost, state dumped again)
        self.dumps = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = -1, -1
        self._last: LinkSnapshot | None = None

    async def start(self) -> LinkSnapshot:
        self._loop = asyncio.get_running_loop()
        first: asyncio.Future[LinkSnapshot] = self._loop.create_future()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._main, args=(first,), name="mcrd-linkmon", daemon=True)
        self._thread.start()
        return await first

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        os.write(self._stop_w, b"x")
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        os.close(self._stop_r)
        os.close(self._stop_w)

    # --- in the thread -----------------------------------------------------------------------------------------

    def _post(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon is gone
            self._loop.call_soon_threadsafe(functools.partial(fn, *args, **kwargs))

    def _subscribe(self) -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        return sock

    def _main(self, first: asyncio.Future[LinkSnapshot]) -> None:
        from pyroute2 import IPRoute  # type: ignore[import-untyped]

        ipr: Any = None
        sock: socket.socket | None = None
        own_loop = asyncio.SelectorEventLoop()  # pyroute2's own loop: not the daemon's uvloop
        try:
            if self.netns is not None:
                enter_netns(self.netns)
            sock = self._subscribe()  # subscribed before the first dump: no change falls in between
            ipr = IPRoute(use_event_loop=own_loop)
            snapshot = self._dump(ipr)
            self._last = snapshot
            assert self._loop is not None
            self._loop.call_soon_threadsafe(first.set_result, snapshot)
        except BaseException as exc:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(first.set_exception, exc)
            if sock is not None:
                sock.close()
            if ipr is not None:
                ipr.close()
            own_loop.close()
            return
        try:
            self._watch(ipr, sock)
        except Exception as exc:  # the monitor stops; sessions keep their last known state
            self._post(self.log.error, "link_monitor_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            ipr.close()
            own_loop.close()

    def _watch(self, ipr: Any, sock: socket.socket) -> None:
        holder = [sock]  # the subscribed socket, replaced after ENOBUFS
        try:
            self._watch_loop(ipr, holder)
        finally:
            holder[0].close()

    def _watch_loop(self, ipr: Any, holder: list[socket.socket]) -> None:
        timeout: float | None = None
        while True:
            sock = holder[0]
            readable, _, _ = select.select([sock.fileno(), self._stop_r], [], [], timeout)
            if self._stop_r in readable:
                return
            timeout = None
            try:
                while sock.recv(1 << 16):
                    pass
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                self._post(self.log.warning, "link_monitor_overrun", why="netlink notifications lost (ENOBUFS); "
                           "socket recreated, state dumped again")
                sock.close()
                holder[0] = self._subscribe()
            try:
                snapshot = self._dump(ipr)
            except Exception as exc:  # the next wake-up, or the retry, dumps again
                self._post(self.log.error, "link_dump_failed", error=str(exc))
                timeout = RETRY
                continue
            if snapshot != self._last:
                self._last = snapshot
                self._post(self.on_change, snapshot)

    def _dump(self, ipr: Any) -> LinkSnapshot:
        self.dumps += 1
        return snapshot_of(list(ipr.link("dump")), list(ipr.addr("dump")))
