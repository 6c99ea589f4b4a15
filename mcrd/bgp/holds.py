"""Sessions held down: the BGP sessions that must not run because their interface is down or their BFD session
went Down (docs/MCR-SEMANTICS.md 2.7). Pure bookkeeping, no I/O.

A held session is left out of ExaBGP's configuration (`excluded()`), so ExaBGP closes it at the next reload and
does not try again until the hold is released. Two races are covered here:

- ExaBGP may report a session `up` after the hold was decided and before its reload removed the neighbor: the
  daemon drops every message of an excluded session (`drops()`), so late routes cannot come back.
- A hold released before ExaBGP acted on the first reload (two SIGUSR1 in a row are one reload for ExaBGP) would
  leave ExaBGP's session running while the route processor has it down, and no new `up` would ever come. So a
  session ExaBGP still reports up stays excluded ("draining") until ExaBGP reports it down, even once released.
"""

from __future__ import annotations

from collections.abc import Iterable

INTERFACE = "interface"
BFD = "bfd"


class Holds:
    def __init__(self) -> None:
        self._causes: dict[str, dict[str, str]] = {}  # peer -> cause (INTERFACE, BFD) -> why
        self._exabgp_up: set[str] = set()  # sessions ExaBGP reported up and not down since
        self._draining: set[str] = set()  # excluded until ExaBGP reports them down

    # --- causes ------------------------------------------------------------------------------------------------

    def hold(self, peer: str, cause: str, why: str) -> bool:
        """Hold `peer` down for `cause`; True when it was not held before (the session must go down now)."""
        causes = self._causes.setdefault(peer, {})
        first = not causes
        causes[cause] = why
        if first and peer in self._exabgp_up:
            self._draining.add(peer)
        return first

    def release(self, peer: str, cause: str) -> bool:
        """Drop `cause`; True when `peer` is held no more."""
        causes = self._causes.get(peer)
        if causes is None or cause not in causes:
            return False
        del causes[cause]
        if causes:
            return False
        del self._causes[peer]
        return True

    def held_for(self, cause: str) -> dict[str, str]:
        """Peers held for `cause` -> why."""
        return {peer: causes[cause] for peer, causes in self._causes.items() if cause in causes}

    def why(self, peer: str) -> str:
        """Why `peer` is held ("" when it is not), every cause joined."""
        return "; ".join(self._causes.get(peer, {}).values())

    def forget(self, keep: Iterable[str]) -> None:
        """Peers no longer configured lose their holds (a re-added peer starts free)."""
        wanted = set(keep)
        for peer in [p for p in self._causes if p not in wanted]:
            del self._causes[peer]
        self._draining &= wanted

    # --- ExaBGP's view -----------------------------------------------------------------------------------------

    def exabgp_up(self, peer: str) -> None:
        self._exabgp_up.add(peer)
        if peer in self._causes:
            self._draining.add(peer)  # a late `up`: ExaBGP must take it down again before any release

    def exabgp_down(self, peer: str) -> None:
        self._exabgp_up.discard(peer)
        self._draining.discard(peer)

    def exabgp_lost(self, peers: Iterable[str]) -> None:
        """An ExaBGP process died: its sessions are gone."""
        for peer in peers:
            self.exabgp_down(peer)

    # --- what the daemon asks ----------------------------------------------------------------------------------

    def held(self, peer: str) -> bool:
        return peer in self._causes

    def excluded(self) -> frozenset[str]:
        """Peers left out of ExaBGP's configuration: held, or released but not yet seen down in ExaBGP."""
        return frozenset(self._causes) | frozenset(self._draining)

    def drops(self, peer: str) -> bool:
        """Whether a message from ExaBGP about `peer` (up, routes, End-of-RIB) must be dropped."""
        return peer in self._causes or peer in self._draining
