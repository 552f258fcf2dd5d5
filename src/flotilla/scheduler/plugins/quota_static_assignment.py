"""QuotaStaticAssignment: keep a namespace within each cluster's share of its FederatedResourceQuota.

The runtime gives each workload ``cluster_limits``: per cluster, what the namespace's static
assignments leave after its other workloads. A cluster is filtered out when the workload cannot
put anything there within that share: its smallest pod for a Divided workload (the division is
capped to the share, see :func:`pods_within`), the whole workload otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.placement import DUPLICATED
from flotilla.scheduler.quantity import ResourceList, add, scale
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Component, Workload

NAME = "QuotaStaticAssignment"
REASON = "cluster(s) had no quota share left (FederatedResourceQuota staticAssignments)"
PODS = "pods"


def pod_usage(comp: Component) -> ResourceList:
    """What one pod of ``comp`` counts against a quota (its requests and one ``pods``)."""
    return {**comp.requests, PODS: 1}


def pods_within(limits: Mapping[str, int], comp: Component) -> int:
    """How many pods of ``comp`` fit in ``limits`` (resources ``limits`` does not name are free)."""
    per_pod = pod_usage(comp)
    bounds = [max(limits[r], 0) // v for r, v in per_pod.items() if v > 0 and r in limits]
    return min(bounds) if bounds else 1 << 30


def needs_on_cluster(workload: Workload) -> list[ResourceList]:
    """Alternatives, one of which must fit a cluster's share: a pod of any role for a Divided
    workload (the division is capped to the share), else the whole workload."""
    comps = [c for c in workload.components if c.replicas > 0]
    if workload.gang is None and workload.placement.replica_scheduling.type != DUPLICATED:
        return [pod_usage(c) for c in comps]
    out: ResourceList = {}
    for comp in comps:
        out = add(out, scale(pod_usage(comp), comp.replicas))
    return [out]


def _within(need: Mapping[str, int], limits: Mapping[str, int]) -> bool:
    return all(v <= 0 or r not in limits or v <= limits[r] for r, v in need.items())


class QuotaStaticAssignmentPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        if not workload.cluster_limits:
            return SKIP
        state[NAME] = needs_on_cluster(workload)
        return SUCCESS

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        limits = workload.cluster_limits.get(cluster.name)
        if limits is None:
            return SUCCESS
        needs: list[ResourceList] = state[NAME]
        if needs and not any(_within(need, limits) for need in needs):
            return Status.unschedulable(REASON)
        return SUCCESS


def new() -> QuotaStaticAssignmentPlugin:
    return QuotaStaticAssignmentPlugin()
