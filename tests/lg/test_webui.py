"""The web page's server side over a fake daemon: the files, `/ui/state` and its stamp, the matrix endpoint.
The page itself runs in a real browser in tests/ui."""

from __future__ import annotations

import re
from importlib import resources

import aiohttp
import structlog

from mcrd.lg.http import ApiServer
from mcrd.lg.matrix import matrix
from mcrd.rib.inputs import RoutesWithdrawn
from tests.lg.conftest import Served
from tests.lg.fixtures import AWS, AZURE, NOW, FakeBackend, bfd_status, config

LG = "/v2/product/mcr2/lab-mcr/lookingGlass"


async def test_the_root_leads_to_the_page(served: Served) -> None:
    for path in ("/", "/ui"):
        async with served.session.get(path, allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/ui/"


async def test_the_page_and_its_files(served: Served) -> None:
    async with served.session.get("/ui/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        html = await response.text()
    # Everything the page loads is one of our files (no CDN): each is served with its type.
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded == ["data:,", "/ui/style.css", "/ui/app.js"]
    for path, kind in (("/ui/style.css", "text/css"), ("/ui/app.js", "text/javascript")):
        async with served.session.get(path) as response:
            assert response.status == 200
            assert response.content_type == kind
            assert await response.read() == resources.files("mcrd.lg.ui").joinpath(path[4:]).read_bytes()
    async with served.session.get("/ui/../http.py") as response:
        assert response.status == 404
    async with served.session.get("/ui/__init__.py") as response:
        assert response.status == 404
        assert (await response.json())["message"] == "no such path: /ui/__init__.py"


async def test_state_names_the_mcr_and_its_sessions(served: Served) -> None:
    async with served.session.get("/ui/state") as response:
        state = await response.json()
    assert state["mcr"] == {"productName": "lab-mcr", "mcrAsn": served.backend.config.mcr.mcr_asn}
    assert state["tokenConfigured"] is True
    sessions = {s["sessionId"]: s for s in state["sessions"]}
    assert sessions[AWS]["peerType"] == "PRIV_CLOUD"
    assert sessions[AWS]["status"] == "UP"
    assert sessions[AWS]["prefixesIn"] == 2
    assert sessions[AWS]["bfdStatus"] is None  # the page shows a BFD column only when a session has a status
    served.backend.bfd[AWS] = bfd_status(AWS, "UP")
    async with served.session.get("/ui/state") as response:
        state = await response.json()
    assert [s["bfdStatus"] for s in state["sessions"]] == ["UP", None, None]


async def test_the_stamp_moves_with_the_routes_only(served: Served) -> None:
    async def stamp() -> str:
        async with served.session.get("/ui/state") as response:
            return str((await response.json())["stamp"])

    first = await stamp()
    assert await stamp() == first
    served.backend.processor.handle(RoutesWithdrawn(AZURE, ("10.30.1.0/24",)), NOW)
    second = await stamp()
    assert second != first
    assert await stamp() == second


async def test_the_matrix_endpoint(served: Served) -> None:
    async with served.session.get(LG + "/matrix") as response:
        assert response.status == 200
        body = await response.json()
    assert body["data"] == matrix(served.backend.processor)
    assert body["message"].startswith("reachability between the VXCs of MCR lab-mcr")
    async with served.session.get("/v2/product/mcr2/other/lookingGlass/matrix") as response:
        assert response.status == 404
        assert "this mcrd plays MCR 'lab-mcr'" in (await response.json())["message"]


async def test_without_a_token_the_page_offers_no_config() -> None:
    """The Config tab (and with it PUT /config) is shown only when `api.token` is set."""
    server = ApiServer(FakeBackend(config(token=None)), structlog.get_logger("test"), clock=lambda: NOW)
    await server.start("127.0.0.1:0")
    try:
        host, port = server.addresses[0][:2]
        async with aiohttp.ClientSession(f"http://{host}:{port}") as session, session.get("/ui/state") as response:
            assert (await response.json())["tokenConfigured"] is False
    finally:
        await server.stop()
