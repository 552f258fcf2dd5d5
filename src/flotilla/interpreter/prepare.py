"""Kind-independent preparation of the copy pushed to a member cluster, and its dependencies."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from flotilla.interpreter.base import Interpreter, Obj
from flotilla.interpreter.keys import (
    ANNOTATION_BINDING_NAME,
    ANNOTATION_CLUSTER,
    FLOTILLA_PREFIX,
    HUB_MANAGER,
    HUB_ONLY_ANNOTATIONS,
    LABEL_BINDING_NAME,
    LABEL_BINDING_NAMESPACE,
    LABEL_MANAGED_BY,
    LABEL_POD_BINDING,
    MANAGED_BY_VALUE,
    MEMBER_VISIBLE_ANNOTATIONS,
    label_value,
)
from flotilla.interpreter.podspec import pod_dependencies

__all__ = [
    "MANAGED_BY_KINDS",
    "dependencies",
    "label_pod_templates",
    "managed_by_field",
    "ownership_labels",
    "pod_templates",
    "prepare_for_member",
    "strip_hub_fields",
]

MANAGED_BY_KINDS = frozenset({("batch", "Job"), ("jobset.x-k8s.io", "JobSet")})
"""Kinds whose ``spec.managedBy`` takes any domain-prefixed value and makes their controller skip
the object (Job: Kubernetes 1.32+, on by default; JobSet: its CRD has the field, v0.12 here).
Kubeflow's ``runPolicy.managedBy`` and KubeRay's ``spec.managedBy`` accept only their own
controller or Kueue's MultiKueue, so those kinds are held on the hub by the pod scheduling gate
instead (see :mod:`flotilla.hubhold`)."""

HUB_ONLY_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)


def managed_by_field(api_version: str, kind: str) -> str | None:
    """``"spec.managedBy"`` for the kinds in :data:`MANAGED_BY_KINDS`, else None."""
    group = api_version.rpartition("/")[0]
    return "spec.managedBy" if (group, kind) in MANAGED_BY_KINDS else None


def ownership_labels(binding: tuple[str, str]) -> dict[str, str]:
    """The labels that mark a member object as Flotilla's copy for ``(namespace, name)`` of a binding."""
    namespace, name = binding
    return {
        LABEL_MANAGED_BY: MANAGED_BY_VALUE,
        LABEL_BINDING_NAMESPACE: namespace,
        LABEL_BINDING_NAME: label_value(name),
    }


def pod_templates(obj: Obj) -> list[dict[str, Any]]:
    """Every pod template (``{"metadata": ..., "spec": {"containers": [...]}}``) in ``obj``'s spec,
    at any depth (Deployment ``spec.template``, JobSet ``replicatedJobs[].template.spec.template``,
    PyTorchJob replica specs, LeaderWorkerSet leader and worker templates, Ray groups...); a bare
    Pod is its own template. Kinds whose pods are described inline (InferenceService) have none."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            spec = node.get("spec")
            if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    if obj.get("kind") == "Pod" and isinstance((obj.get("spec") or {}).get("containers"), list):
        return [obj]  # type: ignore[list-item]
    walk(obj.get("spec"))
    return found


def label_pod_templates(obj: dict[str, Any], binding: tuple[str, str]) -> dict[str, Any]:
    """Label every pod template of ``obj`` with :data:`LABEL_POD_BINDING` (in place; returns ``obj``)."""
    for template in pod_templates(obj):
        metadata = template.get("metadata")
        if not isinstance(metadata, dict):
            metadata = template["metadata"] = {}
        labels = metadata.get("labels")
        if not isinstance(labels, dict):
            labels = metadata["labels"] = {}
        labels[LABEL_POD_BINDING] = label_value(binding[1])
    return obj


def strip_hub_fields(obj: Obj) -> dict[str, Any]:
    """A deep copy without hub-only metadata, status, hub-only annotations and Flotilla's own keys.

    Removed: server-set metadata (uid, resourceVersion, generation, creationTimestamp,
    managedFields, ownerReferences, finalizers, deletion*, selfLink), ``status``, kubectl's
    last-applied annotation, hub-controller annotations, every ``flotilla.dev/`` label and
    annotation except :data:`~flotilla.interpreter.keys.MEMBER_VISIBLE_ANNOTATIONS`, a
    Service's hub-allocated cluster IPs, and the hub hold's ``spec.managedBy``
    (:data:`~flotilla.interpreter.keys.HUB_MANAGER`: the member's own controller runs the copy).
    """
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    spec = out.get("spec")
    if isinstance(spec, dict) and spec.get("managedBy") == HUB_MANAGER:
        del spec["managedBy"]
    metadata = out.setdefault("metadata", {})
    for key in HUB_ONLY_METADATA:
        metadata.pop(key, None)
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in HUB_ONLY_ANNOTATIONS
        and (not k.startswith(FLOTILLA_PREFIX) or k in MEMBER_VISIBLE_ANNOTATIONS)
    }
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if not k.startswith(FLOTILLA_PREFIX)}
    _set_or_drop(metadata, "annotations", annotations)
    _set_or_drop(metadata, "labels", labels)
    if out.get("apiVersion") == "v1" and out.get("kind") == "Service":
        spec = out.get("spec") or {}
        if spec.get("clusterIP") != "None":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
    return out


def _set_or_drop(metadata: dict[str, Any], key: str, value: dict[str, str]) -> None:
    if value:
        metadata[key] = value
    else:
        metadata.pop(key, None)


def prepare_for_member(
    template: Obj,
    interpreter: Interpreter | None,
    replicas: int | None,
    cluster: str,
    binding: tuple[str, str],
    *,
    assignment: Mapping[str, int] | None = None,
    pod_labels: bool = True,
) -> dict[str, Any]:
    """The object to server-side apply on ``cluster`` for the hub ``template``.

    Deep-copies, undoes the hub hold-back (suspend back to the user's intent), strips hub-only
    fields (:func:`strip_hub_fields` plus the interpreter's ``strip_for_member``), revises replicas
    when ``replicas`` is given (or ``assignment``, the whole ``{cluster: replicas}`` split, which
    lets kinds such as Job divide extra fields exactly), and adds the ownership labels, the
    ``flotilla.dev/cluster`` annotation and (``pod_labels``, workloads only) the
    :data:`LABEL_POD_BINDING` label on every pod template, so the members' pods name their
    binding. ``interpreter`` may be None for plain objects such as the ConfigMaps and Secrets that
    travel with a workload. Revising a kind that is not divisible
    raises ``ValueError``; pass ``replicas=None`` for Duplicated placement or whole placement.
    """
    obj: dict[str, Any] = copy.deepcopy(dict(template))
    if interpreter is not None:
        obj = interpreter.release_hold_back(obj)
        obj = interpreter.strip_for_member(obj)
        if assignment is not None:
            if replicas is not None and assignment.get(cluster) != replicas:
                raise ValueError(
                    f"replicas={replicas} disagrees with assignment[{cluster!r}]={assignment.get(cluster)}"
                )
            if cluster not in assignment:
                raise ValueError(f"cluster {cluster!r} is not in the assignment {sorted(assignment)}")
            obj = interpreter.divide(obj, assignment)[cluster]
        elif replicas is not None:
            obj = interpreter.revise_replicas(obj, replicas)
    elif replicas is not None or assignment is not None:
        raise ValueError("replicas can only be revised with an interpreter")
    obj = strip_hub_fields(obj)
    metadata = obj["metadata"]
    metadata.setdefault("labels", {}).update(ownership_labels(binding))
    annotations = metadata.setdefault("annotations", {})
    annotations[ANNOTATION_CLUSTER] = cluster
    if label_value(binding[1]) != binding[1]:
        annotations[ANNOTATION_BINDING_NAME] = binding[1]
    if interpreter is not None and pod_labels:
        label_pod_templates(obj, binding)
    return obj


def dependencies(obj: Obj, interpreter: Interpreter) -> list[tuple[str, str]]:
    """ConfigMaps and Secrets the object's pod templates reference, as sorted ``(kind, name)`` pairs.

    Found through ``interpreter.components(obj)``: volumes (configMap, secret, projected and
    volume-plugin secret refs), ``envFrom``, ``env[].valueFrom`` and ``imagePullSecrets``; all
    live in the workload's namespace.
    """
    found: set[tuple[str, str]] = set()
    for component in interpreter.components(obj):
        found.update(pod_dependencies(component.pod_template.get("spec") or {}))
    return sorted(found)
