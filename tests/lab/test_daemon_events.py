"""The running daemon publishes its events to a real mosquitto: a session coming up, routes, a session going down.

    aws (FRR 64512) ---- hub (mcrd, mosquitto on the hub's loopback, a subscriber beside it)
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

from tests.lab.conftest import LAB_MARKS
from tests.lab.harness import FrrNeighbor, FrrPeer, Lab, frr_config, poll

pytestmark = LAB_MARKS

SUBSCRIBER = textwrap.dedent("""\
    import asyncio, sys
    import aiomqtt

    async def main():
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe("mcrd/#", qos=1)
            print("subscribed", flush=True)
            async for message in client.messages:
                print(message.topic, message.payload.decode(), flush=True)

    asyncio.run(main())
""")


def messages(lab: Lab, subscriber: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for line in lab.log_of(subscriber).read_text().splitlines():
        topic, _, payload = line.partition(" ")
        if topic.startswith("mcrd/"):
            out.append((topic, json.loads(payload)))
    return out


def test_session_and_route_events_reach_the_broker(lab: Lab) -> None:
    hub, aws = lab.netns("hub"), lab.netns("aws")
    lab.link(hub, "aws", aws, "hub", [], ["169.254.10.2/30"])
    workdir = lab.make_dir("mqtt")
    (workdir / "mosquitto.conf").write_text("listener 1883 127.0.0.1\nallow_anonymous true\n")
    hub.popen("mosquitto", "-c", str(workdir / "mosquitto.conf"), label="mosquitto")
    subscriber = hub.popen(sys.executable, "-c", SUBSCRIBER, label="subscriber")
    poll(lambda: "subscribed" in lab.log_of(subscriber).read_text(), 20, "the subscriber is connected",
         ignore=(FileNotFoundError,))

    config = workdir / "mcrd.json"
    config.write_text(json.dumps({
        "mcr": {"productName": "lab-mcr", "routerId": "10.255.0.1"},
        "events": {"mqtt": {"host": "127.0.0.1", "port": 1883, "topicPrefix": "mcrd"}},
        "vxcs": [{"productName": "aws-vxc", "interface": lab.ifname("aws"), "vrouter": {"interfaces": [{
            "ipAddresses": ["169.254.10.1/30"],
            "bgpConnections": [{"peerAsn": 64512, "localIpAddress": "169.254.10.1",
                                "peerIpAddress": "169.254.10.2", "peerType": "PRIV_CLOUD", "holdTime": 9}],
        }]}}],
    }))
    hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--state-dir", str(lab.make_dir("state")),
              label="mcrd")
    frr = FrrPeer(aws, 64512, "10.0.0.1", frr_config(
        64512, "10.0.0.1", [FrrNeighbor("169.254.10.1", 133937, hold_time=9)], ["10.10.0.0/16"],
        hostname="aws", graceful_restart=False))
    frr.wait_established("169.254.10.1", 30)

    def find(topic: str, check: Any) -> dict[str, Any]:
        """The first message on `topic` that passes `check`, or {} (falsy) while there is none."""
        return next((p for t, p in messages(lab, subscriber) if t == topic and check(p)), {})

    up = poll(lambda: find("mcrd/lab-mcr/session", lambda p: p.get("state") == "UP"), 30, "session UP event")
    assert up["peer"] == "169.254.10.2"
    assert up["mcr"] == "lab-mcr"
    assert "timestamp" in up
    routes = poll(lambda: find("mcrd/lab-mcr/routes", lambda p: "10.10.0.0/16" in json.dumps(p)), 30,
                  "a routes event naming the prefix FRR announced")
    assert routes["type"] == "routes"

    frr.configure("router bgp 64512", "neighbor 169.254.10.1 shutdown")
    # The first DOWN is the one FRR's shutdown causes (its Cease 6/2): mcrd and FRR both connect at start, and that
    # collision is resolved before either connection is Established (exabgp_listen.py), so no DOWN comes before it.
    down = poll(lambda: find("mcrd/lab-mcr/session", lambda p: p.get("state") == "DOWN"), 30, "session DOWN event")
    assert (down["peer"], down["reason"]) == ("169.254.10.2", "notification received (6,2)")
    assert up["seq"] < routes["seq"] < down["seq"]  # published in the order things happened
