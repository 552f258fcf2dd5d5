"""The operator's state and its controllers: binding, scheduling, propagation, status.

Kopf handlers in :mod:`flotilla.operator` are thin: they hand watch events to one
:class:`Runtime`, which owns the in-memory view of the hub (templates, policies, PodGroups),
the scheduler cache fed by the member inventory, and the member API clients.

Flow for one workload template::

    template event -> best policy -> ResourceBinding (server-side apply, owned by the template)
    binding event  -> schedule (pure core, under the cache lock; reserve) -> spec.clusters + status
                   -> propagate: server-side apply an interpreted copy to each chosen member,
                      delete copies from clusters no longer chosen
    status timer   -> member status reflected into the binding and aggregated onto the template;
                      a missing or drifted copy is applied again
    capacity event -> bindings waiting for capacity are scheduled again (no fixed retry timer)

Every step is level-triggered and idempotent, so an operator restart (which replays every
object as a fresh event) loses and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient, ApiException

from flotilla import API_GROUP, FIELD_MANAGER, kube, metrics
from flotilla.api.conditions import new_condition, set_condition
from flotilla.controllers.matching import PolicyRef, best_policy, policy_from_body
from flotilla.controllers.workloads import (
    BINDING_API_VERSION,
    SCHEDULING_HASH_ANNOTATION,
    binding_name,
    desired_binding,
    pod_group_name,
    scheduler_workload,
)
from flotilla.interpreter import Health, InterpreterRegistry, dependencies, prepare_for_member
from flotilla.scheduler import Scheduler, SchedulerCache, Unschedulable

log = logging.getLogger("flotilla")

SCHEDULED_HASH_ANNOTATION = f"{API_GROUP}/scheduled-inputs"
SCHEDULER_FIELD_MANAGER = f"{FIELD_MANAGER}-scheduler"
Key = tuple[str, str]  # (namespace, name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(
    previous: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """``previous`` with one metav1.Condition set (its lastTransitionTime kept while the status holds)."""
    return set_condition(previous, new_condition(type_, status, reason, message[:32768], generation))


def divide_exactly(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder, ties by name), exactly.

    The scheduler counts every pod of every role per cluster; the member copy is revised by the
    kind's divisible replica count (e.g. a RayCluster's worker replicas, not its head), so the
    per-cluster pod counts are scaled to it. Single-role kinds come out unchanged.
    """
    pods = sum(weights.values())
    if pods == 0:
        return dict.fromkeys(weights, 0)
    exact = {n: total * w / pods for n, w in weights.items()}
    out = {n: int(v) for n, v in exact.items()}
    rest = total - sum(out.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - out[n]), n))[:rest]:
        out[name] += 1
    return out


@dataclass
class TemplateRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> TemplateRef:
        meta = body["metadata"]
        return cls(body["apiVersion"], body["kind"], meta.get("namespace") or "", meta["name"])

    def obj(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace or None},
        }


@dataclass
class Runtime:
    hub: ApiClient
    cache: SchedulerCache
    lock: threading.RLock
    registry: InterpreterRegistry = field(default_factory=InterpreterRegistry)
    scheduler: Scheduler = field(default_factory=Scheduler)
    hold_back: bool = True
    member_api: Callable[[str], ApiClient | None] = lambda _name: None
    emit_event: Callable[[Mapping[str, Any], str, str, str], None] = lambda *_a: None

    templates: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, PolicyRef] = field(default_factory=dict)
    pod_groups: dict[Key, dict[str, Any]] = field(default_factory=dict)
    pending: set[Key] = field(default_factory=set)
    applied_generation: dict[tuple[Key, str], int] = field(default_factory=dict)
    propagated_template_generation: dict[Key, int] = field(default_factory=dict)
    last_desired: dict[Key, dict[str, Any]] = field(default_factory=dict)
    namespaces_ensured: set[tuple[str, str]] = field(default_factory=set)
    capacity_changed: asyncio.Event = field(default_factory=asyncio.Event)
    loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ templates
    async def on_template(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        ref = TemplateRef.of(body)
        key = (ref.api_version, ref.kind, ref.namespace, ref.name)
        if event_type == "DELETED" or body["metadata"].get("deletionTimestamp"):
            self.templates.pop(key, None)
            # The binding is owned by the template, but the hub's garbage collector can lag (e.g.
            # while it re-syncs after CRDs are installed): delete it directly, so the copies go now.
            bname = binding_name(ref.kind, ref.name)
            stale = {
                "apiVersion": BINDING_API_VERSION,
                "kind": "ResourceBinding",
                "metadata": {"name": bname, "namespace": ref.namespace},
            }
            await asyncio.to_thread(kube.delete, self.hub, stale)
            self.last_desired.pop((ref.namespace, bname), None)
            return
        self.templates[key] = dict(body)
        await self.reconcile_template(dict(body))

    async def reconcile_template(self, template: dict[str, Any]) -> None:
        interpreter = self.registry.get(template["apiVersion"], template["kind"])
        if interpreter is None:
            return
        if (template.get("metadata", {}).get("labels") or {}).get(f"{API_GROUP}/managed-by"):
            return  # a copy Flotilla itself made (hub used as a member): never re-propagate
        ns = template["metadata"].get("namespace") or ""
        bname = binding_name(template["kind"], template["metadata"]["name"])
        policy = best_policy(self.policies.values(), template)
        if policy is None:
            existing = await asyncio.to_thread(
                kube.get, self.hub, BINDING_API_VERSION, "ResourceBinding", bname, ns
            )
            if existing is not None:
                await asyncio.to_thread(kube.delete, self.hub, existing)
            return
        if self.hold_back:
            patch = interpreter.hold_back_patch(template)
            if patch:
                template = await asyncio.to_thread(kube.patch, self.hub, template, patch)
        components = interpreter.components(template)
        group = pod_group_name(template, components)
        pod_group = self.pod_groups.get((ns, group)) if group else None
        try:
            desired = desired_binding(template, policy, interpreter, pod_group)
        except ValueError as exc:
            self.emit_event(template, "Warning", "InvalidWorkload", str(exc))
            return
        key: Key = (ns, bname)
        if self.last_desired.get(key) != desired:
            binding = await asyncio.to_thread(kube.apply, self.hub, desired, FIELD_MANAGER)
            self.last_desired[key] = desired
        else:
            binding = None
        # A template spec change that leaves the scheduling inputs alone does not bump the
        # binding's generation: propagate it here when the binding already has a decision.
        generation = int(template["metadata"].get("generation") or 0)
        if self.propagated_template_generation.get(key) != generation:
            if binding is None:
                binding = await asyncio.to_thread(
                    kube.get, self.hub, BINDING_API_VERSION, "ResourceBinding", bname, ns
                )
            status = (binding or {}).get("status") or {}
            if (
                binding
                and binding["spec"].get("clusters")
                and status.get("schedulerObservedGeneration") == binding["metadata"].get("generation")
            ):
                await self.propagate(binding)

    async def rematch(self, namespace: str | None = None) -> None:
        """Re-evaluate templates (of one namespace, or all) after a policy or PodGroup change."""
        for key, template in list(self.templates.items()):
            if namespace is None or key[2] == namespace:
                await self.reconcile_template(template)

    # ------------------------------------------------------------- policies
    async def on_policy(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        policy = policy_from_body(body)
        if event_type == "DELETED" or body["metadata"].get("deletionTimestamp"):
            self.policies.pop(policy.key, None)
        else:
            self.policies[policy.key] = policy
        await self.rematch(policy.namespace)

    async def on_pod_group(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = (body["metadata"].get("namespace") or "", body["metadata"]["name"])
        if event_type == "DELETED":
            self.pod_groups.pop(key, None)
        else:
            self.pod_groups[key] = dict(body)
        await self.rematch(key[0])

    # ------------------------------------------------------------- bindings
    async def on_binding(self, body: Mapping[str, Any]) -> None:
        """Schedule (when the inputs changed) and propagate; a binding deleted meanwhile is no error."""
        try:
            await self._on_binding(body)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _on_binding(self, body: Mapping[str, Any]) -> None:
        if body["metadata"].get("deletionTimestamp"):
            return
        meta, status = body["metadata"], body.get("status") or {}
        generation = int(meta.get("generation") or 0)
        if generation == status.get("schedulerObservedGeneration"):
            return
        binding = dict(body)
        inputs = (meta.get("annotations") or {}).get(SCHEDULING_HASH_ANNOTATION)
        decided = (meta.get("annotations") or {}).get(SCHEDULED_HASH_ANNOTATION)
        if inputs and inputs == decided and binding["spec"].get("clusters") and self._targets_ready(binding):
            # Only the template changed (not replicas, requirements or placement): keep the decision.
            binding = await asyncio.to_thread(
                kube.patch,
                self.hub,
                binding,
                {"status": {"schedulerObservedGeneration": generation}},
                "status",
            )
            await self.propagate(binding)
            return
        binding = await self.schedule(binding)
        if binding["spec"].get("clusters"):
            await self.propagate(binding)

    def _targets_ready(self, binding: Mapping[str, Any]) -> bool:
        with self.lock:
            clusters = self.cache.snapshot().clusters
        for target in binding["spec"].get("clusters") or ():
            info = clusters.get(target["name"])
            if info is None or not info.ready:
                return False
        return True

    async def schedule(self, binding: dict[str, Any]) -> dict[str, Any]:
        """Run the scheduler for a binding and record the decision (or why there is none)."""
        meta = binding["metadata"]
        key: Key = (meta.get("namespace") or "", meta["name"])
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
        status = binding.get("status") or {}
        previous = list(status.get("conditions") or [])
        if isinstance(outcome, Unschedulable):
            self.pending.add(key)
            metrics.PENDING.set(len(self.pending))
            message = outcome.message
            patch_status = {
                "schedulerObservedGeneration": int(meta.get("generation") or 0),
                "explanation": outcome.explanation.to_dict(),
                "conditions": with_condition(
                    previous, "Scheduled", False, "NoClusterFits", message, meta.get("generation")
                ),
            }
            updated = await asyncio.to_thread(
                kube.patch, self.hub, binding, {"status": patch_status}, "status"
            )
            self._event_for_template(binding, "Warning", "FailedScheduling", message)
            await self._update_pod_group(binding, None, message)
            return updated
        self.pending.discard(key)
        metrics.PENDING.set(len(self.pending))
        divisible = binding["spec"].get("replicas")
        targets: list[dict[str, Any]]
        if divisible is None:
            targets = [{"name": t.name} for t in outcome.targets]
        else:
            shares = divide_exactly(int(divisible), {t.name: t.replicas for t in outcome.targets})
            targets = [{"name": n, "replicas": r} for n, r in shares.items()]
        updated = await asyncio.to_thread(
            kube.request,
            self.hub,
            "PATCH",
            kube.object_path(self.hub, binding),
            {
                "metadata": {
                    "annotations": {
                        SCHEDULED_HASH_ANNOTATION: (meta.get("annotations") or {}).get(
                            SCHEDULING_HASH_ANNOTATION, ""
                        )
                    }
                },
                "spec": {"clusters": targets},
            },
            "application/merge-patch+json",
            [("fieldManager", SCHEDULER_FIELD_MANAGER)],
        )
        summary = ",".join(str(t["name"]) + (f":{t['replicas']}" if "replicas" in t else "") for t in targets)
        message = f"scheduled to {summary} in {elapsed * 1000:.1f} ms"
        patch_status = {
            "schedulerObservedGeneration": int(updated["metadata"]["generation"]),
            "lastScheduledTime": _now(),
            "explanation": outcome.explanation.to_dict(),
            "clustersSummary": summary,
            "conditions": with_condition(
                previous, "Scheduled", True, "Scheduled", message, updated["metadata"]["generation"]
            ),
        }
        updated = await asyncio.to_thread(kube.patch, self.hub, updated, {"status": patch_status}, "status")
        self._event_for_template(binding, "Normal", "Scheduled", message)
        await self._update_pod_group(binding, targets, None)
        return updated

    def _event_for_template(self, binding: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        resource = binding["spec"]["resource"]
        template = {
            "apiVersion": resource["apiVersion"],
            "kind": resource["kind"],
            "metadata": {
                "name": resource["name"],
                "namespace": resource.get("namespace"),
                "uid": resource.get("uid"),
            },
        }
        self.emit_event(template, type_, reason, message)
        self.emit_event(binding, type_, reason, message)

    async def _update_pod_group(
        self, binding: Mapping[str, Any], targets: list[dict[str, Any]] | None, message: str | None
    ) -> None:
        group = (binding["spec"].get("schedulingGroup") or {}).get("podGroup")
        if not group:
            return
        ns = binding["metadata"].get("namespace") or ""
        pg = {
            "apiVersion": BINDING_API_VERSION,
            "kind": "PodGroup",
            "metadata": {"name": group, "namespace": ns},
        }
        current = self.pod_groups.get((ns, group)) or {}
        previous = list((current.get("status") or {}).get("conditions") or [])
        generation = (current.get("metadata") or {}).get("generation")
        if targets:
            status = {
                "phase": "Inqueue",
                "cluster": targets[0]["name"],
                "conditions": with_condition(
                    previous, "Scheduled", True, "GangPlaced", f"placed on {targets[0]['name']}", generation
                ),
            }
        else:
            status = {
                "phase": "Pending",
                "conditions": with_condition(
                    previous, "Scheduled", False, "GangUnschedulable", message or "", generation
                ),
            }
        try:
            await asyncio.to_thread(kube.patch, self.hub, pg, {"status": status}, "status")
        except ApiException as exc:
            if exc.status != 404:
                raise

    # ----------------------------------------------------------- propagation
    def _template_of(self, binding: Mapping[str, Any]) -> dict[str, Any] | None:
        r = binding["spec"]["resource"]
        return kube.get(self.hub, r["apiVersion"], r["kind"], r["name"], r.get("namespace"))

    async def propagate(self, binding: Mapping[str, Any]) -> None:
        """Apply the interpreted copy to every chosen member and remove it from the others."""
        results = await asyncio.to_thread(self._propagate_sync, dict(binding))
        await self._record_applied(binding, results)

    def _propagate_sync(self, binding: dict[str, Any]) -> dict[str, tuple[bool, str]]:
        template = self._template_of(binding)
        if template is None:
            return {}
        interpreter = self.registry.get(template["apiVersion"], template["kind"])
        if interpreter is None:
            return {}
        meta = binding["metadata"]
        key: Key = (meta.get("namespace") or "", meta["name"])
        self.propagated_template_generation[key] = int(template["metadata"].get("generation") or 0)
        targets = {c["name"]: c.get("replicas") for c in binding["spec"].get("clusters") or ()}
        assignment = {n: r for n, r in targets.items() if r is not None}
        results: dict[str, tuple[bool, str]] = {}
        deps = self._dependencies(template, interpreter)
        for cluster, replicas in sorted(targets.items()):
            api = self.member_api(cluster)
            if api is None:
                results[cluster] = (False, "member cluster is not connected")
                continue
            started = time.perf_counter()
            try:
                obj = prepare_for_member(
                    template,
                    interpreter,
                    replicas,
                    cluster,
                    key,
                    assignment=assignment or None,
                )
                if key[0] and (cluster, key[0]) not in self.namespaces_ensured:
                    kube.ensure_namespace(api, key[0])
                    self.namespaces_ensured.add((cluster, key[0]))
                for dep in deps:
                    kube.apply(api, prepare_for_member(dep, None, None, cluster, key), FIELD_MANAGER)
                stored = kube.apply(api, obj, FIELD_MANAGER)
                self.applied_generation[(key, cluster)] = int(stored["metadata"].get("generation") or 0)
                results[cluster] = (True, "applied")
                metrics.DISPATCHED.labels(cluster=cluster).inc()
                metrics.PROPAGATION.observe(time.perf_counter() - started)
            except (ApiException, LookupError, ValueError) as exc:
                reason = getattr(exc, "body", None) or str(exc)
                results[cluster] = (False, f"apply failed: {str(reason)[:500]}")
        for cluster in self._applied_clusters(binding) - set(targets):
            api = self.member_api(cluster)
            if api is None:
                results[cluster] = (False, "pending removal: member cluster is not connected")
                continue
            try:
                kube.delete(
                    api, {**template, "metadata": {"name": template["metadata"]["name"], "namespace": key[0]}}
                )
                self.applied_generation.pop((key, cluster), None)
            except (ApiException, LookupError) as exc:
                results[cluster] = (False, f"pending removal: {exc}")
        return results

    def _dependencies(self, template: Mapping[str, Any], interpreter: Any) -> list[dict[str, Any]]:
        out = []
        ns = template["metadata"].get("namespace")
        for kind, name in dependencies(template, interpreter):
            obj = kube.get(self.hub, "v1", kind, name, ns)
            if obj is not None:
                out.append(obj)
        return out

    @staticmethod
    def _applied_clusters(binding: Mapping[str, Any]) -> set[str]:
        return {s["clusterName"] for s in (binding.get("status") or {}).get("aggregatedStatus") or ()}

    async def _record_applied(
        self, binding: Mapping[str, Any], results: Mapping[str, tuple[bool, str]]
    ) -> None:
        if not results:
            return
        previous_items = {
            s["clusterName"]: s for s in (binding.get("status") or {}).get("aggregatedStatus") or ()
        }
        items = []
        for cluster, (ok, message) in sorted(results.items()):
            item = dict(previous_items.get(cluster, {"clusterName": cluster}))
            item.update({"clusterName": cluster, "applied": ok})
            if ok:
                item.pop("appliedMessage", None)
            else:
                item["appliedMessage"] = message
            items.append(item)
        targets = {c["name"] for c in binding["spec"].get("clusters") or ()}
        all_ok = all(ok for c, (ok, _m) in results.items() if c in targets) and targets <= set(results)
        failed = {c: m for c, (ok, m) in results.items() if not ok}
        previous = list((binding.get("status") or {}).get("conditions") or [])
        conditions = with_condition(
            previous,
            "FullyApplied",
            all_ok,
            "Applied" if all_ok else "ApplyFailed",
            "applied to " + ",".join(sorted(targets))
            if all_ok
            else "; ".join(f"{c}: {m}" for c, m in failed.items()),
            binding["metadata"].get("generation"),
        )
        await asyncio.to_thread(
            kube.patch,
            self.hub,
            dict(binding),
            {"status": {"aggregatedStatus": items, "conditions": conditions}},
            "status",
        )

    # ---------------------------------------------------------------- status
    async def collect_status(self, binding: Mapping[str, Any]) -> None:
        """Reflect member status into the binding and onto the template; repair missing/drifted copies.

        Also the retry path: a binding whose last scheduling or propagation attempt failed (its
        generation is still unobserved) is handled again here."""
        if binding["metadata"].get("deletionTimestamp"):
            return
        status = binding.get("status") or {}
        if status.get("schedulerObservedGeneration") != binding["metadata"].get("generation"):
            await self.on_binding(binding)
            return
        if not binding["spec"].get("clusters"):
            return
        await asyncio.to_thread(self._collect_sync, dict(binding))

    def _collect_sync(self, binding: dict[str, Any]) -> None:
        template = self._template_of(binding)
        if template is None:
            return
        interpreter = self.registry.get(template["apiVersion"], template["kind"])
        if interpreter is None:
            return
        meta = binding["metadata"]
        key: Key = (meta.get("namespace") or "", meta["name"])
        wl_key = f"{key[0]}/{key[1]}"
        per_cluster: dict[str, dict[str, Any]] = {}
        healths: dict[str, Health] = {}
        repair = False
        for target in binding["spec"]["clusters"]:
            cluster = target["name"]
            api = self.member_api(cluster)
            if api is None:
                continue
            try:
                obj = kube.get(
                    api, template["apiVersion"], template["kind"], template["metadata"]["name"], key[0]
                )
            except (ApiException, LookupError, OSError):
                continue
            if obj is None:
                repair = True
                continue
            generation = int(obj["metadata"].get("generation") or 0)
            if (key, cluster) in self.applied_generation and self.applied_generation[
                (key, cluster)
            ] != generation:
                repair = True  # someone changed the copy on the member: drift
            per_cluster[cluster] = interpreter.reflect_status(obj)
            healths[cluster] = interpreter.health(obj)
        if repair or any(
            (key, c["name"]) not in self.applied_generation for c in binding["spec"]["clusters"]
        ):
            results = self._propagate_sync(binding)
            if self.loop is not None:
                asyncio.run_coroutine_threadsafe(self._record_applied(binding, results), self.loop)
        if healths and all(h == Health.HEALTHY for h in healths.values()):
            with self.lock:
                confirmed = self.cache.confirm(wl_key)
            if confirmed:
                # The members now report these pods themselves: the reservation's guess of their
                # nodes is gone, which can free capacity that waiting gangs need.
                self.notify_capacity_changed()
        items = []
        previous_items = {
            s["clusterName"]: s for s in (binding.get("status") or {}).get("aggregatedStatus") or ()
        }
        for cluster, status in sorted(per_cluster.items()):
            item = dict(previous_items.get(cluster, {"clusterName": cluster, "applied": True}))
            item["status"] = status
            item["health"] = str(
                healths[cluster].value if hasattr(healths[cluster], "value") else healths[cluster]
            )
            items.append(item)
        for cluster, item in previous_items.items():
            if cluster not in per_cluster:
                items.append(item)
        items.sort(key=lambda i: i["clusterName"])
        if items != list((binding.get("status") or {}).get("aggregatedStatus") or []):
            kube.patch(self.hub, binding, {"status": {"aggregatedStatus": items}}, "status")
        if per_cluster:
            aggregated = interpreter.aggregate_status(per_cluster)
            if aggregated and aggregated != {k: (template.get("status") or {}).get(k) for k in aggregated}:
                try:
                    kube.patch(self.hub, template, {"status": aggregated}, "status")
                except ApiException as exc:
                    if exc.status != 404:  # kinds without a status subresource
                        raise

    # -------------------------------------------------------------- deletion
    async def on_binding_deleted(self, binding: Mapping[str, Any]) -> None:
        meta = binding["metadata"]
        key: Key = (meta.get("namespace") or "", meta["name"])
        with self.lock:
            self.cache.forget(f"{key[0]}/{key[1]}")
        self.pending.discard(key)
        resource = binding["spec"]["resource"]
        obj = {
            "apiVersion": resource["apiVersion"],
            "kind": resource["kind"],
            "metadata": {"name": resource["name"], "namespace": resource.get("namespace")},
        }
        clusters = {c["name"] for c in binding["spec"].get("clusters") or ()} | self._applied_clusters(
            binding
        )
        errors = []
        for cluster in sorted(clusters):
            api = self.member_api(cluster)
            if api is None:
                errors.append(f"{cluster}: not connected")
                continue
            try:
                await asyncio.to_thread(kube.delete, api, obj)
                self.applied_generation.pop((key, cluster), None)
            except (ApiException, LookupError) as exc:
                errors.append(f"{cluster}: {exc}")
        if errors:
            raise RuntimeError("could not remove every copy: " + "; ".join(errors))

    # ------------------------------------------------------ capacity retries
    def notify_capacity_changed(self, _member: str = "") -> None:
        """Thread-safe: called by the inventory when a member's capacity or readiness changes."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.capacity_changed.set)

    async def requeue_loop(self, debounce: float = 0.5, fallback: float = 60.0) -> None:
        """Schedule waiting bindings again whenever capacity changes (event-driven).

        ``fallback`` is a slow safety net for a change signal lost, e.g. across a reconnect."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.capacity_changed.wait(), timeout=fallback)
            await asyncio.sleep(debounce)
            self.capacity_changed.clear()
            for ns, name in sorted(self.pending):
                try:
                    binding = await asyncio.to_thread(
                        kube.get, self.hub, BINDING_API_VERSION, "ResourceBinding", name, ns
                    )
                    if binding is None:
                        self.pending.discard((ns, name))
                        continue
                    binding = await self.schedule(binding)
                    if binding["spec"].get("clusters"):
                        await self.propagate(binding)
                except Exception:  # keep retrying the others; this one stays pending
                    log.exception("rescheduling %s/%s failed", ns, name)
