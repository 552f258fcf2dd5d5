"""Pure converters: Kubernetes Node/Pod objects -> scheduler inventory, and MemberCluster summaries.

No I/O and no Kubernetes client at import time. Objects may be plain dicts (API JSON, the form
the inventory's watches use) or ``kubernetes.client`` models (converted to API JSON first).

* :func:`node_info` - a Node as :class:`~flotilla.scheduler.snapshot.NodeInfo`: allocatable in
  canonical units, labels (GPU model and memory come from ``nvidia.com/gpu.product`` and
  ``nvidia.com/gpu.memory``), taints, and ``ready`` = the Ready condition is True *and* the node
  is not cordoned (``spec.unschedulable``). The scheduler skips nodes with ``ready=False``.
* :func:`pod_info` - a Pod as :class:`~flotilla.scheduler.cache.PodInfo`, or ``None`` when it
  holds no resources (not bound to a node yet, or Succeeded/Failed); its ``owner`` is the
  binding named by Flotilla's pod label (``<namespace>/<flotilla.dev/binding>``), if any.
* :func:`pod_requests` - the pod's effective requests, computed as kube-scheduler does.
* :func:`node_is_cordoned` - whether a Node is cordoned (``spec.unschedulable``).
* :func:`resource_summary` / :func:`node_summary` - ``status.resourceSummary`` and
  ``status.nodeSummary`` of a MemberCluster.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.interpreter.keys import LABEL_POD_BINDING
from flotilla.scheduler.cache import PodInfo
from flotilla.scheduler.quantity import ResourceList, to_canonical
from flotilla.scheduler.snapshot import GPU_MILLI_RESOURCE, GPU_RESOURCE, MILLI_PER_GPU, NodeInfo, Taint

__all__ = [
    "TERMINAL_PHASES",
    "UNKNOWN_GPU_MODEL",
    "as_dict",
    "format_quantity",
    "format_resource_list",
    "node_info",
    "node_is_cordoned",
    "node_is_ready",
    "node_summary",
    "pod_info",
    "pod_requests",
    "resource_summary",
]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
"""Pods in these phases release their resources (kube-scheduler ignores them too)."""
UNKNOWN_GPU_MODEL = "unknown"
"""``gpuModels[].model`` for GPU nodes without an ``nvidia.com/gpu.product`` label."""
POD_LEVEL_RESOURCES = ("cpu", "memory")
"""Resources a pod-level ``spec.resources`` may set (the PodLevelResources feature)."""

_BINARY_SUFFIXES = tuple(
    (s, 1024**p) for s, p in (("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1))
)
_serializer: Any = None


def as_dict(obj: Any) -> Mapping[str, Any]:
    """API JSON of ``obj``: dicts pass through; ``kubernetes.client`` models are serialised."""
    if isinstance(obj, Mapping):
        return obj
    global _serializer
    if _serializer is None:
        from kubernetes.client import ApiClient

        _serializer = ApiClient()
    result: Mapping[str, Any] = _serializer.sanitize_for_serialization(obj)
    return result


def _is_bytes(resource: str) -> bool:
    return resource in ("memory", "ephemeral-storage", "storage") or resource.startswith("hugepages-")


def format_quantity(resource: str, amount: int) -> str:
    """A canonical amount (see :func:`~flotilla.scheduler.quantity.to_canonical`) as a quantity string.

    ``cpu`` millicores become ``"96"`` or ``"500m"``; byte amounts use the largest exact binary
    suffix (``"1Ti"``, ``"512Gi"``) or plain bytes; counts are plain integers.
    """
    if resource == "cpu":
        return str(amount // 1000) if amount % 1000 == 0 else f"{amount}m"
    if _is_bytes(resource) and amount:
        for suffix, factor in _BINARY_SUFFIXES:
            if amount % factor == 0:
                return f"{amount // factor}{suffix}"
    return str(amount)


def format_resource_list(resources: Mapping[str, int]) -> dict[str, str]:
    """A canonical ResourceList as Kubernetes quantity strings, sorted by resource name."""
    return {name: format_quantity(name, resources[name]) for name in sorted(resources)}


@functools.lru_cache(maxsize=4096)
def _canonical(name: str, value: str | int | float) -> int:
    """:func:`to_canonical`, memoised: the same few quantity strings recur on every pod."""
    return to_canonical(name, value)


def _resource_list(raw: Mapping[str, Any] | None) -> ResourceList:
    """Parse ``{name: quantity}``; an unparsable quantity is skipped rather than failing the object."""
    out: ResourceList = {}
    for name, value in (raw or {}).items():
        try:
            out[sys.intern(str(name))] = _canonical(str(name), value)
        except (ValueError, TypeError):  # TypeError: an unhashable or non-quantity value
            continue
    return out


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or ())


def node_is_ready(obj: Any) -> bool:
    """Whether the node's ``Ready`` condition is True (cordoning does not matter here)."""
    return _condition_true(as_dict(obj).get("status") or {}, "Ready")


def node_is_cordoned(obj: Any) -> bool:
    """Whether the node is cordoned (``spec.unschedulable``), Ready or not."""
    return bool((as_dict(obj).get("spec") or {}).get("unschedulable"))


def node_info(obj: Any) -> NodeInfo:
    """Convert a Node into a base :class:`NodeInfo` (``used`` empty: pods are reported separately).

    Allocatable falls back to capacity when the kubelet has not reported allocatable. A node that
    is NotReady or cordoned gets ``ready=False``, so the scheduler places nothing on it.
    """
    node = as_dict(obj)
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = {sys.intern(str(k)): sys.intern(str(v)) for k, v in (meta.get("labels") or {}).items()}
    return NodeInfo(
        name=sys.intern(str(meta.get("name", ""))),
        allocatable=_resource_list(status.get("allocatable") or status.get("capacity")),
        labels=labels,
        taints=tuple(Taint.from_dict(t) for t in spec.get("taints") or () if t.get("key")),
        ready=_condition_true(status, "Ready") and not spec.get("unschedulable"),
    )


def _container_requests(container: Mapping[str, Any]) -> ResourceList:
    """A container's requests; a resource with only a limit requests the limit (API defaulting)."""
    resources = container.get("resources") or {}
    requests = _resource_list(resources.get("requests"))
    for name, amount in _resource_list(resources.get("limits")).items():
        requests.setdefault(name, amount)
    return requests


def _add_into(total: ResourceList, more: Mapping[str, int]) -> None:
    for name, amount in more.items():
        total[name] = total.get(name, 0) + amount


def _max_into(total: ResourceList, other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        if amount > total.get(name, 0):
            total[name] = amount


def pod_requests(spec: Mapping[str, Any]) -> ResourceList:
    """The pod's effective requests, as kube-scheduler computes them (``resourcehelper.PodRequests``).

    Regular containers are summed; restartable init containers (sidecars, ``restartPolicy:
    Always``) add to that sum and to every later init container's peak; the result is the larger
    of the sum and the highest init-container peak. Pod-level ``spec.resources.requests`` replace
    the container total for cpu and memory; ``spec.overhead`` is added last.
    """
    total: ResourceList = {}
    for container in spec.get("containers") or ():
        _add_into(total, _container_requests(container))
    init_peak: ResourceList = {}
    sidecars: ResourceList = {}
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add_into(total, requests)
            _add_into(sidecars, requests)
            step = dict(sidecars)
        else:
            step = dict(requests)
            _add_into(step, sidecars)
        _max_into(init_peak, step)
    _max_into(total, init_peak)
    pod_level = _resource_list((spec.get("resources") or {}).get("requests"))
    for name in POD_LEVEL_RESOURCES:
        if name in pod_level:
            total[name] = pod_level[name]
    _add_into(total, _resource_list(spec.get("overhead")))
    return {name: amount for name, amount in total.items() if amount}


def pod_info(obj: Any) -> PodInfo | None:
    """Convert a Pod into a :class:`PodInfo`, or ``None`` when it holds no node resources.

    Only pods bound to a node (``spec.nodeName``) and not Succeeded/Failed count, as in
    kube-scheduler; a terminating pod still counts until it is gone. The uid is the key.
    """
    pod = as_dict(obj)
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    meta = pod.get("metadata") or {}
    uid = meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    binding = (meta.get("labels") or {}).get(LABEL_POD_BINDING)
    owner = f"{meta.get('namespace') or ''}/{binding}" if binding else None
    return PodInfo(uid=str(uid), node=sys.intern(str(node)), requests=pod_requests(spec), owner=owner)


def _whole_gpus_free(allocatable: Mapping[str, int], used: Mapping[str, int]) -> int:
    """Fully free GPUs of a node: whole-GPU requests take devices, fractional ones pack onto devices."""
    taken = used.get(GPU_RESOURCE, 0) + math.ceil(used.get(GPU_MILLI_RESOURCE, 0) / MILLI_PER_GPU)
    return max(allocatable.get(GPU_RESOURCE, 0) - taken, 0)


def resource_summary(nodes: Iterable[NodeInfo], used: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """``status.resourceSummary`` over the *schedulable* nodes (``ready``: Ready and not cordoned).

    ``used`` maps a node name to the summed requests of its pods (including ``pods``: the pod
    count). ``free`` is the sum over nodes of ``max(allocatable - allocated, 0)``; for
    ``nvidia.com/gpu`` it counts fully free GPUs. ``gpuModels`` groups GPU nodes by model.
    """
    allocatable: ResourceList = {}
    allocated: ResourceList = {}
    free: ResourceList = {}
    models: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if not node.ready:
            continue
        node_used = used.get(node.name, {})
        _add_into(allocatable, node.allocatable)
        _add_into(allocated, node_used)
        for name, amount in node.allocatable.items():
            if name != GPU_RESOURCE:
                free[name] = free.get(name, 0) + max(amount - node_used.get(name, 0), 0)
        gpus = node.allocatable.get(GPU_RESOURCE, 0)
        if GPU_RESOURCE not in node.allocatable:
            continue
        gpus_free = _whole_gpus_free(node.allocatable, node_used)
        free[GPU_RESOURCE] = free.get(GPU_RESOURCE, 0) + gpus_free
        if gpus <= 0:
            continue
        model = node.gpu_model or UNKNOWN_GPU_MODEL
        entry = models.setdefault(model, {"model": model, "total": 0, "free": 0, "nodes": 0})
        if node.gpu_memory_mib is not None:
            entry.setdefault("memoryMiB", node.gpu_memory_mib)
        entry["total"] += gpus
        entry["free"] += gpus_free
        entry["nodes"] += 1
    return {
        "allocatable": format_resource_list(allocatable),
        "allocated": format_resource_list(allocated),
        "free": format_resource_list(free),
        "gpuModels": [models[m] for m in sorted(models)],
        "gpuModelNames": ",".join(sorted(models)),
    }


def node_summary(total: int, ready: int, cordoned: int = 0) -> dict[str, int]:
    """``status.nodeSummary``: all nodes, those whose Ready condition is True (cordoned or not),
    and those cordoned (``spec.unschedulable``, Ready or not).

    ``cordonedNum`` is always present, 0 included: the status is merge-patched, so an omitted
    field would keep its last value.
    """
    return {"totalNum": total, "readyNum": ready, "cordonedNum": cordoned}
