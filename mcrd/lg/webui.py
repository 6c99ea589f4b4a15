"""The looking glass web page (`/ui/`) and the matrix view, served by the daemon's HTTP API.

The page is three plain files in `mcrd/lg/ui/` (package data: no build step, nothing loaded from elsewhere) that
read the looking glass API as any script would. Besides the files:

- `GET /ui/state`: what the page polls (every second): the MCR, its sessions (the `bgpSessions` rows with the peer
  type added), whether `api.token` is set, and `stamp`, which changes whenever a session or a route does, so the
  page refetches the table it shows only then.

The matrix (`GET /v2/product/mcr2/{uid}/lookingGlass/matrix`, `mcrd.lg.matrix`) is served with the looking glass.

Read-only: the page offers `PUT /config` only when `api.token` is set and the user has entered a token (the API
checks it, as for any client).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from mcrd.lg import views
from mcrd.lg.backend import Backend
from mcrd.rib.processor import RouteProcessor

FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
# The page is a static document that calls same-origin JSON APIs only; the policy makes an injected script inert.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def add_routes(app: web.Application, backend: Backend, *, clock: Callable[[], float] = time.time) -> None:
    """Serve the page and what it polls on `app`."""
    files = {name: resources.files("mcrd.lg.ui").joinpath(name).read_bytes() for name in FILES}

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type=FILES[name], headers=SECURITY_HEADERS)

    async def state(request: web.Request) -> web.Response:
        return web.json_response(ui_state(backend, clock()))

    app.router.add_get("/", redirect)
    app.router.add_get("/ui", redirect)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/state", state)
    app.router.add_get("/ui/{name}", page)


def ui_state(backend: Backend, now: float) -> dict[str, Any]:
    processor = backend.processor
    config = backend.config
    types = {peer.key: peer.policy.peer_type for peer in processor.peers()}
    rows = views.sessions(processor, now, backend.bfd_status())
    sessions = [{**row, "peerType": types.get(row["sessionId"], "")} for row in rows]
    return {
        "mcr": {"productName": config.mcr.product_name, "mcrAsn": config.mcr.mcr_asn},
        "tokenConfigured": config.api.token is not None,
        "stamp": stamp(processor, config),
        "sessions": sessions,
    }


def stamp(processor: RouteProcessor, config: object) -> str:
    """A value that changes when a session, a path, a best route or the config does. Every route is a new object
    (one per UPDATE), so the identities of the stored paths tell a change that leaves the counts equal."""
    parts: list[object] = [id(config), tuple(map(id, processor.best().values()))]
    for peer in processor.peers():
        parts.append((peer.key, peer.up, peer.since, len(peer.out), len(peer.rejected),
                      tuple(map(id, peer.accepted.values())), tuple(map(id, peer.rejected.values()))))
    return format(hash(tuple(parts)) & 0xFFFFFFFFFFFFFFFF, "016x")
