"""ClusterEviction: never send a workload back to a cluster it was evicted from."""

from __future__ import annotations

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

NAME = "ClusterEviction"
REASON = "cluster(s) had evicted the workload"


class ClusterEvictionPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        return SUCCESS if workload.evicted_from else SKIP

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        if cluster.name in workload.evicted_from:
            return Status.unschedulable(REASON)
        return SUCCESS


def new() -> ClusterEvictionPlugin:
    return ClusterEvictionPlugin()
