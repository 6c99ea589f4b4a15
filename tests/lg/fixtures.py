"""A route processor in a known state, without root, network or ExaBGP: the looking glass's unit-test fixture.

Three peers (`peer_config` addressing: VXC n on eth<n>, 10.0.n.0/24, MCR .1, peer .2):
1. aws, AS 64512, PRIV_CLOUD, MD5 key, Import Permit List `aws` (10.10/16, 10.20/16); static 10.99.0.0/16 via it;
   sends 10.10/16, 10.20/16 and 10.50/16 (rejected).
2. azure, AS 12076, PRIV_CLOUD, Export Permit List `to-azure` (10.10/16); sends 10.30/16, 10.30.1/24, and 10.10/16
   with a longer AS path (a candidate that loses).
3. onprem, AS 65010, NON_CLOUD, medIn 50, shut down.
"""

from __future__ import annotations

from typing import Any

from mcrd.bfd import BfdDiag, BfdState, BfdStatus
from mcrd.config.diff import change_problems
from mcrd.config.load import ConfigProblem, format_path
from mcrd.config.model import Config
from mcrd.fib.worker import KernelStatus
from mcrd.lg.configapi import ConfigOutcome
from mcrd.lg.metrics import DaemonMetrics
from mcrd.rib.effects import ConfigApplied
from mcrd.rib.inputs import ConfigChanged, PeerUp, RoutesAnnounced
from mcrd.rib.processor import RouteProcessor
from mcrd.route.attributes import PathAttributes
from tests.core.helpers import peer_config

T0 = 1_000.0
NOW = 1_100.0
AWS, AZURE, ONPREM = "10.0.1.2", "10.0.2.2", "10.0.3.2"
AWS_KEY = "aws-md5-key"
TOKEN = "lab-token-123"


def lists(to_azure: tuple[str, ...] = ("10.10.0.0/16",)) -> list[dict[str, Any]]:
    def plist(list_id: int, name: str, prefixes: tuple[str, ...]) -> dict[str, Any]:
        return {"id": list_id, "description": name, "addressFamily": "IPv4",
                "entries": [{"action": "permit", "prefix": p} for p in prefixes]}

    return [plist(1, "aws", ("10.10.0.0/16", "10.20.0.0/16")), plist(2, "to-azure", to_azure)]


def config(*, to_azure: tuple[str, ...] = ("10.10.0.0/16",), token: str | None = TOKEN) -> Config:
    base = peer_config(
        [
            {"peerAsn": 64512, "peerType": "PRIV_CLOUD", "password": AWS_KEY, "importWhitelist": "aws",
             "description": "AWS hosted VIF", "ipRoutes": [{"prefix": "10.99.0.0/16", "nextHop": AWS}]},
            {"peerAsn": 12076, "peerType": "PRIV_CLOUD", "exportWhitelist": "to-azure"},
            {"peerAsn": 65010, "peerType": "NON_CLOUD", "medIn": 50, "shutdown": True},
        ],
        lists(to_azure),
        mcr={"productName": "lab-mcr"},
    )
    if token is None:
        return base
    data = base.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data["api"] = {"listen": "127.0.0.1:8080", "token": token}
    return Config.model_validate(data)


def processor(cfg: Config | None = None) -> RouteProcessor:
    p = RouteProcessor()
    p.handle(ConfigChanged(cfg or config()), T0)
    p.handle(PeerUp(AWS, "10.255.0.1"), T0 + 10)
    p.handle(PeerUp(AZURE, "10.255.0.2"), T0 + 10)
    p.handle(RoutesAnnounced(AWS, PathAttributes(AWS, (64512,), med=5),
                             ("10.10.0.0/16", "10.20.0.0/16", "10.50.0.0/16")), T0 + 20)
    p.handle(RoutesAnnounced(AZURE, PathAttributes(AZURE, (12076,)), ("10.30.0.0/16", "10.30.1.0/24")), T0 + 30)
    p.handle(RoutesAnnounced(AZURE, PathAttributes(AZURE, (12076, 12076, 12076)), ("10.10.0.0/16",)), T0 + 40)
    return p


class FakeSpeaker:
    def __init__(self) -> None:
        self.restarts = 0
        self.alive = True
        self.lines_dropped = 0
        self.sessions_reset = 0


class FakeBackend:
    """The daemon as the HTTP API sees it, applying configs to its processor directly (the real one goes through
    the daemon's queue; the lab test covers that)."""

    def __init__(self, cfg: Config | None = None) -> None:
        self.config = cfg or config()
        self.processor = processor(self.config)
        self.speaker_pool = FakeSpeaker()
        self.kernel = KernelStatus()
        self.route_refreshes: dict[str, int] = {}
        self.metrics = DaemonMetrics(self)
        self.unhealthy: list[str] = []
        self.applied: list[Config] = []
        self.bfd: dict[str, Any] = {}

    def bfd_status(self) -> dict[str, Any]:
        return dict(self.bfd)

    def kernel_status(self) -> KernelStatus:
        return self.kernel

    def health(self) -> list[str]:
        return list(self.unhealthy)

    async def apply_config(self, new: Config, source: str) -> ConfigOutcome:
        problems = [ConfigProblem(source, 0, format_path(path), message)
                    for path, message in change_problems(self.config, new)]
        if problems:
            return ConfigOutcome(problems=tuple(problems))
        self.config = new
        self.applied.append(new)
        effects = self.processor.handle(ConfigChanged(new), NOW)
        applied = next((r for r in effects.records if isinstance(r, ConfigApplied)), None)
        return ConfigOutcome(applied=applied)


def bfd_status(peer: str, state: str = "UP", last_change: float | None = 100.0) -> Any:
    """A BFD session's status as mcrd.bfd reports it."""
    return BfdStatus(peer=peer, local="10.0.1.1", interface="eth1", state=BfdState[state], remote_state=BfdState.UP,
                     local_diag=BfdDiag.NONE, remote_diag=BfdDiag.NONE, local_discriminator=7, remote_discriminator=9,
                     tx_interval_ms=300.0, rx_interval_ms=300.0, detection_time_ms=900.0, remote_multiplier=3,
                     transitions=2, last_change=last_change)
