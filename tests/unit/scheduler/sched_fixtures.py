"""Builders shared by the scheduler unit tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.scheduler import (
    GPU_MEMORY_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterInfo,
    Component,
    GangSpec,
    NodeInfo,
    Placement,
    Snapshot,
    Taint,
    Workload,
)

GiB = 1 << 30
DIVIDED_AGGREGATED: dict[str, Any] = {
    "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}
}


def node(
    name: str,
    gpus: int = 8,
    used_gpus: int = 0,
    *,
    model: str = "A100",
    gpu_mem: int = 81920,
    cpu: int = 64_000,
    memory: int = 512 * GiB,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Taint] = (),
    gpu_free: tuple[int, ...] | None = None,
    extra: Mapping[str, int] | None = None,
) -> NodeInfo:
    alloc = {"cpu": cpu, "memory": memory, "pods": 110, GPU_RESOURCE: gpus, **(extra or {})}
    all_labels = {GPU_PRODUCT_LABEL: model, GPU_MEMORY_LABEL: str(gpu_mem), **(labels or {})}
    return NodeInfo(name, alloc, {GPU_RESOURCE: used_gpus}, all_labels, tuple(taints), gpu_free)


def cluster(name: str, nodes: Iterable[NodeInfo], **kwargs: Any) -> ClusterInfo:
    return ClusterInfo(name, {n.name: n for n in nodes}, **kwargs)


def snapshot(*clusters: ClusterInfo) -> Snapshot:
    return Snapshot.of(clusters)


def workload(
    requests: Mapping[str, int],
    replicas: int = 1,
    placement: Mapping[str, Any] | None = None,
    *,
    key: str = "ns/w",
    gang: GangSpec | None = None,
    current: Mapping[str, int] | None = None,
    **component_kwargs: Any,
) -> Workload:
    comp = Component("main", replicas, dict(requests), **component_kwargs)
    placement_obj = Placement.from_dict(placement if placement is not None else DIVIDED_AGGREGATED)
    return Workload(key, (comp,), placement_obj, gang=gang, current=dict(current or {}))
