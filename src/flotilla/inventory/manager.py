"""InventoryManager: the member connections of the fleet, behind one lock and one change signal.

Threading contract:

* ``manager.lock`` (a ``threading.RLock``) guards ``manager.cache``. Inventory threads take it
  for every cache update; the operator must hold it around its own cache calls
  (``snapshot()``, ``assume()``, ``confirm()``, ``forget()``). Hold it briefly, and never call
  :meth:`InventoryManager.register`, :meth:`~InventoryManager.unregister` or
  :meth:`~InventoryManager.stop_all` while holding it.
* ``version`` increases on every inventory or state change of any member; ``capacity_version``
  only when capacity may have grown (a pod ended, a node was added or changed, a member became
  Ready or serves new APIs): the signal to retry unschedulable workloads.
  :meth:`~InventoryManager.wait_for_change` blocks until one of them moves.
* ``on_change(name)`` is called from inventory threads, with no lock held, after every
  change; from asyncio use ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flotilla.inventory.client import InventoryError
from flotilla.inventory.health import HealthStatus
from flotilla.inventory.member import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_SUCCESS_THRESHOLD,
    MemberConnection,
    MemberState,
)
from flotilla.inventory.store import Change, ClusterMeta
from flotilla.scheduler.cache import SchedulerCache
from flotilla.scheduler.snapshot import Taint

__all__ = ["InventoryManager"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Registration:
    kubeconfig_text: str
    meta: ClusterMeta


def _taints(taints: Iterable[Taint | Mapping[str, Any]]) -> tuple[Taint, ...]:
    return tuple(t if isinstance(t, Taint) else Taint.from_dict(t) for t in taints)


class InventoryManager:
    """Registers members, keeps their connections running, and reports their state."""

    def __init__(
        self,
        cache: SchedulerCache | None = None,
        lock: threading.RLock | None = None,
        *,
        on_change: Callable[[str], None] | None = None,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        success_threshold: int = DEFAULT_SUCCESS_THRESHOLD,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        discovery_interval: float = 60.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.cache = cache if cache is not None else SchedulerCache()
        self.lock = lock if lock is not None else threading.RLock()
        self.probe_interval = probe_interval
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.probe_timeout = probe_timeout
        self.discovery_interval = discovery_interval
        self.max_backoff = max_backoff
        self._on_change = on_change
        self._members: dict[str, tuple[_Registration, MemberConnection]] = {}
        self._registry = threading.Lock()  # serialises writers of _members; readers need no lock
        self._changed = threading.Condition()
        self._version = 0
        self._capacity_version = 0

    # -- change signal ---------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Increases on every inventory or state change of any member."""
        with self._changed:
            return self._version

    @property
    def capacity_version(self) -> int:
        """Increases when capacity may have grown somewhere (retry unschedulable workloads)."""
        with self._changed:
            return self._capacity_version

    def _member_changed(self, name: str, change: Change) -> None:
        with self._changed:
            self._version += 1
            if change & Change.FREED:
                self._capacity_version += 1
            self._changed.notify_all()
        if self._on_change is not None:
            try:
                self._on_change(name)
            except Exception:
                log.exception("inventory on_change callback failed for member %s", name)

    def wait_for_change(self, since: int, timeout: float | None = None, *, capacity: bool = False) -> int:
        """Block until ``version`` (or ``capacity_version``) exceeds ``since``; returns the current value."""

        def current() -> int:
            return self._capacity_version if capacity else self._version

        with self._changed:
            self._changed.wait_for(lambda: current() > since, timeout)
            return current()

    # -- members ---------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        kubeconfig_text: str,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Taint | Mapping[str, Any]] = (),
        *,
        provider: str = "",
        region: str = "",
        zone: str = "",
    ) -> MemberState:
        """Add or update a member; never raises for a bad kubeconfig or an unreachable member.

        Idempotent: the same kubeconfig keeps the running connection (changed labels, taints or
        location are applied in place); a changed kubeconfig restarts the connection, keeping the
        member's inventory and reservations in the cache meanwhile.
        """
        meta = ClusterMeta(dict(labels or {}), _taints(taints), provider, region, zone)
        with self._registry:
            current = self._members.get(name)
            if current is not None and current[0].kubeconfig_text == kubeconfig_text:
                registration, conn = current
                if registration.meta != meta:
                    self._members[name] = (_Registration(kubeconfig_text, meta), conn)
                    self._member_changed(name, conn.inventory.set_cluster(meta=meta) | Change.CHANGED)
                return conn.state()
            inventory = None
            if current is not None:
                current[1].stop(remove=False)
                inventory = current[1].inventory
            conn = MemberConnection(
                name,
                kubeconfig_text,
                self.cache,
                lock=self.lock,
                meta=meta,
                on_change=self._member_changed,
                probe_interval=self.probe_interval,
                failure_threshold=self.failure_threshold,
                success_threshold=self.success_threshold,
                probe_timeout=self.probe_timeout,
                discovery_interval=self.discovery_interval,
                max_backoff=self.max_backoff,
                inventory=inventory,
            )
            self._members[name] = (_Registration(kubeconfig_text, meta), conn)
            try:
                conn.start()
            except InventoryError as exc:
                log.warning("member %s: %s", name, exc.message)
            self._member_changed(name, Change.CHANGED)
            return conn.state()

    def unregister(self, name: str) -> bool:
        """Stop the member's connection and drop it from the cache; False if it was unknown."""
        with self._registry:
            entry = self._members.pop(name, None)
        if entry is None:
            return False
        entry[1].stop(remove=True)
        self._member_changed(name, Change.CHANGED)
        return True

    def state(self, name: str) -> MemberState:
        """The member's state (``KeyError`` if it is not registered)."""
        return self._members[name][1].state()

    def readiness(self, name: str) -> tuple[bool, str, str, datetime]:
        """``(ready, reason, message, last transition)`` of the member's Ready condition (cheap;
        ``KeyError`` if it is not registered)."""
        return self._members[name][1].readiness()

    def health(self, name: str) -> HealthStatus:
        """The member's health tracker verdict (cheap; ``KeyError`` if it is not registered)."""
        return self._members[name][1].health()

    def set_taints(self, name: str, taints: Iterable[Taint | Mapping[str, Any]]) -> bool:
        """Replace a registered member's taints in place (e.g. after the operator wrote them to
        the MemberCluster), so the scheduler sees them without waiting for the watch event.
        Returns whether anything changed (False for an unknown member)."""
        with self._registry:
            current = self._members.get(name)
            if current is None:
                return False
            registration, conn = current
            meta = replace(registration.meta, taints=_taints(taints))
            if meta == registration.meta:
                return False
            self._members[name] = (_Registration(registration.kubeconfig_text, meta), conn)
            self._member_changed(name, conn.inventory.set_cluster(meta=meta) | Change.CHANGED)
            return True

    def ready(self, name: str) -> bool:
        """Whether the member is registered and Ready (cheap; False when unknown)."""
        entry = self._members.get(name)
        return entry is not None and entry[1].is_ready()

    def states(self) -> dict[str, MemberState]:
        """Every member's state, by name."""
        return {name: entry[1].state() for name, entry in list(self._members.items())}

    def names(self) -> list[str]:
        """Registered members, sorted."""
        return sorted(self._members)

    def stop_all(self) -> None:
        """Stop every connection and drop every member from the cache."""
        with self._registry:
            entries = list(self._members.values())
            self._members.clear()
        for _, conn in entries:
            conn.stop(remove=True)
