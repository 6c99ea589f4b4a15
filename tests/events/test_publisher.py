"""The publisher without a broker: the queue bound and drop policy, a dead broker, the no-op sink."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from mcrd.config.model import Mqtt
from mcrd.events import Events
from mcrd.events.mqtt import MqttPublisher
from mcrd.rib.effects import Effects, SessionChanged
from tests.events.brokerlib import RecordingLog, free_port, lab_config, wait_until


def dead_settings() -> Mqtt:
    return Mqtt(host="127.0.0.1", port=free_port())  # nothing listens there


async def test_a_full_queue_drops_the_oldest(log: RecordingLog) -> None:
    publisher = MqttPublisher(dead_settings(), "lab-mcr", log, queue_size=3)
    for n in range(5):
        publisher.publish("session", {"n": n})
    assert (publisher.dropped, publisher.queued) == (2, 3)
    assert [(item.seq, item.payload["n"]) for item in publisher._queue] == [(3, 2), (4, 3), (5, 4)]
    assert publisher._queue[0].topic == "mcrd/lab-mcr/session"
    await publisher.close(timeout=1)
    assert (publisher.dropped, publisher.queued) == (5, 0)  # never sent: counted too
    publisher.publish("session", {"n": 5})  # after close: counted, not kept
    assert (publisher.dropped, publisher.queued) == (6, 0)


async def test_the_queue_bounds_the_prefixes_too(log: RecordingLog) -> None:
    publisher = MqttPublisher(dead_settings(), "lab-mcr", log, queue_size=100, queue_weight=25)
    for n in range(4):
        publisher.publish("routes", {"n": n}, weight=10)
    assert [item.payload["n"] for item in publisher._queue] == [2, 3]  # 20 of 25: the oldest went
    assert publisher.dropped == 2
    publisher.publish("routes", {"n": 4}, weight=1000)  # alone above the bound: kept, the others go
    assert [item.payload["n"] for item in publisher._queue] == [4]
    assert publisher.dropped == 4
    publisher.publish("session", {"n": 5})
    assert [item.payload["n"] for item in publisher._queue] == [5]
    await publisher.close(timeout=0.5)


@pytest.fixture(params=["refused", "silent"])
def dead_broker(request: pytest.FixtureRequest) -> Iterator[Mqtt]:
    """Nothing listening (connections refused at once), or a listener that never speaks MQTT (the connection is
    made, the CONNACK never comes: a broker that hangs)."""
    if request.param == "refused":
        yield dead_settings()
        return
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # never accepted: the kernel completes the handshakes, nobody answers
        yield Mqtt(host="127.0.0.1", port=listener.getsockname()[1])


async def test_a_dead_broker_does_not_stall_the_loop(dead_broker: Mqtt, log: RecordingLog) -> None:
    publisher = MqttPublisher(dead_broker, "lab-mcr", log, queue_size=1000, backoff=(0.05, 0.2),
                              publish_timeout=2.0)
    runner = asyncio.create_task(publisher.run())
    loop = asyncio.get_running_loop()
    ticks: list[tuple[float, float]] = []  # (due, late)

    async def ticker() -> None:  # the "routing" the publisher must not hold up
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            ticks.append((due, loop.time() - due))

    ticking = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        for n in range(100_000):
            publisher.publish("routes", {"n": n})
        took = time.perf_counter() - started
        published_at = loop.time()
        assert took < 5.0, took  # ~0.1 s; a loaded machine gets a large margin
        assert publisher.dropped == 99_000
        assert publisher.queued == 1000
        assert publisher._queue[0].payload["n"] == 99_000  # the newest are kept
        # Connection attempts fail (at once, or after the 2 s without a CONNACK) and are retried, while other
        # work stays on time: a loop blocked by a connection attempt would show it as a tick seconds late.
        await wait_until(lambda: "mqtt_connect_failed" in log.events())
        await wait_until(lambda: sum(due > published_at for due, _ in ticks) >= 50)
        late = [late for due, late in ticks if due > published_at]
        assert max(late) < 1.0, max(late)
        assert not publisher.connected
        assert not runner.done()
    finally:
        ticking.cancel()
        started = time.perf_counter()
        await publisher.close(timeout=1)
        assert time.perf_counter() - started < 5
        await asyncio.wait({runner, ticking})
    assert runner.done()
    assert runner.exception() is None
    assert publisher.dropped == 100_000
    warnings = log.events("warning")
    assert warnings.count("mqtt_connect_failed") == 1, log.text()  # logged once, the retries at debug level
    assert "mqtt_events_not_sent" in warnings


async def test_without_mqtt_the_sink_does_nothing(log: RecordingLog) -> None:
    events = Events.from_config(lab_config(), log)
    assert not events.enabled
    events.emit_effects([Effects(records=(SessionChanged("10.0.1.2", "vxc1", "UP"),))], "2024-05-01T00:00:00.000Z")
    events.emit_config_rejected([], "2024-05-01T00:00:00.000Z")
    events.emit_exabgp_restart("gone", 1, "2024-05-01T00:00:00.000Z")
    runner = asyncio.create_task(events.run())
    await asyncio.sleep(0)
    assert (events.dropped, events.published, events.queued, events.connected) == (0, 0, 0, False)
    runner.cancel()
    await asyncio.wait({runner})
    await events.close()
    assert log.entries == []
