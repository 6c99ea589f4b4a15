"""Events about the MCR (sessions, routes, config, ExaBGP) published over MQTT; see docs/events.md."""

from mcrd.events.mqtt import MqttPublisher
from mcrd.events.payloads import iso_utc
from mcrd.events.sink import Events, secrets_of

__all__ = ["Events", "MqttPublisher", "iso_utc", "secrets_of"]
