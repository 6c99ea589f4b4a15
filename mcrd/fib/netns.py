"""Enter a network namespace, for one thread only (the kernel threads of mcrd, the lab tests, the benchmark)."""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNET = 0x40000000


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into a network namespace: a name under /run/netns, or a path.

    Sockets the thread opens afterwards, and its /proc/sys/net reads and writes, belong to that namespace; the
    rest of the process stays where it is. A missing namespace raises FileNotFoundError (none is created)."""
    path = netns if "/" in netns else f"/run/netns/{netns}"
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot enter network namespace {netns}: {os.strerror(code)}")
    finally:
        os.close(fd)
