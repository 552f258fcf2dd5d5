"""Coscheduling: gangs (PodGroups) all or nothing, as scheduler-plugins' Coscheduling plugin.

**minMember** (Reserve and Permit). Reserve counts the gang's pods per role as the scheduler
binds them on nodes (Unreserve uncounts them); Permit answers WAIT until every role has the pods
the gang needs at once (:meth:`~flotilla.scheduler.workload.Workload.gang_requirement`:
``minTaskMember`` per role, topped up to ``minMember``), then SUCCESS. So a gang whose required
pods do not all fit is rejected whole, and the pods above the requirement (the extras) are
placed only once the gang stands, as many as fit. A workload without a gang is always permitted.

**minResources** (PreFilter and Filter). A gang with ``min_resources`` needs that much free on
the cluster it lands on: a cluster whose free resources, summed over its Ready nodes, are below
it for any resource is filtered out. ``nvidia.com/gpu`` counts fully free devices,
``flotilla.dev/gpu-milli`` the free share of all devices (as
:attr:`~flotilla.scheduler.snapshot.NodeInfo.free`). A gang that may span clusters
(``allow_multi_cluster``) needs it of the clusters together: PreFilter checks the fleet's Ready
clusters once, and no single cluster is filtered for it.

This is a coarse, cluster-level check, as upstream's (which compares ``minResources`` with the
cluster's free capacity before any pod is placed): the node-level fit of every pod still decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotilla.scheduler.framework import SKIP, SUCCESS, Code, CycleState, Status
from flotilla.scheduler.quantity import ResourceList, add, insufficient
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

if TYPE_CHECKING:
    from flotilla.scheduler.nodefit import PodAssignment

NAME = "Coscheduling"
_FREE = (NAME, "free")
_STATE = "coscheduling"
"""Cycle state key: ``(still needed per role, roles still short)`` of the gang being bound."""
SINGLE = "the gang could not be bound whole at node level"
MULTI = "the gang could not be bound whole across the selected clusters"


def cluster_free(cluster: ClusterInfo) -> dict[str, int]:
    """Free resources of ``cluster`` summed over its Ready nodes (memoised per cluster version)."""
    hit = cluster.memo.get(_FREE)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    total: dict[str, int] = {}
    summary = cluster.summary
    if summary is not None and summary.source is cluster.nodes:
        # One node per resource state, times the Ready nodes in that state.
        for rid, count in summary.counts.items():
            for name, amount in summary.nodes[rid].free.items():
                total[name] = total.get(name, 0) + amount * count
    else:
        for node in cluster.nodes.values():
            if node.ready:
                for name, amount in node.free.items():
                    total[name] = total.get(name, 0) + amount
    cluster.memo[_FREE] = total
    return total


class CoschedulingPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        """SKIP unless a single-cluster gang sets ``min_resources``; a multi-cluster gang's is
        checked here, against the Ready clusters together."""
        gang = workload.gang
        if gang is None or not gang.min_resources:
            return SKIP
        if not gang.allow_multi_cluster:
            return SUCCESS
        together: ResourceList = {}
        for cluster in snapshot.ordered:
            if cluster.ready:
                together = add(together, cluster_free(cluster))
        short = insufficient(gang.min_resources, together)
        if short:
            return Status.unschedulable(
                f"cluster(s) together had less free than the PodGroup's minResources ({', '.join(short)})"
            )
        return SKIP

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        gang = workload.gang
        if gang is None or not gang.min_resources:
            return SUCCESS
        short = insufficient(gang.min_resources, cluster_free(cluster))
        if short:
            return Status.unschedulable(
                f"cluster(s) had less free than the PodGroup's minResources ({', '.join(short)})"
            )
        return SUCCESS

    # -- minMember: Reserve and Permit ---------------------------------------------------------
    def _gang(self, state: CycleState, workload: Workload) -> _Gang:
        """The gang's count of pods still needed (set up on first use in the cycle)."""
        gang: _Gang | None = state.get(_STATE)
        if gang is None:
            gang = state[_STATE] = _Gang(workload)
        return gang

    def reserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> Status:
        if workload.gang is not None:
            gang = state.get(_STATE) or self._gang(state, workload)
            gang.add(pod.component, -1)
        return SUCCESS

    def unreserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> None:
        if workload.gang is not None:
            self._gang(state, workload).add(pod.component, 1)

    def permit(self, state: CycleState, workload: Workload) -> Status:
        if workload.gang is None:
            return SUCCESS
        gang = state.get(_STATE) or self._gang(state, workload)
        return gang.wait if gang.short else SUCCESS


class _Gang:
    """Pods each role still needs reserved (below zero: extras), and how many are short in all."""

    __slots__ = ("needed", "short", "wait")

    def __init__(self, workload: Workload) -> None:
        assert workload.gang is not None
        self.needed = {r: n for r, n in workload.gang_requirement().items() if n > 0}
        self.short = sum(self.needed.values())
        reason = MULTI if workload.gang.allow_multi_cluster else SINGLE
        self.wait = Status(Code.WAIT, (reason,), NAME)

    def add(self, role: str, n: int) -> None:
        """One pod of ``role`` more (``n`` 1) or less (-1) still needed."""
        needed = self.needed
        before = needed.get(role, 0)
        needed[role] = after = before + n
        if before > 0 or after > 0:
            self.short += n


def new() -> CoschedulingPlugin:
    return CoschedulingPlugin()
