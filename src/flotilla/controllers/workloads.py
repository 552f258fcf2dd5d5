"""From a workload template and its policy to a ResourceBinding, and from a binding to the
scheduler's input (pure; no I/O).

The binding's spec holds everything the scheduler needs, so a decision can be understood (and
replayed) from the binding alone: the template reference, replicas, per-role requirements, the
policy's placement, and the gang. The template's resourceVersion is deliberately left out:
status updates would otherwise bump the binding's generation; template spec changes are
propagated by comparing the template's generation instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flotilla import API_GROUP
from flotilla.api import GROUP_NAME_ANNOTATION, GROUP_VERSION, POD_GROUP_LABEL
from flotilla.controllers.matching import PolicyRef
from flotilla.interpreter import Component as InterpComponent
from flotilla.interpreter import Interpreter
from flotilla.scheduler import Component, GangSpec, Placement, Toleration, Workload
from flotilla.scheduler.quantity import parse_resource_list, to_canonical

BINDING_API_VERSION = GROUP_VERSION
SCHEDULING_HASH_ANNOTATION = f"{API_GROUP}/scheduling-inputs"


def binding_name(kind: str, name: str) -> str:
    """``<name>-<kind>`` (lower-case), shortened with a hash when over the 253-character limit."""
    full = f"{name}-{kind.lower()}"
    if len(full) <= 253:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    return f"{full[:242]}-{digest}"


def gvk(template: Mapping[str, Any]) -> str:
    api_version = str(template["apiVersion"])
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"{group_version}/{template['kind']}"


def pod_group_name(template: Mapping[str, Any], components: list[InterpComponent]) -> str | None:
    """The PodGroup a template joins: annotation/label on the template or on a pod template."""
    metas = [template.get("metadata") or {}]
    metas += [(c.pod_template or {}).get("metadata") or {} for c in components]
    for meta in metas:
        name = (meta.get("annotations") or {}).get(GROUP_NAME_ANNOTATION) or (meta.get("labels") or {}).get(
            POD_GROUP_LABEL
        )
        if name:
            return str(name)
    return None


def quantity_string(resource: str, canonical: int) -> str:
    """A Kubernetes quantity for a canonical amount (CPU is held in millicores, the rest as is)."""
    if resource == "cpu":
        return str(canonical // 1000) if canonical % 1000 == 0 else f"{canonical}m"
    return str(canonical)


def _requirements(c: InterpComponent) -> dict[str, Any]:
    claim: dict[str, Any] = {}
    if c.node_selector:
        claim["nodeSelector"] = dict(c.node_selector)
    if c.tolerations:
        claim["tolerations"] = [dict(t) for t in c.tolerations]
    if c.node_affinity:
        claim["hardNodeAffinity"] = {"nodeSelectorTerms": [dict(t) for t in c.node_affinity]}
    out: dict[str, Any] = {
        "resourceRequest": {k: quantity_string(k, v) for k, v in sorted(c.requests.items())}
    }
    if claim:
        out["nodeClaim"] = claim
    return out


def desired_binding(
    template: Mapping[str, Any],
    policy: PolicyRef,
    interpreter: Interpreter,
    pod_group: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ResourceBinding Flotilla server-side applies for ``template`` under ``policy``."""
    meta = template["metadata"]
    components = interpreter.components(template)
    spec: dict[str, Any] = {
        "resource": {
            "apiVersion": template["apiVersion"],
            "kind": template["kind"],
            "namespace": meta.get("namespace"),
            "name": meta["name"],
            "uid": meta.get("uid"),
        },
        "components": [
            {"name": c.name, "replicas": c.replicas, "replicaRequirements": _requirements(c)}
            for c in components
        ],
        "placement": dict(policy.spec.get("placement") or {}),
        "policyRef": {"kind": policy.kind, "name": policy.name}
        | ({"namespace": policy.namespace} if policy.namespace else {}),
        "priority": policy.priority,
    }
    replicas = interpreter.replicas(template) if interpreter.divisible else None
    if replicas is not None:
        spec["replicas"] = replicas
    group = _scheduling_group(template, components, interpreter, pod_group)
    if group:
        spec["schedulingGroup"] = group
    body: dict[str, Any] = {
        "apiVersion": BINDING_API_VERSION,
        "kind": "ResourceBinding",
        "metadata": {
            "name": binding_name(template["kind"], meta["name"]),
            "namespace": meta.get("namespace"),
            "labels": {f"{API_GROUP}/policy-name": policy.name, f"{API_GROUP}/kind": template["kind"]},
            "annotations": {SCHEDULING_HASH_ANNOTATION: scheduling_hash(spec)},
        },
        "spec": spec,
    }
    if meta.get("uid"):
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": template["apiVersion"],
                "kind": template["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
                "blockOwnerDeletion": False,
                "controller": True,
            }
        ]
    return body


def _scheduling_group(
    template: Mapping[str, Any],
    components: list[InterpComponent],
    interpreter: Interpreter,
    pod_group: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    if pod_group is not None:
        pg_spec = pod_group.get("spec") or {}
        group: dict[str, Any] = {
            "podGroup": pod_group["metadata"]["name"],
            "minMember": int(pg_spec.get("minMember") or 0),
        }
        if pg_spec.get("minTaskMember"):
            # Roles are matched case-insensitively: Volcano users write Kubeflow's replica types
            # ("Master", "Worker") or the lower-case task names.
            names = {c.name.lower(): c.name for c in components}
            unknown = sorted(k for k in pg_spec["minTaskMember"] if k.lower() not in names)
            if unknown:
                owner = f"{template['kind']} {template['metadata']['name']}"
                raise ValueError(
                    f"PodGroup {pod_group['metadata']['name']}: minTaskMember names roles {unknown} that "
                    f"{owner} does not have (roles: {sorted(names.values())})"
                )
            group["minTaskMember"] = {names[k.lower()]: int(v) for k, v in pg_spec["minTaskMember"].items()}
        if pg_spec.get("maxClusters"):
            group["maxClusters"] = int(pg_spec["maxClusters"])
        if pg_spec.get("minResources"):
            group["minResources"] = _min_resources(pod_group["metadata"]["name"], pg_spec["minResources"])
        return group
    implicit = interpreter.implicit_gang(template)
    if implicit:
        return {"minMember": int(implicit)}
    return None


def _min_resources(pod_group: str, raw: Mapping[str, Any]) -> dict[str, str]:
    """A PodGroup's ``minResources`` as canonical quantity strings; an unreadable one is an error
    naming the field."""
    out: dict[str, str] = {}
    for name, value in sorted(raw.items()):
        try:
            out[str(name)] = quantity_string(str(name), to_canonical(str(name), value))
        except (TypeError, ValueError) as err:
            raise ValueError(f"PodGroup {pod_group}: spec.minResources.{name}: {err}") from None
    return out


def scheduling_hash(spec: Mapping[str, Any]) -> str:
    """A digest of the scheduling inputs (not the template's resourceVersion): unchanged means the
    current decision still stands and only propagation is needed."""
    relevant = {k: v for k, v in spec.items() if k not in ("resource", "clusters", "gracefulEvictionTasks")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def scheduler_workload(
    binding: Mapping[str, Any],
    evicted_from: frozenset[str] = frozenset(),
    cluster_limits: Mapping[str, Mapping[str, int]] | None = None,
    keep_current: bool = False,
) -> Workload:
    """The scheduler's input for a binding (``cluster_limits``: the namespace's quota shares left;
    ``keep_current``: failover, a Divided workload keeps its replicas where they are)."""
    spec = binding.get("spec") or {}
    meta = binding.get("metadata") or {}
    components = []
    for raw in spec.get("components") or ():
        req = raw.get("replicaRequirements") or {}
        claim = req.get("nodeClaim") or {}
        components.append(
            Component(
                name=str(raw["name"]),
                replicas=int(raw.get("replicas") or 0),
                requests=parse_resource_list(req.get("resourceRequest")),
                node_selector=dict(claim.get("nodeSelector") or {}),
                node_affinity=tuple((claim.get("hardNodeAffinity") or {}).get("nodeSelectorTerms") or ()),
                tolerations=tuple(Toleration.from_dict(t) for t in claim.get("tolerations") or ()),
            )
        )
    group = spec.get("schedulingGroup")
    gang = None
    if group and group.get("minMember"):
        gang = GangSpec(
            min_member=int(group["minMember"]),
            min_task_member={str(k): int(v) for k, v in (group.get("minTaskMember") or {}).items()},
            allow_multi_cluster=int(group.get("maxClusters") or 1) > 1,
            min_resources=parse_resource_list(group.get("minResources")),
        )
    current = {c["name"]: int(c.get("replicas") or 0) for c in spec.get("clusters") or ()}
    resource = spec.get("resource") or {}
    return Workload(
        key=f"{meta.get('namespace')}/{meta.get('name')}",
        components=tuple(components),
        placement=Placement.from_dict(spec.get("placement") or {}),
        gang=gang,
        gvk=gvk(resource) if resource.get("apiVersion") else "",
        current=current,
        evicted_from=evicted_from,
        cluster_limits=dict(cluster_limits or {}),
        keep_current=keep_current,
        units=int(spec["replicas"]) if spec.get("replicas") is not None and len(components) > 1 else None,
    )


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def binding_is_current(existing: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` would change nothing the controllers read."""
    if existing is None or existing["metadata"].get("deletionTimestamp"):
        return False
    emeta, dmeta = existing["metadata"], desired["metadata"]
    if (emeta.get("annotations") or {}).get(SCHEDULING_HASH_ANNOTATION) != dmeta["annotations"][
        SCHEDULING_HASH_ANNOTATION
    ]:
        return False
    labels = emeta.get("labels") or {}
    if any(labels.get(k) != v for k, v in dmeta["labels"].items()):
        return False
    owners = [o.get("uid") for o in emeta.get("ownerReferences") or ()]
    if owners != [o.get("uid") for o in dmeta.get("ownerReferences") or ()]:
        return False
    return bool(_drop_none(existing["spec"].get("resource")) == _drop_none(desired["spec"]["resource"]))
