"""ClusterLocality: prefer clusters where the workload already runs (stickiness)."""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.scheduler.framework import MAX_SCORE, MIN_SCORE, SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo
from flotilla.scheduler.workload import Workload

NAME = "ClusterLocality"


class ClusterLocalityPlugin:
    name = NAME

    def pre_score(self, state: CycleState, workload: Workload, clusters: Sequence[ClusterInfo]) -> Status:
        return SUCCESS if workload.current else SKIP

    def score(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> float:
        return MAX_SCORE if workload.current.get(cluster.name, 0) > 0 else MIN_SCORE


def new() -> ClusterLocalityPlugin:
    return ClusterLocalityPlugin()
