"""Status: member copies (from the member watches) -> binding status -> the template's status.

Keyed by binding ``(namespace, name)``; fed by the member watches and by member readiness
changes, never by a timer. A member that is not Ready contributes nothing to the template's
aggregated status (its figures are stale) and its item's health says ``Unknown``. The
aggregated status follows the kind's conventions: where member copies report
``status.observedGeneration``, the hub template gets its own generation once every copy has
observed the spec Flotilla applied from that generation, so ``kubectl rollout status`` and
GitOps health checks work on the hub. The scheduler cache's reservation for the workload is
confirmed pod by pod as the members report its pods (see the scheduling controller); what is
left of it is dropped when every chosen member reports its copy healthy (pods without Flotilla's
label: InferenceService, copies applied before pod templates were labelled). The time from a
decision to the copy on each member it added reporting healthy is observed
(``flotilla_scheduled_until_ready_wait_time_seconds{cluster}``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client import ApiException

from flotilla import metrics
from flotilla.controllers.client import Client
from flotilla.controllers.common import same_conditions
from flotilla.controllers.hubstate import HubState, Key, targets
from flotilla.controllers.member_copies import MemberCopies
from flotilla.controllers.propagation import APPLIED_FIELDS, PropagationController
from flotilla.controllers.scheduling import Decision, decided
from flotilla.interpreter import Health, InterpreterRegistry
from flotilla.scheduler import SchedulerCache

log = logging.getLogger("flotilla")


class StatusController:
    def __init__(
        self,
        hub: Client,
        state: HubState,
        registry: InterpreterRegistry,
        copies: MemberCopies,
        propagation: PropagationController,
        cache: SchedulerCache,
        lock: threading.RLock,
        member_ready: Callable[[str], bool],
        on_capacity_changed: Callable[[], None],
    ) -> None:
        self.hub, self.state, self.registry, self.copies = hub, state, registry, copies
        self.propagation = propagation
        self.cache, self.lock = cache, lock
        self.member_ready = member_ready
        self.on_capacity_changed = on_capacity_changed
        self.on_health: Callable[[Key, dict[str, Health]], None] = lambda _key, _healths: None
        """Told the health verdict of each chosen cluster's copy (members that are Ready and have
        it) at every reconcile: application failover's clock (set by the runtime)."""
        self._awaiting: dict[Key, tuple[float, set[str]]] = {}
        """Per binding: when its last decision was made, and the clusters it added whose copy has
        not reported healthy yet."""

    def note_decision(self, key: Key, decision: Decision) -> None:
        """A decision was made (on the loop): time its new clusters until their copies are healthy."""
        if decision.added:
            self._awaiting[key] = (decision.at, set(decision.added))
        else:
            self._awaiting.pop(key, None)

    def _observe_ready(self, key: Key, healths: Mapping[str, Health]) -> None:
        entry = self._awaiting.get(key)
        if entry is None:
            return
        at, waiting = entry
        for cluster in sorted(waiting):
            if healths.get(cluster) == Health.HEALTHY:
                metrics.READY_WAIT.labels(cluster=cluster).observe(max(0.0, time.time() - at))
                waiting.discard(cluster)
        if not waiting:
            del self._awaiting[key]

    async def reconcile(self, key: Key) -> None:
        binding = self.state.bindings.get(key)
        if binding is None or binding["metadata"].get("deletionTimestamp"):
            self._awaiting.pop(key, None)
            return
        if not decided(binding):
            return
        template = self.state.template_of(binding)
        resource = binding["spec"]["resource"]
        interpreter = self.registry.get(resource["apiVersion"], resource["kind"])
        if template is None or interpreter is None:
            return
        chosen = targets(binding)
        items = self.propagation.records_of(key, binding)
        per_cluster: dict[str, dict[str, Any]] = {}
        healths: dict[str, Health] = {}
        observed_all = True
        copies: list[dict[str, Any]] = []  # the chosen clusters' copies
        for cluster in sorted(items):  # clusters propagation recorded; it creates the items
            item = items[cluster]
            known, copy = self.copies.get(
                cluster, resource["apiVersion"], resource["kind"], key[0], resource["name"]
            )
            if copy is not None and cluster in chosen:
                copies.append(copy)
            if not self.member_ready(cluster) or (copy is None and known and cluster in chosen):
                # Stale (the member does not answer) or gone: nothing to report, health unknown.
                item = {k: v for k, v in item.items() if k in APPLIED_FIELDS or k == "clusterName"}
                item["health"] = "Unknown"
                observed_all = False
            elif copy is not None and cluster in chosen:
                reflected = interpreter.reflect_status(copy)
                health = interpreter.health(copy)
                per_cluster[cluster], healths[cluster] = reflected, health
                item = {**item, "status": reflected, "health": binding_health(health)}
                if not _observed(copy, item):
                    observed_all = False
            else:
                observed_all = observed_all and cluster not in chosen
            items[cluster] = item
        self._awaiting_gone(key, chosen)
        self._observe_ready(key, healths)
        await self._write_binding(key, items)
        self.on_health(key, healths)
        if set(healths) >= set(chosen) and all(h == Health.HEALTHY for h in healths.values()):
            self._confirm(key)
        aggregated = interpreter.aggregate_status(per_cluster) if per_cluster else {}
        if not aggregated:
            return
        generation = template["metadata"].get("generation")
        if generation is not None and any("observedGeneration" in (c.get("status") or {}) for c in copies):
            current = (template.get("status") or {}).get("observedGeneration")
            aggregated["observedGeneration"] = (
                generation if observed_all and set(per_cluster) >= set(chosen) else current
            )
            if aggregated["observedGeneration"] is None:
                aggregated.pop("observedGeneration")
        current_status = template.get("status") or {}
        # A field the members no longer report (a finished Job's ``active``) is removed from the
        # hub's status too: a merge patch would otherwise keep the old value.
        managed = set(getattr(interpreter, "status_fields", ())) | set(
            getattr(interpreter, "summed_fields", ())
        )
        for field in managed & set(current_status) - set(aggregated):
            if field != "observedGeneration":
                aggregated[field] = None
        if all(current_status.get(k) == v for k, v in aggregated.items()):
            return
        try:
            updated = await asyncio.to_thread(self.hub.patch, template, {"status": aggregated}, "status")
        except ApiException as exc:
            if exc.status == 404:  # kinds without a status subresource, or the template is gone
                return
            raise
        metrics.HUB_WRITES.labels(controller="status", kind=resource["kind"]).inc()
        self.state.put_template(updated)

    def _awaiting_gone(self, key: Key, chosen: Mapping[str, Any]) -> None:
        """Clusters no longer chosen (moved again before their copy was ready) are not waited for."""
        entry = self._awaiting.get(key)
        if entry is not None:
            entry[1].intersection_update(chosen)
            if not entry[1]:
                del self._awaiting[key]

    def _confirm(self, key: Key) -> None:
        with self.lock:
            confirmed = self.cache.confirm(f"{key[0]}/{key[1]}")
        if confirmed:
            # The members now report these pods themselves: the reservation's guess of their
            # nodes is gone, which can free capacity that waiting gangs need.
            self.on_capacity_changed()

    async def _write_binding(self, key: Key, observed: dict[str, dict[str, Any]]) -> None:
        """One status write: propagation's part (applied records, decision, conditions) and what
        the members report, onto the latest binding."""
        async with self.state.status_lock(key):
            binding = self.state.bindings.get(key)
            if binding is None:
                return
            composed = self.propagation.compose(key, binding)
            items = composed.items
            for cluster, item in items.items():
                if cluster in observed:
                    applied = {k: v for k, v in item.items() if k in APPLIED_FIELDS}
                    reported = {k: v for k, v in observed[cluster].items() if k not in APPLIED_FIELDS}
                    items[cluster] = {"clusterName": cluster, **applied, **reported}
            status = binding.get("status") or {}
            new_items = [items[c] for c in sorted(items)]
            if (
                new_items == list(status.get("aggregatedStatus") or [])
                and same_conditions(composed.conditions, status.get("conditions"))
                and all(status.get(k) == v for k, v in composed.fields.items())
            ):
                self.propagation.committed(key, composed)
                return
            body = {
                "metadata": {"resourceVersion": binding["metadata"].get("resourceVersion")},
                "status": {
                    **composed.fields,
                    "aggregatedStatus": new_items,
                    "conditions": composed.conditions,
                },
            }
            with self.state.writing(key):
                updated = await asyncio.to_thread(self.hub.patch, binding, body, "status")
            metrics.HUB_WRITES.labels(controller="status", kind="ResourceBinding").inc()
            self.state.put_binding(updated)
            self.propagation.committed(key, composed)


def binding_health(health: Health) -> str:
    """The binding's health vocabulary is Karmada's (Healthy, Unhealthy, Unknown): a copy still
    progressing is not known to be healthy yet."""
    return health.value if health in (Health.HEALTHY, Health.UNHEALTHY) else Health.UNKNOWN.value


def _observed(copy: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """Whether the member copy's controller has seen the spec Flotilla applied."""
    generation = int(copy["metadata"].get("generation") or 0)
    observed = (copy.get("status") or {}).get("observedGeneration")
    if observed is not None and int(observed) < generation:
        return False
    applied = item.get("appliedGeneration")
    return applied is None or int(applied) <= generation
