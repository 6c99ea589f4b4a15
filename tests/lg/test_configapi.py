"""Secrets out of GET /config, and back in from the running config when a PUT carries the marker."""

from __future__ import annotations

import json
from typing import Any

from mcrd.config.model import Config
from mcrd.lg.configapi import SECRET_MARKER, dump, keep_running_secrets, redacted
from tests.lg.fixtures import AWS_KEY, TOKEN, config


def with_mqtt(cfg: Config, password: str | None) -> Config:
    data = dump(cfg)
    data["events"] = {"mqtt": {"host": "broker", "username": "mcrd", "password": password}}
    return Config.model_validate(data)


def conn(data: dict[str, Any], v: int) -> dict[str, Any]:
    found: dict[str, Any] = data["vxcs"][v]["vrouter"]["interfaces"][0]["bgpConnections"][0]
    return found


def test_redacted_hides_md5_keys_the_api_token_and_the_mqtt_password() -> None:
    running = with_mqtt(config(), "mqtt-secret")
    data = redacted(running)
    text = json.dumps(data)
    for secret in (AWS_KEY, TOKEN, "mqtt-secret"):
        assert secret not in text
    assert conn(data, 0)["password"] == SECRET_MARKER
    assert data["api"]["token"] == SECRET_MARKER
    assert data["events"]["mqtt"]["password"] == SECRET_MARKER
    assert data["events"]["mqtt"]["username"] == "mcrd"
    assert "password" not in conn(data, 1)
    assert dump(running)["api"]["token"] == TOKEN  # the running config itself is untouched


def test_the_marker_stands_for_the_running_secret_in_the_same_place() -> None:
    running = with_mqtt(config(), "mqtt-secret")
    new = Config.model_validate(redacted(running))
    kept, problems = keep_running_secrets(new, running, "PUT /config")
    assert problems == []
    assert kept == running


def test_a_new_secret_replaces_the_running_one_and_no_marker_means_no_change() -> None:
    running = config()
    data = redacted(running)
    conn(data, 0)["password"] = "a-new-key"
    new = Config.model_validate(data)
    kept, problems = keep_running_secrets(new, running, "PUT /config")
    assert problems == []
    assert kept.vxcs[0].vrouter.interfaces[0].bgp_connections[0].password == "a-new-key"
    assert kept.api.token == TOKEN
    plain = config(token=None)
    assert keep_running_secrets(plain, running, "x") == (plain, [])


def test_a_marker_with_nothing_to_stand_for_is_a_problem() -> None:
    running = config(token=None)
    data = redacted(with_mqtt(config(), "mqtt-secret"))
    _, problems = keep_running_secrets(Config.model_validate(data), running, "PUT /config")
    assert [str(p) for p in problems] == [
        "PUT /config: api.token: is the marker '********' of GET /config, but the running config has no api.token "
        "to keep: give the secret itself",
        "PUT /config: events.mqtt.password: is the marker '********' of GET /config, but the running config has no "
        "events.mqtt.password to keep: give the secret itself",
    ]
