"""APIEnablement: the cluster must serve the workload's ``group/version/Kind``.

A cluster that has not reported its API enablements yet (``None``) is let through.
"""

from __future__ import annotations

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

NAME = "APIEnablement"


class APIEnablementPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        """SKIP when there is no gvk or every cluster lets it through (one scan, not N filter calls)."""
        gvk = workload.gvk
        if not gvk:
            return SKIP
        served = snapshot.static(  # API enablements are cluster metadata: one scan per memo
            (NAME, gvk),
            lambda: all(c.api_enablements is None or gvk in c.api_enablements for c in snapshot.ordered),
        )
        return SKIP if served else SUCCESS

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        apis = cluster.api_enablements
        if apis is None or workload.gvk in apis:
            return SUCCESS
        return Status.unschedulable(
            f"cluster(s) did not have the API resource {workload.gvk}", resolvable=False
        )


def new() -> APIEnablementPlugin:
    return APIEnablementPlugin()
