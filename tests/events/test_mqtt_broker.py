"""Events through a real mosquitto started by the test on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from mcrd.config.model import Mqtt
from mcrd.events import Events, MqttPublisher, mqtt
from mcrd.rib.effects import Announce, Effects, ReceivedChanged, SessionChanged, Withdraw
from mcrd.route.attributes import PathAttributes
from tests.events.brokerlib import (
    DEADLINE,
    Broker,
    Received,
    RecordingLog,
    lab_config,
    subscriber,
    wait_until,
)

TS = "2024-05-01T12:00:00.000Z"
ATTRS = PathAttributes("10.0.1.2", (64601,))
FAST = (0.05, 0.5)  # backoff: retry quickly, the tests restart brokers


async def stop_runner(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task})


async def test_session_flap_and_a_route_round(broker: Broker, log: RecordingLog) -> None:
    events = Events.from_config(lab_config({"port": broker.port}), log, backoff=FAST)
    runner = asyncio.create_task(events.run())
    try:
        async with subscriber(broker.port) as sub:
            events.emit_effects([Effects(records=(SessionChanged("10.0.1.2", "vxc1", "DOWN", "hold timer expired"),))],
                                TS)
            events.emit_effects([Effects(records=(SessionChanged("10.0.1.2", "vxc1", "UP"),))], TS)
            events.emit_effects([  # one daemon round, three processor rounds
                Effects(records=(ReceivedChanged("10.0.1.2", ("192.0.2.0/24", "198.51.100.0/24"), (), 0),),
                        announce=(Announce("10.0.2.2", ATTRS, ("192.0.2.0/24", "198.51.100.0/24")),),
                        best_added=("192.0.2.0/24", "198.51.100.0/24")),
                Effects(records=(ReceivedChanged("10.0.1.2", ("203.0.113.0/24",), (), 0),),
                        announce=(Announce("10.0.2.2", ATTRS, ("203.0.113.0/24",)),),
                        best_added=("203.0.113.0/24",)),
                Effects(records=(ReceivedChanged("10.0.1.2", (), ("198.51.100.0/24",), 0),),
                        withdraw=(Withdraw("10.0.2.2", ("198.51.100.0/24",)),),
                        best_removed=("198.51.100.0/24",)),
            ], TS)
            events.emit_exabgp_restart("the end of the test", 1, TS)  # last: once it is in, all before it is
            await sub.wait_for(4)
            assert [(m.topic, m.payload.get("state")) for m in sub.messages] == [
                ("mcrd/lab-mcr/session", "DOWN"), ("mcrd/lab-mcr/session", "UP"), ("mcrd/lab-mcr/routes", None),
                ("mcrd/lab-mcr/exabgp", None)]
            down, up, routes, _ = sub.payloads()
            assert down == {"type": "session", "mcr": "lab-mcr", "timestamp": TS, "peer": "10.0.1.2", "vxc": "vxc1",
                            "state": "DOWN", "reason": "hold timer expired", "seq": 1}
            assert (up["state"], up["seq"]) == ("UP", 2)
            assert routes["rounds"] == 3
            assert routes["sessions"] == [
                {"peer": "10.0.1.2", "received": {"accepted": ["192.0.2.0/24", "203.0.113.0/24"],
                                                  "removed": ["198.51.100.0/24"], "rejected": 0},
                 "sent": {"announced": [], "withdrawn": []}},
                {"peer": "10.0.2.2", "received": {"accepted": [], "removed": [], "rejected": 0},
                 "sent": {"announced": ["192.0.2.0/24", "203.0.113.0/24"], "withdrawn": ["198.51.100.0/24"]}},
            ]
            assert routes["best"] == {"added": ["192.0.2.0/24", "203.0.113.0/24"], "removed": ["198.51.100.0/24"]}
            await wait_until(lambda: events.published == 4)  # the PUBACKs may come after the deliveries
        assert (events.published, events.dropped, events.connected) == (4, 0, True)
    finally:
        await stop_runner(runner)
        await events.close()
    assert log.events() == ["mqtt_connected", "mqtt_disconnected"], log.text()


async def broker_restart(broker: Broker, log: RecordingLog) -> None:
    """Events published just before the broker stops, and while it is down (fewer than the bound), all arrive in
    order once it is back, to a subscriber whose persistent session survives the restart."""
    publisher = MqttPublisher(Mqtt(host="127.0.0.1", port=broker.port), "lab-mcr", log, queue_size=2000, backoff=FAST)
    runner = asyncio.create_task(publisher.run())
    received: list[Received] = []
    session: dict[str, Any] = {"identifier": "watcher", "clean_session": False, "messages": received}
    try:
        async with subscriber(broker.port, **session) as sub:
            publisher.publish("session", {"n": -1})
            await sub.wait_for(1)
            for n in range(300):
                publisher.publish("routes", {"n": n})
            await wait_until(lambda: publisher.published >= 50)  # stop with events on their way
            broker.stop()
            await wait_until(lambda: sub.disconnected and not publisher.connected)
        for n in range(300, 1000):
            publisher.publish("routes", {"n": n})
        assert publisher.dropped == 0
        assert publisher.queued >= 700
        broker.start()
        async with subscriber(broker.port, **session):
            await wait_until(lambda: publisher.queued == 0 and 999 in {m.payload["n"] for m in received},
                             what=lambda: f"queued {publisher.queued}, received {len(received)}")
        seen = [m.payload["n"] for m in received if m.payload["n"] >= 0]
        assert list(dict.fromkeys(seen)) == list(range(1000))  # all of them, first arrivals in order
        assert publisher.dropped == 0
    finally:
        await stop_runner(runner)
        await publisher.close()
    assert log.events("warning") == ["mqtt_disconnected"], log.text()  # once, not per event or per retry
    assert log.events("info") == ["mqtt_connected", "mqtt_connected", "mqtt_disconnected"], log.text()


async def test_a_broker_restart_loses_nothing_queued(broker: Broker, log: RecordingLog) -> None:
    await broker_restart(broker, log)


def test_a_broker_restart_under_uvloop(broker: Broker, log: RecordingLog) -> None:
    # The daemon runs on uvloop.run(): paho's sockets go through the loop's add_reader/add_writer there.
    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await broker_restart(broker, log)

    uvloop.run(scenario())


def test_events_made_before_the_loop_run_under_uvloop(broker: Broker, log: RecordingLog) -> None:
    # As in `mcrd run`: the daemon (and so its events) is built before uvloop.run() starts the loop.
    events = Events.from_config(lab_config({"port": broker.port}), log, backoff=FAST)
    events.emit_effects(Effects(records=(SessionChanged("10.0.1.2", "vxc1", "UP"),)), TS)

    async def scenario() -> None:
        async with subscriber(broker.port, identifier="uv", clean_session=False):
            pass  # a session of its own at the broker: what is published from now on is kept for it
        runner = asyncio.create_task(events.run())
        try:
            async with subscriber(broker.port, identifier="uv", clean_session=False) as sub:
                await sub.wait_for(1)
                assert sub.payloads()[0]["state"] == "UP"
        finally:
            await stop_runner(runner)
            await events.close()

    uvloop.run(scenario())
    assert (events.published, events.dropped) == (1, 0)


async def test_close_sends_what_is_queued(broker: Broker, log: RecordingLog) -> None:
    publisher = MqttPublisher(Mqtt(host="127.0.0.1", port=broker.port), "lab-mcr", log, backoff=FAST)
    async with subscriber(broker.port) as sub:
        runner = asyncio.create_task(publisher.run())
        await wait_until(lambda: publisher.connected)
        # As the daemon stops: its task group cancels run(), then close() sends what is left on its own.
        await stop_runner(runner)
        for n in range(500):
            publisher.publish("routes", {"n": n})
        await publisher.close(timeout=DEADLINE)
        await sub.wait_for(500)
        assert [p["n"] for p in sub.payloads()] == list(range(500))
    assert (publisher.published, publisher.dropped, publisher.queued) == (500, 0, 0)


async def test_a_reload_follows_the_broker_settings(make_broker: Callable[..., Broker], log: RecordingLog) -> None:
    first, second = make_broker(), make_broker()
    events = Events.from_config(lab_config({"port": first.port}), log, backoff=FAST)
    runner = asyncio.create_task(events.run())
    up = Effects(records=(SessionChanged("10.0.1.2", "vxc1", "UP"),))
    try:
        async with subscriber(first.port, "#") as one, subscriber(second.port, "#") as two:
            events.emit_effects(up, TS)
            await one.wait_for(1)
            events.update(lab_config({"port": second.port, "topicPrefix": "lab"}, product_name="mcr-2"))
            events.emit_effects(up, TS)
            await two.wait_for(1)
            assert (one.messages[0].topic, two.messages[0].topic) == ("mcrd/lab-mcr/session", "lab/mcr-2/session")
            assert two.messages[0].payload["mcr"] == "mcr-2"

            events.update(lab_config())  # events.mqtt removed: nothing more is sent
            assert not events.enabled
            events.emit_effects(up, TS)
            events.update(lab_config({"port": first.port}))  # and back
            events.emit_effects(up, TS)
            await one.wait_for(2)
            assert len(two.messages) == 1
            await wait_until(lambda: events.published == 3)
        assert events.dropped == 0
    finally:
        await stop_runner(runner)
        await events.close()


def _mosquitto_passwd(path: Path, user: str, password: str) -> None:
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        pytest.skip("mosquitto_passwd is not installed")
    subprocess.run([binary, "-c", "-b", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)


async def test_username_and_password_never_logged(
    make_broker: Callable[..., Broker], tmp_path: Path, log: RecordingLog, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "Pa55-w0rd-Kept-S3cret"
    passwd = tmp_path / "passwd"
    _mosquitto_passwd(passwd, "mcrd", password)
    broker = make_broker(extra=("allow_anonymous false", f"password_file {passwd}"))
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(mqtt._PAHO_LOG, "propagate", True)  # paho's own debug log included

    events = Events.from_config(lab_config({"port": broker.port, "username": "mcrd", "password": password}), log)
    wrong = MqttPublisher(Mqtt(host="127.0.0.1", port=broker.port, username="mcrd", password=password + "x"),
                          "lab-mcr", log, backoff=FAST)
    runners = [asyncio.create_task(events.run()), asyncio.create_task(wrong.run())]
    try:
        async with subscriber(broker.port, username="mcrd", password=password) as sub:
            events.emit_exabgp_restart(f"stderr said {password}", 1, TS)  # a secret in a reason: redacted
            wrong.publish("session", {"n": 1})
            await sub.wait_for(1)
            assert sub.messages[0].payload["reason"] == "stderr said ****"
            await wait_until(lambda: "mqtt_connect_failed" in log.events("warning"))
            assert not wrong.connected
            assert wrong.queued == 1  # kept for when the password is right
    finally:
        for runner in runners:
            await stop_runner(runner)
        await events.close()
        await wrong.close(timeout=0.5)
    out, err = capfd.readouterr()
    assert "Sending CONNECT" in caplog.text  # paho's log was captured: the check below means something
    for text in (log.text(), caplog.text, out, err):
        assert password not in text


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, as PEM files: (ca, cert, key)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, key: Any, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("mcrd test CA", "mcrd test CA", ca_key, ca_key, True)
    server_cert = build("127.0.0.1", "mcrd test CA", server_key, ca_key, False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


async def test_tls_uses_the_default_trust_store(
    make_broker: Callable[..., Broker], tmp_path: Path, log: RecordingLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = _certificates(tmp_path)
    broker = make_broker(extra=(f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"))
    settings = Mqtt(host="127.0.0.1", port=broker.port, tls=True)

    # Not trusted by the system: refused.
    untrusted = MqttPublisher(settings, "lab-mcr", log, backoff=FAST)
    runner = asyncio.create_task(untrusted.run())
    try:
        await wait_until(lambda: "mqtt_connect_failed" in log.events("warning"))
        assert not untrusted.connected
    finally:
        await stop_runner(runner)
        await untrusted.close(timeout=0.5)

    # Our CA as the default trust store (OpenSSL reads SSL_CERT_FILE when the default context loads it).
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    publisher = MqttPublisher(settings, "lab-mcr", log, backoff=FAST)
    runner = asyncio.create_task(publisher.run())
    try:
        async with subscriber(broker.port, tls_context=ssl.create_default_context(cafile=str(ca))) as sub:
            publisher.publish("session", {"n": 1})
            await sub.wait_for(1)
            assert sub.payloads() == [{"n": 1, "seq": 1}]
    finally:
        await stop_runner(runner)
        await publisher.close()


def test_loop_safe_client_fits_the_installed_aiomqtt() -> None:
    """Every private method of aiomqtt that LoopSafeClient replaces or calls is there with the parameters it expects,
    in the aiomqtt release it was written against."""
    import aiomqtt

    assert aiomqtt.__version__ in mqtt.LOOP_SAFE_FOR
    assert mqtt.loop_safe_problems() == []
    assert mqtt.client_class() == (mqtt.LoopSafeClient, f"aiomqtt {aiomqtt.__version__}")


def test_another_aiomqtt_gets_its_own_client() -> None:
    import aiomqtt

    assert mqtt.loop_safe_problems("3.0.0") == [
        f"aiomqtt 3.0.0 is installed; LoopSafeClient was written against aiomqtt {aiomqtt.__version__}"]

    def on_socket_close(self: Any, client: Any, userdata: Any, sock: Any, reason: int) -> None:
        pass

    # a release that renamed one callback and gave another one more parameter
    changed = type("Changed", (aiomqtt.Client,), {"_on_socket_open": None, "_on_socket_close": on_socket_close})
    assert mqtt.loop_safe_problems(aiomqtt.__version__, changed) == [
        "aiomqtt.Client._on_socket_open is missing",
        "aiomqtt.Client._on_socket_close takes (self, client, userdata, sock, reason), LoopSafeClient expects "
        "(self, client, userdata, sock)"]


async def test_with_an_unknown_aiomqtt_the_publisher_uses_aiomqtts_client_and_says_so(
        broker: Broker, log: RecordingLog, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiomqtt

    monkeypatch.setattr(mqtt, "LOOP_SAFE_FOR", frozenset({"0.0.1"}))  # the seam: as if another aiomqtt ran
    mqtt.client_class.cache_clear()
    built: list[type[Any]] = []
    real_init = aiomqtt.Client.__init__

    def recording_init(self: aiomqtt.Client, *args: Any, **kwargs: Any) -> None:
        built.append(type(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(aiomqtt.Client, "__init__", recording_init)
    try:
        publisher = MqttPublisher(Mqtt(host="127.0.0.1", port=broker.port), "lab-mcr", log, backoff=FAST)
        async with subscriber(broker.port) as sub:
            runner = asyncio.create_task(publisher.run())
            await wait_until(lambda: publisher.connected)
            for n in range(20):
                publisher.publish("routes", {"n": n})
            await sub.wait_for(20)
            await wait_until(lambda: publisher.published == 20)  # every PUBACK in: nothing is sent again at close
            await stop_runner(runner)
            await publisher.close(timeout=DEADLINE)
        assert [p["n"] for p in sub.payloads()] == list(range(20))
    finally:
        mqtt.client_class.cache_clear()
    assert built[0] is mqtt.LoopSafeClient  # the test's own subscriber
    assert set(built[1:]) == {aiomqtt.Client}  # the publisher's connections
    [(level, fields)] = [(lvl, f) for lvl, event, f in log.entries if event == "mqtt_stock_client"]
    assert level == "warning"
    assert fields["reason"] == (f"aiomqtt {aiomqtt.__version__} is installed; LoopSafeClient was written against "
                                "aiomqtt 0.0.1")
