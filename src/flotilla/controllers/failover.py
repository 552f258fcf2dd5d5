"""Failover: workloads leave a member cluster tainted NoExecute, through the normal scheduler.

Keyed by binding ``(namespace, name)``; fed by member taint/readiness changes, binding changes,
status writes (for graceful eviction) and copy events, never by polling: a toleration or grace
period that ends later re-queues the key after that delay.

For each cluster of a binding's decision carrying a ``NoExecute`` taint the policy's
``placement.clusterTolerations`` do not tolerate (a toleration with ``tolerationSeconds``
tolerates it until the taint's ``timeAdded`` plus those seconds), the workload is evicted: the
scheduling controller decides again with that cluster out (the ClusterEviction filter) and
writes the new decision together with an eviction task in ``spec.gracefulEvictionTasks``, one
request (:meth:`SchedulingController.evict`). A Divided workload keeps its replicas on the
clusters that remain and only the lost share is placed; a gang moves whole. When nothing fits
elsewhere, nothing is written: the workload stays where it is and is tried again when capacity
changes (or after ``retry`` seconds).

Evictions are paced fleet-wide by a token bucket (``rate`` per second, ``burst``), so a large
outage does not stampede the surviving clusters; evictions waiting for a token wait in the queue
with a delay.

The eviction task says what happens to the copy left behind (``failover.cluster.purgeMode`` of the
policy, else the operator's default, Karmada's ``Gracefully``): Directly, it is removed at once
(or when its member answers again); Gracefully, it stays until the replacement is healthy or the
grace period ends; Never, until a user clears ``suppressDeletion``. A gang is purged Directly
unless the mode is Never, so a training job never runs twice. A task is dropped once its cluster
is Ready and untainted again and no copy is left there. Everything is read back from the binding
after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flotilla import metrics
from flotilla.controllers.client import Client
from flotilla.controllers.common import EmitEvent, template_stub
from flotilla.controllers.eviction import (
    DIRECTLY,
    GRACEFULLY,
    NEVER,
    TASKS,
    Due,
    eviction_due,
    grace_ends,
    new_task,
    purge_mode,
    tasks_of,
    timestamp,
)
from flotilla.controllers.hubstate import HubState, Key, targets
from flotilla.controllers.member_copies import MemberCopies
from flotilla.controllers.propagation import PropagationController
from flotilla.controllers.scheduling import SchedulingController, decided
from flotilla.interpreter import Health, InterpreterRegistry
from flotilla.leader import env_bool
from flotilla.scheduler import SchedulerCache
from flotilla.scheduler.placement import Placement
from flotilla.scheduler.snapshot import Snapshot, Toleration

log = logging.getLogger("flotilla")

ENV_ENABLED = "FLOTILLA_FAILOVER"
ENV_RATE = "FLOTILLA_FAILOVER_EVICTION_RATE"
ENV_BURST = "FLOTILLA_FAILOVER_EVICTION_BURST"
ENV_PURGE_MODE = "FLOTILLA_FAILOVER_PURGE_MODE"
ENV_GRACE = "FLOTILLA_GRACEFUL_EVICTION_TIMEOUT"
ENV_RETRY = "FLOTILLA_FAILOVER_RETRY"


@dataclass(frozen=True)
class FailoverSettings:
    """How workloads are moved off tainted members (environment: see :meth:`from_env`)."""

    enabled: bool = True
    rate: float = 10.0
    """Evictions per second, fleet-wide (a token bucket)."""
    burst: int = 20
    """Evictions allowed at once before the rate applies."""
    purge_mode: str = GRACEFULLY
    """For policies without ``failover.cluster`` (Karmada's default, its controller flag
    ``--no-execute-taint-eviction-purge-mode``)."""
    grace_period: int = 600
    """Seconds a Gracefully evicted copy is kept at most (Karmada's ``--graceful-eviction-timeout``)."""
    retry: float = 30.0
    """Seconds before an eviction that found no room elsewhere is tried again (capacity changes
    re-queue it sooner)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FailoverSettings:
        """``FLOTILLA_FAILOVER`` (default true), ``FLOTILLA_FAILOVER_EVICTION_RATE`` (per second,
        default 10), ``FLOTILLA_FAILOVER_EVICTION_BURST`` (default 20),
        ``FLOTILLA_FAILOVER_PURGE_MODE`` (Directly, Gracefully or Never; default Gracefully),
        ``FLOTILLA_GRACEFUL_EVICTION_TIMEOUT`` (s, default 600) and ``FLOTILLA_FAILOVER_RETRY``
        (s, default 30)."""
        env = os.environ if environ is None else environ

        def number(key: str, default: float) -> float:
            raw = (env.get(key) or "").strip()
            return float(raw) if raw else default

        return cls(
            enabled=env_bool(env.get(ENV_ENABLED), True),
            rate=max(0.01, number(ENV_RATE, 10.0)),
            burst=max(1, int(number(ENV_BURST, 20))),
            purge_mode=purge_mode(env.get(ENV_PURGE_MODE), GRACEFULLY),
            grace_period=max(0, int(number(ENV_GRACE, 600))),
            retry=max(1.0, number(ENV_RETRY, 30.0)),
        )


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. Not thread-safe (one event loop)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait(self) -> float:
        """Seconds until a token is there (0: now)."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    def refund(self) -> None:
        """Give back a token taken for an eviction that did not happen."""
        self._tokens = min(self.burst, self._tokens + 1)


@dataclass
class _InFlight:
    """A failover whose replacement is not applied yet (for the duration metric)."""

    due: datetime
    remaining: set[str]


class FailoverController:
    def __init__(
        self,
        hub: Client,
        state: HubState,
        cache: SchedulerCache,
        lock: threading.RLock,
        scheduling: SchedulingController,
        propagation: PropagationController,
        copies: MemberCopies,
        registry: InterpreterRegistry,
        emit: EmitEvent,
        on_written: Callable[[Key], None],
        member_names: Callable[[], list[str]],
        settings: FailoverSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hub, self.state, self.cache, self.lock = hub, state, cache, lock
        self.scheduling, self.propagation, self.copies = scheduling, propagation, copies
        self.registry = registry
        self.emit, self.on_written, self.member_names = emit, on_written, member_names
        self.on_check: Callable[[Key], None] = lambda _key: None
        """Queue ``key`` for another look (set by the runtime)."""
        self.settings = settings or FailoverSettings.from_env()
        self.clock = clock
        self.limiter = TokenBucket(self.settings.rate, self.settings.burst)
        self.pending: dict[Key, str] = {}
        """Workloads due for eviction with no room elsewhere (and why): re-queued on capacity."""
        self._throttled: set[Key] = set()
        self._in_flight: dict[Key, _InFlight] = {}
        self._propagated: set[Key] = set()
        """Bindings propagation reconciled since this process started (their records are current)."""

    def forget(self, key: Key) -> None:
        self._propagated.discard(key)
        self.pending.pop(key, None)
        self._throttled.discard(key)
        self._in_flight.pop(key, None)
        self._gauges()

    def _gauges(self) -> None:
        metrics.FAILOVER_WAITING.labels(reason="RateLimited").set(len(self._throttled))
        metrics.FAILOVER_WAITING.labels(reason="NoRoom").set(len(self.pending))

    # ------------------------------------------------------------------ reconcile
    async def reconcile(self, key: Key) -> float | None:
        """Evict what must leave, keep the eviction tasks up to date; returns when to look again."""
        binding = self.state.bindings.get(key)
        if binding is None or binding["metadata"].get("deletionTimestamp"):
            self.forget(key)
            return None
        tasks = tasks_of(binding)
        chosen = targets(binding)
        with self.lock:
            snapshot = self.cache.snapshot()
        tainted = any(
            any(t.effect == "NoExecute" for t in info.taints)
            for info in (snapshot.clusters.get(c) for c in chosen)
            if info is not None
        )
        if not tasks and not tainted:
            self._settle(key)
            return None  # the common case: nothing to do, nothing parsed
        now = self.clock()
        tolerations = self._tolerations(binding)
        wake: list[float] = []
        lost: dict[str, Due] = {}
        if self.settings.enabled and decided(binding):
            for cluster in sorted(chosen):
                info = snapshot.clusters.get(cluster)
                due = eviction_due(info.taints, tolerations, now) if info is not None else None
                if due is None:
                    continue
                if due.at <= now:
                    lost[cluster] = due
                else:
                    wake.append((due.at - now).total_seconds())
        kept, changed = self._maintain(key, binding, tasks, snapshot, tolerations, now, wake)
        if lost:
            delay = await self._evict(key, binding, lost, kept, now)
            if delay is not None:
                wake.append(delay)
                if changed:  # the task updates cannot wait for the eviction
                    await self._write_tasks(key, binding, kept)
        elif changed:
            await self._write_tasks(key, binding, kept)
        if not lost:
            self._settle(key)
        return min(wake) if wake else None

    def _settle(self, key: Key) -> None:
        """Nothing is due to leave: the key waits neither for a token nor for room."""
        if key in self.pending or key in self._throttled:
            self.pending.pop(key, None)
            self._throttled.discard(key)
            self._gauges()

    def _tolerations(self, binding: Mapping[str, Any]) -> tuple[Toleration, ...]:
        try:
            return Placement.from_dict((binding.get("spec") or {}).get("placement") or {}).cluster_tolerations
        except (ValueError, TypeError):
            return ()

    def _maintain(
        self,
        key: Key,
        binding: Mapping[str, Any],
        tasks: list[dict[str, Any]],
        snapshot: Snapshot,
        tolerations: tuple[Toleration, ...],
        now: datetime,
        wake: list[float],
    ) -> tuple[list[dict[str, Any]], bool]:
        """The tasks as they should be now (graceful ones due released, settled ones dropped)."""
        out: list[dict[str, Any]] = []
        changed = False
        for task in tasks:
            cluster = str(task["fromCluster"])
            if task.get("suppressDeletion") and task.get("purgeMode") == GRACEFULLY:
                ends = grace_ends(task)
                healthy = self._replacement_healthy(key, binding)
                if healthy or (ends is not None and ends <= now):
                    why = "the replacement is healthy" if healthy else "the grace period ended"
                    task = {**task, "suppressDeletion": False}
                    task["message"] = f"{task.get('message') or ''}; old copy removed: {why}"[:1024]
                    changed = True
                    log.info("failover: %s/%s: copy on %s released (%s)", key[0], key[1], cluster, why)
                elif ends is not None:
                    wake.append((ends - now).total_seconds())
            if not task.get("suppressDeletion") and self._settled(
                key, binding, cluster, snapshot, tolerations, now
            ):
                changed = True
                log.info(
                    "failover: %s/%s: %s is back and clean; eviction record dropped", key[0], key[1], cluster
                )
                continue
            out.append(task)
        return out, changed

    def _replacement_healthy(self, key: Key, binding: Mapping[str, Any]) -> bool:
        """Whether every cluster of the decision runs the copy propagation applied for it, healthy.

        Read from the member watches (not the binding's status, which may still describe the copies
        from before the failover): each copy must be the one recorded (UID), at least at the applied
        generation, and healthy by its interpreter; and the copies of this decision must have been
        applied (no failover still in flight, and propagation has run since this process started)."""
        if key in self._in_flight or key not in self._propagated:
            return False
        resource = binding["spec"]["resource"]
        interpreter = self.registry.get(resource["apiVersion"], resource["kind"])
        chosen = targets(binding)
        if interpreter is None or not chosen:
            return False
        records = self.propagation.records_of(key, binding)
        for cluster in chosen:
            record = records.get(cluster) or {}
            known, copy = self.copies.get(
                cluster, resource["apiVersion"], resource["kind"], key[0], resource["name"]
            )
            if not record.get("applied") or not known or copy is None:
                return False
            meta = copy["metadata"]
            if meta.get("uid") != record.get("memberUID"):
                return False
            if int(meta.get("generation") or 0) < int(record.get("appliedGeneration") or 0):
                return False
            if interpreter.health(copy) != Health.HEALTHY:
                return False
        return True

    def _settled(
        self,
        key: Key,
        binding: Mapping[str, Any],
        cluster: str,
        snapshot: Snapshot,
        tolerations: tuple[Toleration, ...],
        now: datetime,
    ) -> bool:
        """Whether ``cluster`` may be used again: Ready, untainted, and no copy of ours left there."""
        info = snapshot.clusters.get(cluster)
        if info is None:
            return cluster not in self.member_names()  # removed from the fleet: nothing to wait for
        if not info.ready or eviction_due(info.taints, tolerations, now) is not None:
            return False
        if any(
            t.effect in ("NoSchedule", "NoExecute") and t.key.startswith("cluster.flotilla.dev/")
            for t in info.taints
        ):
            return False
        if cluster in self.propagation.records_of(key, binding):
            return False
        resource = binding["spec"]["resource"]
        known, copy = self.copies.get(
            cluster, resource["apiVersion"], resource["kind"], key[0], resource["name"]
        )
        return known and copy is None

    async def _evict(
        self,
        key: Key,
        binding: dict[str, Any],
        lost: Mapping[str, Due],
        tasks: list[dict[str, Any]],
        now: datetime,
    ) -> float | None:
        """Evict from ``lost``; returns when to try again (None: done)."""
        wait = self.limiter.wait()
        if wait > 0:
            self._throttled.add(key)
            self._gauges()
            return wait
        self._throttled.discard(key)
        spec = binding["spec"]
        chosen = targets(binding)
        gang = bool(spec.get("schedulingGroup"))
        mode = self._purge_mode(binding)
        new = [
            new_task(
                cluster,
                due,
                mode=mode,
                grace_seconds=self.settings.grace_period,
                replicas=chosen.get(cluster),
                gang=gang,
                now=now,
            )
            for cluster, due in sorted(lost.items())
        ]
        keep = [t for t in tasks if t["fromCluster"] not in lost]
        self.limiter.take()  # before the first await: two workers never share one token
        try:
            reason = await self.scheduling.evict(
                key, binding, {c: d.reason for c, d in lost.items()}, keep + new
            )
        except BaseException:
            self.limiter.refund()
            raise
        if reason is not None:
            self.limiter.refund()
            if self.pending.get(key) != reason:
                message = f"due to leave {', '.join(sorted(lost))} but no other cluster fits: {reason}"
                log.info("failover: %s/%s: %s", key[0], key[1], message)
                self.emit(template_stub(binding), "Warning", "FailoverPending", message)
            self.pending[key] = reason
            self._gauges()
            return self.settings.retry
        self.pending.pop(key, None)
        self._gauges()
        stored = self.state.bindings.get(key) or binding
        after = targets(stored)
        for cluster, due in lost.items():
            metrics.FAILOVERS.labels(cluster=cluster, reason=due.reason).inc()
        log.info(
            "failover: %s/%s evicted from %s (%s, purge %s): now on %s",
            key[0],
            key[1],
            ",".join(sorted(lost)),
            ",".join(sorted({d.reason for d in lost.values()})),
            new[0]["purgeMode"],
            ",".join(f"{c}:{r}" if r is not None else c for c, r in sorted(after.items())),
        )
        changed = {c for c, r in after.items() if c not in chosen or chosen[c] != r}
        due_at = min(d.at for d in lost.values())
        if changed:
            self._in_flight[key] = _InFlight(due_at, changed)
        else:
            metrics.FAILOVER_DURATION.observe(max(0.0, (self.clock() - due_at).total_seconds()))
        self.on_written(key)
        return None

    def _purge_mode(self, binding: Mapping[str, Any]) -> str:
        ref = (binding.get("spec") or {}).get("policyRef") or {}
        policy = self.state.policies.get(f"{ref.get('kind')}/{ref.get('namespace') or ''}/{ref.get('name')}")
        cluster = ((policy.spec.get("failover") or {}).get("cluster") or {}) if policy is not None else {}
        return purge_mode(cluster.get("purgeMode"), self.settings.purge_mode)

    async def _write_tasks(self, key: Key, binding: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        body = {
            "metadata": {"resourceVersion": binding["metadata"].get("resourceVersion")},
            "spec": {TASKS: tasks or None},
        }
        async with self.state.status_lock(key):  # (the status writer waits: no conflict with it)
            with self.state.writing(key):
                stored = await asyncio.to_thread(self.hub.patch, binding, body)
        metrics.HUB_WRITES.labels(controller="failover", kind="ResourceBinding").inc()
        self.state.put_binding(stored)
        self.on_written(key)

    # ------------------------------------------------------------------ signals
    def propagated(self, key: Key) -> None:
        """Propagation reconciled ``key``: what it applied is in its records."""
        self._propagated.add(key)
        if key in self.pending or key in self._in_flight:
            return
        binding = self.state.bindings.get(key)
        if any(t.get("suppressDeletion") and t.get("purgeMode") == GRACEFULLY for t in tasks_of(binding)):
            self.on_check(key)  # a graceful eviction may end now

    def copies_applied(self, key: Key, clusters: set[str]) -> None:
        """Propagation applied copies of ``key`` to ``clusters``: a failover may be complete."""
        flight = self._in_flight.get(key)
        if flight is None:
            return
        flight.remaining -= clusters
        if not flight.remaining:
            del self._in_flight[key]
            seconds = max(0.0, (self.clock() - flight.due).total_seconds())
            metrics.FAILOVER_DURATION.observe(seconds)
            log.info(
                "failover: %s/%s replacement applied %.1fs after it was due to leave (%s)",
                key[0],
                key[1],
                seconds,
                timestamp(flight.due),
            )

    def watches(self, binding: Mapping[str, Any] | None, cluster: str) -> bool:
        """Whether a change on ``cluster`` matters to the binding's failover."""
        return any(t["fromCluster"] == cluster for t in tasks_of(binding))


__all__ = ["DIRECTLY", "GRACEFULLY", "NEVER", "FailoverController", "FailoverSettings", "TokenBucket"]
