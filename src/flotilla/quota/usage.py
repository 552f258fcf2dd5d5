"""What a workload uses, as quota counts it: requests x replicas of every role, plus ``pods``.

A finished workload (a Job, JobSet, PyTorchJob or RayJob that completed or failed, as its
aggregated status on the hub says) uses nothing; one scaled to zero uses nothing either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotilla.interpreter import Interpreter
from flotilla.interpreter import status as st
from flotilla.scheduler.quantity import ResourceList, add, parse_resource_list, scale

FINISHED_CONDITIONS = ("Complete", "Completed", "Succeeded", "Failed")
"""Condition types that, when True on a template's status, mean its pods are gone (Job: Complete
and Failed; JobSet: Completed and Failed; PyTorchJob: Succeeded and Failed)."""
FINISHED_PHASES = ("Complete", "Failed", "Succeeded")
"""RayJob ``status.jobDeploymentStatus`` values after which its cluster is torn down."""
PODS = "pods"


def quota_resource(name: str) -> str | None:
    """The usage key a quota's resource name counts: ``requests.X`` and ``X`` both count requests
    of X (as in a ResourceQuota); ``limits.*`` and object counts other than ``pods`` are not
    counted (None)."""
    if name.startswith("limits.") or name.startswith("count/"):
        return None
    return name.removeprefix("requests.")


def finished(obj: Mapping[str, Any]) -> bool:
    """Whether a workload has run to completion (or failed for good), by its own status."""
    status = obj.get("status") or {}
    if not isinstance(status, Mapping):
        return False
    if any(st.condition_true(status, t) for t in FINISHED_CONDITIONS):
        return True
    return str(status.get("jobDeploymentStatus") or "") in FINISHED_PHASES


def workload_id(api_version: str, kind: str, name: str) -> str:
    """How a charge names its workload: ``apiVersion/kind/name`` (the namespace is the quota's)."""
    return f"{api_version}/{kind}/{name}"


def workload_usage(interpreter: Interpreter, obj: Mapping[str, Any]) -> ResourceList:
    """Requests x replicas summed over every role, plus ``pods``; empty when finished.

    Raises ValueError (from the interpreter) for an object it cannot read."""
    if finished(obj):
        return {}
    out: ResourceList = {}
    pods = 0
    for comp in interpreter.components(obj):
        out = add(out, scale(comp.requests, comp.replicas))
        pods += comp.replicas
    if pods:
        out[PODS] = pods
    return {k: v for k, v in out.items() if v}


def binding_cluster_usage(binding: Mapping[str, Any]) -> dict[str, ResourceList]:
    """Per member cluster, what a binding's decision puts there.

    A divisible binding (``spec.replicas`` set) gives each cluster its share of every role in
    proportion to the cluster's replicas; otherwise every target cluster runs the whole workload
    (a Duplicated workload uses its requests on each cluster)."""
    spec = binding.get("spec") or {}
    clusters = spec.get("clusters") or ()
    if not clusters:
        return {}
    roles = [
        (
            int(c.get("replicas") or 0),
            parse_resource_list((c.get("replicaRequirements") or {}).get("resourceRequest")),
        )
        for c in spec.get("components") or ()
    ]
    total = spec.get("replicas")
    out: dict[str, ResourceList] = {}
    for target in clusters:
        share: ResourceList = {}
        pods = 0
        for replicas, requests in roles:
            n = replicas
            if total is not None and target.get("replicas") is not None:
                n = replicas * int(target["replicas"]) // int(total) if int(total) else 0
            share = add(share, scale(requests, n))
            pods += n
        if pods:
            share[PODS] = pods
        out[str(target["name"])] = add(out.get(str(target["name"]), {}), share)
    return out
