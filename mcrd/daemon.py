"""`mcrd run`: wiring only. ExaBGP messages and reloads (SIGHUP, PUT /config) go through one queue to the route
processor; its effects go to ExaBGP (commands) and to the kernel (routes). The HTTP API (looking glass, config,
metrics, health) reads the processor between rounds and never changes it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import operator
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mcrd.bfd import BfdManager, BfdState, BfdStatus, BfdTransition, bfd_peers
from mcrd.bgp import exabgp_fastpath
from mcrd.bgp.commands import effects_commands, fast_effects_commands, refresh_commands
from mcrd.bgp.holds import BFD, INTERFACE, Holds
from mcrd.bgp.messages import Ack, Ignored, Malformed, Notification, Parsed, RefreshRequested
from mcrd.bgp.pool import SpeakerPool
from mcrd.config.diff import change_problems
from mcrd.config.load import ConfigError, ConfigProblem, format_path, load_config
from mcrd.config.model import Config
from mcrd.events import Events, iso_utc
from mcrd.fib.worker import DEFAULT_SCAN_INTERVAL, FibWorker, KernelStatus
from mcrd.iface.links import InterfaceManager
from mcrd.iface.monitor import LinkMonitor
from mcrd.iface.tracking import LinkSnapshot, session_faults, vxc_link_states
from mcrd.lg.configapi import ConfigOutcome
from mcrd.lg.http import ApiServer
from mcrd.lg.metrics import DaemonMetrics
from mcrd.log import REDACTOR, get_logger
from mcrd.rib.effects import (
    ConfigApplied,
    Effects,
    FibInstall,
    FibNextHop,
    InputIgnored,
    ReceivedChanged,
    RouteLimitReached,
    SessionChanged,
)
from mcrd.rib.inputs import ConfigChanged, EndOfRib, Input, PeerDown, PeerUp, RoutesAnnounced, RoutesWithdrawn
from mcrd.rib.processor import RouteProcessor

BATCH = 512  # queued items handled in one round before commands and kernel changes go out
# A round stops taking queued items once it holds this many announced or withdrawn prefixes: its routes reach the
# peers and the kernel only when the whole round has been handled, so a burst goes out in steps while the rest of
# it is still being read and handled. S2 (10 UPDATEs of 1,000 prefixes) came in a round of 1 then one of 9: the
# kernel changed 9,000 routes at once after the peers had theirs, and a reader of the kernel's route events (the
# benchmark's, a routing daemon's) took 30-90 ms more to see them (docs/PERFORMANCE.md "Issue 14: the last
# remainder").
ROUND_ROUTES = 2000


@dataclass(frozen=True, slots=True)
class Reload:
    """Apply a new config: `config`, already parsed (from the config file on SIGHUP, or PUT /config; `source` names
    it in problems and logs), or refuse it with the `problems` reading it found; with neither, re-read the config
    file here. `done`, when given, receives the outcome."""

    config: Config | None = None
    source: str = ""
    done: asyncio.Future[ConfigOutcome] | None = None
    problems: tuple[ConfigProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeakerLost:
    reason: str
    holds: Callable[[str], bool]  # the sessions of the ExaBGP process that died (peer address -> bool)


@dataclass(frozen=True, slots=True)
class LinksChanged:
    """The kernel's links and addresses changed (mcrd.iface.monitor)."""

    snapshot: LinkSnapshot


@dataclass(frozen=True, slots=True)
class BfdChanged:
    """A BFD session changed state (mcrd.bfd)."""

    transition: BfdTransition


Item = Input | Reload | SpeakerLost | LinksChanged | BfdChanged | RefreshRequested


def take_round(first: Item, queue: asyncio.Queue[Item]) -> list[Item]:
    """`first` and the items queued behind it that go in the same round (BATCH, ROUND_ROUTES)."""
    batch = [first]
    routes = len(first.prefixes) if isinstance(first, RoutesAnnounced | RoutesWithdrawn) else 0
    while len(batch) < BATCH and routes < ROUND_ROUTES and not queue.empty():
        item = queue.get_nowait()
        batch.append(item)
        if isinstance(item, RoutesAnnounced | RoutesWithdrawn):
            routes += len(item.prefixes)
    return batch


class StartupError(Exception):
    """The daemon cannot start (already logged)."""


class Daemon:
    def __init__(self, config_path: Path, config: Config, *, state_dir: Path | None = None,
                 exabgp_processes: int = 1, kernel_scan_interval: float = DEFAULT_SCAN_INTERVAL) -> None:
        self.config_path = config_path
        self.config = config
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="mcrd-"))
        self.log = get_logger("mcrd")
        self.processor = RouteProcessor()
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.speaker_pool = SpeakerPool(self.state_dir, self._on_message, self._on_lost, self.log,
                                        processes=exabgp_processes)
        self.fib = FibWorker(scan_interval=kernel_scan_interval, log=self.log)
        self.interfaces = InterfaceManager(self.log)
        # Interface tracking: sessions held down while their link is down (and, with BFD, while BFD is Down).
        self.holds = Holds()
        self.links = LinkSnapshot()
        self.link_monitor = LinkMonitor(lambda snapshot: self.queue.put_nowait(LinksChanged(snapshot)), self.log)
        self._link_states: dict[str, tuple[str, str]] = {}  # layer-3 device -> (VXC, fault or "")
        self._held_down: frozenset[str] = frozenset()  # what ExaBGP's configuration leaves out
        self._kernel_resync = False  # a link came back: the kernel flushed routes through it while it was down
        # BFD (connections with bfdEnabled): Down from Up holds the BGP session down until BFD is Up again.
        self.bfd = BfdManager(lambda transition: self.queue.put_nowait(BfdChanged(transition)), self.log)
        self._bfd_noted: set[str] = set()  # BGP up while BFD never came Up: logged once
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once the kernel is reconciled and ExaBGP is started
        self.route_refreshes: dict[str, int] = {}  # ROUTE-REFRESH requests answered, by peer address
        # The send fast path (on unless MCRD_FAST_PATH=0): each session's instance while it is up, from its PeerUp; a
        # session up without one (ExaBGP without the hook) has its routes carried by ExaBGP's own path, for its whole
        # life.
        self.instances: dict[str, int] = {}
        self.speaker_lost = ""  # why ExaBGP last stopped, for /healthz
        self.events = Events.from_config(config, self.log)
        self.metrics = DaemonMetrics(self)
        self.metrics.dropped_events = lambda: self.events.dropped
        self.api = ApiServer(self, self.log)
        self._processor_task: asyncio.Task[None] | None = None
        self._read_lock = asyncio.Lock()  # config file reads (SIGHUP), one at a time
        self._reading: set[asyncio.Task[None]] = set()
        REDACTOR.set(_secrets(config))

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self._start_api()  # first: an address in use stops the daemon before it touches the kernel
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        try:
            await self._start()
            # What exists now (modules, the config, the RIB's tables) lives as long as the daemon: out of the cyclic
            # collector's full passes, which otherwise scan it all in the middle of a burst of routes (~45 ms of
            # CPU at 10 x 1,000 routes, docs/PERFORMANCE.md "Processor profile").
            gc.freeze()
            async with asyncio.TaskGroup() as group:
                self._processor_task = group.create_task(self._consume(), name="processor")
                tasks = [
                    self._processor_task,
                    group.create_task(self.speaker_pool.run(), name="exabgp"),
                    group.create_task(self.interfaces.run(), name="interfaces"),
                    group.create_task(self.events.run(), name="events"),
                    group.create_task(self.bfd.run(), name="bfd"),
                    group.create_task(self.fib.maintain(), name="kernel"),  # retries, scans: after the reconcile
                ]
                self.ready.set()
                await self.stopping.wait()
                self.log.info("stopping")
                await self.api.stop()  # requests in flight finish first (a PUT /config is applied or refused)
                await self.bfd.close()  # AdminDown first: a peer does not take BGP down for it (RFC 5882 3.2)
                await self.speaker_pool.stop()
                for task in tasks:
                    task.cancel()
        finally:
            gc.unfreeze()  # collectable again (a daemon run inside a test process)
            await self._cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start(self) -> None:
        config = self.config
        self.log.info("starting", config=str(self.config_path), mcr=config.mcr.product_name,
                      asn=config.mcr.mcr_asn, router_id=str(config.effective_router_id()),
                      connections=len(config.connections()))
        await self.fib.start()
        await self.interfaces.apply(config)
        self.links = await self.link_monitor.start()
        now = time.time()
        effects = [self.processor.handle(ConfigChanged(config), now), *self._track_links(now)]
        for each in effects:
            self._log_records(each)
        self.events.emit_effects(effects, iso_utc(now))
        # Routes an earlier run left in the kernel: kept if still wanted, replaced or removed if not.
        await self._reconcile_kernel()
        self.bfd.configure(bfd_peers(config))
        self._held_down = self.holds.excluded()
        self.speaker_pool.write_config(config, held_down=self._held_down)

    async def _start_api(self) -> None:
        listen = self.config.api.listen
        try:
            await self.api.start(listen)
        except OSError as exc:
            self.log.error("api_listen_failed", listen=listen, error=str(exc))
            if self._own_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            raise StartupError(f"cannot listen on {listen}: {exc}") from None
        self.log.info("api_listening", listen=listen)

    async def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            await self.api.stop()
        with contextlib.suppress(Exception):
            await self.speaker_pool.stop()
        with contextlib.suppress(Exception):
            await self.bfd.close()
        with contextlib.suppress(Exception):
            await self.link_monitor.close()
        try:
            result = await self.fib.flush()
            self.log.info("kernel_routes_removed", count=result.removed, errors=[str(e) for e in result.errors])
        except Exception as exc:  # shutting down: report and go on
            self.log.error("kernel_flush_failed", error=str(exc))
        await self.fib.close()
        await self.events.close()  # sends what is queued, 2 s at most
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.log.info("stopped")

    # --- input --------------------------------------------------------------------------------------------

    def _on_message(self, parsed: Parsed) -> None:
        if isinstance(parsed, Notification):
            self.log.info("bgp_notification", peer=parsed.peer, direction=parsed.direction,
                          code=parsed.code, subcode=parsed.subcode)
        elif isinstance(parsed, Malformed):
            self.log.warning("exabgp_message_not_understood", why=parsed.why, line=parsed.line)
        elif not isinstance(parsed, Ignored | Ack):
            self.queue.put_nowait(parsed)

    def _on_lost(self, reason: str, holds: Callable[[str], bool]) -> None:
        self.speaker_lost = reason
        self.events.emit_exabgp_restart(reason, self.speaker_pool.restarts, iso_utc(time.time()))
        self.queue.put_nowait(SpeakerLost(reason, holds))

    # --- the one consumer ---------------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            first = await self.queue.get()
            started = time.perf_counter()
            batch = take_round(first, self.queue)
            commands: list[str] = []
            kernel: dict[str, FibNextHop | None] = {}
            round_effects: list[Effects] = []
            kernel_routes = self.config.mcr.kernel_routes
            for item in batch:
                if isinstance(item, RefreshRequested):
                    commands.extend(self._refresh(item))
                    continue
                for effects in self._handle(item):
                    round_effects.append(effects)
                    self._log_records(effects)
                    self._note_bfd_not_up(effects)
                    if self.instances:
                        commands.extend(fast_effects_commands(effects, self.instances,
                                                              process_of=self.speaker_pool.process_of))
                    else:
                        commands.extend(effects_commands(effects, process_of=self.speaker_pool.process_of))
                    kernel.update(dict.fromkeys(effects.fib_remove))  # C loops: these run once per route
                    for install in effects.fib_install:
                        kernel.update(dict.fromkeys(install.prefixes, install.next_hop))
                if isinstance(item, PeerUp) and item.instance is not None and item.peer in self.instances:
                    commands.extend(self._end_of_rib(item))  # after the table the PeerUp's effects sent it
            if commands:
                self.speaker_pool.send(commands)
            self._apply_holds()
            resync, self._kernel_resync = self._kernel_resync, False
            if self.config.mcr.kernel_routes != kernel_routes or resync:  # kernelRoutes turned on or off, or a link
                await self._reconcile_kernel()                             # back up (the kernel dropped its routes)
            elif kernel and kernel_routes:
                await self._program_kernel(kernel)
            self.events.emit_effects(round_effects, iso_utc(time.time()))  # at most one routes message a round
            self.metrics.processing.observe(time.perf_counter() - started)

    def _handle(self, item: Item) -> list[Effects]:
        now = time.time()
        if isinstance(item, Reload):
            return self._reload(item, now)
        if isinstance(item, SpeakerLost):
            peers = [peer.key for peer in self.processor.peers() if item.holds(peer.key)]
            self.holds.exabgp_lost(peers)
            for key in peers:
                self.instances.pop(key, None)
            downs = [self.processor.handle(PeerDown(peer.key, item.reason), now)
                     for peer in self.processor.peers() if peer.up and item.holds(peer.key)]
            # Nothing goes to the sessions that died with ExaBGP (one peer's PeerDown withdraws its routes from the
            # others, still up until theirs): sent, it would reach the next ExaBGP, and the new session after the
            # table it gets when it comes up (tests/lab/test_fastpath.py).
            lost = set(peers)
            return [dataclasses.replace(effects, announce=tuple(a for a in effects.announce if a.peer not in lost),
                                        withdraw=tuple(w for w in effects.withdraw if w.peer not in lost))
                    for effects in downs]
        if isinstance(item, LinksChanged):
            self.links = item.snapshot
            return self._track_links(now)
        if isinstance(item, BfdChanged):
            return self._bfd_changed(item.transition, now)
        if isinstance(item, RefreshRequested):  # answered by _refresh(), with commands and no effects
            return []
        if isinstance(item, PeerDown):
            self.instances.pop(item.peer, None)
            self.holds.exabgp_down(item.peer)
        elif isinstance(item, PeerUp):
            self.instances.pop(item.peer, None)
            self.holds.exabgp_up(item.peer)
            if self.holds.drops(item.peer):  # up just before ExaBGP's reload removed it: it stays down
                self.log.info("session_up_ignored", peer=item.peer, why=self.holds.why(item.peer) or
                              "held down until ExaBGP closes the session")
                return []
            if item.instance is not None:  # on the send fast path for this session's whole life
                self.instances[item.peer] = item.instance
            peer = self.processor.peer(item.peer)
            if peer is not None and item.families is not None and peer.policy.family not in item.families:
                self.log.warning("bgp_family_not_negotiated", peer=item.peer, family=f"IPv{peer.policy.family} "
                                 "unicast", negotiated=sorted(item.families), why="the peer's OPEN did not offer it: "
                                 "no route can be sent to it")
        elif isinstance(item, RoutesAnnounced | RoutesWithdrawn | EndOfRib) and self.holds.drops(item.peer):
            return []
        return [self.processor.handle(item, now)]

    def _end_of_rib(self, up: PeerUp) -> list[str]:
        """End-of-RIB after a new session's table, on the send fast path (ExaBGP runs with `manual-eor`)."""
        peer = self.processor.peer(up.peer)
        families = up.families if up.families is not None else {peer.policy.family} if peer is not None else set()
        assert up.instance is not None
        session = exabgp_fastpath.session_name(up.peer, up.instance)
        return [exabgp_fastpath.eor_command([session], family) for family in sorted(families)]

    def _refresh(self, request: RefreshRequested) -> list[str]:
        """Answer a ROUTE-REFRESH: send the peer its Adj-RIB-Out again, as it stands after the events before it
        (ExaBGP keeps none; exabgp_launch.py, fix 7). The session is not reset."""
        peer = self.processor.peer(request.peer)
        if peer is None or not peer.up or self.holds.drops(request.peer):
            self.log.info("bgp_route_refresh_ignored", peer=request.peer, why="the session is not up")
            return []
        if request.family != peer.policy.family:  # RFC 2918 4: a family the session does not carry is ignored
            self.log.info("bgp_route_refresh_ignored", peer=request.peer, why=f"IPv{request.family} unicast is "
                          "not this session's family")
            return []
        advertised = self.processor.advertised(peer.key)
        enhanced = peer.refresh == "enhanced"
        self.route_refreshes[peer.key] = self.route_refreshes.get(peer.key, 0) + 1
        self.log.info("bgp_route_refresh", peer=peer.key, family=f"IPv{request.family} unicast",
                      prefixes=len(advertised), enhanced=enhanced)
        return list(refresh_commands(peer.key, request.family, advertised, enhanced=enhanced,
                                     instance=self.instances.get(peer.key)))

    # --- sessions held down -------------------------------------------------------------------------------------

    def _track_links(self, now: float) -> list[Effects]:
        """Hold down the sessions whose link is down or lost its address, release the others
        (docs/MCR-SEMANTICS.md 2.7); log and publish each VXC device going down or coming back."""
        states = vxc_link_states(self.config, self.links)
        for ifname, (vxc, fault) in states.items():
            before = self._link_states.get(ifname)
            if before is not None and bool(before[1]) == bool(fault):
                continue
            if fault:
                self.log.warning("interface_down", interface=ifname, vxc=vxc, reason=fault)
            elif before is not None:
                self.log.info("interface_up", interface=ifname, vxc=vxc)
                self._kernel_resync = True
            if before is not None or fault:
                self.events.emit_interface(ifname, vxc, fault, iso_utc(now))
        self._link_states = states
        faults = session_faults(self.config, self.links)
        effects = []
        for peer, why in faults.items():
            if self.holds.hold(peer, INTERFACE, why):
                self.log.warning("session_held_down", peer=peer, reason=why)
                effects.append(self.processor.handle(PeerDown(peer, why), now))
        for peer in self.holds.held_for(INTERFACE):
            if peer not in faults and self.holds.release(peer, INTERFACE):
                self.log.info("session_released", peer=peer, cause=INTERFACE)
                self._kernel_resync = True  # an address or link back: routes through it may be gone from the kernel
        return effects

    def _bfd_changed(self, transition: BfdTransition, now: float) -> list[Effects]:
        """BFD Down from Up takes the BGP session down and holds it down until BFD is Up again (docs/MCR-SEMANTICS.md
        2.7). A peer that signals AdminDown took BFD down on purpose: no failure, BGP stays (RFC 5882 3.2)."""
        peer = transition.peer
        vxc = self._vxc_of(peer)  # the manager logs the transition itself (bfd_state)
        self.events.emit_bfd(peer, vxc, transition.old.name, transition.new.name, transition.diag.name,
                             iso_utc(now))
        if transition.new == BfdState.UP:
            self._bfd_noted.discard(peer)
            if self.holds.release(peer, BFD):
                self.log.info("session_released", peer=peer, cause=BFD)
            return []
        if transition.old != BfdState.UP or transition.new != BfdState.DOWN:
            return []
        if transition.remote_state == BfdState.ADMIN_DOWN:
            self.log.info("bfd_peer_admin_down", peer=peer, why="the peer took BFD down on purpose: BGP stays up")
            return []
        why = f"BFD down ({transition.diag.name})"
        if not self.holds.hold(peer, BFD, why):
            return []
        self.log.warning("session_held_down", peer=peer, reason=why)
        return [self.processor.handle(PeerDown(peer, why), now)]

    def _vxc_of(self, peer: str) -> str:
        state = self.processor.peer(peer)
        return state.policy.vxc if state is not None else ""

    def _note_bfd_not_up(self, effects: Effects) -> None:
        """A BGP session up while its BFD session never came Up (the peer runs no BFD): said once, BGP kept."""
        status = self.bfd.status()
        for record in effects.records:
            if (isinstance(record, SessionChanged) and record.state == "UP" and record.peer in status
                    and status[record.peer].state != BfdState.UP and record.peer not in self._bfd_noted):
                self._bfd_noted.add(record.peer)
                self.log.info("bfd_not_up", peer=record.peer, vxc=record.vxc, bfd=status[record.peer].state.name,
                              why="BGP is up and BFD is not: the session is kept, and follows BFD once it comes Up")

    def bfd_status(self) -> dict[str, BfdStatus]:
        return self.bfd.status()

    def kernel_status(self) -> KernelStatus:
        return self.fib.status()

    def _apply_holds(self) -> None:
        """ExaBGP's configuration made to leave out exactly the sessions held down (a reload when that changed)."""
        excluded = self.holds.excluded()
        if excluded != self._held_down:
            self._held_down = excluded
            self.speaker_pool.reconfigure(self.config, held_down=excluded)

    async def _reconcile_kernel(self) -> None:
        """The kernel made to hold exactly the best routes, or none of mcrd's with `mcr.kernelRoutes: false`."""
        wanted = dict(self.processor.fib()) if self.config.mcr.kernel_routes else {}  # a copy: the worker reads it
        result = await self.fib.reconcile(wanted)
        self.log.info("kernel_reconciled", added=result.added, replaced=result.replaced, removed=result.removed,
                      kept=result.kept, failed=len(result.errors), kernel_routes=self.config.mcr.kernel_routes)
        for error in result.errors[:20]:
            self.log.error("kernel_route_failed", prefix=error.prefix, error=error.message, retry=True)

    async def _program_kernel(self, kernel: dict[str, FibNextHop | None]) -> None:
        installs: list[FibInstall] = []
        removes: list[str] = []
        # The round's changes came grouped by next hop: runs of one next hop (None: remove), taken whole.
        for hop, run in itertools.groupby(kernel.items(), key=operator.itemgetter(1)):
            prefixes = tuple(map(operator.itemgetter(0), run))
            if hop is None:
                removes += prefixes
            else:
                installs.append(FibInstall(hop, prefixes))
        errors = await self.fib.apply(installs, removes)
        for error in errors[:20]:  # the worker sends refused routes again (maintain)
            self.log.error("kernel_route_failed", prefix=error.prefix, error=error.message, retry=True)

    # --- reload -------------------------------------------------------------------------------------------

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._read_config_file())
        self._reading.add(task)  # a reference until it is done: the loop keeps only weak ones
        task.add_done_callback(self._reading.discard)

    async def _read_config_file(self) -> None:
        """The config file read in a worker thread (a big one takes ruamel seconds: the loop must not wait), one
        SIGHUP after the other so that they apply in order, then queued like a PUT /config."""
        source = str(self.config_path)
        async with self._read_lock:
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self.queue.put_nowait(Reload(source=source, problems=tuple(exc.problems)))
                return
            self.queue.put_nowait(Reload(config, source))

    def _reload(self, reload: Reload, now: float) -> list[Effects]:
        source = reload.source or str(self.config_path)
        if reload.problems:
            return self._reject(reload, source, list(reload.problems))
        new = reload.config
        if new is None:
            try:
                new = load_config(self.config_path)
            except ConfigError as exc:
                return self._reject(reload, source, exc.problems)
        problems = [ConfigProblem(source, 0, format_path(path), message)
                    for path, message in change_problems(self.config, new)]
        if problems:
            return self._reject(reload, source, problems)
        if new.api.listen != self.config.api.listen:
            self.log.warning("api_listen_unchanged", listen=self.config.api.listen, configured=new.api.listen,
                             why="api.listen takes effect at the next start")
        self.config = new
        REDACTOR.set(_secrets(new))
        self.events.update(new)
        effects = self.processor.handle(ConfigChanged(new), now)
        self.holds.forget(str(conn.peer_ip_address) for _, _, conn in new.connections())
        bfd = bfd_peers(new)
        self.bfd.configure(bfd)  # adds, removes and retimes; sessions whose settings did not change are untouched
        with_bfd = {str(cfg.peer) for cfg in bfd}
        for peer in self.holds.held_for(BFD):
            if peer not in with_bfd and self.holds.release(peer, BFD):
                self.log.info("session_released", peer=peer, cause=BFD, why="BFD no longer configured")
        held = self._track_links(now)
        self._held_down = self.holds.excluded()
        self.speaker_pool.reconfigure(new, held_down=self._held_down)
        self.interfaces.update(new)
        self.log.info("config_reloaded", config=source)
        self.metrics.config_reloads.labels("applied").inc()
        applied = next((r for r in effects.records if isinstance(r, ConfigApplied)), None)
        _settle(reload, ConfigOutcome(applied=applied))
        return [effects, *held]

    def _reject(self, reload: Reload, source: str, problems: list[ConfigProblem]) -> list[Effects]:
        for problem in problems:
            self.log.error("config_rejected", problem=str(problem))
        self.log.error("config_not_applied", config=source, problems=len(problems), running="unchanged")
        self.events.emit_config_rejected(problems, iso_utc(time.time()))
        self.metrics.config_reloads.labels("rejected").inc()
        _settle(reload, ConfigOutcome(problems=tuple(problems)))
        return []

    # --- for the HTTP API (mcrd.lg.backend.Backend) ----------------------------------------------------------------

    async def apply_config(self, config: Config, source: str) -> ConfigOutcome:
        """Apply `config` through the one queue, as SIGHUP does, and wait for the outcome."""
        done: asyncio.Future[ConfigOutcome] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Reload(config, source, done))
        return await done

    def health(self) -> list[str]:
        reasons = []
        if self.stopping.is_set():
            reasons.append("the daemon is stopping")
        elif not self.ready.is_set():
            reasons.append("the daemon is starting")
        elif self._processor_task is None or self._processor_task.done():
            reasons.append("the route processor has stopped")
        if self.ready.is_set() and not self.speaker_pool.alive:
            why = (f"{self.speaker_lost}; restarts: {self.speaker_pool.restarts}" if self.speaker_lost
                   else "starting, or its API is not connected yet")
            reasons.append(f"ExaBGP is down ({why})")
        return reasons

    # --- logs ---------------------------------------------------------------------------------------------

    def _log_records(self, effects: Effects) -> None:
        for record in effects.records:
            if isinstance(record, SessionChanged):
                self.log.info(f"session_{record.state.lower()}", peer=record.peer, vxc=record.vxc,
                              reason=record.reason or None)
            elif isinstance(record, ReceivedChanged):
                self.log.debug("received", peer=record.peer, accepted=len(record.accepted),
                               removed=len(record.removed), rejected=record.rejected)
            elif isinstance(record, RouteLimitReached):
                self.log.warning("route_limit_reached", limit=record.limit, refused=record.refused,
                                 waiting=record.waiting)
            elif isinstance(record, InputIgnored):
                self.log.warning("event_ignored", what=record.what, why=record.why)
            elif isinstance(record, ConfigApplied):
                self.log.info("config_applied", peers_added=list(record.peers_added),
                              peers_removed=list(record.peers_removed), reevaluated=list(record.reevaluated))


def _settle(reload: Reload, outcome: ConfigOutcome) -> None:
    if reload.done is not None and not reload.done.done():  # done: the requester went away
        reload.done.set_result(outcome)


def _secrets(config: Config) -> list[str]:
    secrets = [conn.password for _, _, conn in config.connections() if conn.password]
    if config.api.token:
        secrets.append(config.api.token)
    if config.events.mqtt and config.events.mqtt.password:
        secrets.append(config.events.mqtt.password)
    return [s for s in secrets if s]


def main(config_path: str, config: Config, state_dir: str | None = None, exabgp_processes: int = 1,
         kernel_scan_interval: float = DEFAULT_SCAN_INTERVAL) -> int:
    import uvloop

    daemon = Daemon(Path(config_path), config, state_dir=Path(state_dir) if state_dir else None,
                    exabgp_processes=exabgp_processes, kernel_scan_interval=kernel_scan_interval)
    # uvloop.run, not uvloop.install: pyroute2 fails under a global uvloop policy, even in threads.
    try:
        uvloop.run(daemon.run())
    except StartupError:
        return 1
    return 0
