"""The HTTP API over a fake daemon: every endpoint, the envelope, errors as JSON, the config API, metrics, health."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from mcrd.cli import main as cli_main
from mcrd.fib.worker import KernelStatus
from mcrd.lg import views
from mcrd.lg.configapi import SECRET_MARKER, dump
from mcrd.lg.http import TERMS, ApiServer
from mcrd.rib.inputs import RoutesAnnounced
from mcrd.route.attributes import PathAttributes
from tests.lg.conftest import Served
from tests.lg.fixtures import AWS, AWS_KEY, AZURE, NOW, TOKEN, bfd_status, config

LG = "/v2/product/mcr2/lab-mcr/lookingGlass"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def get(served: Served, path: str, status: int = 200, **params: str) -> Any:
    async with served.session.get(path, params=params) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
        body = await response.json()
    assert set(body) == {"message", "terms", "data"}
    assert body["terms"] == TERMS
    return body


def roundtrip(rows: Any) -> Any:
    return json.loads(json.dumps(rows))


async def test_the_index_names_the_one_mcr(served: Served) -> None:
    body = await get(served, "/v2/product/mcr2")
    assert [p["productUid"] for p in body["data"]] == ["lab-mcr"]


async def test_each_view_is_served_in_the_envelope(served: Served) -> None:
    p, c = served.backend.processor, served.backend.config
    aws, azure = p.peer(AWS), p.peer(AZURE)
    assert aws is not None
    assert azure is not None
    expected: dict[str, list[Any]] = {
        "/routes": views.routes(p, c, NOW),
        "/bgp": views.bgp(p, c, NOW),
        "/bgpSessions": views.sessions(p, NOW),
        f"/bgpSessions/{AZURE}/advertised": views.advertised(p, azure),
        f"/bgpSessions/{AWS}/received": views.received(p, aws),
    }
    for path, rows in expected.items():
        body = await get(served, LG + path)
        assert body["data"] == roundtrip(rows), path
        assert body["message"].endswith(f": {len(rows)}")
    body = await get(served, f"{LG}/bgpSessions/{AWS}/received", filtered="true")
    assert [(r["prefix"], r["rejection"]["code"]) for r in body["data"]] == [("10.50.0.0/16", "import-permit-list")]
    assert "rejected by import policy" in body["message"]


async def test_query_filters(served: Served) -> None:
    body = await get(served, LG + "/routes", protocol="static")
    assert [(r["prefix"], r["protocol"]) for r in body["data"]] == [("10.99.0.0/16", "STATIC")]
    body = await get(served, LG + "/routes", ip="10.30.1.10")
    assert [r["prefix"] for r in body["data"]] == ["10.30.1.0/24"]
    body = await get(served, LG + "/routes", ip="10.30.0.0/16", protocol="BGP")
    assert [r["prefix"] for r in body["data"]] == ["10.30.0.0/16", "10.30.1.0/24"]
    body = await get(served, LG + "/bgp", ip="10.10.0.0/16")
    assert [(r["neighborIp"], r["best"]) for r in body["data"]] == [(AWS, True), (AZURE, False)]
    body = await get(served, f"{LG}/bgpSessions/{AZURE}/received", ip="10.30.7.7")
    assert [r["prefix"] for r in body["data"]] == ["10.30.0.0/16"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/v2/product/mcr2/other-mcr/lookingGlass/routes", 404, ["'other-mcr'", "'lab-mcr'"]),
        ("/v2/product/mcr2/other-mcr/lookingGlass/bgpSessions", 404, ["'other-mcr'"]),
        (f"{LG}/bgpSessions/10.9.9.9/received", 404, ["'10.9.9.9'", AWS, AZURE]),
        (f"{LG}/bgpSessions/{AWS}/sideways", 404, ["no such path"]),
        ("/nowhere", 404, ["no such path: /nowhere"]),
        (f"{LG}/routes?protocol=OSPF", 400, ["protocol", "'OSPF'", "BGP, STATIC, CONNECTED, LOCAL"]),
        (f"{LG}/routes?ip=10.300.1.1", 400, ["parameter ip", "'10.300.1.1'"]),
        (f"{LG}/bgp?ip=nonsense", 400, ["parameter ip"]),
        (f"{LG}/bgpSessions/{AWS}/received?filtered=yes", 400, ["parameter filtered", "'yes'"]),
        (f"{LG}/bgpSessions/{AWS}/advertised?filtered=true", 400, ["filtered", "received"]),
    ],
)
async def test_errors_are_json_and_say_what_is_wrong(served: Served, path: str, status: int, words: list[str]) -> None:
    body = await get(served, path, status)
    assert body["data"] is None
    for word in words:
        assert word in body["message"]


async def test_a_wrong_method_is_a_json_405(served: Served) -> None:
    async with served.session.post(LG + "/routes") as response:
        assert response.status == 405
        assert "GET" in response.headers["Allow"]
        assert (await response.json())["message"] == f"POST is not allowed on {LG}/routes"


async def test_get_config_hides_every_secret(served: Served) -> None:
    async with served.session.get("/config") as response:
        assert response.status == 200
        text = await response.text()
    assert AWS_KEY not in text
    assert TOKEN not in text
    data = json.loads(text)
    conn = data["vxcs"][0]["vrouter"]["interfaces"][0]["bgpConnections"][0]
    assert conn["password"] == SECRET_MARKER
    assert data["api"]["token"] == SECRET_MARKER
    assert "password" not in data["vxcs"][1]["vrouter"]["interfaces"][0]["bgpConnections"][0]
    data["vxcs"][0]["vrouter"]["interfaces"][0]["bgpConnections"][0]["password"] = AWS_KEY
    data["api"]["token"] = TOKEN
    assert data == dump(served.backend.config)


async def put(served: Served, body: str | bytes, status: int, headers: dict[str, str] | None = None) -> Any:
    async with served.session.put("/config", data=body, headers=AUTH if headers is None else headers) as response:
        assert response.status == status, await response.text()
        answer = await response.json()
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return answer


def config_text(**changes: Any) -> str:
    return json.dumps(dump(config(**changes)))


async def test_put_config_needs_the_token(served: Served) -> None:
    good = config_text(to_azure=("10.10.0.0/16", "10.20.0.0/16"))
    body = await put(served, good, 401, headers={})
    assert "Authorization: Bearer" in body["message"]
    body = await put(served, good, 401, headers={"Authorization": "Bearer wrong"})
    assert body["message"] == "wrong API token"
    await put(served, good, 401, headers={"Authorization": f"Basic {TOKEN}"})
    assert served.backend.applied == []


async def test_put_config_applies_a_good_config(served: Served) -> None:
    body = await put(served, config_text(to_azure=("10.10.0.0/16", "10.20.0.0/16")), 200)
    assert body["message"] == "config applied"
    assert body["data"] == {"applied": True, "peersAdded": [], "peersRemoved": [], "reevaluated": []}
    advertised = await get(served, f"{LG}/bgpSessions/{AZURE}/advertised")
    assert [r["prefix"] for r in advertised["data"]] == ["10.10.0.0/16", "10.20.0.0/16"]


BAD_YAML = """\
mcr: {productName: lab-mcr}
vxcs:
  - productName: vxc1
    interface: eth1
    vrouter:
      interfaces:
        - ipAddresses: [10.0.1.1/24]
          bgpConnections:
            - peerAsn: 4294967296
              localIpAddress: 10.0.1.1
              peerIpAddress: 10.0.1.2
              medIn: -1
"""


async def test_put_config_refuses_a_bad_config_with_mcrd_check_messages(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = dump(served.backend.config)
    body = await put(served, BAD_YAML, 400)
    assert body["message"] == "config not applied (2 problems); the running config is unchanged"
    assert body["data"]["applied"] is False
    texts = [p["text"] for p in body["data"]["problems"]]
    assert texts == [
        "PUT /config:9: vxcs[0].vrouter.interfaces[0].bgpConnections[0].peerAsn: 4294967296 is out of range "
        "1..4294967295",
        "PUT /config:12: vxcs[0].vrouter.interfaces[0].bgpConnections[0].medIn: -1 is out of range 0..4294967295",
    ]
    assert (body["data"]["problems"][0]["line"], body["data"]["problems"][0]["path"]) == (
        9, "vxcs[0].vrouter.interfaces[0].bgpConnections[0].peerAsn")
    # The same messages as `mcrd check`, the request in place of the file name.
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_YAML)
    assert cli_main(["check", str(bad)]) == 1
    assert capsys.readouterr().err.replace(str(bad), "PUT /config").splitlines() == texts
    assert served.backend.applied == []
    assert dump(served.backend.config) == before


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "PUT /config:1: the config is empty: it needs at least mcr: or vxcs:"),
        (b"mcr: [", "PUT /config:1: YAML syntax error"),
        (b"\xff\xfe", "PUT /config: the config is not UTF-8 text"),
    ],
)
async def test_put_config_refuses_what_is_not_a_config(served: Served, body: bytes, text: str) -> None:
    answer = await put(served, body, 400)
    [problem] = answer["data"]["problems"]
    assert problem["text"].startswith(text)
    assert served.backend.applied == []
    assert served.backend.metrics.config_reloads.labels("rejected")._value.get() == 1


async def test_put_config_reports_a_change_the_running_config_forbids(served: Served) -> None:
    data = dump(config())
    data["mcr"]["mcrAsn"] = 64999
    body = await put(served, json.dumps(data), 400)
    assert [p["text"] for p in body["data"]["problems"]] == [
        "PUT /config: mcr.mcrAsn: cannot change from 133937 to 64999 while VXCs are attached"]


async def test_the_marker_of_get_config_keeps_the_running_secrets(served: Served) -> None:
    async with served.session.get("/config") as response:
        data = await response.json()
    data["prefixFilterLists"][1]["entries"].append({"action": "permit", "prefix": "10.20.0.0/16"})
    await put(served, json.dumps(data), 200)
    new = served.backend.config
    assert new.vxcs[0].vrouter.interfaces[0].bgp_connections[0].password == AWS_KEY
    assert new.api.token == TOKEN
    # A marker where the running config has no secret cannot stand for anything.
    data["vxcs"][1]["vrouter"]["interfaces"][0]["bgpConnections"][0]["password"] = SECRET_MARKER
    body = await put(served, json.dumps(data), 400)
    [problem] = body["data"]["problems"]
    assert problem["path"] == "vxcs[1].vrouter.interfaces[0].bgpConnections[0].password"
    assert "no password for the BGP connection with 10.0.2.2" in problem["message"]


async def test_metrics(served: Served) -> None:
    served.backend.metrics.processing.observe(0.002)
    served.backend.speaker_pool.restarts = 2
    served.backend.metrics.dropped_events = lambda: 7
    served.backend.bfd = {AWS: bfd_status(AWS)}
    served.backend.kernel = KernelStatus(wanted=5, pending=1, errors=4, retried=3, scans=6, repaired_added=2,
                                         repaired_replaced=1, repaired_removed=7, last_scan_seconds=0.25)
    async with served.session.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples[name, tuple(sorted(labels.items()))]

    assert value("mcrd_bgp_sessions", status="UP") == 2
    assert value("mcrd_bgp_sessions", status="DOWN") == 1
    assert value("mcrd_bgp_session_up", session=AWS, vxc="vxc1") == 1
    assert value("mcrd_bgp_prefixes_received", session=AWS, vxc="vxc1") == 3
    assert value("mcrd_bgp_prefixes_accepted", session=AWS, vxc="vxc1") == 2
    assert value("mcrd_bgp_prefixes_rejected", session=AWS, vxc="vxc1") == 1
    assert value("mcrd_bgp_prefixes_advertised", session=AWS, vxc="vxc1") == 3
    assert value("mcrd_bgp_prefixes_advertised", session=AZURE, vxc="vxc2") == 1
    assert value("mcrd_rib_routes") == 5
    assert value("mcrd_kernel_routes") == 5
    assert value("mcrd_kernel_route_errors_total") == 4
    assert value("mcrd_kernel_routes_pending") == 1
    assert value("mcrd_kernel_route_retries_total") == 3
    assert value("mcrd_kernel_scans_total") == 6
    assert value("mcrd_kernel_repairs_total", action="added") == 2
    assert value("mcrd_kernel_repairs_total", action="replaced") == 1
    assert value("mcrd_kernel_repairs_total", action="removed") == 7
    assert value("mcrd_kernel_scan_seconds") == 0.25
    assert value("mcrd_exabgp_restarts_total") == 2
    assert value("mcrd_exabgp_up") == 1
    assert value("mcrd_events_dropped_total") == 7
    assert value("mcrd_update_processing_seconds_count") == 1
    assert value("mcrd_update_processing_seconds_bucket", le="0.0025") == 1
    assert value("mcrd_config_reloads_total", result="applied") == 0
    assert value("mcrd_bfd_session_state", session=AWS, vxc="vxc1") == 3  # Up
    assert value("mcrd_bfd_transitions_total", session=AWS, vxc="vxc1") == 2
    assert value("mcrd_bfd_detection_time_seconds", session=AWS, vxc="vxc1") == 0.9


async def test_healthz(served: Served) -> None:
    body = await get(served, "/healthz")
    assert body["data"] == {"healthy": True, "reasons": []}
    served.backend.unhealthy = ["ExaBGP is down (ExaBGP exited with status -9; restarts: 1)"]
    body = await get(served, "/healthz", 503)
    assert body["message"] == served.backend.unhealthy[0]
    assert body["data"]["healthy"] is False


async def test_without_a_token_put_needs_no_authorization(served: Served) -> None:
    served.backend.config = config(token=None)
    await put(served, config_text(token=None), 200, headers={})


async def test_the_server_stops_and_a_busy_address_is_an_oserror(served: Served) -> None:
    host, port = served.server.addresses[0][:2]
    other = ApiServer(served.backend, structlog.get_logger("test"))
    with pytest.raises(OSError, match="address already in use"):
        await other.start(f"{host}:{port}")
    await served.server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex((host, port)) != 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await served.session.get("/healthz")


async def test_a_big_answer_is_complete(served: Served) -> None:
    prefixes = tuple(f"10.40.{i // 256}.{i % 256}/32" for i in range(3000))
    served.backend.processor.handle(RoutesAnnounced(AZURE, PathAttributes(AZURE, (12076,)), prefixes), NOW)
    body = await get(served, LG + "/bgp", ip="10.40.0.0/16")
    assert [r["prefix"] for r in body["data"]] == list(prefixes)
    assert body["message"] == "BGP routes of MCR lab-mcr: 3000"
