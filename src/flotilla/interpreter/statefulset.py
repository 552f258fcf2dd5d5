"""apps/v1 StatefulSet: divisible on ``spec.replicas`` (ordinals restart at 0 in every member)."""

from __future__ import annotations

from flotilla.interpreter.base import Health, Obj, generation_lags
from flotilla.interpreter.replicated import ReplicatedPodInterpreter

__all__ = ["StatefulSetInterpreter"]


class StatefulSetInterpreter(ReplicatedPodInterpreter):
    """StatefulSet (apps/v1)."""

    group = "apps"
    kind = "StatefulSet"
    versions = frozenset({"v1"})
    status_fields = (
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "currentReplicas",
        "updatedReplicas",
        "currentRevision",
        "updateRevision",
        "observedGeneration",
        "conditions",
    )
    summed_fields = ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas")
    condition_types = None

    def health(self, member_obj: Obj) -> Health:
        """Healthy when the latest generation is observed and every desired replica is ready and updated."""
        status = member_obj.get("status")
        if not status:
            return Health.UNKNOWN
        if generation_lags(member_obj):
            return Health.PROGRESSING
        desired = self.replicas(member_obj) or 0
        ready = status.get("readyReplicas", 0)
        rolled_out = status.get("updatedReplicas", 0) >= desired or (
            status.get("updateRevision") is not None
            and status.get("currentRevision") == status.get("updateRevision")
        )
        if ready >= desired and rolled_out:
            return Health.HEALTHY
        return Health.PROGRESSING
