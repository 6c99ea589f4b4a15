"""The HTTP API, embedded in the daemon (aiohttp `AppRunner` + `TCPSite` on `api.listen`).

- The looking glass, with the paths and field names of Megaport's MCR looking glass, each answer wrapped as
  `{"message", "terms", "data"}`: `/v2/product/mcr2/{uid}/lookingGlass/routes`, `.../bgp`, `.../bgpSessions`,
  `.../bgpSessions/{sessionId}/advertised` and `.../received` (`?filtered=true`: the rejected routes, an mcrd
  extension), `.../bfdSessions` (an mcrd extension: the BFD sessions and their negotiated timers), `.../matrix` (an
  extension: `mcrd.lg.matrix`). `{uid}` is the MCR's `productName`; `GET /v2/product/mcr2` (an extension) lists it.
- The web page: `/ui/` (`mcrd.lg.webui`).
- `GET /config` (secrets hidden) and `PUT /config` (applied through the daemon's one queue, like SIGHUP; needs
  `Authorization: Bearer <api.token>` when `api.token` is set).
- `GET /metrics` (Prometheus), `GET /healthz`.

Handlers are thin: the rows come from `mcrd.lg.views`, the secrets handling from `mcrd.lg.configapi`. Every error is
JSON in the same envelope with `data: null` (or the config problems), with a proper status. Handlers run on the event
loop thread, as the route processor does, so they read it between two of its rounds and never change it; a PUT's
config is parsed in a worker thread, one at a time, so that a big one does not hold the loop.

`Limits` bounds what a client can hold (docs/THREAT-MODEL.md): a connection must send its request's headers within
`header_timeout` of opening (or of its previous answer) and is closed otherwise, so idle and half-sent connections
do not stay; a PUT body must arrive within `body_timeout` (408) and be at most `max_body` bytes (413); an answer the
client does not read for `write_timeout` is dropped; past `max_connections` open connections, one more is answered
503 and closed, and the others are served as before.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from mcrd.config.load import ConfigError, ConfigProblem, parse_config
from mcrd.config.model import Config
from mcrd.lg import views, webui
from mcrd.lg.backend import Backend
from mcrd.lg.configapi import keep_running_secrets, problem_record, redacted
from mcrd.lg.matrix import matrix
from mcrd.lg.metrics import CONTENT_TYPE
from mcrd.rib.peer_state import PeerState

BASE = "/v2/product/mcr2"
TERMS = "mcrd emulates a Megaport Cloud Router for network labs; it is not Megaport's service."
PUT_SOURCE = "PUT /config"  # names the request body in config problems, as a file name does for `mcrd check`
SHUTDOWN_TIMEOUT = 3.0  # seconds that requests in flight get at shutdown
BIG_ANSWER = 2000  # rows from which an answer is JSON-encoded off the event loop


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may hold of the API (the module's docstring says what each does)."""

    header_timeout: float = 10.0  # seconds; also how long a kept-alive connection may stay idle
    body_timeout: float = 10.0  # seconds; also how long a body no handler reads is drained before closing
    write_timeout: float = 30.0  # seconds an answer may wait for a client that reads none of it
    max_connections: int = 128
    max_body: int = 1 << 20  # bytes; a config of 10,000 prefix filter list entries is about 600 KB


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, *, data: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.headers = dict(headers or {})


def envelope(message: str, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message, "terms": TERMS, "data": data}, status=status, headers=headers)


async def rows_envelope(message: str, rows: Sequence[Any]) -> web.Response:
    """A looking glass answer. A big one is encoded in a worker thread, so the event loop (and with it ExaBGP's
    reader) is not held: the rows are new objects that nothing else changes."""
    body = {"message": message, "terms": TERMS, "data": rows}
    text = await asyncio.to_thread(json.dumps, body) if len(rows) > BIG_ANSWER else json.dumps(body)
    return web.Response(text=text, content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(
    backend: Backend, log: Any, *, clock: Callable[[], float] = time.time, limits: Limits = Limits()
) -> web.Application:
    api = _Api(backend, log, clock, limits)

    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return envelope(exc.message, exc.data, exc.status, exc.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return envelope(_http_message(request, exc, limits), None, exc.status, _keep_headers(exc))
        except Exception as exc:
            log.error("api_request_failed", method=request.method, path=request.path, error=repr(exc))
            return envelope("internal error: see the daemon's log", None, 500)

    app = web.Application(middlewares=[json_errors], client_max_size=limits.max_body)
    lg = BASE + "/{uid}/lookingGlass"
    app.router.add_get(BASE, api.products)
    app.router.add_get(lg + "/routes", api.routes)
    app.router.add_get(lg + "/bgp", api.bgp)
    app.router.add_get(lg + "/bgpSessions", api.sessions)
    app.router.add_get(lg + "/bgpSessions/{session}/{direction:advertised|received}", api.neighbor)
    app.router.add_get(lg + "/bfdSessions", api.bfd)
    app.router.add_get("/config", api.get_config)
    app.router.add_put("/config", api.put_config)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get(lg + "/matrix", api.matrix)
    webui.add_routes(app, backend, clock=clock)
    return app


def _http_message(request: web.Request, exc: web.HTTPException, limits: Limits) -> str:
    if exc.status == 404:
        return f"no such path: {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if exc.status == 413:
        return f"the request body is too large (at most {limits.max_body} bytes)"
    return exc.reason


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}


class _Api:
    def __init__(self, backend: Backend, log: Any, clock: Callable[[], float], limits: Limits) -> None:
        self.backend = backend
        self.log = log
        self.clock = clock
        self.limits = limits
        self.parsing = asyncio.Lock()  # one config parsed at a time: each can take a second and tens of MB

    # --- looking glass ------------------------------------------------------------------------------------------

    def _mcr(self, request: web.Request) -> str:
        name = self.backend.config.mcr.product_name
        uid = request.match_info["uid"]
        if uid != name:
            raise ApiError(404, f"no MCR {uid!r} here: this mcrd plays MCR {name!r}")
        return name

    async def products(self, request: web.Request) -> web.Response:
        return envelope("the MCR this mcrd plays", views.products(self.backend.config))

    async def routes(self, request: web.Request) -> web.Response:
        name = self._mcr(request)
        protocol, ip = _query(lambda: (views.parse_protocol(request.query.get("protocol")),
                                       views.parse_ip(request.query.get("ip"))))
        rows = views.routes(self.backend.processor, self.backend.config, self.clock(), protocol=protocol, ip=ip)
        return await rows_envelope(f"IP routes of MCR {name}: {len(rows)}", rows)

    async def bgp(self, request: web.Request) -> web.Response:
        name = self._mcr(request)
        ip = _query(lambda: views.parse_ip(request.query.get("ip")))
        rows = views.bgp(self.backend.processor, self.backend.config, self.clock(), ip=ip)
        return await rows_envelope(f"BGP routes of MCR {name}: {len(rows)}", rows)

    async def sessions(self, request: web.Request) -> web.Response:
        name = self._mcr(request)
        rows = views.sessions(self.backend.processor, self.clock(), self.backend.bfd_status())
        return await rows_envelope(f"BGP sessions of MCR {name}: {len(rows)}", rows)

    async def bfd(self, request: web.Request) -> web.Response:
        name = self._mcr(request)
        rows = views.bfd_sessions(self.backend.processor, self.backend.bfd_status(), time.monotonic())
        return await rows_envelope(f"BFD sessions of MCR {name}: {len(rows)}", rows)

    async def neighbor(self, request: web.Request) -> web.Response:
        name = self._mcr(request)
        peer = self._session(request, name)
        direction = request.match_info["direction"]
        ip, show_filtered = _query(lambda: (views.parse_ip(request.query.get("ip")),
                                            views.parse_bool("filtered", request.query.get("filtered"))))
        processor = self.backend.processor
        rows: list[Any]
        if direction == "advertised":
            if show_filtered:
                raise ApiError(400, "filtered: only received routes can be filtered (received?filtered=true)")
            rows = list(views.advertised(processor, peer, ip=ip))
            what = "advertised to"
        elif show_filtered:
            rows = list(views.filtered(peer, ip=ip))
            what = "rejected by import policy from"
        else:
            rows = list(views.received(processor, peer, ip=ip))
            what = "received from"
        return await rows_envelope(f"routes {what} {peer.key} on MCR {name}: {len(rows)}", rows)

    async def matrix(self, request: web.Request) -> web.Response:
        name = self._mcr(request)
        data = matrix(self.backend.processor)
        return envelope(f"reachability between the VXCs of MCR {name}: {len(data['cells'])} pairs", data)

    def _session(self, request: web.Request, name: str) -> PeerState:
        session_id = request.match_info["session"]
        peer = views.find_session(self.backend.processor, session_id)
        if peer is None:
            known = ", ".join(p.key for p in self.backend.processor.peers()) or "none"
            raise ApiError(404, f"no BGP session {session_id!r} on MCR {name} (sessions: {known})")
        return peer

    # --- config ---------------------------------------------------------------------------------------------------

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(redacted(self.backend.config))

    async def put_config(self, request: web.Request) -> web.Response:
        running = self.backend.config
        try:
            _authorize(request, running.api.token)
        except ApiError as exc:
            self.log.warning("api_unauthorized", method=request.method, path=request.path, why=exc.message,
                             remote=request.remote)
            raise
        body = await self._body(request)
        problems: list[ConfigProblem]
        async with self.parsing:  # the running config read again: another PUT may have changed it meanwhile
            new, problems = await asyncio.to_thread(_parse_put, body, self.backend.config)
        if problems:
            # Refused before it reaches the daemon: logged and counted as the daemon does for the ones it refuses.
            for problem in problems:
                self.log.error("config_rejected", problem=str(problem))
            self.log.error("config_not_applied", config=PUT_SOURCE, problems=len(problems), running="unchanged")
            self.backend.metrics.config_reloads.labels("rejected").inc()
            raise _rejected(problems)
        assert new is not None  # no problems: parsed
        outcome = await self.backend.apply_config(new, PUT_SOURCE)
        if not outcome.ok:
            raise _rejected(list(outcome.problems))
        applied = outcome.applied
        return envelope("config applied", {
            "applied": True,
            "peersAdded": list(applied.peers_added) if applied else [],
            "peersRemoved": list(applied.peers_removed) if applied else [],
            "reevaluated": list(applied.reevaluated) if applied else [],
        })

    async def _body(self, request: web.Request) -> bytes:
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                return await request.read()
        except TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {self.limits.body_timeout:g} s") from None

    # --- operations ------------------------------------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.backend.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, request: web.Request) -> web.Response:
        reasons = self.backend.health()
        if reasons:
            return envelope("; ".join(reasons), {"healthy": False, "reasons": reasons}, 503)
        return envelope("ok", {"healthy": True, "reasons": []})


def _query(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except views.QueryError as exc:
        raise ApiError(400, f"bad query parameter {exc.parameter}: {exc.message}") from None


def _parse_put(body: bytes, running: Config) -> tuple[Config | None, list[ConfigProblem]]:
    """A PUT /config body as a config with the running secrets kept, or its problems (in a worker thread)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, [ConfigProblem(PUT_SOURCE, 0, "", "the config is not UTF-8 text")]
    try:
        new = parse_config(text, PUT_SOURCE)
    except ConfigError as exc:
        return None, exc.problems
    return keep_running_secrets(new, running, PUT_SOURCE)


def _rejected(problems: list[ConfigProblem]) -> ApiError:
    count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
    return ApiError(400, f"config not applied ({count}); the running config is unchanged",
                    data={"applied": False, "problems": [problem_record(p) for p in problems]})


def _authorize(request: web.Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        message = "PUT /config needs the API token (Authorization: Bearer <api.token>)"
    elif not hmac.compare_digest(given.strip().encode(), token.encode()):
        message = "wrong API token"
    else:
        return
    raise ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="mcrd"'})


def split_listen(listen: str) -> tuple[str, int]:
    """`api.listen` (`HOST:PORT`, `[V6]:PORT`) as host and port."""
    host, _, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class ApiServer:
    """The API's listening side: `start()` binds (raising OSError when it cannot), `stop()` closes."""

    def __init__(
        self, backend: Backend, log: Any, *, clock: Callable[[], float] = time.time, limits: Limits = Limits()
    ) -> None:
        self.app = build_app(backend, log, clock=clock, limits=limits)
        self.limits = limits
        self.log = log
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.gate: _Gate | None = None

    async def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        # aiohttp's keep-alive timer runs from a connection's opening and from each answer, and closes the
        # connection if no complete request has arrived by then: the header and idle timeout in one.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT,
                               keepalive_timeout=self.limits.header_timeout,
                               lingering_time=self.limits.body_timeout)
        await runner.setup()
        assert runner.server is not None  # set up
        gate = _Gate(runner.server, self.limits, self.log)
        try:
            # Listening ourselves (not TCPSite) to put the gate between the sockets and aiohttp's handlers.
            listener = await asyncio.get_running_loop().create_server(gate, host, port, reuse_address=True)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._listener, self.gate = runner, listener, gate

    @property
    def addresses(self) -> list[Any]:
        return [] if self._listener is None else [sock.getsockname() for sock in self._listener.sockets]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if runner is not None:
            await runner.cleanup()


class _Gate:
    """The protocol factory in front of aiohttp's: counts open connections and refuses those past the limit,
    and drops a connection whose answer waits on a client that does not read it."""

    def __init__(self, handlers: Callable[[], asyncio.Protocol], limits: Limits, log: Any) -> None:
        self.handlers = handlers
        self.limits = limits
        self.log = log
        self.open = 0
        self.peak = 0  # the most connections open at once
        self.refused = 0
        self._logged_at = -1e9
        body = json.dumps({"message": f"too many connections to the API (at most {limits.max_connections}): "
                                      "try again later", "terms": TERMS, "data": None}).encode()
        self.refusal = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def __call__(self) -> asyncio.Protocol:
        return _Gated(self)

    def refuse(self, transport: asyncio.Transport) -> None:
        self.refused += 1
        transport.write(self.refusal)
        transport.close()
        now = time.monotonic()
        if now - self._logged_at >= 10:  # at most one line per 10 s however many are refused
            self._logged_at = now
            self.log.warning("api_connections_refused", open=self.open, limit=self.limits.max_connections,
                             refused_so_far=self.refused)


class _Gated(asyncio.Protocol):
    """One connection: aiohttp's handler behind the gate's count and write timeout."""

    def __init__(self, gate: _Gate) -> None:
        self.gate = gate
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.stalled: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's is one without subclassing it
        gate = self.gate
        if gate.open >= gate.limits.max_connections:
            gate.refuse(stream)
            return
        gate.open += 1
        gate.peak = max(gate.peak, gate.open)
        self.transport = stream
        self.inner = gate.handlers()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is None:
            return
        self.gate.open -= 1
        if self.stalled is not None:
            self.stalled.cancel()
        inner, self.inner = self.inner, None
        inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is None:
            return
        if self.stalled is None:
            loop = asyncio.get_running_loop()
            self.stalled = loop.call_later(self.gate.limits.write_timeout, self._drop)
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.stalled is not None:
            self.stalled.cancel()
            self.stalled = None
        if self.inner is not None:
            self.inner.resume_writing()

    def _drop(self) -> None:
        self.stalled = None
        if self.transport is not None:
            self.transport.abort()
