"""SpreadConstraint: a cluster must carry every field/label the placement spreads by.

Choosing the groups (min/maxGroups) happens after scoring, in :mod:`flotilla.scheduler.spread`.
"""

from __future__ import annotations

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

NAME = "SpreadConstraint"


class SpreadConstraintPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        return SUCCESS if workload.placement.spread_constraints else SKIP

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        for constraint in workload.placement.spread_constraints:
            if not constraint.group_of(cluster):
                by = constraint.spread_by_field or f"label {constraint.spread_by_label}"
                return Status.unschedulable(f"cluster(s) did not have the spread {by} set", resolvable=False)
        return SUCCESS


def new() -> SpreadConstraintPlugin:
    return SpreadConstraintPlugin()
