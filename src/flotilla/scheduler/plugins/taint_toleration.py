"""TaintToleration: cluster taints vs ``placement.clusterTolerations``.

NoSchedule taints keep new workloads away but (as in Karmada) not one already running there;
NoExecute taints filter every workload that does not tolerate them.
"""

from __future__ import annotations

from flotilla.scheduler.framework import SKIP, SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot, untolerated
from flotilla.scheduler.workload import Workload

NAME = "TaintToleration"
_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_EXECUTE = frozenset({"NoExecute"})
_TAINTED = (NAME, "any tainted")


class TaintTolerationPlugin:
    name = NAME

    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        tainted = snapshot.static(_TAINTED, lambda: any(c.taints for c in snapshot.clusters.values()))
        return SUCCESS if tainted else SKIP

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        if not cluster.taints:
            return SUCCESS
        effects = _EXECUTE if workload.current.get(cluster.name, 0) > 0 else _EFFECTS
        bad = untolerated(cluster.taints, workload.placement.cluster_tolerations, effects)
        if not bad:
            return SUCCESS
        return Status.unschedulable(f"cluster(s) had untolerated taint {{{bad[0]}}}")


def new() -> TaintTolerationPlugin:
    return TaintTolerationPlugin()
