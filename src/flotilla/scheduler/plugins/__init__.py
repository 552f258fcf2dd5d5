"""In-tree plugins, one module each (``NAME`` + ``new()``), and the default registry."""

from __future__ import annotations

from flotilla.scheduler.framework import Registry
from flotilla.scheduler.plugins import (
    api_enablement,
    cluster_affinity,
    cluster_eviction,
    cluster_health,
    cluster_locality,
    coscheduling,
    fragmentation,
    gpu_allocation,
    node_affinity,
    node_resources_fit,
    node_taints,
    quota_static_assignment,
    spread_constraint,
    taint_toleration,
)

__all__ = ["DEFAULT_WEIGHTS", "new_in_tree_registry"]

DEFAULT_WEIGHTS: dict[str, float] = {
    cluster_locality.NAME: 1.0,
    fragmentation.NAME: 1.0,
    gpu_allocation.NAME: 0.1,
}
"""Score weights of the default profile (unlisted plugins weigh 1).

GPUFragmentation decides (100 points per GPU of expected fragmentation avoided, against the
workload it learns); GPUAllocation with its default ``Balanced`` strategy (0..100, weight 0.1,
so at most a tenth of a GPU's worth) breaks near-ties towards nodes whose CPU and GPU use stay
in step. On each of the three Alibaba traces this tie-break leaves no more GPUs stranded than
MostAllocated (benchmarks/bench_placement_quality.py; docs/benchmarks.md says which trace
showed what).
"""


def new_in_tree_registry() -> Registry:
    """Every in-tree plugin; cheap cluster filters first, node-level plugins last."""
    registry = Registry()
    for module in (
        cluster_health,
        cluster_eviction,
        api_enablement,
        cluster_affinity,
        taint_toleration,
        quota_static_assignment,
        coscheduling,
        spread_constraint,
        cluster_locality,
        node_affinity,
        node_taints,
        node_resources_fit,
        fragmentation,
        gpu_allocation,
    ):
        registry.register(module.NAME, module.new)
    return registry
