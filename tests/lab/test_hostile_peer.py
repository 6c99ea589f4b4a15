"""What a peer sends cannot wedge or poison mcrd (issue 13): big UPDATEs, malformed UPDATEs, unusable next hops,
martians. A raw BGP speaker (tests/bgp/rawbgp.py) is the third peer of a running mcrd, next to real FRR and BIRD:

    frr (FRR 65010, 3,000 prefixes) --+                 +-- bird (BIRD 65020)
                                      +--- hub (mcrd) --+
                                                        +-- raw (raw speaker 65099, listens on 179; ExaBGP connects)

Every assertion is read from the honest peers' RIBs (exact sets), the hub's kernel, the looking glass and process
ids; the expectations come from the case table (tests/bgp/malformed.py), never from mcrd.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mcrd.fib.netns import enter_netns
from tests.bgp import rawbgp as r
from tests.bgp.malformed import CASES, Case, Ctx
from tests.lab.conftest import LAB_MARKS, module_lab
from tests.lab.harness import BirdNeighbor, BirdPeer, FrrNeighbor, FrrPeer, Lab, bird_config, frr_config, poll
from tests.lab.test_daemon import Hub

pytestmark = LAB_MARKS

T = TypeVar("T")
MCR_AS, FRR_AS, BIRD_AS, RAW_AS = 133937, 65010, 65020, 65099
HUB = {"frr": ("172.16.1.1", "172.16.1.2"), "bird": ("172.16.2.1", "172.16.2.2"), "raw": ("172.16.3.1", "172.16.3.2")}
FRR_TABLE = [f"10.{100 + i // 256}.{i % 256}.0/24" for i in range(3000)]
BIRD_NET = "192.168.20.0/24"
MARKER = "10.222.0.0/24"
API = "http://127.0.0.1:8080"
NSCLIENT = str(Path(__file__).parents[1] / "lg" / "nsclient.py")
TIMEOUT = 60.0


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread that entered `netns` (sockets it opens belong there)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            enter_netns(netns)
            result.append(fn())
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def mcr_config(lab: Lab) -> dict[str, Any]:
    def vxc(name: str, asn: int, **conn: Any) -> dict[str, Any]:
        hub, peer = HUB[name]
        connection = {"peerAsn": asn, "localIpAddress": hub, "peerIpAddress": peer, "peerType": "NON_CLOUD",
                      "holdTime": 30, **conn}
        return {"productName": f"{name}-vxc", "interface": lab.ifname(name),
                "vrouter": {"interfaces": [{"ipAddresses": [f"{hub}/30"], "bgpConnections": [connection]}]}}

    return {
        "mcr": {"productName": "lab-mcr", "mcrAsn": MCR_AS, "routerId": "10.255.0.1", "maxRoutes": 50000},
        "api": {"listen": "127.0.0.1:8080"},
        "vxcs": [vxc("frr", FRR_AS), vxc("bird", BIRD_AS), vxc("raw", RAW_AS)],
    }


@dataclass
class Topo:
    hub: Hub  # mcrd in the hub namespace: its log, events and kernel routes (tests/lab/test_daemon.py)
    frr: FrrPeer
    bird: BirdPeer
    listener: socket.socket
    raw: r.RawPeer

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.hub.events(name)

    def kernel(self) -> dict[str, str]:
        return self.hub.kernel()

    def get(self, path: str) -> str:
        out = self.hub.ns.run(sys.executable, NSCLIENT, "GET", API + path).stdout.strip().splitlines()[-1]
        answer = json.loads(out)
        assert answer["status"] == 200, answer
        return str(answer["body"])

    def api(self, path: str) -> Any:
        return json.loads(self.get(path))

    def metric(self, name: str) -> float:
        for line in self.get("/metrics").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")

    def filtered(self) -> dict[str, str]:
        rows = self.api(f"/v2/product/mcr2/lab-mcr/lookingGlass/bgpSessions/{HUB['raw'][1]}/received?filtered=true")
        return {row["prefix"]: row["rejection"]["code"] for row in rows["data"]}

    def accept_raw(self) -> r.RawPeer:
        peer = r.RawPeer(RAW_AS, "10.0.0.99", hold=30)
        peer.accept(self.listener, timeout=TIMEOUT)
        self.raw = peer
        return peer

    def honest(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """What FRR and BIRD hold from the hub: prefix -> AS path."""
        frr = {p: route.as_path for p, route in self.frr.routes("ipv4").items() if route.as_path[:1] == (MCR_AS,)}
        bird = {p: route.as_path for p, route in self.bird.routes("master4").items()
                if route.as_path[:1] == (MCR_AS,)}
        return {"frr": frr, "bird": bird}


@pytest.fixture(scope="module")
def topo(lab_ready: None, request: pytest.FixtureRequest) -> Iterator[Topo]:
    with module_lab("test_hostile_peer", request) as lab:
        hub = lab.netns("hub")
        spokes = {name: lab.netns(name) for name in HUB}
        for name, ns in spokes.items():
            lab.link(hub, name, ns, "hub", [], [f"{HUB[name][1]}/30"])
        listener = in_netns(spokes["raw"].name, lambda: r.listener(HUB["raw"][1]))
        topo: Topo | None = None
        try:
            config = lab.make_dir("mcrd") / "mcrd.yaml"
            config.write_text(json.dumps(mcr_config(lab), indent=2))
            mcrd = hub.popen(sys.executable, "-m", "mcrd", "run", "-c", str(config), "--log-format", "json",
                             "--state-dir", str(lab.make_dir("mcrd-state")), label="mcrd")
            the_hub = Hub(lab, hub, mcrd, config, 1)
            frr = FrrPeer(spokes["frr"], FRR_AS, "10.0.0.1", frr_config(
                FRR_AS, "10.0.0.1", [FrrNeighbor(HUB["frr"][0], MCR_AS, hold_time=30)], FRR_TABLE, hostname="frr",
                graceful_restart=False))
            bird = BirdPeer(spokes["bird"], bird_config(
                BIRD_AS, "10.0.0.2", [BirdNeighbor("mcr4", HUB["bird"][0], MCR_AS, hold_time=30)], [BIRD_NET]))
            topo = Topo(the_hub, frr, bird, listener, r.RawPeer(RAW_AS, "10.0.0.99"))
            topo.accept_raw()
            frr.wait_established(HUB["frr"][0], TIMEOUT)
            bird.wait_established("mcr4", TIMEOUT)
            yield topo
        finally:
            if topo is not None:
                topo.raw.close()
            listener.close()


def _exact(topo: Topo, want: dict[str, tuple[int, ...]]) -> None:
    """FRR and BIRD hold exactly `want` (prefix -> AS path as the hub sends it; FRR also gets BIRD's network and
    BIRD FRR's table), and the hub's kernel holds exactly those prefixes plus both peers' own."""
    bird_want = {**want, **dict.fromkeys(FRR_TABLE, (MCR_AS, FRR_AS))}
    frr_want = {**want, BIRD_NET: (MCR_AS, BIRD_AS)}
    poll(topo.honest, TIMEOUT, "the honest peers do not hold exactly the expected routes",
         until=lambda got: got == {"frr": frr_want, "bird": bird_want}, interval=0.5)
    kernel_want = {**dict.fromkeys(want, HUB["raw"][1]), **dict.fromkeys(FRR_TABLE, HUB["frr"][1]),
                   BIRD_NET: HUB["bird"][1]}
    poll(topo.kernel, TIMEOUT, "the hub's kernel does not hold exactly the expected routes",
         until=lambda got: got == kernel_want, interval=0.5)


def _nothing_crashed(topo: Topo, exabgp_pid: int) -> None:
    assert topo.hub.proc.poll() is None, "mcrd exited"
    assert [e["pid"] for e in topo.events("exabgp_started")] == [exabgp_pid], "ExaBGP was restarted"
    assert not topo.events("exabgp_api_read_failed")
    assert topo.frr.session_state(HUB["frr"][0]) == "Established"
    assert topo.bird.session_state("mcr4").startswith("Established")


def test_a_full_frr_table_in_one_extended_update_arrives_exactly(topo: Topo) -> None:
    """Item 1: FRR packs its 3,000 prefixes in one Extended Message UPDATE (~90 KB of ExaBGP JSON, above asyncio's
    64 KiB line limit) at establishment and again after `clear bgp *`."""
    exabgp_pid = topo.events("exabgp_started")[0]["pid"]
    _exact(topo, {})
    stats = topo.frr.show_json(f"show bgp neighbors {HUB['frr'][0]}")[HUB["frr"][0]]["messageStats"]
    before = stats["updatesSent"]
    topo.frr.vtysh("clear bgp *")
    poll(lambda: topo.frr.session_state(HUB["frr"][0]) == "Established"
         and topo.frr.show_json(f"show bgp neighbors {HUB['frr'][0]}")[HUB["frr"][0]]["messageStats"]["updatesSent"]
         > 0, TIMEOUT, "FRR did not re-establish and send its table")
    _exact(topo, {})
    sent = topo.frr.show_json(f"show bgp neighbors {HUB['frr'][0]}")[HUB["frr"][0]]["messageStats"]["updatesSent"]
    print(f"FRR UPDATEs for its 3,000 prefixes: {before} at establishment, {sent} after clear bgp *")
    _nothing_crashed(topo, exabgp_pid)


def test_20000_prefixes_in_one_extended_update_from_the_raw_speaker(topo: Topo) -> None:
    exabgp_pid = topo.events("exabgp_started")[0]["pid"]
    prefixes = [f"{11 + i // 256}.{i % 256}.0.0/16" for i in range(20000)]
    message = r.update(attributes=r.basic(RAW_AS, HUB["raw"][1]), nlri=r.prefixes(prefixes))
    assert 60000 < len(message) <= 65535
    topo.raw.send(message)
    _exact(topo, dict.fromkeys(prefixes, (MCR_AS, RAW_AS)))
    withdraw = r.update(withdrawn=r.prefixes(prefixes))
    assert len(withdraw) <= 65535
    topo.raw.send(withdraw)
    _exact(topo, {})
    assert topo.raw.up
    _nothing_crashed(topo, exabgp_pid)


def _ctx(topo: Topo, case: Case, index: int) -> Ctx:
    prefix = (case.prefix or f"10.200.{index}.0/24").format(hub=HUB["raw"][0])
    return Ctx(HUB["raw"][0], HUB["raw"][1], HUB["frr"][0], RAW_AS, prefix, 65000 + index)


def test_malformed_updates_do_what_the_case_table_says(topo: Topo) -> None:
    """Every kind of the table that keeps the session (treat-as-withdraw, attribute discard, import rules): each
    case's prefix is first announced valid, then by the case's UPDATE; then a marker. The honest peers and the
    kernel must end exact, the looking glass must show each refused route with its code."""
    exabgp_pid = topo.events("exabgp_started")[0]["pid"]
    kept = [(i, case) for i, case in enumerate(CASES) if case.outcome != "reset"]
    valid = [_ctx(topo, case, i).prefix for i, case in kept if case.prefix is None]
    topo.raw.send(r.update(attributes=r.basic(RAW_AS, HUB["raw"][1]), nlri=r.prefixes(valid)))
    _exact(topo, dict.fromkeys(valid, (MCR_AS, RAW_AS)))
    for i, case in kept:
        topo.raw.send(case.build(_ctx(topo, case, i)))
    topo.raw.send(r.update(attributes=r.basic(RAW_AS, HUB["raw"][1]), nlri=r.prefixes([MARKER])))
    want: dict[str, tuple[int, ...]] = {MARKER: (MCR_AS, RAW_AS)}
    refused = {}
    for i, case in kept:
        ctx = _ctx(topo, case, i)
        if case.outcome in ("used", "discard"):
            want[ctx.prefix] = (MCR_AS, RAW_AS, ctx.mark)
        elif case.outcome == "reject":
            refused[ctx.prefix] = case.code
    _exact(topo, want)
    assert topo.filtered() == refused
    # Refused routes are not counted as kernel routes (the kernel itself was checked by _exact).
    assert topo.metric("mcrd_kernel_routes") == len(topo.kernel())
    assert topo.raw.up, f"the session was reset: {topo.raw.received.notification}"
    _nothing_crashed(topo, exabgp_pid)
    # Clean up for the next test: withdraw everything the raw speaker announced.
    topo.raw.send(r.update(withdrawn=r.prefixes([*valid, MARKER, *refused])))
    _exact(topo, {})


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome == "reset"], ids=lambda c: c.kind)
def test_malformed_updates_that_reset_the_session(topo: Topo, case: Case) -> None:
    """Where RFC 7606 cannot find the NLRI: NOTIFICATION with the table's code and subcode, the raw peer's routes
    withdrawn everywhere, the session back (ExaBGP reconnects), nothing else touched."""
    exabgp_pid = topo.events("exabgp_started")[0]["pid"]
    if not topo.raw.up:
        topo.accept_raw()
    topo.raw.send(r.update(attributes=r.basic(RAW_AS, HUB["raw"][1]), nlri=r.prefixes([MARKER])))
    _exact(topo, {MARKER: (MCR_AS, RAW_AS)})
    topo.raw.send(case.build(_ctx(topo, case, 99)))
    got = poll(lambda: topo.raw.received.notification, TIMEOUT, f"{case.kind}: no NOTIFICATION")
    assert got is not None
    assert got[:2] == case.code
    _exact(topo, {})
    topo.raw.close()
    topo.accept_raw()  # ExaBGP connects again
    _nothing_crashed(topo, exabgp_pid)
