"""The API's limits with real sockets (docs/THREAT-MODEL.md): header and idle timeout, body size and time, answers
nobody reads, the connection cap, config bombs in PUT /config, and the event loop staying free while a big config
is parsed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog

from mcrd.config.load import ALIAS_VALUES
from mcrd.lg.configapi import dump
from mcrd.lg.http import ApiServer, Limits
from mcrd.rib.inputs import RoutesAnnounced
from mcrd.route.attributes import PathAttributes
from tests.async_poll import until
from tests.config.config_testlib import alias_bomb
from tests.lg.conftest import Served, serving
from tests.lg.fixtures import AZURE, NOW, TOKEN, config

LIMITS = Limits(header_timeout=0.5, body_timeout=0.5, write_timeout=0.5, max_connections=10)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HALF_HEADER = b"GET /healthz HTTP/1.1\r\nHost: mcrd\r\nX-Slow: "


@pytest.fixture
async def limited() -> AsyncIterator[Served]:
    async with serving(LIMITS) as it:
        yield it


async def connect(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = served.server.addresses[0][:2]
    return await asyncio.open_connection(host, port)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not within `timeout`)."""
    data = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            data += chunk
    return data


def open_gate(served: Served) -> int:
    assert served.server.gate is not None
    return served.server.gate.open


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_half_sent_header_is_closed_after_the_header_timeout(limited: Served) -> None:
    reader, writer = await connect(limited)
    writer.write(HALF_HEADER)
    start = time.monotonic()
    assert await closed_by_server(reader) == b""
    took = time.monotonic() - start
    assert took >= LIMITS.header_timeout * 0.8
    writer.close()


async def test_a_silent_connection_is_closed_after_the_header_timeout(limited: Served) -> None:
    reader, writer = await connect(limited)
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_an_idle_kept_alive_connection_is_closed(limited: Served) -> None:
    reader, writer = await connect(limited)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: mcrd\r\n\r\n")
    answer = await closed_by_server(reader)  # answered, then kept alive, then closed when idle too long
    assert answer.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def test_a_body_that_does_not_arrive_is_a_408(limited: Served) -> None:
    reader, writer = await connect(limited)
    writer.write(b"PUT /config HTTP/1.1\r\nHost: mcrd\r\nAuthorization: Bearer " + TOKEN.encode()
                 + b"\r\nContent-Length: 1000\r\n\r\nmcr: {")
    answer = await closed_by_server(reader)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"the request body did not arrive within 0.5 s" in answer
    writer.close()


async def test_a_body_over_the_limit_is_a_413(limited: Served) -> None:
    async with limited.session.put("/config", data=b"#" * (LIMITS.max_body + 1), headers=AUTH) as response:
        assert response.status == 413
        body = await response.json()
    assert body["message"] == f"the request body is too large (at most {LIMITS.max_body} bytes)"


async def test_an_answer_nobody_reads_is_dropped(limited: Served) -> None:
    prefixes = tuple(f"10.{40 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(20_000))
    limited.backend.processor.handle(RoutesAnnounced(AZURE, PathAttributes(AZURE, (12076,)), prefixes), NOW)
    host, port = limited.server.addresses[0][:2]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing: a small window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    await asyncio.get_running_loop().sock_sendall(sock, b"GET /v2/product/mcr2/lab-mcr/lookingGlass/bgp HTTP/1.1\r\n"
                                                  b"Host: mcrd\r\n\r\n")
    try:
        await until(lambda: open_gate(limited) == 1, "the connection open")
        # The answer (megabytes) cannot leave; after write_timeout the server drops the connection.
        took = await until(lambda: open_gate(limited) == 0, "the unread answer dropped")
        print(f"unread answer dropped after {took:.2f} s (write_timeout {LIMITS.write_timeout} s)")
    finally:
        sock.close()
    async with limited.session.get("/healthz") as response:
        assert response.status == 200


async def test_past_the_connection_cap_one_more_is_refused_and_the_rest_recovers(limited: Served) -> None:
    before = descriptors()
    cap = LIMITS.max_connections
    slow = [await connect(limited) for _ in range(cap)]
    for _, writer in slow:
        writer.write(HALF_HEADER)
    await until(lambda: open_gate(limited) == cap, f"{cap} slow clients connected")
    reader, writer = await connect(limited)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: mcrd\r\n\r\n")
    try:
        answer = await closed_by_server(reader)
    except ConnectionResetError:  # the refusal closed the socket before reading our request: also a refusal
        answer = b""
    writer.close()
    if answer:
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["message"] == f"too many connections to the API (at most {cap}): try again later"
    assert limited.server.gate is not None
    assert limited.server.gate.refused >= 1
    # The slow ones are closed by the header timeout; the healthy path works again and descriptors come back.
    for reader, _ in slow:
        assert await closed_by_server(reader) == b""
    for _, writer in slow:
        writer.close()
    await until(lambda: open_gate(limited) == 0, "every slow client closed")
    async with limited.session.get("/healthz") as response:
        assert response.status == 200
    await limited.session.close()
    await until(lambda: descriptors() <= before, f"descriptors back to {before}")


async def test_two_hundred_slow_clients_hold_at_most_the_cap(limited: Served) -> None:
    # The attack in the issue: 200 clients sending half a header. At most `max_connections` are held, and none
    # for longer than the header timeout.
    before = descriptors()
    clients = await asyncio.gather(*(connect(limited) for _ in range(200)))
    for _, writer in clients:
        writer.write(HALF_HEADER)
    for reader, _ in clients:
        with contextlib.suppress(ConnectionResetError):  # refused before our bytes were read
            await closed_by_server(reader)
    for _, writer in clients:
        writer.close()
    assert limited.server.gate is not None
    assert limited.server.gate.peak == LIMITS.max_connections
    assert limited.server.gate.refused >= 100  # the others waited in the listen queue for a free place
    await until(lambda: open_gate(limited) == 0, "every slow client closed")
    await limited.session.close()
    await until(lambda: descriptors() <= before, f"descriptors back to {before}")


async def test_put_refuses_the_alias_bomb_quickly(limited: Served) -> None:
    start = time.monotonic()
    async with limited.session.put("/config", data=alias_bomb(), headers=AUTH) as response:
        assert response.status == 400
        body = await response.json()
    took = time.monotonic() - start
    [problem] = body["data"]["problems"]
    assert problem["text"] == (f"PUT /config:5: e[0]: YAML aliases expand the config past {ALIAS_VALUES} values "
                               "more than it writes out (an alias bomb?): refused")
    assert took < 5  # about 50 ms; before the bound, 28 s and 1.5 GB
    assert limited.backend.applied == []


@pytest.mark.parametrize("text", [
    '{"mcr": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"mcr": {"mcrAsn": ' + "9" * 100_000 + "}}",
])
async def test_put_refuses_deep_json_and_huge_numbers(limited: Served, text: str) -> None:
    async with limited.session.put("/config", data=text, headers=AUTH) as response:
        assert response.status == 400
        body = await response.json()
    [problem] = body["data"]["problems"]
    assert problem["line"] == 1
    assert "nested too deeply" in problem["message"] or "more than 4300 digits" in problem["message"]


def big_config() -> str:
    """A valid config of about 100 KB, which takes ruamel a second or more to read."""
    data = dump(config())
    data["prefixFilterLists"] += [
        {"id": 10 + n, "description": f"big{n}", "addressFamily": "IPv4",
         "entries": [{"action": "permit", "prefix": f"10.{100 + n}.{i}.0/24"} for i in range(200)]}
        for n in range(8)
    ]
    return json.dumps(data, indent=1)


async def test_healthz_answers_while_a_big_config_is_parsed(limited: Served) -> None:
    text = big_config()
    slow = Limits(header_timeout=30, body_timeout=30, write_timeout=30)
    server = ApiServer(limited.backend, structlog.get_logger("test"), clock=lambda: NOW, limits=slow)
    await server.start("127.0.0.1:0")
    host, port = server.addresses[0][:2]
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
            async def put() -> int:
                async with session.put("/config", data=text, headers=AUTH) as response:
                    return response.status

            async def healthz() -> float:
                start = time.monotonic()
                async with session.get("/healthz") as response:
                    assert response.status == 200
                return time.monotonic() - start

            started = time.monotonic()
            putting = asyncio.create_task(put())
            answered: list[float] = []
            while not putting.done():
                answered.append(await healthz())
            took = time.monotonic() - started
            assert await putting == 200
    finally:
        await server.stop()
    print(f"PUT of {len(text)} bytes took {took:.2f} s; /healthz answered {len(answered)} times meanwhile, "
          f"slowest {max(answered, default=0):.3f} s")
    # Parsed on the loop, one /healthz would wait for the whole parse (measured: 2 answers, one of them 4.2 s).
    assert len(answered) >= 3
    assert max(answered) < took / 2




async def test_a_hundred_concurrent_gets_within_the_cap_are_all_answered(served: Served) -> None:
    # The default limits (`served`): 100 clients at once, each its own connection, all under the cap of 128.
    async def one() -> int:
        async with aiohttp.ClientSession(served.url) as session, session.get("/healthz") as response:
            await response.read()
            return response.status

    assert await asyncio.gather(*(one() for _ in range(100))) == [200] * 100


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/v2/product/mcr2/..%2f..%2fconfig", "/%2e%2e/etc/passwd",
                                  "/v2/product/mcr2/lab-mcr/lookingGlass/../../../../etc/passwd"])
async def test_paths_never_reach_files(served: Served, path: str) -> None:
    reader, writer = await connect(served)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: mcrd\r\nConnection: close\r\n\r\n".encode())
    answer = await closed_by_server(reader)
    writer.close()
    assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request")
    assert b"root:" not in answer
