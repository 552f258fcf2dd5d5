"""leaderworkerset.x-k8s.io/v1 LeaderWorkerSet: ``replicas`` groups of ``size`` pods (a leader and workers).

Divisible in units of whole groups (``spec.replicas``), so every group lands in one cluster by
construction and the kind needs no implicit gang. Without a ``leaderTemplate`` the leader uses the
worker template, as the LWS controller does.
"""

from __future__ import annotations

from flotilla.interpreter.base import Component, Health, Obj, component_from_template, generation_lags
from flotilla.interpreter.replicated import ReplicatedPodInterpreter

__all__ = ["LeaderWorkerSetInterpreter"]


class LeaderWorkerSetInterpreter(ReplicatedPodInterpreter):
    """LeaderWorkerSet (leaderworkerset.x-k8s.io/v1)."""

    group = "leaderworkerset.x-k8s.io"
    kind = "LeaderWorkerSet"
    versions = frozenset({"v1"})
    status_fields = ("replicas", "readyReplicas", "updatedReplicas", "observedGeneration", "conditions")
    summed_fields = ("replicas", "readyReplicas", "updatedReplicas")
    condition_types = ("Available", "Progressing", "UpdateInProgress")

    def components(self, obj: Obj) -> list[Component]:
        """``leader`` x groups and ``worker`` x groups*(size-1) (no worker component when size is 1)."""
        groups = self.replicas(obj) or 0
        template = (obj.get("spec") or {}).get("leaderWorkerTemplate") or {}
        size = 1 if template.get("size") is None else int(template["size"])
        worker = template.get("workerTemplate")
        leader = template.get("leaderTemplate") or worker
        out = [component_from_template("leader", groups, leader, per_replica=1)]
        if size > 1:
            out.append(component_from_template("worker", groups * (size - 1), worker, per_replica=size - 1))
        return out

    def health(self, member_obj: Obj) -> Health:
        """Healthy when every desired group is ready and updated to the latest generation."""
        status = member_obj.get("status")
        if not status:
            return Health.UNKNOWN
        if generation_lags(member_obj):
            return Health.PROGRESSING
        desired = self.replicas(member_obj) or 0
        if status.get("readyReplicas", 0) >= desired and status.get("updatedReplicas", 0) >= desired:
            return Health.HEALTHY
        return Health.PROGRESSING
