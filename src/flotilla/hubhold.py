"""Hub hold: a hub that runs workload controllers never runs the workloads Flotilla propagates.

The hub's templates are real objects of their kinds, so on an ordinary cluster its own
controllers would run them too. Flotilla holds them at admission, before any controller sees
them, so there is no race (see docs/hub-hold.md for each kind):

* **managedBy**, where a kind has a field any manager may claim (:data:`MANAGED_BY_KINDS`: Job,
  JobSet): a Job or JobSet created on the hub that a propagation policy selects gets
  ``spec.managedBy: flotilla.dev/multicluster``, as MultiKueue sets ``kueue.x-k8s.io/multikueue``.
  The hub's job (or JobSet) controller then never creates its pods. The field is immutable, so
  this happens on CREATE only; member copies go without it.
* **A scheduling gate** for everything else: a pod created on the hub whose controller-owner chain
  (Pod -> ReplicaSet -> Deployment, Pod -> StatefulSet -> LeaderWorkerSet, Pod -> Job -> JobSet,
  Pod -> PyTorchJob, ...) reaches a workload Flotilla propagates gets the scheduling gate
  ``flotilla.dev/hub-hold``. kube-scheduler never binds a gated pod, and nothing removes the gate:
  the pod stays ``SchedulingGated`` on the hub while the workload runs on its members.

"Propagated" means: a PropagationPolicy or ClusterPropagationPolicy selects the workload, or a
ResourceBinding exists for it. The operator's cache answers first; when it finds no policy, the
policies are listed from the hub (a policy applied a moment before the workload may not have
reached the cache yet). Objects Flotilla itself placed on the hub (the hub used as a member)
carry ``flotilla.dev/managed-by`` and are left alone.

Errors never deny a pod: a chain that cannot be read (RBAC, an owner already deleted) is
admitted unchanged and logged. A pod with ``spec.nodeName`` already set cannot be gated and is
refused (it would run on the hub). Every answer is counted in ``flotilla_hub_hold_total``; a
gated pod posts a ``HeldOnHub`` Event on its workload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from flotilla import metrics
from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.api import GROUP_VERSION
from flotilla.controllers.client import Client
from flotilla.controllers.common import EmitEvent
from flotilla.controllers.hubstate import HubState
from flotilla.controllers.matching import best_policy, policy_from_body
from flotilla.controllers.workloads import binding_name
from flotilla.interpreter import InterpreterRegistry
from flotilla.interpreter.keys import HUB_HOLD_GATE, HUB_MANAGER, LABEL_MANAGED_BY
from flotilla.interpreter.prepare import MANAGED_BY_KINDS

log = logging.getLogger("flotilla.hubhold")

MAX_OWNER_DEPTH = 6
"""Owner links followed from a pod (LeaderWorkerSet workers are 4 deep: Pod, StatefulSet, leader
Pod, StatefulSet, LeaderWorkerSet)."""

Obj = dict[str, Any]


def controller_ref(obj: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(apiVersion, kind, name)`` of the owner reference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("apiVersion") and ref.get("kind") and ref.get("name"):
            return str(ref["apiVersion"]), str(ref["kind"]), str(ref["name"])
    return None


def gate_patch(pod: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """JSON Patch adding :data:`HUB_HOLD_GATE` to ``spec.schedulingGates`` (empty if it is there)."""
    gates = (pod.get("spec") or {}).get("schedulingGates")
    if not gates:
        return ({"op": "add", "path": "/spec/schedulingGates", "value": [{"name": HUB_HOLD_GATE}]},)
    if any(g.get("name") == HUB_HOLD_GATE for g in gates):
        return ()
    return ({"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": HUB_HOLD_GATE}},)


def managed_by_patch(obj: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """JSON Patch setting ``spec.managedBy`` to :data:`HUB_MANAGER` (empty when a manager is set)."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return ({"op": "add", "path": "/spec", "value": {"managedBy": HUB_MANAGER}},)
    if spec.get("managedBy"):
        return ()
    return ({"op": "add", "path": "/spec/managedBy", "value": HUB_MANAGER},)


def _flotilla_copy(obj: Mapping[str, Any]) -> bool:
    return bool(((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_MANAGED_BY))


def _what(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name') or '<generated>'}"


class HubHold:
    """The mutating admission handler (``review``) of the hub hold."""

    def __init__(
        self,
        hub: Client,
        state: HubState,
        registry: InterpreterRegistry,
        emit: EmitEvent = lambda *_a: None,
    ) -> None:
        self.hub, self.state, self.registry, self.emit = hub, state, registry, emit

    async def review(self, request: AdmissionRequest) -> AdmissionResponse:
        obj = request.object
        if request.operation != "CREATE" or obj is None:
            return AdmissionResponse.allow()
        obj = dict(obj)
        obj.setdefault("metadata", {})
        if request.namespace and not obj["metadata"].get("namespace"):
            obj["metadata"] = {**obj["metadata"], "namespace": request.namespace}
        obj.setdefault("apiVersion", _api_version(request))
        obj.setdefault("kind", request.kind.kind)
        try:
            if request.kind.group == "" and request.kind.kind == "Pod":
                return await self._pod(obj, request.dry_run)
            if (request.kind.group, request.kind.kind) in MANAGED_BY_KINDS:
                return await self._workload(obj)
        except Exception as exc:  # never refuse a pod or workload because a lookup failed
            metrics.HUB_HOLD.labels(kind=request.kind.kind, action="error").inc()
            log.warning("hub hold: %s %s admitted unchanged: %s", request.kind.kind, _what(obj), exc)
        return AdmissionResponse.allow()

    # -- Job, JobSet: spec.managedBy -----------------------------------------------------------
    async def _workload(self, obj: Obj) -> AdmissionResponse:
        kind = str(obj["kind"])
        if _flotilla_copy(obj) or self.registry.get(str(obj["apiVersion"]), kind) is None:
            return AdmissionResponse.allow()
        if not await self.propagated(obj):
            metrics.HUB_HOLD.labels(kind=kind, action="passed").inc()
            return AdmissionResponse.allow()
        patch = managed_by_patch(obj)
        if not patch:  # another manager (e.g. MultiKueue) claimed it: its pods are gated instead
            metrics.HUB_HOLD.labels(kind=kind, action="passed").inc()
            return AdmissionResponse.allow()
        metrics.HUB_HOLD.labels(kind=kind, action="managed_by").inc()
        log.info("hub hold: %s spec.managedBy set to %s", _what(obj), HUB_MANAGER)
        return AdmissionResponse.allow(patch=patch)

    # -- pods: the scheduling gate ---------------------------------------------------------------
    async def _pod(self, pod: Obj, dry_run: bool) -> AdmissionResponse:
        namespace = pod["metadata"].get("namespace") or ""
        chain: list[str] = []
        current: Mapping[str, Any] = pod
        for _ in range(MAX_OWNER_DEPTH):
            ref = controller_ref(current)
            if ref is None:
                return AdmissionResponse.allow()
            api_version, kind, name = ref
            chain.append(f"{kind}/{name}")
            owner = await self._get(api_version, kind, name, namespace)
            if owner is None:
                log.info("hub hold: pod owner %s/%s not found; pod admitted", namespace, " <- ".join(chain))
                return AdmissionResponse.allow()
            known = self.registry.get(api_version, kind) is not None
            if known and not _flotilla_copy(owner) and await self.propagated(owner):
                return self._hold(pod, owner, chain, dry_run)
            current = owner
        return AdmissionResponse.allow()

    def _hold(
        self, pod: Obj, workload: Mapping[str, Any], chain: list[str], dry_run: bool
    ) -> AdmissionResponse:
        kind = str(workload.get("kind"))
        via = " <- ".join(reversed(chain))
        if (pod.get("spec") or {}).get("nodeName"):
            metrics.HUB_HOLD.labels(kind=kind, action="refused").inc()
            return AdmissionResponse.deny(
                f"spec.nodeName: a pod of {via} cannot be bound on the hub: Flotilla propagates "
                f"{_what(workload)} to member clusters and gates its pods here "
                f"({HUB_HOLD_GATE}), which a pod with nodeName set cannot have",
                code=403,
                reason="Forbidden",
            )
        metrics.HUB_HOLD.labels(kind=kind, action="gated").inc()
        if not dry_run:
            self.emit(
                workload,
                "Normal",
                "HeldOnHub",
                f"pod of {via} gated on the hub ({HUB_HOLD_GATE}): Flotilla runs this workload on "
                "member clusters only",
            )
        return AdmissionResponse.allow(patch=gate_patch(pod))

    # -- lookups ---------------------------------------------------------------------------------
    async def _get(self, api_version: str, kind: str, name: str, namespace: str) -> Obj | None:
        cached = self.state.templates.get((api_version, kind, namespace, name))
        if cached is not None:
            return cached
        found = await asyncio.to_thread(self.hub.get, api_version, kind, name, namespace or None)
        if found is not None:
            found.setdefault("apiVersion", api_version)
            found.setdefault("kind", kind)
        return found

    async def propagated(self, workload: Mapping[str, Any]) -> bool:
        """Whether a policy selects ``workload`` or a binding exists for it (cache, then the hub)."""
        meta = workload.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        if best_policy(self.state.policies.values(), workload) is not None:
            return True
        if meta.get("name") and (namespace, binding_name(str(workload["kind"]), meta["name"])) in (
            self.state.bindings
        ):
            return True
        bodies = await asyncio.gather(
            asyncio.to_thread(self.hub.list, GROUP_VERSION, "PropagationPolicy", namespace or None),
            asyncio.to_thread(self.hub.list, GROUP_VERSION, "ClusterPropagationPolicy"),
        )
        policies = [policy_from_body(b) for group in bodies for b in group]
        return best_policy(policies, workload) is not None


def _api_version(request: AdmissionRequest) -> str:
    group, version = request.kind.group, request.kind.version
    return f"{group}/{version}" if group else version
