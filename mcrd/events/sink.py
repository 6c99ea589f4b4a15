"""The daemon's side of events: turns what happened into payloads and hands them to the MQTT publisher.

`Events.from_config(config, log)` is a no-op sink when `events.mqtt` is absent (the emit methods return at once);
`update(config)` on a reload starts, stops or re-points the publisher. Every emit method is synchronous and never
waits: the route processor's loop calls them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcrd.config.model import Config
from mcrd.events import payloads
from mcrd.events.mqtt import BACKOFF, QUEUE_SIZE, MqttPublisher
from mcrd.rib.effects import Effects

if TYPE_CHECKING:
    from mcrd.config.load import ConfigProblem


class Events:
    def __init__(
        self, config: Config, log: Any, *, queue_size: int = QUEUE_SIZE, backoff: tuple[float, float] = BACKOFF
    ) -> None:
        self._log = log
        self._queue_size = queue_size
        self._backoff = backoff
        self._mcr = config.mcr.product_name
        self._secrets = secrets_of(config)
        self._publisher: MqttPublisher | None = None
        self._retired: list[MqttPublisher] = []  # removed by update(), to be flushed and closed by run() or close()
        self._former: list[MqttPublisher] = []  # every publisher removed by update(): their counters still count
        self._changed = asyncio.Event()
        if config.events.mqtt is not None:
            self._publisher = self._new_publisher(config)

    @classmethod
    def from_config(
        cls, config: Config, log: Any, *, queue_size: int = QUEUE_SIZE, backoff: tuple[float, float] = BACKOFF
    ) -> Events:
        """The daemon's events: a no-op sink when `events.mqtt` is absent (until a reload adds it)."""
        return cls(config, log, queue_size=queue_size, backoff=backoff)

    def _new_publisher(self, config: Config) -> MqttPublisher:
        assert config.events.mqtt is not None
        return MqttPublisher(config.events.mqtt, config.mcr.product_name, self._log, queue_size=self._queue_size,
                             backoff=self._backoff)

    # --- state ---------------------------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._publisher is not None

    @property
    def publisher(self) -> MqttPublisher | None:
        return self._publisher

    @property
    def dropped(self) -> int:
        """Events lost since start (queue overflow, or not sent by shutdown): for the metrics."""
        return sum(p.dropped for p in self._publishers())

    @property
    def published(self) -> int:
        return sum(p.published for p in self._publishers())

    def _publishers(self) -> list[MqttPublisher]:
        return [*self._former, *([self._publisher] if self._publisher else [])]

    @property
    def queued(self) -> int:
        return self._publisher.queued if self._publisher else 0

    @property
    def connected(self) -> bool:
        return self._publisher is not None and self._publisher.connected

    # --- emitting (never waits) ----------------------------------------------------------------------------------

    def emit_effects(self, effects: Effects | Sequence[Effects], now_iso: str) -> None:
        """One daemon round: pass every `Effects` of the batch at once (one `routes` message for the round)."""
        if self._publisher is None:
            return
        for suffix, payload in payloads.effects_messages(effects, mcr=self._mcr, timestamp=now_iso,
                                                         secrets=self._secrets):
            self._publisher.publish(suffix, payload, weight=payloads.weight(payload))

    def emit_config_rejected(self, problems: Sequence[ConfigProblem], now_iso: str) -> None:
        if self._publisher is None:
            return
        suffix, payload = payloads.config_rejected_message(problems, mcr=self._mcr, timestamp=now_iso,
                                                           secrets=self._secrets)
        self._publisher.publish(suffix, payload, weight=payloads.weight(payload))

    def emit_exabgp_restart(self, reason: str, restarts: int, now_iso: str) -> None:
        if self._publisher is None:
            return
        self._publisher.publish(*payloads.exabgp_restart_message(reason, restarts, mcr=self._mcr,
                                                                 timestamp=now_iso, secrets=self._secrets))

    def emit_interface(self, ifname: str, vxc: str, fault: str, now_iso: str) -> None:
        if self._publisher is None:
            return
        self._publisher.publish(*payloads.interface_message(ifname, vxc, fault, mcr=self._mcr, timestamp=now_iso))

    def emit_bfd(self, peer: str, vxc: str, old: str, new: str, diag: str, now_iso: str) -> None:
        if self._publisher is None:
            return
        self._publisher.publish(*payloads.bfd_message(peer, vxc, old, new, diag, mcr=self._mcr, timestamp=now_iso))

    # --- reload ----------------------------------------------------------------------------------------------------

    def update(self, config: Config) -> None:
        """A reloaded config: new broker settings reconnect (what is queued goes to the new broker); `events.mqtt`
        removed stops the publisher after a short flush; added starts one. Call it before emitting the reload's
        effects, so they carry the new product name."""
        self._mcr = config.mcr.product_name
        self._secrets = secrets_of(config)
        mqtt = config.events.mqtt
        current = self._publisher
        if current is None:
            if mqtt is not None:
                self._publisher = self._new_publisher(config)
                self._changed.set()
        elif mqtt is None:
            self._retired.append(current)
            self._former.append(current)
            self._publisher = None
            self._changed.set()
        else:
            current.reconfigure(mqtt, config.mcr.product_name)

    # --- running ---------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the current publisher; follow `update()`. Cancel it to stop (then `close()` flushes)."""
        running: MqttPublisher | None = None
        runner: asyncio.Task[None] | None = None
        try:
            while True:
                self._changed.clear()
                while self._retired:
                    old = self._retired.pop(0)
                    await old.close()  # its run() sees the close, flushes and returns
                    if old is running:
                        running, runner = None, None
                if self._publisher is not running:
                    running = self._publisher
                    runner = asyncio.create_task(running.run(), name="mqtt") if running else None
                if not self._changed.is_set():
                    await self._changed.wait()
        finally:
            if runner is not None and not runner.done():
                runner.cancel()
                await asyncio.wait({runner})

    async def close(self) -> None:
        """Flush what is queued (a short deadline), then disconnect. Emitting afterwards is counted as dropped."""
        while self._retired:
            await self._retired.pop(0).close()
        if self._publisher is not None:
            await self._publisher.close()


def secrets_of(config: Config) -> list[str]:
    """Every secret the config holds: BGP MD5 passwords, the API token, the MQTT password."""
    secrets = [conn.password for _, _, conn in config.connections() if conn.password]
    if config.api.token:
        secrets.append(config.api.token)
    if config.events.mqtt is not None and config.events.mqtt.password:
        secrets.append(config.events.mqtt.password)
    return secrets
