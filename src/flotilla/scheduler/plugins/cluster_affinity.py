"""ClusterAffinity: keep only clusters matching the affinity term being tried.

The scheduler tries ``placement.clusterAffinities`` groups in order (falling back to the next
group when one yields no placement) and puts the current term in the cycle state under
:data:`STATE_KEY`; with no term the plugin skips itself.
"""

from __future__ import annotations

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.placement import ClusterAffinity
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

NAME = "ClusterAffinity"
STATE_KEY = "cluster_affinity"
REASON = "cluster(s) did not match the placement cluster affinity"


class ClusterAffinityPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        return SUCCESS if state.get(STATE_KEY) is not None else SKIP

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        affinity: ClusterAffinity | None = state.get(STATE_KEY)
        if affinity is None or affinity.matches(cluster):
            return SUCCESS
        return Status.unschedulable(REASON, resolvable=False)


def new() -> ClusterAffinityPlugin:
    return ClusterAffinityPlugin()
