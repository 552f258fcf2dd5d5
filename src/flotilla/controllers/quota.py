"""Quota controller: FederatedResourceQuota status from the workloads on the hub and their bindings.

Keyed by namespace. For every quota of the namespace it recomputes ``status.overallUsed``
(requests x replicas of every workload template, finished ones excluded, plus the admission
charges still live), per-cluster usage from the bindings' decisions, and the ``Exceeded`` and
``Ready`` conditions; it writes the status only when it changed, with the quota's
resourceVersion as a precondition (an admission charge made meanwhile answers 409 and the
namespace is handled again). A charge is dropped once its workload shows the charged usage, or
when it expires: the namespace is handled again at the earliest expiry.

``spec.staticAssignments`` become a ResourceQuota on each assigned member (requests of the
assigned resources), kept in step and removed when the assignment goes, and per-cluster
budgets the scheduler's QuotaStaticAssignment filter reads (:meth:`cluster_budget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flotilla import API_GROUP, metrics
from flotilla.controllers.client import Client
from flotilla.controllers.hubstate import HubState, Key, object_key
from flotilla.interpreter import InterpreterRegistry
from flotilla.quota import (
    binding_cluster_usage,
    compute_status,
    finished,
    quota_resource,
    workload_id,
    workload_usage,
)
from flotilla.quota.ledger import Quota, format_quota_list, parse_quota_list
from flotilla.scheduler.quantity import ResourceList, add

log = logging.getLogger("flotilla.quota")

QUOTA_KIND = "FederatedResourceQuota"
MEMBER_QUOTA_LABEL = f"{API_GROUP}/federated-resource-quota"
"""On a member's ResourceQuota: the name of the FederatedResourceQuota it enforces."""


def member_quota_name(quota_name: str) -> str:
    return f"flotilla-{quota_name}"[:253]


def member_resource_quota(quota: Quota, cluster: str) -> dict[str, Any]:
    """The ResourceQuota a static assignment becomes on its member: requests of each resource
    (``requests.nvidia.com/gpu``; cpu and memory as ``requests.cpu``/``requests.memory``)."""
    hard = quota.static[cluster]
    names = {}
    for name in hard:
        key = quota_resource(name)
        if key is None:
            continue
        names[key if key == "pods" else f"requests.{key}"] = name
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": member_quota_name(quota.name),
            "namespace": quota.namespace,
            "labels": {MEMBER_QUOTA_LABEL: quota.name, "app.kubernetes.io/managed-by": "flotilla"},
        },
        "spec": {"hard": {rq: format_quota_list({src: hard[src]})[src] for rq, src in sorted(names.items())}},
    }


def _status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``old`` into ``new`` (keys that went away are nulled, maps too)."""
    patch: dict[str, Any] = {}
    for key in {*old, *new}:
        if key not in new:
            patch[key] = None
        elif isinstance(new[key], dict) and isinstance(old.get(key), dict):
            inner = {k: v for k, v in new[key].items() if old[key].get(k) != v}
            inner.update({k: None for k in old[key] if k not in new[key]})
            if inner:
                patch[key] = inner
        elif old.get(key) != new[key]:
            patch[key] = new[key]
    return patch


class QuotaController:
    def __init__(
        self,
        hub: Client,
        state: HubState,
        registry: InterpreterRegistry,
        *,
        member_client: Callable[[str], Client | None] = lambda _name: None,
        member_ready: Callable[[str], bool] = lambda _name: True,
        enforced: bool = True,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.hub, self.state, self.registry = hub, state, registry
        self.member_client, self.member_ready = member_client, member_ready
        self.enforced, self.clock = enforced, clock
        self.quotas: dict[Key, dict[str, Any]] = {}
        self._member_quotas: dict[tuple[str, str], dict[str, Any]] = {}
        """(cluster, namespace/name) -> the ResourceQuota last applied there."""
        self._metric_labels: dict[Key, set[str]] = {}

    # -- cache (event loop) -------------------------------------------------------------------
    def on_quota(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Cache a quota event; True when its spec changed (budgets the scheduler reads moved)."""
        key = object_key(body)
        old = self.quotas.get(key)
        if event_type == "DELETED":
            self.quotas.pop(key, None)
            self._forget_metrics(key)
            return True
        self.quotas[key] = dict(body)
        return old is None or old.get("spec") != body.get("spec")

    def namespaces(self) -> set[str]:
        return {ns for ns, _name in self.quotas}

    def watches(self, namespace: str) -> bool:
        return any(ns == namespace for ns, _name in self.quotas)

    # -- what the namespace uses --------------------------------------------------------------
    def observed(self, namespace: str) -> dict[str, ResourceList]:
        """Usage of every workload template of the namespace in the hub cache, by workload id."""
        out: dict[str, ResourceList] = {}
        for (api_version, kind, ns, name), template in list(self.state.templates.items()):
            if ns != namespace:
                continue
            interpreter = self.registry.get(api_version, kind)
            if interpreter is None:
                continue
            try:
                out[workload_id(api_version, kind, name)] = workload_usage(interpreter, template)
            except (ValueError, KeyError, TypeError):
                continue  # unreadable: the detector reports it on the template
        return out

    def per_cluster(
        self,
        namespace: str,
        exclude: Key | None = None,
        decided: Mapping[Key, Mapping[str, ResourceList]] | None = None,
    ) -> dict[str, ResourceList]:
        """Usage by member cluster of the namespace's bound workloads (finished ones excluded);
        ``decided`` overrides the cached bindings with decisions not yet written back."""
        out: dict[str, ResourceList] = {}
        decided = decided or {}
        for key, usage_by_cluster in decided.items():
            if key[0] == namespace and key != exclude:
                for cluster, usage in usage_by_cluster.items():
                    out[cluster] = add(out.get(cluster, {}), usage)
        for key, binding in list(self.state.bindings.items()):
            if key[0] != namespace or key == exclude or key in decided:
                continue
            resource = (binding.get("spec") or {}).get("resource") or {}
            template = self.state.templates.get(
                (
                    str(resource.get("apiVersion")),
                    str(resource.get("kind")),
                    namespace,
                    str(resource.get("name")),
                )
            )
            if template is not None and finished(template):
                continue
            for cluster, usage in binding_cluster_usage(binding).items():
                out[cluster] = add(out.get(cluster, {}), usage)
        return out

    def cluster_budget(self, namespace: str) -> dict[str, ResourceList] | None:
        """Per member cluster, the static-assignment limits of the namespace keyed by resource
        (the tightest when several quotas assign the same cluster); None without assignments."""
        budget: dict[str, ResourceList] = {}
        for (ns, _name), body in self.quotas.items():
            if ns != namespace:
                continue
            quota = Quota.from_body(body)
            for cluster, hard in quota.static.items():
                limits = budget.setdefault(cluster, {})
                for name, amount in hard.items():
                    key = quota_resource(name)
                    if key is not None:
                        limits[key] = min(amount, limits.get(key, amount))
        return budget or None

    def left(
        self, key: Key, decided: Mapping[Key, Mapping[str, ResourceList]]
    ) -> dict[str, ResourceList] | None:
        """What the static assignments of ``key``'s namespace leave it per cluster, other
        workloads' usage taken off; None when the namespace has no assignments."""
        budget = self.cluster_budget(key[0])
        if budget is None:
            return None
        used = self.per_cluster(key[0], exclude=key, decided=decided)
        return {
            cluster: {r: limit - used.get(cluster, {}).get(r, 0) for r, limit in limits.items()}
            for cluster, limits in budget.items()
        }

    # -- reconcile ------------------------------------------------------------------------------
    async def reconcile(self, namespace: str) -> float | None:
        """Recompute and write the status of the namespace's quotas; the delay until the next
        charge expires (the namespace is handled again then)."""
        observed = self.observed(namespace)
        per_cluster = self.per_cluster(namespace)
        now = self.clock()
        next_expiry: float | None = None
        for key in sorted(k for k in self.quotas if k[0] == namespace):
            body = self.quotas.get(key)
            if body is None:
                continue
            quota = Quota.from_body(body)
            old = body.get("status") or {}
            new = compute_status(quota, old, observed, per_cluster, now, enforced=self.enforced)
            self._export(key, quota, new)
            for charge in new.get("charges") or ():
                left = (
                    dt.datetime.strptime(charge["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) - now
                )
                delay = max(left.total_seconds(), 0.0) + 1.0
                next_expiry = delay if next_expiry is None else min(next_expiry, delay)
            patch = _status_patch(old, new)
            if patch:
                stored = await asyncio.to_thread(
                    self.hub.patch,
                    body,
                    {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": patch},
                    "status",
                )  # a 409 (a charge came in) raises: the queue retries with the newer quota
                metrics.HUB_WRITES.labels("quota", QUOTA_KIND).inc()
                if self.quotas.get(key) is body:
                    self.quotas[key] = stored
            await self._sync_member_quotas(quota)
        await self._remove_stale_member_quotas(namespace)
        return next_expiry

    def _export(self, key: Key, quota: Quota, status: Mapping[str, Any]) -> None:
        used = parse_quota_list(status.get("overallUsed"))
        seen = self._metric_labels.setdefault(key, set())
        for name, amount in quota.hard.items():
            metrics.QUOTA_HARD.labels(key[0], key[1], name).set(amount)
            metrics.QUOTA_USED.labels(key[0], key[1], name).set(used.get(name, 0))
            seen.add(name)
        for name in seen - set(quota.hard):
            self._forget_metric(key, name)
            seen.discard(name)

    def _forget_metric(self, key: Key, name: str) -> None:
        for gauge in (metrics.QUOTA_HARD, metrics.QUOTA_USED):
            with contextlib.suppress(KeyError):
                gauge.remove(key[0], key[1], name)

    def _forget_metrics(self, key: Key) -> None:
        for name in self._metric_labels.pop(key, set()):
            self._forget_metric(key, name)

    # -- member ResourceQuotas for static assignments -------------------------------------------
    async def _sync_member_quotas(self, quota: Quota) -> None:
        for cluster in sorted(quota.static):
            client = self.member_client(cluster)
            if client is None or not self.member_ready(cluster):
                continue  # applied when the member is back (the namespace is handled again then)
            doc = member_resource_quota(quota, cluster)
            ref = (cluster, f"{quota.namespace}/{quota.name}")
            if self._member_quotas.get(ref) == doc:
                continue
            await asyncio.to_thread(client.ensure_namespace, quota.namespace)
            await asyncio.to_thread(client.apply, doc, "flotilla")
            self._member_quotas[ref] = doc

    async def _remove_stale_member_quotas(self, namespace: str) -> None:
        wanted = {
            (cluster, f"{ns}/{name}")
            for (ns, name), body in self.quotas.items()
            if ns == namespace
            for cluster in Quota.from_body(body).static
        }
        for ref in [r for r in self._member_quotas if r[1].split("/", 1)[0] == namespace and r not in wanted]:
            client = self.member_client(ref[0])
            if client is None:
                continue
            await asyncio.to_thread(client.delete, self._member_quotas[ref])
            del self._member_quotas[ref]

    async def remove_orphaned_member_quotas(self, cluster: str) -> None:
        """Delete ResourceQuotas Flotilla made on ``cluster`` whose assignment is gone (cold start)."""
        client = self.member_client(cluster)
        if client is None:
            return
        items = await asyncio.to_thread(client.list, "v1", "ResourceQuota", None, MEMBER_QUOTA_LABEL)
        for item in items:
            meta = item["metadata"]
            key = (str(meta.get("namespace") or ""), str((meta.get("labels") or {}).get(MEMBER_QUOTA_LABEL)))
            body = self.quotas.get(key)
            if body is None or cluster not in Quota.from_body(body).static:
                await asyncio.to_thread(client.delete, item)
                self._member_quotas.pop((cluster, f"{key[0]}/{key[1]}"), None)
