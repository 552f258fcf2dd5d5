"""Builders of Node and Pod API objects shaped like what a member's API server returns."""

from __future__ import annotations

from typing import Any

from flotilla.scheduler.snapshot import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL

GIB = 1024**3


def node(
    name: str = "n1",
    gpus: int = 8,
    ready: str = "True",
    unschedulable: bool = False,
    product: str | None = "NVIDIA-H100-80GB-HBM3",
    **extra: Any,
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if product:
        labels[GPU_PRODUCT_LABEL] = product
        labels[GPU_MEMORY_LABEL] = "81559"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "resourceVersion": "7"},
        "spec": {
            "unschedulable": unschedulable,
            "taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}],
        },
        "status": {
            "capacity": {"cpu": "96", "memory": "1Ti", "pods": "110", "nvidia.com/gpu": str(gpus)},
            "allocatable": {"cpu": "95500m", "memory": "1023Gi", "pods": "110", "nvidia.com/gpu": str(gpus)},
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": ready},
            ],
            **extra,
        },
    }


def pod(
    uid: str = "u1",
    node_name: str | None = "n1",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": containers
        or [{"name": "c", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "2"}}}],
        **spec,
    }
    if node_name:
        body["nodeName"] = node_name
    return {
        "metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid},
        "spec": body,
        "status": {"phase": phase},
    }


def ctr(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": "c", "resources": resources, **kw}
