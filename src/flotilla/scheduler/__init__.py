"""Flotilla's pure scheduler core: no kopf, kubernetes, prometheus_client or flotilla.api here.

The operator converts API objects into these plain dataclasses and calls::

    cache = SchedulerCache()                      # injectable clock, assume TTL 300 s
    cache.update_cluster(ClusterInfo(...))        # per member: metadata + base nodes
    cache.upsert_node(cluster, NodeInfo(...))     # node add/update (labels, taints, allocatable)
    cache.remove_node(cluster, node_name)
    cache.add_pod(cluster, PodInfo(...))          # pods the member reports (usage)
    cache.remove_pod(cluster, uid)
    outcome = Scheduler().schedule(cache.snapshot(), workload)
    if outcome.ok:                                # ScheduleResult
        cache.assume(workload.key, outcome.assignments)   # reserve before pushing
        ...push...; on failure cache.forget(workload.key)
        # when the member reports the pods (add_pod): cache.confirm(workload.key)
    else:                                         # Unschedulable
        outcome.message                           # "0/N clusters are available: ..."

``outcome.explanation.to_dict()`` (JSON) goes into ResourceBinding status. Per-plugin timings
are available through ``Framework(observer=...)``. Fractional GPUs are requested as
``flotilla.dev/gpu-milli`` (thousandths of one GPU, < 1000, never with ``nvidia.com/gpu``).
Decisions can be replayed from files with :func:`flotilla.scheduler.replay.replay`.
"""

from flotilla.scheduler.cache import DEFAULT_ASSUME_TTL, PodInfo, SchedulerCache
from flotilla.scheduler.core import (
    Explanation,
    ScheduleOutcome,
    Scheduler,
    ScheduleResult,
    TargetCluster,
    Unschedulable,
    schedule,
)
from flotilla.scheduler.framework import Code, CycleState, Diagnosis, Registry, Status
from flotilla.scheduler.nodefit import PodAssignment
from flotilla.scheduler.placement import (
    ClusterAffinity,
    ClusterAffinityTerm,
    Placement,
    ReplicaScheduling,
    SpreadConstraint,
    StaticClusterWeight,
)
from flotilla.scheduler.plugins import new_in_tree_registry
from flotilla.scheduler.quantity import ResourceList, parse_quantity, to_canonical
from flotilla.scheduler.replay import replay
from flotilla.scheduler.runtime import Framework
from flotilla.scheduler.snapshot import (
    GPU_MEMORY_LABEL,
    GPU_MILLI_RESOURCE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterInfo,
    NodeInfo,
    Snapshot,
    Taint,
    Toleration,
)
from flotilla.scheduler.workload import Component, GangSpec, Workload

__all__ = [
    "DEFAULT_ASSUME_TTL",
    "GPU_MEMORY_LABEL",
    "GPU_MILLI_RESOURCE",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "ClusterAffinity",
    "ClusterAffinityTerm",
    "ClusterInfo",
    "Code",
    "Component",
    "CycleState",
    "Diagnosis",
    "Explanation",
    "Framework",
    "GangSpec",
    "NodeInfo",
    "Placement",
    "PodAssignment",
    "PodInfo",
    "Registry",
    "ReplicaScheduling",
    "ResourceList",
    "ScheduleOutcome",
    "ScheduleResult",
    "Scheduler",
    "SchedulerCache",
    "Snapshot",
    "SpreadConstraint",
    "StaticClusterWeight",
    "Status",
    "Taint",
    "TargetCluster",
    "Toleration",
    "Unschedulable",
    "Workload",
    "new_in_tree_registry",
    "parse_quantity",
    "replay",
    "schedule",
    "to_canonical",
]
