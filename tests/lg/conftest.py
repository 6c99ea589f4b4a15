"""Fixtures for the looking glass tests: the HTTP API served on a free local port over a `FakeBackend`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import structlog

from mcrd.lg.http import ApiServer, Limits
from tests.lg.fixtures import NOW, FakeBackend


def pytest_configure(config: pytest.Config) -> None:
    # Also registered by tests/lab/conftest.py; here too, for runs of tests/lg alone.
    config.addinivalue_line("markers", "lab: needs root, network namespaces and real FRR/BIRD (tests/lab)")


@dataclass
class Served:
    backend: FakeBackend
    server: ApiServer
    session: aiohttp.ClientSession
    url: str


@contextlib.asynccontextmanager
async def serving(limits: Limits | None = None) -> AsyncIterator[Served]:
    """The API over a fresh `FakeBackend` on a free local port, with a client session."""
    backend = FakeBackend()
    server = ApiServer(backend, structlog.get_logger("test"), clock=lambda: NOW, limits=limits or Limits())
    await server.start("127.0.0.1:0")
    host, port = server.addresses[0][:2]
    url = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession(url) as session:
            yield Served(backend, server, session, url)
    finally:
        await server.stop()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving() as it:
        yield it
