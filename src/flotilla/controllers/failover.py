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

Application failover: when the workload's policy has ``failover.application`` (or its PodGroup
``scheduleTimeoutSeconds``), the status controller's health verdict on each copy starts a clock
(:meth:`FailoverController.health_seen`); a copy on a Ready member that is not healthy for
``decisionConditions.tolerationSeconds`` (the shortest of the two) is evicted the same way, with
reason ``ApplicationFailure`` and the application's purge mode. The cluster it left stays out
until the workload is healthy where it went, so a workload failing everywhere does not bounce.
The clock lives in memory: an operator restart starts it again (the move is delayed, never lost).

Moves: ``kubectl flotilla move`` sets the binding's ``flotilla.dev/move-to`` annotation; the whole
workload is scheduled onto that cluster alone (its policy still applies) and written with eviction
tasks (reason ``Moved``) for the clusters it leaves, the annotation removed in the same write; a
move that cannot be done removes the annotation and says why in a ``MoveFailed`` Warning event.

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
from datetime import UTC, datetime, timedelta
from typing import Any

from flotilla import metrics
from flotilla.controllers.client import Client
from flotilla.controllers.common import EmitEvent, template_stub
from flotilla.controllers.eviction import (
    APPLICATION_FAILURE,
    DIRECTLY,
    GRACEFULLY,
    MOVE_ANNOTATION,
    MOVED,
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

AppRule = tuple[int, str | None, int | None, str]
"""Application failover: (toleration seconds, purge mode, grace period, the setting it comes from)."""


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
        self._unhealthy: dict[Key, dict[str, datetime]] = {}
        """Per workload with an application failover rule: since when its copy on each cluster has
        not been healthy (the status controller's verdicts; in memory: a restart starts again)."""

    def forget(self, key: Key) -> None:
        self._propagated.discard(key)
        self._unhealthy.pop(key, None)
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
        move_to = (binding["metadata"].get("annotations") or {}).get(MOVE_ANNOTATION)
        unhealthy = self._unhealthy.get(key)
        if not tasks and not tainted and not move_to and not unhealthy:
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
            if unhealthy:
                self._application_due(binding, unhealthy, snapshot, now, lost, wake)
        kept, changed = self._maintain(key, binding, tasks, snapshot, tolerations, now, wake)
        if move_to and decided(binding) and not lost:
            delay, moved = await self._move(key, binding, str(move_to), kept, now)
            if delay is not None:
                wake.append(delay)
            if changed and not moved:  # (a move writes the tasks with its decision)
                await self._write_tasks(key, self.state.bindings.get(key) or binding, kept)
        elif lost:
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

    # ------------------------------------------------------------------ application failover
    def application_rule(
        self, binding: Mapping[str, Any] | None
    ) -> tuple[int, str | None, int | None, str] | None:
        """How long the workload's copy may stay unhealthy on a cluster before it is moved:
        ``(seconds, purge mode, grace period, what)``, the shortest of the policy's
        ``failover.application`` (``decisionConditions.tolerationSeconds``, default 300) and its
        PodGroup's ``scheduleTimeoutSeconds``; None when neither is set."""
        if binding is None:
            return None
        rules: list[AppRule] = []
        policy = self._policy(binding)
        app = ((policy.spec.get("failover") or {}).get("application") or {}) if policy is not None else {}
        if app:
            seconds = (app.get("decisionConditions") or {}).get("tolerationSeconds")
            grace = app.get("gracePeriodSeconds")
            rules.append(
                (
                    300 if seconds is None else int(seconds),
                    purge_mode(app.get("purgeMode"), GRACEFULLY),
                    None if grace is None else int(grace),
                    "failover.application.decisionConditions.tolerationSeconds",
                )
            )
        group = ((binding.get("spec") or {}).get("schedulingGroup") or {}).get("podGroup")
        if group:
            pod_group = self.state.pod_groups.get((binding["metadata"].get("namespace") or "", group))
            timeout = ((pod_group or {}).get("spec") or {}).get("scheduleTimeoutSeconds")
            if timeout is not None:
                rules.append((int(timeout), None, None, f"PodGroup {group} scheduleTimeoutSeconds"))
        return min(rules, key=lambda r: r[0]) if rules else None

    def health_seen(self, key: Key, healths: Mapping[str, Health]) -> None:
        """The status controller's verdict on the workload's copies (chosen clusters whose member
        is Ready and which have a copy): starts or stops each cluster's unhealthy clock."""
        binding = self.state.bindings.get(key)
        if binding is None or self.application_rule(binding) is None:
            if self._unhealthy.pop(key, None):
                self.on_check(key)
            return
        chosen = targets(binding)
        now = self.clock()
        since = self._unhealthy.setdefault(key, {})
        before = dict(since)
        for cluster in list(since):
            if cluster not in chosen:
                del since[cluster]
        for cluster, health in healths.items():
            if cluster not in chosen:
                continue
            if health == Health.HEALTHY:
                since.pop(cluster, None)
            else:
                since.setdefault(cluster, now)
        if not since:
            del self._unhealthy[key]
        if since != before:
            self.on_check(key)

    def _application_due(
        self,
        binding: Mapping[str, Any],
        unhealthy: Mapping[str, datetime],
        snapshot: Snapshot,
        now: datetime,
        lost: dict[str, Due],
        wake: list[float],
    ) -> None:
        rule = self.application_rule(binding)
        if rule is None:
            return
        seconds, mode, grace, what = rule
        chosen = targets(binding)
        for cluster, since in sorted(unhealthy.items()):
            info = snapshot.clusters.get(cluster)
            if cluster in lost or cluster not in chosen or info is None or not info.ready:
                continue  # a member that does not answer is cluster failover's
            at = since + timedelta(seconds=seconds)
            if at > now:
                wake.append((at - now).total_seconds())
                continue
            lost[cluster] = Due(
                at,
                cause=APPLICATION_FAILURE,
                detail=f"not healthy on {cluster} since {timestamp(since)}, {what} {seconds}s",
                purge_mode=mode,
                grace_seconds=grace,
            )

    # ------------------------------------------------------------------ moves
    async def _move(
        self, key: Key, binding: dict[str, Any], to: str, tasks: list[dict[str, Any]], now: datetime
    ) -> tuple[float | None, bool]:
        """``kubectl flotilla move``: the whole workload to ``to``, through the scheduler (its
        policy still applies). The request (the annotation) is removed in the write that moves
        it, or when it cannot be done (a Warning event says why). Returns when to look again
        (waiting for an eviction token) and whether the workload was moved."""
        chosen = targets(binding)
        if to not in self.member_names():
            problem = f"there is no member cluster {to!r}"
        elif set(chosen) == {to}:
            await self._clear_move(key, binding)
            return None, False
        else:
            lost = {
                c: Due(now, cause=MOVED, detail=f"moved to {to} by request")
                for c in sorted(chosen)
                if c != to
            }
            delay = await self._evict(key, binding, lost, tasks, now, only=to)
            if delay is None:
                return None, True
            if key in self._throttled:
                return delay, False  # waiting for a token
            problem = f"the scheduler found no room there: {self.pending.pop(key, '')}"
            self._gauges()
        message = f"cannot move to {to}: {problem}"
        log.info("failover: %s/%s: %s", key[0], key[1], message)
        self.emit(template_stub(binding), "Warning", "MoveFailed", message)
        await self._clear_move(key, self.state.bindings.get(key) or binding)
        return None, False

    async def _clear_move(self, key: Key, binding: dict[str, Any]) -> None:
        body = {
            "metadata": {
                "resourceVersion": binding["metadata"].get("resourceVersion"),
                "annotations": {MOVE_ANNOTATION: None},
            }
        }
        with self.state.writing(key):
            stored = await asyncio.to_thread(self.hub.patch, binding, body)
        metrics.HUB_WRITES.labels(controller="failover", kind="ResourceBinding").inc()
        self.state.put_binding(stored)

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
                key, binding, task, snapshot, tolerations, now
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
        task: Mapping[str, Any],
        snapshot: Snapshot,
        tolerations: tuple[Toleration, ...],
        now: datetime,
    ) -> bool:
        """Whether the task's cluster may be used again: Ready, untainted, and no copy of ours left
        there; after an application failure or a move, also only once the workload is healthy
        where it went (so a workload failing everywhere does not bounce back and forth)."""
        cluster = str(task["fromCluster"])
        if task.get("reason") in (APPLICATION_FAILURE, MOVED) and not self._replacement_healthy(key, binding):
            return False
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
        only: str | None = None,
    ) -> float | None:
        """Evict from ``lost`` (``only``: to that cluster alone, a move); returns when to try again
        (None: done)."""
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
                key, binding, {c: d.reason for c, d in lost.items()}, keep + new, only=only
            )
        except BaseException:
            self.limiter.refund()
            raise
        if reason is not None:
            self.limiter.refund()
            if only is None and self.pending.get(key) != reason:
                message = f"due to leave {', '.join(sorted(lost))} but no other cluster fits: {reason}"
                log.info("failover: %s/%s: %s", key[0], key[1], message)
                self.emit(template_stub(binding), "Warning", "FailoverPending", message)
            self.pending[key] = reason
            self._gauges()
            return self.settings.retry
        self.pending.pop(key, None)
        self._gauges()
        unhealthy = self._unhealthy.get(key)
        for cluster in lost:
            if unhealthy is not None:
                unhealthy.pop(cluster, None)
        if unhealthy is not None and not unhealthy:
            del self._unhealthy[key]
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

    def _policy(self, binding: Mapping[str, Any]) -> Any:
        ref = (binding.get("spec") or {}).get("policyRef") or {}
        return self.state.policies.get(f"{ref.get('kind')}/{ref.get('namespace') or ''}/{ref.get('name')}")

    def _purge_mode(self, binding: Mapping[str, Any]) -> str:
        policy = self._policy(binding)
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
