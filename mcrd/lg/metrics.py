"""Prometheus metrics of one daemon, in a registry of its own (not prometheus_client's global one).

Gauges and counters that the daemon already knows (sessions, prefixes, routes, ExaBGP restarts, dropped events) are
read at scrape time by `StateCollector`; only the processing-time histogram and the reload counter are recorded as
things happen. Scrapes run on the event loop thread, like the route processor, so they read a consistent state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcrd.fib.worker import KernelStatus
from mcrd.rib.processor import RouteProcessor

CONTENT_TYPE = CONTENT_TYPE_LATEST
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUSES = ("UP", "DOWN")


class SpeakerStatus(Protocol):
    @property
    def restarts(self) -> int: ...

    @property
    def lines_dropped(self) -> int: ...

    @property
    def sessions_reset(self) -> int: ...

    @property
    def alive(self) -> bool: ...


class MetricsSource(Protocol):
    """What the collector reads (the daemon)."""

    @property
    def processor(self) -> RouteProcessor: ...

    @property
    def speaker_pool(self) -> SpeakerStatus: ...

    def kernel_status(self) -> KernelStatus: ...

    @property
    def route_refreshes(self) -> Mapping[str, int]:
        """ROUTE-REFRESH requests answered, by peer address."""
        ...

    def bfd_status(self) -> Mapping[str, Any]:
        """mcrd.bfd.BfdStatus by peer address."""
        ...


def _zero() -> int:
    return 0


class DaemonMetrics:
    """The registry and the metrics recorded as things happen.

    `dropped_events` is read at scrape time: the event publisher sets it to a callable that returns how many events
    it had to drop (0 until one is wired)."""

    def __init__(self, source: MetricsSource) -> None:
        self.registry = CollectorRegistry()
        self.processing = Histogram(
            "mcrd_update_processing_seconds",
            "Time to process one batch of queued events: route processor, ExaBGP commands handed over, kernel "
            "programmed",
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "mcrd_config_reloads", "Config changes (SIGHUP or PUT /config), by result", ["result"],
            registry=self.registry,
        )
        for result in ("applied", "rejected"):
            self.config_reloads.labels(result)
        self.dropped_events: Callable[[], int] = _zero
        self.registry.register(StateCollector(source, lambda: self.dropped_events()))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    def __init__(self, source: MetricsSource, dropped_events: Callable[[], int]) -> None:
        self._source = source
        self._dropped = dropped_events

    def collect(self) -> Iterator[Metric]:
        source = self._source
        processor = source.processor
        peers = processor.peers()
        labels = ["session", "vxc"]

        by_status = GaugeMetricFamily("mcrd_bgp_sessions", "BGP sessions by status", labels=["status"])
        for status in STATUSES:
            by_status.add_metric([status], sum(1 for p in peers if ("UP" if p.up else "DOWN") == status))
        yield by_status

        families = {
            "up": GaugeMetricFamily("mcrd_bgp_session_up", "1 when the BGP session is up", labels=labels),
            "received": GaugeMetricFamily(
                "mcrd_bgp_prefixes_received", "Prefixes held from the session: accepted plus rejected", labels=labels),
            "accepted": GaugeMetricFamily(
                "mcrd_bgp_prefixes_accepted", "Prefixes from the session that import policy accepted", labels=labels),
            "rejected": GaugeMetricFamily(
                "mcrd_bgp_prefixes_rejected", "Prefixes from the session that import policy rejected (kept with the "
                "reason; see received?filtered=true)", labels=labels),
            "advertised": GaugeMetricFamily(
                "mcrd_bgp_prefixes_advertised", "Prefixes the MCR advertises on the session", labels=labels),
        }
        for peer in peers:
            values = {
                "up": 1 if peer.up else 0,
                "received": len(peer.accepted) + len(peer.rejected),
                "accepted": len(peer.accepted),
                "rejected": len(peer.rejected),
                "advertised": len(peer.out),
            }
            for name, family in families.items():
                family.add_metric([peer.key, peer.policy.vxc], values[name])
        yield from families.values()
        refreshes = CounterMetricFamily("mcrd_bgp_route_refreshes", "ROUTE-REFRESH requests from the peer that the "
                                        "MCR answered by sending its routes again", labels=labels)
        for peer in peers:
            refreshes.add_metric([peer.key, peer.policy.vxc], source.route_refreshes.get(peer.key, 0))
        yield refreshes
        yield from _bfd_families(source.bfd_status(), {peer.key: peer.policy.vxc for peer in peers})

        yield _gauge("mcrd_rib_routes", "Routes in the RIB (best route per prefix)", processor.route_count)
        yield _gauge("mcrd_kernel_routes", "Routes the kernel was asked to hold", len(processor.fib()))
        yield _gauge("mcrd_routes_waiting", "Prefixes refused at the route limit, waiting for room",
                     processor.waiting_for_room)
        yield _counter("mcrd_routes_refused", "Prefixes refused because the MCR held its route limit",
                       processor.refused_total)
        kernel = source.kernel_status()
        yield _counter("mcrd_kernel_route_errors", "Kernel route changes that failed (first tries, retries and scans)",
                       kernel.errors)
        yield _gauge("mcrd_kernel_routes_pending", "Best routes the kernel refused, waiting to be sent again",
                     kernel.pending)
        yield _counter("mcrd_kernel_route_retries", "Refused kernel routes sent again", kernel.retried)
        yield _counter("mcrd_kernel_scans", "Scans of the kernel's routes of protocol 252 against the best routes",
                       kernel.scans)
        repairs = CounterMetricFamily("mcrd_kernel_repairs", "Routes a scan found wrong in the kernel and fixed: "
                                      "added (missing), replaced (altered), removed (not wanted)", labels=["action"])
        repairs.add_metric(["added"], kernel.repaired_added)
        repairs.add_metric(["replaced"], kernel.repaired_replaced)
        repairs.add_metric(["removed"], kernel.repaired_removed)
        yield repairs
        yield _gauge("mcrd_kernel_scan_seconds", "Duration of the last kernel scan", kernel.last_scan_seconds)
        yield _gauge("mcrd_exabgp_up", "1 when every ExaBGP process runs with its API connected",
                     1 if source.speaker_pool.alive else 0)
        yield _counter("mcrd_exabgp_restarts", "Times an ExaBGP process died and was restarted",
                       source.speaker_pool.restarts)
        yield _counter("mcrd_exabgp_api_lines_dropped", "ExaBGP API lines mcrd could not use (too long or not "
                       "understood); see the log", source.speaker_pool.lines_dropped)
        yield _counter("mcrd_bgp_sessions_reset", "Sessions mcrd reset because an UPDATE received on them could not "
                       "be used (the peer then sends its table again)", source.speaker_pool.sessions_reset)
        yield _counter("mcrd_events_dropped", "Events the event publisher dropped (queue full)", self._dropped())


def _bfd_families(statuses: Mapping[str, Any], vxcs: Mapping[str, str]) -> list[Metric]:
    labels = ["session", "vxc"]
    state = GaugeMetricFamily("mcrd_bfd_session_state", "BFD session state as on the wire (RFC 5880): 0 AdminDown, "
                              "1 Down, 2 Init, 3 Up", labels=labels)
    transitions = CounterMetricFamily("mcrd_bfd_transitions", "BFD session state changes", labels=labels)
    detection = GaugeMetricFamily("mcrd_bfd_detection_time_seconds", "Negotiated BFD detection time (remote "
                                  "multiplier x agreed receive interval)", labels=labels)
    for peer, status in statuses.items():
        values = [peer, vxcs.get(peer, "")]
        state.add_metric(values, status.state.value)
        transitions.add_metric(values, status.transitions)
        detection.add_metric(values, status.detection_time_ms / 1000)
    return [state, transitions, detection]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)

