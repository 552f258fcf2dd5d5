"""ClusterHealth: clusters that are not Ready are filtered."""

from __future__ import annotations

from flotilla.scheduler.framework import SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo
from flotilla.scheduler.workload import Workload

NAME = "ClusterHealth"
REASON = "cluster(s) were not ready"


class ClusterHealthPlugin:
    name = NAME

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        return SUCCESS if cluster.ready else Status.unschedulable(REASON)


def new() -> ClusterHealthPlugin:
    return ClusterHealthPlugin()
