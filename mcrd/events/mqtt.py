"""An MQTT publisher that never makes its caller wait.

`publish()` puts the event on a bounded queue and returns; `run()` sends the queue to the broker with QoS 1. The
queue holds at most `queue_size` events and `queue_weight` list entries (prefixes) in all; beyond, the OLDEST waiting
events are dropped (and counted in `dropped`): subscribers keep seeing the current state, and the `seq` number every
payload carries shows the gap. A connection that fails or breaks is retried with exponential backoff; the events
that were being sent stay at the head of the line and are sent again after the reconnect, so nothing queued within
the bound is lost (at least once: an event whose PUBACK was lost arrives twice, with the same `seq`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import aiomqtt
import paho.mqtt.client as mqtt

from mcrd.config.model import Mqtt
from mcrd.events.payloads import Payload, topic

T = TypeVar("T")

QUEUE_SIZE = 10_000
QUEUE_WEIGHT = 1_000_000  # list entries (prefixes, mostly) in all the waiting events: bounds the memory, too
WINDOW = 100  # events sent before waiting for their PUBACKs
BACKOFF = (0.5, 30.0)  # seconds: first retry, longest wait between retries
PUBLISH_TIMEOUT = 10.0  # seconds without a PUBACK before the connection is taken as broken
CLOSE_TIMEOUT = 2.0  # seconds `close()` spends flushing

# paho (and aiomqtt) log through the stdlib, unstructured ("failed to receive on socket" at every broken
# connection): kept out of the daemon's output, which has its own mqtt_connected/mqtt_disconnected lines.
_PAHO_LOG = logging.getLogger("mcrd.events.paho")
_PAHO_LOG.propagate = False
_PAHO_LOG.addHandler(logging.NullHandler())


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: Payload
    seq: int
    weight: int = 1
    acked: bool = False
    data: bytes | None = None

    def encoded(self) -> bytes:
        if self.data is None:
            body = {**self.payload, "seq": self.seq}
            self.data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        return self.data


# The aiomqtt releases whose private socket glue (aiomqtt/client.py: the `_on_socket_*` callbacks it hands paho,
# `_misc_loop`, and the state `_loop`, `_client`, `_connected`, `_disconnected`, `_misc_task`) LoopSafeClient was
# written against. Another release gets aiomqtt.Client as it is, and a warning (`mqtt_stock_client`).
LOOP_SAFE_FOR = frozenset({"2.5.1"})
_SOCKET_CALLBACK = ("self", "client", "userdata", "sock")
LOOP_SAFE_HOOKS: dict[str, tuple[str, ...]] = {  # the methods LoopSafeClient replaces or calls, with their parameters
    "_on_socket_open": _SOCKET_CALLBACK,
    "_on_socket_close": _SOCKET_CALLBACK,
    "_on_socket_register_write": _SOCKET_CALLBACK,
    "_on_socket_unregister_write": _SOCKET_CALLBACK,
    "_misc_loop": ("self",),
}


def loop_safe_problems(version: str = aiomqtt.__version__, client: type[Any] = aiomqtt.Client) -> list[str]:
    """Why LoopSafeClient may not be used with aiomqtt `version` (its `client` class); empty when it may."""
    if version not in LOOP_SAFE_FOR:
        return [f"aiomqtt {version} is installed; LoopSafeClient was written against aiomqtt "
                f"{', '.join(sorted(LOOP_SAFE_FOR))}"]
    problems = []
    for name, params in LOOP_SAFE_HOOKS.items():
        method = getattr(client, name, None)
        if not callable(method):
            problems.append(f"aiomqtt.Client.{name} is missing")
            continue
        got = tuple(inspect.signature(method).parameters)
        if got != params:
            problems.append(f"aiomqtt.Client.{name} takes ({', '.join(got)}), LoopSafeClient expects "
                            f"({', '.join(params)})")
    return problems


@functools.cache
def client_class() -> tuple[type[aiomqtt.Client], str]:
    """The client class for the installed aiomqtt, and why: LoopSafeClient where it was written against this aiomqtt,
    aiomqtt.Client otherwise."""
    problems = loop_safe_problems()
    if problems:
        return aiomqtt.Client, "; ".join(problems)
    return LoopSafeClient, f"aiomqtt {aiomqtt.__version__}"


class LoopSafeClient(aiomqtt.Client):
    """aiomqtt.Client with its own glue between paho's socket and the event loop, sturdy under uvloop.

    Under uvloop, a socket error (the broker going away with data in flight) can make uvloop close its poll handle
    for the descriptor without calling the reader, and keep the dead handle registered under the descriptor number.
    Stock aiomqtt then never hears of the disconnect: its next add_writer fails in a loop callback where nobody sees
    it ("the handler is closed"), and the connection hangs until timeouts. tests/events saw this in about one broker
    restart out of six under uvloop.run, never with this class. Here registrations are made at once when paho calls
    from the loop's thread (a deferred one first checks that the socket is still paho's live one), a registration
    that fails counts as a lost connection, removals never raise, and the socket is released (unregistered, closed)
    whenever the context exits, also when a connect() still running in its thread is given up on.

    It replaces aiomqtt's private socket glue: the publisher uses it only where `client_class()` allows.
    """

    _released = False

    def _broken(self, exc: BaseException) -> None:
        if not self._connected.done():
            self._connected.set_exception(aiomqtt.MqttError(f"cannot poll the socket: {exc}"))
        elif not self._disconnected.done():
            self._disconnected.set_exception(exc)

    def _in_loop(self, work: Callable[[], None]) -> None:
        # paho calls back from the executor thread that connects, and from the loop's own thread.
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            work()
        else:
            self._loop.call_soon_threadsafe(work)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def readable() -> None:
            try:
                client.loop_read()
                # With TLS, decoded bytes can wait in the SSL object with nothing left to read on the socket.
                while (current := client.socket()) is not None and getattr(current, "pending", lambda: 0)() > 0:
                    client.loop_read()
            except Exception as exc:
                self._broken(exc)

        def register() -> None:
            if self._released:  # given up on while connect() ran in its thread: close what it opened
                self.release()
                return
            live = client.socket()
            if live is None or live is not sock:  # already closed (its number may be another socket's by now)
                return
            try:
                self._loop.add_reader(live.fileno(), readable)
            except (OSError, RuntimeError) as exc:
                self._broken(exc)
                return
            self._misc_task = self._loop.create_task(self._misc_loop())

        self._in_loop(register)

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:
                self._broken(exc)

        def register() -> None:
            live = client.socket()
            if live is None or live is not sock:
                return
            try:
                self._loop.add_writer(live.fileno(), writable)
            except (OSError, RuntimeError) as exc:
                self._broken(exc)

        self._in_loop(register)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._forget(sock, reader=False)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._forget(sock, reader=True)
        if self._misc_task is not None and not self._misc_task.done():
            self._loop.call_soon_threadsafe(self._misc_task.cancel)

    def _forget(self, sock: Any, *, reader: bool) -> None:
        fileno = sock.fileno()
        if fileno < 0:
            return
        # Each removal may fail (a handle uvloop closed on a socket error): it must still leave the loop's registry,
        # or the descriptor number stays unusable for the next socket that gets it.
        for remove in (self._loop.remove_writer, self._loop.remove_reader) if reader else (self._loop.remove_writer,):
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                remove(fileno)

    def release(self) -> None:
        """Unregister and close the socket if paho has not (a connection given up on, not closed by paho)."""
        self._released = True
        sock = self._client.socket()
        if sock is not None and sock.fileno() >= 0:
            self._forget(sock, reader=True)
            with contextlib.suppress(OSError):
                sock.close()
        if self._misc_task is not None and not self._misc_task.done():
            self._misc_task.cancel()

    async def __aenter__(self) -> Self:
        self._released = False
        try:
            return await super().__aenter__()
        except BaseException:
            self.release()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            self.release()


class _LostError(Exception):
    """The connection is to be dropped (broken, or a publish got no PUBACK in time)."""


class MqttPublisher:
    def __init__(
        self,
        settings: Mqtt,
        product_name: str,
        log: Any,
        *,
        queue_size: int = QUEUE_SIZE,
        queue_weight: int = QUEUE_WEIGHT,
        window: int = WINDOW,
        backoff: tuple[float, float] = BACKOFF,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        if min(queue_size, queue_weight, window) < 1:
            raise ValueError("queue_size, queue_weight and window must be at least 1")
        self.queue_size = queue_size
        self.queue_weight = queue_weight
        self.window = window
        self.backoff = backoff
        self.publish_timeout = publish_timeout
        self._log = log
        self._settings = settings
        self._product_name = product_name
        self._tls_context: ssl.SSLContext | None = None
        self._queue: collections.deque[_Outgoing] = collections.deque()
        self._weight = 0  # of what waits in _queue
        self._pending: list[_Outgoing] = []  # taken from the queue and not acknowledged yet: sent first
        self._seq = 0
        self._wake = asyncio.Event()  # work to do: an event, a settings change, close()
        self._interrupt = asyncio.Event()  # cut a backoff short: a settings change, close()
        self._reconnect = False
        self._closing = False
        self._closed = False
        self._run_task: asyncio.Task[None] | None = None
        self._broker = self._where()  # the one connected to (or tried): for the logs
        self.published = 0  # events the broker acknowledged
        self.dropped = 0  # events lost: queue overflow, or still queued when close() gave up
        self.connected = False

    # --- the caller's side: never waits ---------------------------------------------------------------------------

    def publish(self, suffix: str, payload: Payload, *, weight: int = 1) -> None:
        """Queue `payload` for `{topicPrefix}/{productName}/{suffix}`. The queue holds at most `queue_size` events
        and `queue_weight` in all (`weight`: how big the payload is, e.g. `payloads.weight(payload)`); beyond
        either, the oldest waiting events are dropped (the newest is always kept). The payload must not be changed
        afterwards: it is encoded when sent."""
        self._seq += 1
        if self._closed:
            self.dropped += 1
            return
        item = _Outgoing(topic(self._settings.topic_prefix, self._product_name, suffix), payload, self._seq,
                         max(1, weight))
        queue = self._queue
        queue.append(item)
        self._weight += item.weight
        while len(queue) > self.queue_size or (self._weight > self.queue_weight and len(queue) > 1):
            self._weight -= queue.popleft().weight
            self.dropped += 1
        self._wake.set()

    @property
    def queued(self) -> int:
        """Events not yet acknowledged by the broker (waiting, or sent and waiting for the PUBACK)."""
        return len(self._queue) + len(self._pending)

    @property
    def settings(self) -> Mqtt:
        return self._settings

    def reconfigure(self, settings: Mqtt, product_name: str) -> None:
        """New broker settings or product name: what is queued is kept; a changed broker means a new connection
        (at once, no backoff). A changed prefix or product name applies to events published from now on."""
        broker_changed = _broker(settings) != _broker(self._settings)
        self._settings = settings
        self._product_name = product_name
        if broker_changed:
            self._tls_context = None
            self._reconnect = True
            self._wake.set()
            self._interrupt.set()

    # --- the sending side ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, send, reconnect with backoff, until `close()`. Never raises (but is cancellable)."""
        self._run_task = asyncio.current_task()
        client, why = client_class()
        if client is not LoopSafeClient:
            self._log.warning("mqtt_stock_client", reason=why,
                              effect="aiomqtt's own socket glue: under uvloop, a broker that goes away with data in "
                                     "flight can leave the connection hanging until timeouts")
        low, high = self.backoff
        delay = low
        failures = 0  # attempts since the last good connection; only the first failure is logged as a warning
        try:
            while not self._closing:
                self._reconnect = False
                self._interrupt.clear()
                try:
                    await self._session()
                except (aiomqtt.MqttError, _LostError, OSError) as exc:
                    if self.connected:  # it was up: retry soon, and the retries that fail are not warnings
                        delay, failures = low, 1
                    self._lost(exc, failures, delay)
                except Exception as exc:  # a bug here must not take the daemon down with it
                    self.connected = False
                    self._log.error("mqtt_publisher_failed", error=repr(exc), broker=self._broker)
                else:  # closing, or new settings: reconnect at once
                    if self.connected:
                        self.connected = False
                        self._log.info("mqtt_disconnected", broker=self._broker, queued=self.queued,
                                       why="closing" if self._closing else "settings changed")
                    delay, failures = low, 0
                    continue
                failures += 1
                if self._closing or self._reconnect:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._interrupt.wait(), delay)
                delay = min(delay * 2, high)
        finally:
            if self.connected:  # cancelled while connected
                self._log.info("mqtt_disconnected", broker=self._broker, queued=self.queued, why="stopped")
            self.connected = False
            self._run_task = None

    def _lost(self, exc: BaseException, failures: int, delay: float) -> None:
        error = str(exc) or type(exc).__name__
        if self.connected:
            self._log.warning("mqtt_disconnected", broker=self._broker, error=error, queued=self.queued)
        elif failures == 0:
            self._log.warning("mqtt_connect_failed", broker=self._broker, error=error, retry_in=delay,
                              queued=self.queued)
        else:
            self._log.debug("mqtt_connect_retry_failed", broker=self._broker, error=error, retry_in=delay,
                            attempt=failures + 1)
        self.connected = False

    async def _session(self) -> None:
        """One connection: send until closing (with nothing left) or new settings; raise when it breaks."""
        settings = self._settings
        self._broker = self._where()
        client = client_class()[0](
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            tls_context=await self._tls(settings),
            logger=_PAHO_LOG,
            keepalive=30,
            timeout=self.publish_timeout,
            max_inflight_messages=self.window,
        )
        client.pending_calls_threshold = self.window + 1
        async with client:
            self.connected = True
            self._log.info("mqtt_connected", broker=self._broker, queued=self.queued)
            watch = asyncio.create_task(_until_disconnected(client), name="mqtt-watch")
            try:
                await self._pump(client, watch)
            finally:
                watch.cancel()
                await asyncio.wait({watch})
                if not watch.cancelled():
                    watch.exception()  # retrieved: no "exception was never retrieved" at exit

    async def _pump(self, client: aiomqtt.Client, watch: asyncio.Task[None]) -> None:
        while True:
            if not self._pending:
                if self._reconnect:
                    return
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await _unless_lost(watch, self._wake.wait())
                    continue
                self._pending = [self._queue.popleft() for _ in range(min(self.window, len(self._queue)))]
                self._weight -= sum(item.weight for item in self._pending)
            batch = self._pending
            sends = [asyncio.create_task(self._send(client, item)) for item in batch]  # started in order
            try:
                await _unless_lost(watch, asyncio.gather(*sends))
            finally:
                for send in sends:
                    send.cancel()
                await asyncio.wait(sends)
                self._pending = [item for item in self._pending if not item.acked]

    async def _send(self, client: aiomqtt.Client, item: _Outgoing) -> None:
        await client.publish(item.topic, item.encoded(), qos=1)
        item.acked = True
        self.published += 1

    async def _tls(self, settings: Mqtt) -> ssl.SSLContext | None:
        if not settings.tls:
            return None
        if self._tls_context is None:  # reads the system's CA certificates: not on the loop
            self._tls_context = await asyncio.get_running_loop().run_in_executor(None, ssl.create_default_context)
        return self._tls_context

    def _where(self) -> str:
        settings = self._settings
        return f"{'mqtts' if settings.tls else 'mqtt'}://{settings.host}:{settings.port}"

    # --- shutting down ---------------------------------------------------------------------------------------------

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Send what is queued within `timeout` seconds, then disconnect. What is left is counted in `dropped`."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._interrupt.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        task = self._run_task
        try:
            if task is not None and not task.done() and task is not asyncio.current_task():
                # run() is going: connected, it sends what is left, disconnects and returns; waiting to retry, it
                # returns at once.
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if not done:
                    task.cancel()
                    await asyncio.wait({task})
            if self.queued and loop.time() < deadline:
                # run() was cancelled (the daemon's task group stops it first) or was not connected: one last
                # connection of our own.
                self._reconnect = False
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._session()
                except (TimeoutError, aiomqtt.MqttError, _LostError, OSError) as exc:
                    self._log.debug("mqtt_flush_failed", broker=self._broker, error=str(exc) or type(exc).__name__)
        finally:
            if self.connected:
                self._log.info("mqtt_disconnected", broker=self._broker, queued=self.queued, why="closing")
            self.connected = False
            self._closed = True
            left = self.queued
            if left:
                self._log.warning("mqtt_events_not_sent", broker=self._broker, count=left)
                self.dropped += left
                self._queue.clear()
                self._weight = 0
                self._pending = []


def _broker(settings: Mqtt) -> tuple[object, ...]:
    return settings.host, settings.port, settings.username, settings.password, settings.tls


async def _until_disconnected(client: aiomqtt.Client) -> None:
    """Returns (raises aiomqtt.MqttError) when the connection breaks: the publisher subscribes to nothing, so the
    message iterator only ever ends that way."""
    async for _ in client.messages:
        pass


async def _unless_lost(watch: asyncio.Task[None], work: Awaitable[T]) -> T:
    """`await work`, unless the connection breaks first (then `_LostError`)."""
    future = asyncio.ensure_future(work)
    try:
        await asyncio.wait({future, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not future.done():
            future.cancel()
            future.add_done_callback(_retrieve)
    if future.done() and not future.cancelled():
        exc = future.exception()
        if exc is None:
            return future.result()
        if isinstance(exc, aiomqtt.MqttError):
            raise _LostError(str(exc) or "no acknowledgement") from exc
        raise exc
    cause = watch.exception() if watch.done() and not watch.cancelled() else None
    raise _LostError(str(cause) if cause else "connection lost") from cause


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a cancelled gather's outcome as seen (asyncio logs "exception was never retrieved" otherwise)."""
    if not future.cancelled():
        future.exception()
