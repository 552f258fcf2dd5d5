"""Scheduling: pending queue, reserve / release, requeue on capacity change. One hub write per decision.

Keyed by binding ``(namespace, name)``. The detector hands over the binding as it should be;
this controller writes it: created (POST) or updated (an optimistic-concurrency merge patch; a
binding changed meanwhile answers 409 and is handled again), together with a decision whenever
its ``scheduling-inputs`` digest is new. A binding is decided when its ``scheduled-inputs``
annotation equals that digest. The decision's explanation and ``Scheduled`` condition travel
to the propagation controller, and go out with the binding's next status write (with the copies
applied), so a decision costs one write and no status write of its own. An unschedulable
binding gets one status write, and only when the reason changed; it waits in the pending set
and is scheduled again when capacity changes.

The reservation made for a decision (the scheduler cache's ``assume``) is released when the
write fails, and confirmed pod by pod as the members report the workload's pods (they carry the
``flotilla.dev/binding`` label propagation puts on every pod template; the inventory passes it to
the cache as the pod's owner). The status controller drops what is left once the workload is
healthy everywhere (kinds whose pods carry no label: InferenceService).

Metrics (see docs/operations.md): every attempt is counted by result (scheduled, unschedulable,
error) and timed whole and for the algorithm alone; one attempt in ten also times each plugin
(the scheduler core's observer hook, :class:`flotilla.metrics.SchedulerObserver`). Waiting
workloads are gauged by reason and by the plugins that rejected them; a first placement observes
the wait since the template's creation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiException

from flotilla import metrics
from flotilla.controllers.client import Client
from flotilla.controllers.common import (
    SCHEDULED_HASH_ANNOTATION,
    SCHEDULER_FIELD_MANAGER,
    EmitEvent,
    divide_exactly,
    now,
    same_conditions,
    template_stub,
    with_condition,
)
from flotilla.controllers.eviction import MOVE_ANNOTATION, TASKS, describe_tasks, evicted_clusters
from flotilla.controllers.hubstate import HubState, Key, object_key
from flotilla.controllers.workloads import (
    BINDING_API_VERSION,
    SCHEDULING_HASH_ANNOTATION,
    binding_is_current,
    scheduler_workload,
)
from flotilla.interpreter.keys import pod_owner
from flotilla.quota import binding_cluster_usage
from flotilla.scheduler import Scheduler, SchedulerCache
from flotilla.scheduler.core import ScheduleOutcome
from flotilla.scheduler.plugins import fragmentation
from flotilla.scheduler.quantity import ResourceList
from flotilla.scheduler.workload import Workload

log = logging.getLogger("flotilla")

QuotaLeft = Callable[[Key, Mapping[Key, Mapping[str, ResourceList]]], dict[str, ResourceList] | None]
"""For a binding, what its namespace's quota shares leave per cluster (None: no shares), given
the per-cluster usage of decisions not yet in the hub cache."""

PROFILE_CLASSES = 5
"""Classes of the learned distribution a decision's explanation records (the heaviest)."""


@dataclass(frozen=True)
class Decision:
    """A decision handed to the propagation controller, to be recorded with the applied copies."""

    generation: int
    message: str
    explanation: dict[str, Any]
    time: str
    summary: str
    reason: str = "Scheduled"
    """The ``Scheduled`` condition's reason: ``Scheduled``, or ``Evicted`` for a failover's decision."""
    at: float = 0.0
    """When it was made (``time.time()``)."""
    added: frozenset[str] = field(default_factory=frozenset)
    """Clusters this decision placed the workload on that it was not on before."""

    @classmethod
    def of(
        cls,
        stored: Mapping[str, Any],
        message: str,
        outcome: Any,
        summary: str,
        reason: str = "Scheduled",
        before: Iterable[str] = (),
        profile: Mapping[str, Any] | None = None,
    ) -> Decision:
        """The decision recorded in ``stored`` (the binding as written), explained by ``outcome``;
        ``before``: the clusters the workload was on until then; ``profile``: what the profile's
        learned settings were (see :meth:`SchedulingController.profile_state`)."""
        chosen = {str(c["name"]) for c in (stored.get("spec") or {}).get("clusters") or ()}
        return cls(
            generation=int(stored["metadata"].get("generation") or 0),
            message=message,
            explanation=explanation_dict(outcome, profile),
            time=now(),
            summary=summary,
            reason=reason,
            at=time.time(),
            added=frozenset(chosen - set(before)),
        )


EXPLANATION_CLUSTERS_ENV = "FLOTILLA_EXPLANATION_CLUSTERS"
EXPLANATION_CLUSTERS = 20
"""Clusters a binding's ``status.explanation`` lists at most (the placed ones first; the rest are
counted, rejections per plugin and reason): at 1,000 members the full list was about 220 KiB
per binding and took longer to build than the decision."""


@functools.lru_cache(maxsize=4)
def _explanation_clusters(raw: str | None) -> int:
    if raw is None:
        return EXPLANATION_CLUSTERS
    try:
        value = int(raw)
        if value < 1:
            raise ValueError
    except ValueError:
        log.warning(
            "%s=%r is not a positive integer: using %d", EXPLANATION_CLUSTERS_ENV, raw, EXPLANATION_CLUSTERS
        )
        return EXPLANATION_CLUSTERS
    return value


def explanation_clusters() -> int:
    """``FLOTILLA_EXPLANATION_CLUSTERS`` (default :data:`EXPLANATION_CLUSTERS`)."""
    return _explanation_clusters(os.environ.get(EXPLANATION_CLUSTERS_ENV))


def explanation_dict(outcome: Any, profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``outcome.explanation.to_dict()`` bounded to :func:`explanation_clusters` clusters, with the
    profile's learned state under ``profile``."""
    out: dict[str, Any] = outcome.explanation.to_dict(explanation_clusters())
    if profile:
        out["profile"] = dict(profile)
    return out


def decided(binding: Mapping[str, Any]) -> bool:
    annotations = binding["metadata"].get("annotations") or {}
    inputs = annotations.get(SCHEDULING_HASH_ANNOTATION)
    return (
        bool(inputs)
        and inputs == annotations.get(SCHEDULED_HASH_ANNOTATION)
        and bool((binding.get("spec") or {}).get("clusters"))
    )


def rejecting_plugins(outcome: Any) -> frozenset[str]:
    """The plugins that rejected a cluster in an Unschedulable outcome (or the cycle as a whole)."""
    diagnosis = outcome.diagnosis
    plugins = {s.plugin for s in diagnosis.cluster_statuses.values() if s.plugin}
    plugins.update(diagnosis.plugins)
    return frozenset(plugins or ("Unknown",))


def created_at(obj: Mapping[str, Any] | None) -> float | None:
    """An object's creationTimestamp as seconds since the epoch (None when absent or unreadable)."""
    stamp = ((obj or {}).get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def summary_of(targets: list[dict[str, Any]]) -> str:
    return ",".join(
        str(t["name"]) + (f":{t['replicas']}" if t.get("replicas") is not None else "") for t in targets
    )


class SchedulingController:
    def __init__(
        self,
        hub: Client,
        state: HubState,
        cache: SchedulerCache,
        lock: threading.RLock,
        emit: EmitEvent,
        on_decided: Callable[[Key, Decision], None],
        scheduler: Scheduler | None = None,
        quota_left: QuotaLeft = lambda _key, _decided: None,
        profile: str = metrics.PROFILE,
    ) -> None:
        self.hub, self.state, self.cache, self.lock, self.emit = hub, state, cache, lock, emit
        self.on_decided = on_decided
        self.scheduler = scheduler or Scheduler()
        self.quota_left = quota_left
        self.profile = profile
        self.observer = metrics.SchedulerObserver(profile)
        plugin = self.scheduler.framework.plugins.get(fragmentation.NAME)
        self._fragmentation = plugin if isinstance(plugin, fragmentation.GPUFragmentationPlugin) else None
        self._profile_epoch: int | None = None
        self.profile_state: dict[str, Any] = {}
        """What the explanation of each decision records of the profile's learned state: per
        plugin (GPUFragmentation), its setting, epoch and heaviest classes; empty without one."""
        if self._fragmentation is not None:
            learned = self._fragmentation
            metrics.FRAGMENTATION_OBSERVED.labels(profile=profile).set_function(lambda: learned.observed)
        self._refresh_profile()
        self.pending: set[Key] = set()
        """Bindings waiting for a placement (retried when capacity changes, or with backoff)."""
        self._waiting: dict[Key, tuple[str, frozenset[str]]] = {}
        self._since: dict[Key, float] = {}
        """When each waiting binding started waiting (``time.monotonic()``)."""
        self._reasons: Counter[str] = Counter()
        self._plugins: Counter[str] = Counter()
        self._errors: dict[Key, str] = {}
        for reason in ("NoClusterFits", "SchedulerError"):
            metrics.PENDING.labels(reason=reason).set(0)
        metrics.OLDEST_PENDING.set_function(self.oldest_wait)
        self._desired: dict[Key, dict[str, Any]] = {}
        self._quota_usage: dict[Key, dict[str, ResourceList]] = {}
        """Per-cluster usage of decisions in namespaces with quota shares, until they are forgotten:
        a decision counts against the shares before its binding write comes back."""

    def _refresh_profile(self) -> None:
        """After a decision: when GPUFragmentation's distribution changed, its gauges and
        :attr:`profile_state` follow (once per epoch, not per decision)."""
        plugin = self._fragmentation
        if plugin is None or plugin.epoch == self._profile_epoch:
            return
        self._profile_epoch = plugin.epoch
        described = plugin.describe(metrics.FRAGMENTATION_TOP_CLASSES)
        metrics.set_fragmentation(described, self.profile)
        self.profile_state = {
            fragmentation.NAME: {**described, "classes": described["classes"][:PROFILE_CLASSES]}
        }

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting binding has waited (read at each scrape)."""
        since = min(list(self._since.values()), default=None)  # (a copy: the loop may add keys)
        return 0.0 if since is None else time.monotonic() - since

    def release(self, key: Key) -> None:
        """Drop the reservation of a binding that is gone."""
        with self.lock:
            self.cache.forget(f"{key[0]}/{key[1]}")
            self._quota_usage.pop(key, None)
        self._set_pending(key, None)
        self._errors.pop(key, None)

    def _set_pending(self, key: Key, reason: str | None, plugins: frozenset[str] = frozenset()) -> None:
        """Whether the binding waits (``reason``: NoClusterFits or SchedulerError; None: it does
        not), and the plugins that rejected it; the gauges follow, counted incrementally."""
        old = self._waiting.pop(key, None)
        new = (reason, plugins) if reason is not None else None
        if new is not None:
            self._waiting[key] = new
            self.pending.add(key)
            self._since.setdefault(key, time.monotonic())
        else:
            self.pending.discard(key)
            self._since.pop(key, None)
        if old == new:
            return
        if old is not None:
            self._reasons[old[0]] -= 1
            self._plugins.subtract(old[1])
        if new is not None:
            self._reasons[new[0]] += 1
            self._plugins.update(new[1])
        for r in {x[0] for x in (old, new) if x is not None}:
            metrics.PENDING.labels(reason=r).set(self._reasons[r])
        for plugin in (old[1] if old else frozenset()) | (new[1] if new else frozenset()):
            metrics.UNSCHEDULABLE.labels(plugin=plugin, profile=self.profile).set(self._plugins[plugin])

    def _schedule(self, workload: Workload) -> ScheduleOutcome:
        """One run of the algorithm on a fresh snapshot (the caller holds ``self.lock``); timed,
        and one run in ten with every plugin call timed through the framework's observer hook."""
        scheduler = self.scheduler
        outcome = self.observer.timed(
            scheduler.framework, lambda: scheduler.schedule(self.cache.snapshot(), workload)
        )
        self._refresh_profile()
        return outcome

    def _failed(self, key: Key, target: Mapping[str, Any], exc: Exception, started: float) -> None:
        """The scheduler (or the workload's conversion) raised: counted, gauged, and told on the
        template once per distinct error (the key is retried with backoff)."""
        metrics.observe_schedule("error", time.perf_counter() - started, self.profile)
        self._set_pending(key, "SchedulerError")
        message = f"scheduler error: {exc}"[:1024]
        if self._errors.get(key) != message:
            self._errors[key] = message
            if (target.get("spec") or {}).get("resource"):
                self.emit(template_stub(target), "Warning", "FailedScheduling", message)

    def note_desired(self, key: Key, desired: dict[str, Any]) -> None:
        """Called by the detector (on the loop): the binding as it should be; written by the next run."""
        self._desired[key] = desired

    async def reconcile(self, key: Key) -> None:
        desired = self._desired.pop(key, None)
        binding = self.state.bindings.get(key)
        if binding is not None and binding["metadata"].get("deletionTimestamp"):
            self.release(key)
            return
        if desired is not None and not binding_is_current(binding, desired):
            try:
                await self._write(key, binding, desired)
            except Exception:
                self._desired.setdefault(key, desired)  # retried with the key, unless newer came
                raise
            return
        if binding is None:
            self.release(key)
            return
        if decided(binding):
            self._set_pending(key, None)
            return
        await self._write(key, binding, None)

    async def _write(self, key: Key, binding: dict[str, Any] | None, desired: dict[str, Any] | None) -> None:
        """Write the binding (created, or its spec updated) together with a decision when its
        scheduling inputs are new: one write. ``desired`` None: decide for the binding as it is."""
        target = desired if desired is not None else binding
        assert target is not None
        annotations = dict(target["metadata"].get("annotations") or {})
        inputs = annotations.get(SCHEDULING_HASH_ANNOTATION, "")
        current = dict((binding or {}).get("metadata", {}).get("annotations") or {})
        decide = binding is None or not (
            inputs and current.get(SCHEDULED_HASH_ANNOTATION) == inputs and binding["spec"].get("clusters")
        )
        targets: list[dict[str, Any]] | None = None
        outcome: Any = None
        elapsed = 0.0
        started = time.perf_counter()
        if decide:
            wl_key = f"{key[0]}/{key[1]}"
            try:
                with self.lock:  # one decision at a time: reservations and quota shares stay exact
                    self.cache.forget(wl_key)
                    self._quota_usage.pop(key, None)
                    limits = self.quota_left(key, self._quota_usage)
                    # Clusters the workload was evicted from stay out while the eviction task stands.
                    workload = scheduler_workload(
                        target, evicted_from=evicted_clusters(binding), cluster_limits=limits
                    )
                    outcome = self._schedule(workload)
                    if outcome.ok:
                        self.cache.assume(wl_key, outcome.assignments, owner=pod_owner(*key))
                        targets = self._targets(target, outcome)
                        if limits is not None:
                            self._quota_usage[key] = binding_cluster_usage(
                                {"spec": {**target["spec"], "clusters": targets}}
                            )
            except Exception as exc:
                self._failed(key, target, exc, started)
                raise
            elapsed = time.perf_counter() - started
            if outcome.ok:
                annotations[SCHEDULED_HASH_ANNOTATION] = inputs
        try:
            with self.state.writing(key):
                stored = await self._store(binding, desired, annotations, targets)
        except Exception as exc:
            if targets is not None:
                self.release(key)  # the decision was not recorded: its reservation must not stay
            if decide and not (isinstance(exc, ApiException) and exc.status == 409):
                # (A write that lost a conflict is decided again, and counted then.)
                metrics.observe_schedule("error", time.perf_counter() - started, self.profile)
            raise
        if stored is None:
            return
        self._errors.pop(key, None)
        if decide and outcome is not None and not outcome.ok:
            self._set_pending(key, "NoClusterFits", rejecting_plugins(outcome))
            generation = int(stored["metadata"].get("generation") or 0)
            await self._record_unschedulable(
                stored, outcome.message, explanation_dict(outcome, self.profile_state), generation
            )
            metrics.observe_schedule("unschedulable", time.perf_counter() - started, self.profile)
            return
        if targets is None:
            return  # the spec was refreshed (e.g. the template's UID); the decision stands
        metrics.observe_schedule("scheduled", time.perf_counter() - started, self.profile)
        self._set_pending(key, None)
        before = [str(c["name"]) for c in ((binding or {}).get("spec") or {}).get("clusters") or ()]
        if not before:  # a first placement: how long the workload waited for it (Kueue's admission wait)
            created = created_at(self.state.template_of(stored))
            if created is not None:
                metrics.ADMISSION_WAIT.observe(max(0.0, time.time() - created))
        summary = summary_of(targets)
        message = f"scheduled to {summary} in {elapsed * 1000:.1f} ms"
        self.on_decided(
            key, Decision.of(stored, message, outcome, summary, before=before, profile=self.profile_state)
        )
        # One Event, on the template users look at; the binding carries the same in its condition.
        self.emit(template_stub(stored), "Normal", "Scheduled", message)
        await self._update_pod_group(stored, targets[0]["name"], None)

    async def evict(
        self,
        key: Key,
        binding: dict[str, Any],
        lost: Mapping[str, str],
        tasks: list[dict[str, Any]],
        only: str | None = None,
    ) -> str | None:
        """Failover: decide again without the ``lost`` clusters (``{cluster: why}``) and write the
        new decision with the eviction ``tasks`` in one request. A Divided workload
        keeps its replicas on the other clusters and only the lost share is placed; a gang (or any
        other workload) is placed whole, its survivors preferred. Returns None when written, or
        the scheduler's reason when nothing fits (then nothing is written and nothing changes).
        ``only``: a move, every other cluster is out for this decision and the move request (the
        binding's annotation) is removed in the same write."""
        spec = binding["spec"]
        survivors = [dict(c) for c in spec.get("clusters") or () if c["name"] not in lost]
        basis = {**binding, "spec": {**spec, "clusters": survivors}}
        evicted = evicted_clusters(binding) | frozenset(lost)
        wl_key = f"{key[0]}/{key[1]}"
        started = time.perf_counter()
        try:
            with self.lock:
                if only is not None:
                    evicted |= frozenset(n for n in self.cache.snapshot().clusters if n != only)
                usage = self._quota_usage.pop(key, None)
                limits = self.quota_left(key, self._quota_usage)
                workload = scheduler_workload(
                    basis, evicted_from=evicted, cluster_limits=limits, keep_current=True
                )
                outcome = self._schedule(workload)
                if outcome.ok:
                    self.cache.forget(wl_key)
                    self.cache.assume(wl_key, outcome.assignments, owner=pod_owner(*key))
                    targets = self._targets(basis, outcome)
                    if limits is not None:
                        self._quota_usage[key] = binding_cluster_usage(
                            {"spec": {**spec, "clusters": targets}}
                        )
                elif usage is not None:
                    self._quota_usage[key] = usage
        except Exception:
            metrics.observe_schedule("error", time.perf_counter() - started, self.profile)
            raise
        elapsed = time.perf_counter() - started
        if not outcome.ok:
            metrics.observe_schedule("unschedulable", elapsed, self.profile)
            return str(outcome.message)
        meta: dict[str, Any] = {"resourceVersion": binding["metadata"].get("resourceVersion")}
        if only is not None:
            meta["annotations"] = {MOVE_ANNOTATION: None}
        body = {"metadata": meta, "spec": {"clusters": targets, TASKS: tasks}}
        try:
            async with self.state.status_lock(key):  # (the status writer waits: no conflict with it)
                with self.state.writing(key):
                    stored = await asyncio.to_thread(self.hub.patch, binding, body)
        except Exception:
            self.release(key)  # not recorded: the reservation must not stay (the next try decides again)
            metrics.observe_schedule("error", time.perf_counter() - started, self.profile)
            raise
        metrics.observe_schedule("scheduled", time.perf_counter() - started, self.profile)
        metrics.HUB_WRITES.labels(controller="failover", kind="ResourceBinding").inc()
        self.state.put_binding(stored)
        summary = summary_of(targets)
        was = summary_of(spec.get("clusters") or [])
        why = describe_tasks(t for t in tasks if t["fromCluster"] in lost)
        message = f"{why}: rescheduled from {was} to {summary} in {elapsed * 1000:.1f} ms"
        before = [str(c["name"]) for c in spec.get("clusters") or ()]
        self.on_decided(
            key,
            Decision.of(
                stored, message, outcome, summary, reason="Evicted", before=before, profile=self.profile_state
            ),
        )
        self.emit(template_stub(stored), "Warning", "Evicted", message)
        if spec.get("schedulingGroup"):
            await self._update_pod_group(stored, targets[0]["name"], None)
        return None

    @staticmethod
    def _targets(binding: Mapping[str, Any], outcome: Any) -> list[dict[str, Any]]:
        """The decision's clusters, with the divisible replica count each gets (Divided kinds).

        The scheduler counts pods of every role; they are scaled to the kind's divisible count.
        On failover (``outcome.kept``) the clusters that keep their share keep exactly their units
        and only the lost units are shared out, in proportion to the pods placed anew."""
        divisible = binding["spec"].get("replicas")
        if divisible is None:
            return [{"name": t.name} for t in outcome.targets]
        units = int(divisible)
        kept: dict[str, int] = dict(getattr(outcome, "kept", None) or {})
        if not kept:
            shares = divide_exactly(units, {t.name: t.replicas for t in outcome.targets})
        else:
            pods = sum(int(c.get("replicas") or 0) for c in binding["spec"].get("components") or ())
            per_unit = pods // units if units and pods % units == 0 else 1
            new = {t.name: max(0, t.replicas - kept.get(t.name, 0) * per_unit) for t in outcome.targets}
            extra = divide_exactly(units - sum(kept.values()), new)
            shares = {name: kept.get(name, 0) + extra.get(name, 0) for name in new}
        return [{"name": n, "replicas": r} for n, r in shares.items()]

    async def _store(
        self,
        binding: dict[str, Any] | None,
        desired: dict[str, Any] | None,
        annotations: dict[str, str],
        targets: list[dict[str, Any]] | None,
    ) -> dict[str, Any] | None:
        """Create or patch the binding (optimistic concurrency); returns what the hub stored."""
        if binding is None:
            assert desired is not None
            body = {**desired, "metadata": {**desired["metadata"], "annotations": annotations}}
            body["spec"] = {**desired["spec"], **({"clusters": targets} if targets is not None else {})}
            try:
                stored = await asyncio.to_thread(self.hub.create, body, SCHEDULER_FIELD_MANAGER)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # It exists (the cache had not seen it yet): read it; the retry compares again.
                live = await asyncio.to_thread(
                    self.hub.get,
                    BINDING_API_VERSION,
                    "ResourceBinding",
                    desired["metadata"]["name"],
                    desired["metadata"].get("namespace"),
                )
                if live is not None:
                    self.state.put_binding(live)
                raise
        else:
            meta: dict[str, Any] = {"resourceVersion": binding["metadata"].get("resourceVersion")}
            spec: dict[str, Any] = {}
            if desired is not None:
                meta.update(
                    labels=desired["metadata"].get("labels"),
                    ownerReferences=desired["metadata"].get("ownerReferences"),
                )
                spec = {
                    k: None
                    for k in binding["spec"]
                    if k not in desired["spec"] and k not in ("clusters", "gracefulEvictionTasks")
                }
                spec.update(desired["spec"])
            meta["annotations"] = annotations
            if targets is not None:
                spec["clusters"] = targets
            if not spec and annotations == (binding["metadata"].get("annotations") or {}):
                return binding
            stored = await asyncio.to_thread(self.hub.patch, binding, {"metadata": meta, "spec": spec})
        metrics.HUB_WRITES.labels(controller="scheduling", kind="ResourceBinding").inc()
        self.state.put_binding(stored)
        return stored

    async def _record_unschedulable(
        self, binding: dict[str, Any], message: str, explanation: dict[str, Any], generation: int
    ) -> None:
        status = binding.get("status") or {}
        conditions = with_condition(
            list(status.get("conditions") or []), "Scheduled", False, "NoClusterFits", message, generation
        )
        unchanged = (
            status.get("schedulerObservedGeneration") == generation
            and same_conditions(status.get("conditions"), conditions)
            and status.get("explanation") == explanation
        )
        if not unchanged:
            body = {
                "metadata": {"resourceVersion": binding["metadata"].get("resourceVersion")},
                "status": {
                    "schedulerObservedGeneration": generation,
                    "explanation": explanation,
                    "conditions": conditions,
                    "clustersSummary": None,
                },
            }
            with self.state.writing(object_key(binding)):
                updated = await asyncio.to_thread(self.hub.patch, binding, body, "status")
            metrics.HUB_WRITES.labels(controller="scheduling", kind="ResourceBinding").inc()
            self.state.put_binding(updated)
            # An Event only when the reason changes: a waiting workload does not flood the hub.
            self.emit(template_stub(binding), "Warning", "FailedScheduling", message)
        await self._update_pod_group(binding, None, message)

    async def _update_pod_group(
        self, binding: Mapping[str, Any], cluster: str | None, message: str | None
    ) -> None:
        group = (binding["spec"].get("schedulingGroup") or {}).get("podGroup")
        if not group:
            return
        ns = binding["metadata"].get("namespace") or ""
        current = self.state.pod_groups.get((ns, group))
        if current is None:
            return
        cur_status = current.get("status") or {}
        previous = list(cur_status.get("conditions") or [])
        generation = (current.get("metadata") or {}).get("generation")
        if cluster is not None:
            status: dict[str, Any] = {
                "phase": "Inqueue",
                "cluster": cluster,
                "conditions": with_condition(
                    previous, "Scheduled", True, "GangPlaced", f"placed on {cluster}", generation
                ),
            }
        else:
            status = {
                "phase": "Pending",
                "cluster": None,  # a gang waiting again is on no cluster
                "conditions": with_condition(
                    previous, "Scheduled", False, "GangUnschedulable", message or "", generation
                ),
            }
        if (
            cur_status.get("phase") == status["phase"]
            and cur_status.get("cluster") == status["cluster"]
            and same_conditions(previous, status["conditions"])
        ):
            return
        stub = {
            "apiVersion": BINDING_API_VERSION,
            "kind": "PodGroup",
            "metadata": {"name": group, "namespace": ns},
        }
        try:
            updated = await asyncio.to_thread(self.hub.patch, stub, {"status": status}, "status")
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        metrics.HUB_WRITES.labels(controller="scheduling", kind="PodGroup").inc()
        self.state.put_pod_group(updated)
