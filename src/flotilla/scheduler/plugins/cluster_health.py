"""ClusterHealth: clusters that are not Ready are filtered (skipped when every cluster is Ready)."""

from __future__ import annotations

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

NAME = "ClusterHealth"
REASON = "cluster(s) were not ready"
_ALL_READY = (NAME, "all ready")


class ClusterHealthPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        # (Readiness is cluster metadata: one scan per static memo, not one per cycle.)
        ready = snapshot.static(_ALL_READY, lambda: all(c.ready for c in snapshot.ordered))
        return SKIP if ready else SUCCESS

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        return SUCCESS if cluster.ready else Status.unschedulable(REASON)


def new() -> ClusterHealthPlugin:
    return ClusterHealthPlugin()
