"""A real mosquitto per test, a recording subscriber and a recording logger, for the MQTT event tests.

Every wait polls with a deadline (the machine may be loaded): nothing synchronises by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from mcrd.config.model import Config
from mcrd.events.mqtt import LoopSafeClient

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
DEADLINE = 30.0  # seconds: generous, a loaded 2-core machine; a passing run takes a fraction of it


def require_mosquitto() -> str:
    """Skip without mosquitto; under CI fail instead, where a skip would hide a missing install step."""
    if MOSQUITTO is None:
        message = "MQTT tests need mosquitto (apt-get install mosquitto)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return MOSQUITTO


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """mosquitto on 127.0.0.1:`port`, started and stopped by pid; `restart()` keeps the port (and, with
    persistence, the sessions of clients that asked for one)."""

    def __init__(self, workdir: Path, *, port: int | None = None, extra: tuple[str, ...] = (),
                 listener: str | None = None) -> None:
        self.binary = require_mosquitto()
        self.workdir = workdir
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [
            listener or f"listener {self.port} 127.0.0.1",
            *extra,
            "user root",  # started as root, mosquitto would switch to its own user and lose our files
            "persistence true",
            f"persistence_location {workdir}/",
            "max_queued_messages 100000",  # per offline persistent client; mosquitto's default is 1000
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if "allow_anonymous" not in " ".join(extra):
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + DEADLINE
        while not port_accepts(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto does not accept on {self.port}: {self.log.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM by pid (mosquitto saves its sessions), SIGKILL if it lingers; wait for the exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RecordingLog:
    """Stands in for a structlog logger: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str) -> Callable[..., None]:
        def log(event: str, **fields: Any) -> None:
            self.entries.append((level, event, fields))

        return log

    def __getattr__(self, level: str) -> Callable[..., None]:
        if level in ("debug", "info", "warning", "error", "exception", "critical"):
            return self._record(level)
        raise AttributeError(level)

    def events(self, level: str | None = None) -> list[str]:
        return [event for lvl, event, _ in self.entries if level is None or lvl == level]

    def text(self) -> str:
        return "\n".join(f"{lvl} {event} {fields!r}" for lvl, event, fields in self.entries)


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]


@dataclass
class Subscriber:
    client: aiomqtt.Client
    messages: list[Received] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def disconnected(self) -> bool:
        return self.task is not None and self.task.done()

    async def wait_for(self, count: int, deadline: float = DEADLINE) -> list[Received]:
        """At least `count` messages, polling until `deadline` seconds have passed."""
        await wait_until(lambda: len(self.messages) >= count, deadline,
                         lambda: f"{len(self.messages)} of {count} messages")
        return self.messages

    def payloads(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages if type_ is None or m.payload.get("type") == type_]


@asynccontextmanager
async def subscriber(port: int, topic: str = "mcrd/#", *, messages: list[Received] | None = None,
                     **client_options: Any) -> AsyncIterator[Subscriber]:
    """A connected client, subscribed (SUBACK received) with QoS 1, recording every message (into `messages`
    when given: one list over several connections)."""
    client = LoopSafeClient("127.0.0.1", port, **client_options)
    async with client:
        await client.subscribe(topic, qos=1)
        sub = Subscriber(client, messages if messages is not None else [])

        async def collect() -> None:
            with contextlib.suppress(aiomqtt.MqttError):  # the broker went away: the test decides what next
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    sub.messages.append(Received(str(message.topic), json.loads(message.payload)))

        sub.task = asyncio.create_task(collect())
        try:
            yield sub
        finally:
            task = sub.task
            task.cancel()
            await asyncio.wait({task})


async def wait_until(predicate: Callable[[], bool], deadline: float = DEADLINE,
                     what: Callable[[], str] | None = None) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"not reached within {deadline}s" + (f": {what()}" if what else ""))
        await asyncio.sleep(0.01)


def lab_config(mqtt: dict[str, Any] | None = None, *, product_name: str = "lab-mcr") -> Config:
    """A config with no VXC, and `events.mqtt` when `mqtt` is given (Megaport field names)."""
    data: dict[str, Any] = {"mcr": {"productName": product_name, "routerId": "192.0.2.1"}}
    if mqtt is not None:
        data["events"] = {"mqtt": {"host": "127.0.0.1", **mqtt}}
    return Config.model_validate(data)
