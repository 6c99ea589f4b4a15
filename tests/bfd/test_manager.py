"""BfdManager's life cycle without sockets (no peers): run, close, cancellation, configure before and after."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any

import pytest
import structlog

from mcrd.bfd import BfdManager, BfdPeerConfig, BfdState, BfdTransition

LOG: Any = structlog.get_logger("test")


def manager() -> tuple[BfdManager, list[BfdTransition]]:
    seen: list[BfdTransition] = []
    return BfdManager(seen.append, LOG), seen


async def test_close_ends_run() -> None:
    m, seen = manager()
    task = asyncio.create_task(m.run())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(m.close(), 5)
    await asyncio.wait_for(task, 5)
    assert seen == []
    assert m.status() == {}


async def test_cancel_ends_run() -> None:
    m, _ = manager()
    task = asyncio.create_task(m.run())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    await asyncio.wait_for(m.close(), 5)  # after cancellation: returns at once


async def test_configure_before_run_and_close_without_run() -> None:
    m, seen = manager()
    cfg = BfdPeerConfig(ip_address("192.0.2.2"), ip_address("192.0.2.1"), None)
    m.configure([cfg])
    st = m.status()["192.0.2.2"]
    assert (st.state, st.remote_state, st.transitions, st.local_discriminator != 0) == (
        BfdState.DOWN, BfdState.DOWN, 0, True)
    assert (st.tx_interval_ms, st.detection_time_ms) == (1000, 0)  # the slow rate while not Up, nothing heard
    m.configure([cfg])
    assert m.status()["192.0.2.2"].local_discriminator == st.local_discriminator  # identical: untouched
    await m.close()
    await asyncio.wait_for(m.run(), 1)  # a closed manager's run() returns at once
    assert seen == []  # nothing was sent, so AdminDown is no transition anyone saw


def test_configure_refuses_conflicting_duplicates() -> None:
    m, _ = manager()
    a = BfdPeerConfig(ip_address("192.0.2.2"), ip_address("192.0.2.1"), None)
    b = BfdPeerConfig(ip_address("192.0.2.2"), ip_address("192.0.2.1"), None, tx_interval_ms=500)
    with pytest.raises(ValueError, match=r"192\.0\.2\.2 configured twice"):
        m.configure([a, b])


def test_peer_config_checks() -> None:
    with pytest.raises(ValueError, match="another family"):
        BfdPeerConfig(ip_address("192.0.2.2"), ip_address("2001:db8::1"), None)
    with pytest.raises(ValueError, match="multiplier"):
        BfdPeerConfig(ip_address("192.0.2.2"), ip_address("192.0.2.1"), None, multiplier=0)
