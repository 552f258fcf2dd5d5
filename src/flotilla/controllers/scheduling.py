"""Scheduling: pending queue, reserve / release, requeue on capacity change. One hub write per decision.

Keyed by binding ``(namespace, name)``. A binding is decided when its ``scheduled-inputs``
annotation equals its ``scheduling-inputs`` digest (written by the detector): the decision and
that annotation are written together in one optimistic-concurrency patch of the binding's spec
(a binding changed meanwhile answers 409 and is decided again). The decision's explanation and
its ``Scheduled`` condition travel to the propagation controller, which writes them in the same
status update that records the copies it applied, so a decision costs one spec write and no
status write of its own. An unschedulable binding gets one status write, and only when the
reason changed; it waits in the pending set and is scheduled again when capacity changes.

The reservation made for a decision (the scheduler cache's ``assume``) is released when the
write fails and confirmed by the status controller when the members report the workload.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from flotilla import metrics
from flotilla.controllers.client import Client
from flotilla.controllers.common import (
    SCHEDULED_HASH_ANNOTATION,
    EmitEvent,
    divide_exactly,
    now,
    same_conditions,
    template_stub,
    with_condition,
)
from flotilla.controllers.hubstate import HubState, Key
from flotilla.controllers.workloads import BINDING_API_VERSION, SCHEDULING_HASH_ANNOTATION, scheduler_workload
from flotilla.scheduler import Scheduler, SchedulerCache, Unschedulable

log = logging.getLogger("flotilla")


@dataclass(frozen=True)
class Decision:
    """A decision handed to the propagation controller, to be recorded with the applied copies."""

    generation: int
    message: str
    explanation: dict[str, Any]
    time: str
    summary: str


def decided(binding: Mapping[str, Any]) -> bool:
    annotations = binding["metadata"].get("annotations") or {}
    inputs = annotations.get(SCHEDULING_HASH_ANNOTATION)
    return (
        bool(inputs)
        and inputs == annotations.get(SCHEDULED_HASH_ANNOTATION)
        and bool((binding.get("spec") or {}).get("clusters"))
    )


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
    ) -> None:
        self.hub, self.state, self.cache, self.lock, self.emit = hub, state, cache, lock, emit
        self.on_decided = on_decided
        self.scheduler = scheduler or Scheduler()
        self.pending: set[Key] = set()
        self._pod_group_status: dict[Key, tuple[str, str | None, str]] = {}

    def release(self, key: Key) -> None:
        """Drop the reservation of a binding that is gone."""
        with self.lock:
            self.cache.forget(f"{key[0]}/{key[1]}")
        self._set_pending(key, False)

    def _set_pending(self, key: Key, waiting: bool) -> None:
        if waiting:
            self.pending.add(key)
        else:
            self.pending.discard(key)
        metrics.PENDING.set(len(self.pending))

    async def reconcile(self, key: Key) -> None:
        binding = self.state.bindings.get(key)
        if binding is None or binding["metadata"].get("deletionTimestamp"):
            self.release(key)
            return
        if decided(binding):
            self._set_pending(key, False)
            return
        await self._schedule(key, binding)

    async def _schedule(self, key: Key, binding: dict[str, Any]) -> None:
        meta = binding["metadata"]
        wl_key = f"{key[0]}/{key[1]}"
        workload = scheduler_workload(binding)
        started = time.perf_counter()
        with self.lock:
            self.cache.forget(wl_key)
            outcome = self.scheduler.schedule(self.cache.snapshot(), workload)
            if outcome.ok:
                self.cache.assume(wl_key, outcome.assignments)
        elapsed = time.perf_counter() - started
        metrics.observe_schedule(outcome.ok, elapsed)
        generation = int(meta.get("generation") or 0)
        if isinstance(outcome, Unschedulable):
            self._set_pending(key, True)
            await self._record_unschedulable(
                binding, outcome.message, outcome.explanation.to_dict(), generation
            )
            return
        divisible = binding["spec"].get("replicas")
        targets: list[dict[str, Any]]
        if divisible is None:
            targets = [{"name": t.name} for t in outcome.targets]
        else:
            shares = divide_exactly(int(divisible), {t.name: t.replicas for t in outcome.targets})
            targets = [{"name": n, "replicas": r} for n, r in shares.items()]
        patch = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion"),
                "annotations": {
                    SCHEDULED_HASH_ANNOTATION: (meta.get("annotations") or {}).get(
                        SCHEDULING_HASH_ANNOTATION, ""
                    )
                },
            },
            "spec": {"clusters": targets},
        }
        try:
            updated = await asyncio.to_thread(self.hub.patch, binding, patch)
        except Exception:
            self.release(key)  # the decision was not recorded: its reservation must not stay
            raise
        metrics.HUB_WRITES.labels(controller="scheduling", kind="ResourceBinding").inc()
        self._set_pending(key, False)
        self.state.put_binding(updated)
        summary = summary_of(targets)
        message = f"scheduled to {summary} in {elapsed * 1000:.1f} ms"
        self.on_decided(
            key,
            Decision(
                generation=int(updated["metadata"].get("generation") or 0),
                message=message,
                explanation=outcome.explanation.to_dict(),
                time=now(),
                summary=summary,
            ),
        )
        self.emit(template_stub(binding), "Normal", "Scheduled", message)
        self.emit(binding, "Normal", "Scheduled", message)
        await self._update_pod_group(binding, targets[0]["name"], None)

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
            updated = await asyncio.to_thread(self.hub.patch, binding, body, "status")
            metrics.HUB_WRITES.labels(controller="scheduling", kind="ResourceBinding").inc()
            self.state.put_binding(updated)
            # An Event only when the reason changes: a waiting workload does not flood the hub.
            self.emit(template_stub(binding), "Warning", "FailedScheduling", message)
            self.emit(binding, "Warning", "FailedScheduling", message)
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
