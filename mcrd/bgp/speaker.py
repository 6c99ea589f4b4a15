"""ExaBGP as mcrd's BGP session engine: a supervised child process, its API wired to the daemon.

- ExaBGP runs `python -m mcrd.bgp.bridge SOCKET`, which connects to the unix socket served here. Its first line is
  what the launcher installed into that ExaBGP and the reactor speed it set (exabgp_launch.Report), logged as
  `exabgp_fixes` and kept in `fixes`.
- Everything ExaBGP writes is read at once, without pause (a stalled reader makes ExaBGP miss keepalives), decoded
  and handed to `on_message`; the daemon queues it for the route processor.
- No single line stops that: lines are split by `lines.LineSplitter` (up to 8 MiB each, far above the ~2 MB of JSON
  one 65,535-byte UPDATE can give). A received UPDATE that cannot be used at all (longer than that, or not
  understood) means mcrd no longer knows what that peer sent: the session is reset (`teardown`, Cease 8 "Out of
  Resources", RFC 4486) so that the peer sends its table again, rather than keeping stale routes.
- Commands go out with at most `max_in_flight` awaiting their `done`/`error` (unread acks fill the pipe after
  ~13,000 lines and both sides block). A connection that dies under a write is let go, whatever the error says
  (uvloop's is a RuntimeError): the writer lives on for the next ExaBGP's.
- When ExaBGP dies it is restarted with backoff; `on_lost` tells the daemon that every session is down.
- A new config is applied by rewriting ExaBGP's configuration and sending SIGUSR1: ExaBGP starts new neighbors,
  stops removed ones and keeps the sessions whose own settings did not change. A neighbor left out of the
  configuration is how a session is taken down on purpose (a connection shut down, or anything else that renders
  the config without it): with the launcher's fixes (exabgp_launch.py, fix 4) ExaBGP sends that peer a Cease
  NOTIFICATION, subcode 3 (Peer De-configured), closes the connection and reports the session down on the API.
  Put back and signalled again, the neighbor is a new session. (tests/lab/test_stop.py)
- `stop()` sends SIGTERM: ExaBGP sends every established peer a Cease, subcode 2 (Administrative Shutdown), and
  exits (fix 4 again; stock 5.0.15 closes the connections without a NOTIFICATION).
- ExaBGP runs in a session of its own but dies with the daemon whatever kills it, `kill -9` included (fix 5,
  PR_SET_PDEATHSIG): the peers then see the connection close at once, as from a crashed router, with no Cease.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mcrd.bgp import exabgp_config, exabgp_launch
from mcrd.bgp.lines import LINE_LIMIT, LineSplitter, Oversized
from mcrd.bgp.messages import Ack, Decoder, Malformed, Parsed, UpdateError, received_update_peer
from mcrd.config.model import Config

MAX_IN_FLIGHT = 200
_NEGOTIATION = {"implied", "refresh"}  # exabgp_launch's fixes 6 and 7
READ_SIZE = 1024 * 1024
CEASE_OUT_OF_RESOURCES = 8  # RFC 4486: the subcode of the Cease sent when a received UPDATE could not be used
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds the mcrd package
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
STABLE_AFTER = 60.0  # seconds up after which the backoff starts again from the beginning


class ExaBgpSpeaker:
    def __init__(
        self,
        state_dir: Path,
        on_message: Callable[[Parsed], None],
        on_lost: Callable[[str], None],
        log: Any,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        exabgp_command: list[str] | None = None,
        holds: Callable[[str], bool] | None = None,
        line_limit: int = LINE_LIMIT,
    ) -> None:
        """`holds(peer address)`: the sessions this ExaBGP has when the daemon runs several (pool.py)."""
        self._dir = state_dir
        self._conf = state_dir / "exabgp.conf"
        self._socket = state_dir / "api.sock"
        self._on_message = on_message
        self._on_lost = on_lost
        self._holds = holds
        self._log = log
        self._max_in_flight = max_in_flight
        self._line_limit = line_limit
        # ExaBGP with mcrd's fixes to its announce path (exabgp_launch.py), or stock where they do not apply.
        self._exabgp = exabgp_command or [sys.executable, "-m", "mcrd.bgp.exabgp_launch"]
        self._process: asyncio.subprocess.Process | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: collections.deque[str] = collections.deque()
        self._in_flight: collections.deque[str] = collections.deque()
        self._wake_writer = asyncio.Event()
        self._connected = asyncio.Event()
        self._stopping = False
        self._fresh = False  # a new ExaBGP process whose bridge has not connected yet
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._secrets: list[str] = []
        self._written = ""  # the configuration last written
        self.held_down: frozenset[str] = frozenset()  # peers left out of the configuration (mcrd.bgp.holds)
        self.fixes: exabgp_launch.Report | None = None  # what the launcher installed into the running ExaBGP
        # exabgp_launch's fixes 6 and 7: IPv4 unicast with a peer that sends no Multiprotocol capability, and
        # ROUTE-REFRESH answered by the daemon (route refresh is offered only then). Expected until the launcher
        # reports what it installed (`_launcher_report`).
        self.negotiation_fixes = (self._exabgp[-1] == exabgp_launch.__name__
                                  and set(exabgp_launch.expected_fixes()) >= _NEGOTIATION)
        # The send fast path (exabgp_fastpath.py), on unless MCRD_FAST_PATH=0 (which ExaBGP inherits): ExaBGP runs
        # with `manual-eor` and the daemon sends End-of-RIB after a new session's table. Expected until the launcher
        # reports what it installed.
        self.fast_path = self._exabgp[-1] == exabgp_launch.__name__ and "fastpath" in exabgp_launch.expected_fixes()
        self._config: Config | None = None  # the config last written
        self.restarts = 0
        self.commands_sent = 0
        self.command_errors = 0
        self.lines_dropped = 0  # API lines that could not be used (too long, or not understood)
        self.sessions_reset = 0  # sessions reset because an UPDATE received on them could not be used

    # --- public -----------------------------------------------------------------------------------------------

    def write_config(self, config: Config) -> bool:
        """Write ExaBGP's configuration; False when it is the same as the one written last (nothing written)."""
        self._config = config
        bridge = [sys.executable, "-m", "mcrd.bgp.bridge", str(self._socket)]
        text = exabgp_config.render(config, bridge, self._holds, self.held_down,
                                    route_refresh=self.negotiation_fixes, manual_eor=self.fast_path)
        self._secrets = [conn.password for _, _, conn in config.connections() if conn.password]
        if text == self._written:
            return False
        tmp = self._conf.with_suffix(".tmp")
        # The file holds MD5 keys: readable by root only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        tmp.replace(self._conf)
        self._written = text
        return True

    def reconfigure(self, config: Config) -> None:
        """Apply `config` (and `held_down`) to the running ExaBGP: a reload (SIGUSR1) when its configuration
        changed."""
        if self.write_config(config) and self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGUSR1)

    def send(self, commands: Iterable[str]) -> None:
        self._pending.extend(commands)
        self._wake_writer.set()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None and self._connected.is_set()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def run(self) -> None:
        """Serve the API socket and keep ExaBGP running until `stop()`."""
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._socket))
        os.chmod(self._socket, 0o600)
        writer_task = asyncio.create_task(self._write_loop(), name="exabgp-writer")
        writer_task.add_done_callback(self._writer_ended)
        backoff = BACKOFF_START
        try:
            while not self._stopping:
                started = asyncio.get_running_loop().time()
                code = await self._run_once()
                if self._stopping:
                    break
                self.restarts += 1
                up_for = asyncio.get_running_loop().time() - started
                if up_for > STABLE_AFTER:
                    backoff = BACKOFF_START
                reason = f"ExaBGP exited with status {code}"
                self._log.error("exabgp_died", status=code, restart_in=backoff, restarts=self.restarts,
                                stderr=self._redact(" | ".join(self._stderr_tail)))
                self._on_lost(reason)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task
            self._server.close()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop ExaBGP: on SIGTERM it sends every established peer a Cease (Administrative Shutdown) and exits;
        SIGKILL after `timeout` seconds."""
        self._stopping = True
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            self._log.warning("exabgp_kill", pid=process.pid, reason=f"no exit {timeout}s after SIGTERM")
            process.kill()
            await process.wait()

    # --- internals --------------------------------------------------------------------------------------------

    async def _run_once(self) -> int:
        self._connected.clear()
        self._stderr_tail.clear()
        env = {**os.environ, **exabgp_config.environment()}  # the launcher sets the speed for what it installs
        # ExaBGP changes to / and runs the bridge from there: both must import mcrd wherever it was loaded from.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_SOURCE_ROOT, os.environ.get("PYTHONPATH"))))
        env[exabgp_launch.PARENT_ENV] = str(os.getpid())  # the launcher dies with this process (fix 5)
        self._process = await asyncio.create_subprocess_exec(
            *self._exabgp, "server", str(self._conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # the daemon decides when ExaBGP stops, after or before a terminal's ^C
        )
        self._fresh = True
        self._log.info("exabgp_started", pid=self._process.pid, config=str(self._conf))
        assert self._process.stderr is not None
        stderr_task = asyncio.create_task(self._read_stderr(self._process.stderr), name="exabgp-stderr")
        code = await self._process.wait()
        await stderr_task
        self._connected.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        # Commands not yet acknowledged died with ExaBGP; the processor re-sends everything when sessions return.
        self._pending.clear()
        self._in_flight.clear()
        return code

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = self._redact(line.decode(errors="replace").rstrip())
            self._stderr_tail.append(text)
            self._log.debug("exabgp_log", line=text)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # one ExaBGP at a time: a stale bridge is dropped
            self._writer.close()
        self._writer = writer
        self._in_flight.clear()
        if self._fresh:  # a new ExaBGP, not the bridge of this one again
            self._fresh = False
            self._drop_stale()
        self._connected.set()
        self._wake_writer.set()
        decoder: Decoder | None = None  # made once the launcher's report says what ExaBGP negotiates
        splitter = LineSplitter(self._line_limit)
        try:
            while chunk := await reader.read(READ_SIZE):
                for line in splitter.feed(chunk):
                    if decoder is None:  # the bridge's first line
                        head = exabgp_launch.REPORT_LINE
                        report = line[len(head) :] if isinstance(line, bytes) and line.startswith(head) else None
                        self._launcher_report(None if report is None else report.decode(errors="replace"))
                        decoder = Decoder(route_refresh=self.negotiation_fixes, implied_ipv4=self.negotiation_fixes)
                        if report is not None:
                            continue
                    if isinstance(line, Oversized):
                        self._oversized(line)
                        continue
                    for parsed in decoder.decode(line.decode(errors="replace")):
                        if isinstance(parsed, Ack):
                            self._acked(parsed)
                        elif isinstance(parsed, UpdateError):
                            self._log.warning("bgp_update_error", peer=parsed.peer, action=parsed.action,
                                              why=parsed.why, prefixes=parsed.prefixes)
                        else:
                            if isinstance(parsed, Malformed):
                                self.lines_dropped += 1
                                if parsed.peer is not None:
                                    self._reset_session(parsed.peer, f"an UPDATE was not understood: {parsed.why}")
                            self._on_message(parsed)
        except ConnectionError as exc:
            self._log.warning("exabgp_api_read_failed", error=str(exc))
        finally:
            if self._writer is writer:
                self._writer = None
                self._connected.clear()

    def _drop_stale(self) -> None:
        """Commands queued while no ExaBGP ran were made from what the dead one had reported: its sessions are gone,
        and a new session gets its whole table when it comes up. Sent, a stock command would put its route into the
        new ExaBGP's table for that neighbor, announced when the session comes up, even if it was withdrawn since;
        a fast path command would be refused (it names a session instance of the dead ExaBGP)."""
        if self._pending:
            self._log.info("exabgp_stale_commands_dropped", count=len(self._pending),
                           why="queued for an ExaBGP that has died; new sessions get their tables when they come up")
            self._pending.clear()

    def _launcher_report(self, text: str | None) -> None:
        """Log what the launcher installed into this ExaBGP and the reactor speed it chose (the bridge's first line;
        None: the bridge sent none)."""
        pid = self.pid
        if text is None or text == "-":
            self.fixes = None
            self._log.info("exabgp_fixes", pid=pid, applied=False, fixes=[], reactor_speed=None,
                           reason="ExaBGP was not started by mcrd's launcher (mcrd.bgp.exabgp_launch): stock")
            self._negotiation_follows(False)
            return
        try:
            report = exabgp_launch.Report.from_json(text)
        except ValueError as exc:
            self.fixes = None
            self._log.warning("exabgp_fixes_unknown", pid=pid, error=str(exc))
            self._negotiation_follows(False)
            return
        self.fixes = report
        self._log.info("exabgp_fixes", pid=pid, applied=report.applied, fixes=list(report.fixes),
                       reactor_speed=report.reactor_speed, release=report.release, reason=report.reason)
        if not report.applied:  # asked for (MCRD_EXABGP_STOCK=1) or not, what it costs is worth a warning
            self._log.warning("exabgp_stock", pid=pid, reason=report.reason,
                              effect="stock ExaBGP: a slower announce path; no route refresh; sessions closed on "
                                     "purpose end without a Cease NOTIFICATION; a route and its withdrawal queued "
                                     "together may leave the route at the peer")
        self._negotiation_follows(set(report.fixes) >= _NEGOTIATION, "fastpath" in report.fixes)

    def _negotiation_follows(self, installed: bool, fast_path: bool = False) -> None:
        """The configuration offers route refresh only where fixes 6 and 7 run, and asks for manual End-of-RIB only
        where the fast path runs: when ExaBGP turns out to run otherwise than the configuration expected, rewrite it
        (a reload restarts the sessions whose capabilities change)."""
        if installed == self.negotiation_fixes and fast_path == self.fast_path:
            return
        self.negotiation_fixes, self.fast_path = installed, fast_path
        self._log.warning("exabgp_config_rewritten", route_refresh=installed, manual_eor=fast_path,
                          reason="ExaBGP runs with other fixes than its configuration expected")
        if self._config is not None:
            self.reconfigure(self._config)

    def _oversized(self, line: Oversized) -> None:
        self.lines_dropped += 1
        peer = received_update_peer(line.head.decode(errors="replace"))
        self._log.error("exabgp_api_line_too_long", size=line.size, peer=peer,
                        head=self._redact(line.head[:200].decode(errors="replace")))
        if peer is not None:
            self._reset_session(peer, f"an UPDATE of {line.size} bytes of JSON is beyond mcrd's limit")

    def _reset_session(self, peer: str, why: str) -> None:
        """The routes `peer` sent are no longer known for sure: reset the session so that it sends them again."""
        self.sessions_reset += 1
        self._log.error("bgp_session_reset", peer=peer, reason=why, cease_subcode=CEASE_OUT_OF_RESOURCES)
        self.send([f"neighbor {peer} teardown {CEASE_OUT_OF_RESOURCES}"])

    def _acked(self, ack: Ack) -> None:
        command = self._in_flight.popleft() if self._in_flight else "?"
        if not ack.ok:
            self.command_errors += 1
            self._log.error("exabgp_command_failed", command=command[:300])
        self._wake_writer.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            writer = self._writer
            if writer is None:
                continue
            if writer.is_closing():  # its ExaBGP is gone, and its reader (`_serve`) not told yet
                self._let_go(writer)
                continue
            batch: list[str] = []
            while self._pending and len(self._in_flight) < self._max_in_flight:
                command = self._pending.popleft()
                self._in_flight.append(command)
                batch.append(command + "\n")
            if not batch:
                continue
            self.commands_sent += len(batch)
            try:
                writer.write("".join(batch).encode())
                await writer.drain()
            # uvloop raises RuntimeError, not ConnectionError, for a write on a transport closed meanwhile: either
            # would end this task, and no command would reach any ExaBGP after (tests/bgp/test_speaker_write.py).
            except (ConnectionError, RuntimeError) as exc:
                self._log.warning("exabgp_api_write_failed", error=str(exc))
                self._let_go(writer)

    def _let_go(self, writer: asyncio.StreamWriter) -> None:
        """Write no more to `writer`, a connection that died; the next bridge's brings the commands waiting."""
        if self._writer is writer:
            self._writer = None
            self._connected.clear()

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # no command goes to ExaBGP from now on
            self._log.error("exabgp_writer_failed", error=repr(task.exception()))
