"""Wiring of the controllers: watch events in, keys into work queues, controllers out.

Kopf handlers in :mod:`flotilla.operator` call the ``on_*`` methods here, which only update the
hub cache and enqueue keys; each controller owns its queue and its own state::

    template / policy / PodGroup event -> detector queue    (template + policy -> binding)
    binding event                      -> scheduling queue  (decide; pending until capacity)
                                       -> propagation queue (member copies, applied records)
    member copy event (member watch)   -> propagation queue (drift, orphans)
                                       -> status queue      (member -> binding -> template)
    capacity / readiness change        -> scheduling queue (pending keys), status queue
    member taint / readiness change    -> failover queue    (evict from NoExecute-tainted members;
    binding change, status write           eviction tasks: graceful purge, drop when back;
    copy health (status controller)        application failover; moves asked for by annotation)
    template / binding / quota event   -> quota queue       (FederatedResourceQuota status, by namespace)

Nothing polls: no per-binding timer exists. The controllers' workers run only while this
replica leads (see :mod:`flotilla.leader`); a standby keeps its caches warm from the same
watches and takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client import ApiClient

from flotilla import API_GROUP
from flotilla.api import GROUP_VERSION
from flotilla.controllers.client import Client, KubeClient, MeteredClient
from flotilla.controllers.common import EmitEvent
from flotilla.controllers.detector import Detector
from flotilla.controllers.eviction import evicted_clusters, tasks_of
from flotilla.controllers.failover import FailoverController, FailoverSettings
from flotilla.controllers.hubstate import (
    HubState,
    Key,
    TemplateKey,
    binding_template_key,
    object_key,
    template_key,
)
from flotilla.controllers.member_copies import MemberCopies
from flotilla.controllers.propagation import PropagationController
from flotilla.controllers.quota import QuotaController
from flotilla.controllers.scheduling import Decision, SchedulingController
from flotilla.controllers.status import StatusController
from flotilla.controllers.workqueue import WorkQueue, describe
from flotilla.interpreter import InterpreterRegistry
from flotilla.scheduler import Scheduler, SchedulerCache

log = logging.getLogger("flotilla")

STATUS_COALESCE = 0.5
"""Seconds the status controller lets member events gather before it writes (one write per burst)."""
QUOTA_COALESCE = 0.2
"""Seconds the quota controller lets a namespace's workload events gather before it recomputes."""
FLEET_SYNC_TIMEOUT = 30.0
"""Seconds a cold start waits, at most, for every member's first verdict before it schedules."""
LEGACY_FINALIZER = f"{API_GROUP}/finalizer"
"""Kopf's finalizer, put on bindings by operator versions before 0.2; removed when seen."""


class Runtime:
    def __init__(
        self,
        hub: Client,
        cache: SchedulerCache,
        lock: threading.RLock,
        loop: asyncio.AbstractEventLoop,
        *,
        registry: InterpreterRegistry | None = None,
        scheduler: Scheduler | None = None,
        member_api: Callable[[str], ApiClient | None] = lambda _name: None,
        member_client: Callable[[str], Client | None] | None = None,
        member_ready: Callable[[str], bool] = lambda _name: True,
        member_names: Callable[[], list[str]] = list,
        member_settled: Callable[[str], bool] | None = None,
        fleet_sync_timeout: float = FLEET_SYNC_TIMEOUT,
        emit_event: EmitEvent = lambda *_a: None,
        hold_back: bool = True,
        workers: int = 4,
        watch_kinds: tuple[tuple[str, str], ...] = (),
        quota_enforced: bool = True,
        failover: FailoverSettings | None = None,
    ) -> None:
        self.hub, self.cache, self.lock, self.loop = hub, cache, lock, loop
        self.registry = registry or InterpreterRegistry()
        self.member_api = member_api
        self.member_names = member_names
        self.member_ready = member_ready
        self.member_settled = member_settled
        """Whether a member's first verdict is in (None: no wait before scheduling, e.g. in tests)."""
        self.fleet_sync_timeout = fleet_sync_timeout
        self.watch_kinds = set(watch_kinds)
        self.state = HubState()
        self.copies = MemberCopies(self._copy_changed, loop)
        clients: dict[int, KubeClient] = {}

        def default_member_client(name: str) -> Client | None:
            api = member_api(name)
            if api is None:
                return None
            client = clients.get(id(api))
            if client is None or client.api is not api:
                client = clients[id(api)] = KubeClient(api)
            return client

        inner_member_client = member_client or default_member_client
        metered: dict[str, tuple[Client, MeteredClient]] = {}

        def metered_member_client(name: str) -> Client | None:
            """Every controller's member client: timed, its errors counted, by member."""
            inner = inner_member_client(name)
            if inner is None:
                return None
            entry = metered.get(name)
            if entry is None or entry[0] is not inner:
                entry = metered[name] = (inner, MeteredClient(inner, name))
            return entry[1]

        self.detector = Detector(
            hub,
            self.state,
            self.registry,
            emit_event,
            self._binding_changed,
            self._desired,
            hold_back=hold_back,
        )
        self.member_client = metered_member_client
        self.quota = QuotaController(
            hub,
            self.state,
            self.registry,
            member_client=self.member_client,
            member_ready=member_ready,
            enforced=quota_enforced,
        )
        self.scheduling = SchedulingController(
            hub,
            self.state,
            cache,
            lock,
            emit_event,
            self._decided,
            scheduler=scheduler,
            quota_left=self.quota.left,
        )
        self.propagation = PropagationController(
            hub,
            self.state,
            self.registry,
            self.copies,
            self.member_client,
            self._ensure_watch_threadsafe,
            self._applied,
            member_ready,
            emit_event,
        )
        self.status = StatusController(
            hub,
            self.state,
            self.registry,
            self.copies,
            self.propagation,
            cache,
            lock,
            member_ready,
            self.notify_capacity_changed,
        )
        self.failover = FailoverController(
            hub,
            self.state,
            cache,
            lock,
            self.scheduling,
            self.propagation,
            self.copies,
            self.registry,
            emit_event,
            self._failover_wrote,
            member_names,
            settings=failover,
        )
        self.propagation.on_copies_applied = self.failover.copies_applied
        self.status.on_health = self.failover.health_seen
        self.detector_queue: WorkQueue[TemplateKey] = WorkQueue(
            "detector", self.detector.reconcile, workers=workers
        )
        self.scheduling_queue: WorkQueue[Key] = WorkQueue(
            "scheduling", self.scheduling.reconcile, workers=workers
        )
        self.propagation_queue: WorkQueue[Key] = WorkQueue("propagation", self._propagate, workers=workers)
        # Status is not on the path to the members: few workers, so that under load its keys wait
        # (de-duplicated) and a burst of member events becomes one write, not a stampede.
        self.status_queue: WorkQueue[Key] = WorkQueue(
            "status", self._status, workers=2, yield_to=self._placing, max_yield=2.0
        )
        self.quota_queue: WorkQueue[str] = WorkQueue("quota", self.quota.reconcile, workers=2)
        self.failover_queue: WorkQueue[Key] = WorkQueue("failover", self.failover.reconcile, workers=2)
        self.failover.on_check = self.failover_queue.add
        self.queues = (
            self.detector_queue,
            self.scheduling_queue,
            self.propagation_queue,
            self.status_queue,
            self.quota_queue,
            self.failover_queue,
        )
        self._capacity_handle: asyncio.TimerHandle | None = None
        self._ready: dict[str, bool] = {}
        self._member_seen: dict[str, tuple[Any, ...]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listed_kinds: set[tuple[str, str]] = set()  # template kinds listed in full
        self.leading = False

    def _placing(self) -> bool:
        """Whether placement work (the path to the members) is waiting: status yields to it."""
        return bool(len(self.scheduling_queue) or len(self.propagation_queue) or len(self.detector_queue))

    # ------------------------------------------------------------------ handlers (loop)
    def on_template(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = template_key(body)
        if event_type == "DELETED":
            self.state.drop_template(key)
            self._quota_changed(key[2])
        else:
            changed = self.state.put_template(body)
            self._quota_changed(key[2])  # status too: a finished Job frees its quota
            if not changed:
                return  # a status update (e.g. Flotilla's own aggregation) or an echo: nothing to do
        self.detector_queue.add(key)

    def on_templates_listed(self, api_version: str, kind: str) -> None:
        """Every template of the kind is known: bindings whose template is gone go to the detector.

        A template deleted while no operator ran leaves its binding (and its copies) behind, and
        no template event will ever name it; only a complete list can tell that it is gone."""
        self._listed_kinds.add((api_version, kind))
        self._bindings_without_template({(api_version, kind)})

    def _bindings_without_template(self, kinds: set[tuple[str, str]]) -> None:
        for binding in list(self.state.bindings.values()):
            tkey = binding_template_key(binding)
            if tkey[:2] in kinds and tkey not in self.state.templates:
                self.detector_queue.add(tkey)

    def on_quota(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self.quota.on_quota(event_type, body):
            self._member_changed("")  # budgets moved: pending workloads may fit now (or not)
        self.quota_queue.add(str(body["metadata"].get("namespace") or ""))

    def _quota_changed(self, namespace: str) -> None:
        if self.quota.watches(namespace):
            self.quota_queue.add_after(namespace, QUOTA_COALESCE)

    def on_policy(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if event_type == "DELETED" or body["metadata"].get("deletionTimestamp"):
            policy = self.state.drop_policy(body)
        else:
            old = self.state.policies.get(
                f"{body.get('kind')}/{body['metadata'].get('namespace') or ''}/{body['metadata']['name']}"
            )
            policy = self.state.put_policy(body)
            if old is not None and old == policy:
                return
        self.rematch(policy.namespace)

    def on_pod_group(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = object_key(body)
        if event_type == "DELETED":
            self.state.drop_pod_group(key)
        else:
            old = self.state.pod_groups.get(key)
            self.state.put_pod_group(body)
            if old is not None and old.get("spec") == body.get("spec"):
                return  # a status update (Flotilla's own): the gang did not change
        self.rematch(key[0])

    def on_binding(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = object_key(body)
        if event_type == "DELETED":
            last = self.state.drop_binding(key)
            self.propagation.binding_deleted(body if body.get("spec") else last)
            if self.quota.cluster_budget(key[0]) is not None:
                self._member_changed("")  # its quota shares are free: pending workloads may fit
        elif not self.state.put_binding(body) or self.state.being_written(key):
            return  # the echo of a write this operator made (or is making): cached, nothing to do
        self._quota_changed(key[0])
        self._binding_changed(key)
        self.status_queue.add_after(key, STATUS_COALESCE)

    def rematch(self, namespace: str | None = None) -> None:
        """Re-evaluate templates (of one namespace, or all) after a policy or PodGroup change."""
        for key in list(self.state.templates):
            if namespace is None or key[2] == namespace:
                self.detector_queue.add(key)

    # --------------------------------------------------------------- between controllers
    def _binding_changed(self, key: Key) -> None:
        self.scheduling_queue.add(key)
        self.propagation_queue.add(key)
        self.failover_queue.add(key)

    def _desired(self, key: Key, desired: dict[str, Any]) -> None:
        self.scheduling.note_desired(key, desired)
        self.scheduling_queue.add(key)

    def _decided(self, key: Key, decision: Decision) -> None:
        self.propagation.note_decision(key, decision)
        self.status.note_decision(key, decision)
        self.propagation_queue.add(key)
        self.failover_queue.add(key)  # e.g. placed on a member whose taint is tolerated for a while

    def _failover_wrote(self, key: Key) -> None:
        """The failover controller wrote the binding's eviction tasks (its echo starts nothing)."""
        self.propagation_queue.add(key)  # a released or dropped task changes which copies stay
        self.status_queue.add_after(key, STATUS_COALESCE)

    def _applied(self, key: Key) -> None:
        self.status_queue.add_after(key, STATUS_COALESCE)

    async def _status(self, key: Key) -> None:
        await self.status.reconcile(key)
        if tasks_of(self.state.bindings.get(key)):
            self.failover_queue.add(key)  # a graceful eviction waits for the replacement's health

    def _copy_changed(self, cluster: str, key: Key) -> None:
        self.propagation_queue.add(key)  # drift is repaired at once
        # Status waits a moment, so the burst of events a rollout makes on every member is
        # one binding write, not one per event.
        self.status_queue.add_after(key, STATUS_COALESCE)
        if cluster in evicted_clusters(self.state.bindings.get(key)):
            self.failover_queue.add(key)  # the copy left behind may be gone: the task may go too

    async def _propagate(self, key: Key) -> None:
        await self.propagation.reconcile(key)
        self.failover.propagated(key)
        binding = self.state.bindings.get(key)
        if binding is not None and binding["metadata"].get("deletionTimestamp"):
            await self._drop_legacy_finalizer(binding)

    async def _drop_legacy_finalizer(self, binding: Mapping[str, Any]) -> None:
        finalizers = list(binding["metadata"].get("finalizers") or [])
        if LEGACY_FINALIZER not in finalizers:
            return
        finalizers.remove(LEGACY_FINALIZER)
        body = {
            "metadata": {
                "finalizers": finalizers,
                "resourceVersion": binding["metadata"].get("resourceVersion"),
            }
        }
        await asyncio.to_thread(self.hub.patch, dict(binding), body)

    # ---------------------------------------------------------------- members
    def notify_capacity_changed(self, member: str = "") -> None:
        """Thread-safe: the inventory calls this when a member's capacity or readiness changes."""
        self.loop.call_soon_threadsafe(self._member_changed, member)

    def _member_changed(self, member: str) -> None:
        if member:
            self._member_failover(member)
            ready = self.member_ready(member)
            if self._ready.get(member) != ready:
                self._ready[member] = ready
                if ready:  # member ResourceQuotas of static assignments are applied now
                    for namespace in self.quota.namespaces():
                        self.quota_queue.add(namespace)
                    if self.leading:
                        self._clean_member_quotas(member)
                for key in self.state.bindings_on(member):
                    self.status_queue.add(key)
                    if ready:  # what could not be applied (or removed) while it was away is now
                        # Failures while it was away do not count against the first tries now: a
                        # moved copy left on a returning member goes at once, not after the
                        # backoff the outage built up (up to a minute).
                        self.propagation_queue.forget(key)
                        self.propagation_queue.add(key)
            if self.member_api(member) is None:
                self.copies.stop_cluster(member)
            elif self.leading:
                self._watch_member(member)
        if self._capacity_handle is None:  # debounce: a burst of pod events is one retry
            self._capacity_handle = self.loop.call_later(0.5, self._requeue_pending)

    def _member_failover(self, member: str) -> None:
        """A member's taints or readiness changed: its bindings' failover is looked at again."""
        with self.lock:
            try:
                info = self.cache.cluster(member)
            except KeyError:
                seen: tuple[Any, ...] = ("gone",)
            else:
                seen = (
                    info.ready,
                    tuple(sorted((t.key, t.effect, t.value, str(t.time_added)) for t in info.taints)),
                )
        if self._member_seen.get(member) == seen:
            return  # a capacity change (pod events): nothing failover reads
        self._member_seen[member] = seen
        for key, binding in list(self.state.bindings.items()):
            spec = binding.get("spec") or {}
            if any(c.get("name") == member for c in spec.get("clusters") or ()) or member in evicted_clusters(
                binding
            ):
                self.failover_queue.add(key)

    def _clean_member_quotas(self, member: str) -> None:
        """Remove ResourceQuotas Flotilla left on a member for assignments that are gone."""

        async def clean() -> None:
            try:
                await self.quota.remove_orphaned_member_quotas(member)
            except Exception as exc:  # retried the next time the member comes back
                log.warning("%s: could not check member ResourceQuotas: %s", member, describe(exc))

        task = self.loop.create_task(clean())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _requeue_pending(self) -> None:
        self._capacity_handle = None
        for key in sorted(self.scheduling.pending):
            self.scheduling_queue.add(key)
        for key in sorted(self.failover.pending):  # evictions that found no room elsewhere
            self.failover_queue.add(key)

    def _ensure_watch_threadsafe(self, cluster: str, api_version: str, kind: str) -> None:
        self.loop.call_soon_threadsafe(self._ensure_watch, cluster, api_version, kind)

    def _ensure_watch(self, cluster: str, api_version: str, kind: str) -> None:
        self.watch_kinds.add((api_version, kind))
        api = self.member_api(cluster)
        if api is not None:
            self.copies.ensure(cluster, api, api_version, kind)

    def _watch_member(self, member: str) -> None:
        for api_version, kind in sorted(self.watch_kinds):
            self._ensure_watch(member, api_version, kind)

    # ----------------------------------------------------------------- lifecycle
    async def preload(self) -> None:
        """List policies, PodGroups, customizations and bindings before any template is handled.

        Kopf watches kinds concurrently: without this, a template seen right after a restart
        could find no policy (and lose its binding and copies) or no binding (and be claimed by
        another policy)."""
        for kind in (
            "PropagationPolicy",
            "ClusterPropagationPolicy",
            "PodGroup",
            "InterpreterCustomization",
            "ResourceBinding",
            "FederatedResourceQuota",
        ):
            try:
                items = await asyncio.to_thread(self.hub.list, GROUP_VERSION, kind)
            except LookupError:
                continue  # CRD not installed yet: its events will fill the gap
            for body in items:
                if kind == "PodGroup":
                    self.state.put_pod_group(body)
                elif kind == "InterpreterCustomization":
                    with contextlib.suppress(ValueError):  # reported as an Event by its handler
                        self.registry.register_customization(dict(body["spec"]))
                elif kind == "FederatedResourceQuota":
                    self.quota.on_quota("ADDED", body)
                elif kind == "ResourceBinding":
                    self.state.put_binding(body)
                    self.watch_kinds.add(
                        (body["spec"]["resource"]["apiVersion"], body["spec"]["resource"]["kind"])
                    )
                else:
                    self.state.put_policy(body)
        log.info(
            "preloaded %d policies, %d PodGroups and %d bindings",
            len(self.state.policies),
            len(self.state.pod_groups),
            len(self.state.bindings),
        )

    async def start(self) -> None:
        """Become active: start the member watches and every controller's workers."""
        self.leading = True
        for member in self.member_names():
            self._watch_member(member)
            if self.member_ready(member):
                self._clean_member_quotas(member)
        for key in list(self.state.bindings):  # cold start: every binding is checked once
            self.scheduling_queue.add(key)
            self.propagation_queue.add(key)
            self.status_queue.add(key)
            self.failover_queue.add(key)  # a failover under way resumes from the binding
        for tkey in list(self.state.templates):
            self.detector_queue.add(tkey)
        self._bindings_without_template(self._listed_kinds)
        for namespace in self.quota.namespaces():
            self.quota_queue.add(namespace)
        for queue in self.queues:
            if queue is not self.scheduling_queue or self.member_settled is None:
                queue.start()
        if self.member_settled is not None:
            task = self.loop.create_task(self._schedule_once_fleet_known(self.member_settled))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _schedule_once_fleet_known(self, settled: Callable[[str], bool]) -> None:
        """Start deciding once every member's first verdict is in (Ready with its inventory
        listed, or a known failure), as kube-scheduler waits for its informers' caches.

        A decision taken on a half-listed fleet right after a cold start picks the members that
        answered first (a backup affinity, say) and keeps them. A member with no verdict after
        ``fleet_sync_timeout`` seconds does not hold the others back."""
        started = time.monotonic()
        try:
            listed = await asyncio.to_thread(self.hub.list, GROUP_VERSION, "MemberCluster")
            names = {str(mc["metadata"]["name"]) for mc in listed}
        except Exception as exc:  # (the CRD may not be installed yet): the registered members then
            log.warning("listing MemberClusters before scheduling failed: %s", describe(exc))
            names = set()
        while self.leading:
            waiting = sorted(n for n in names | set(self.member_names()) if not settled(n))
            elapsed = time.monotonic() - started
            if not waiting:
                log.info("every member's inventory known %.1fs after start: scheduling starts", elapsed)
                break
            if elapsed >= self.fleet_sync_timeout:
                log.warning(
                    "scheduling starts %.0fs after start without a verdict for member(s) %s",
                    elapsed,
                    ", ".join(waiting),
                )
                break
            await asyncio.sleep(0.1)
        if self.leading:
            self.scheduling_queue.start()

    async def stop(self) -> None:
        self.leading = False
        for queue in self.queues:
            await queue.stop()
        self.copies.stop_all()
