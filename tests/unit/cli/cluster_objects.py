"""MemberCluster objects as the operator publishes them (status shaped by flotilla.inventory)."""

from __future__ import annotations

from typing import Any

H100 = "NVIDIA-H100-80GB-HBM3"


def member(
    name: str,
    *,
    ready: str | None = "True",
    reason: str = "Ready",
    message: str = "the member API server is healthy and its inventory is synced",
    gpus: tuple[int, int] | None = (40, 40),
    nodes: dict[str, int] | None = None,
    version: str | None = "v1.34.4",
    taints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A MemberCluster; ``gpus`` = (free, total) of one H100 model, None for no resourceSummary."""
    status: dict[str, Any] = {}
    if ready is not None:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": ready,
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    if version:
        status["kubernetesVersion"] = version
    if gpus is not None:
        free, total = gpus
        status["resourceSummary"] = {
            "allocatable": {"cpu": "480", "nvidia.com/gpu": str(total), "pods": "550"} if total else {},
            "allocated": {},
            "free": {"nvidia.com/gpu": str(free)} if total else {},
            "gpuModels": (
                [{"model": H100, "memoryMiB": 81559, "total": total, "free": free, "nodes": total // 8}]
                if total
                else []
            ),
            "gpuModelNames": H100 if total else "",
        }
    if nodes is not None:
        status["nodeSummary"] = nodes
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": {
            "secretRef": {"namespace": "flotilla-system", "name": f"{name}-kubeconfig"},
            **({"taints": taints} if taints is not None else {}),
        },
        **({"status": status} if status else {}),
    }
