"""Fixtures for the event tests: `broker` is a running mosquitto of the test's own, stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.events.brokerlib import Broker, RecordingLog


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start brokers (each in a directory of its own); every one is stopped, by pid, when the test ends."""
    brokers: list[Broker] = []

    def make(**options: Any) -> Broker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        broker = Broker(workdir, **options)
        brokers.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()
