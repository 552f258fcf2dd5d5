"""apps/v1 Deployment: divisible on ``spec.replicas``; counts summed across clusters."""

from __future__ import annotations

from flotilla.interpreter import status as st
from flotilla.interpreter.base import Health, Obj, generation_lags
from flotilla.interpreter.replicated import ReplicatedPodInterpreter

__all__ = ["DeploymentInterpreter"]


class DeploymentInterpreter(ReplicatedPodInterpreter):
    """Deployment (apps/v1)."""

    group = "apps"
    kind = "Deployment"
    versions = frozenset({"v1"})
    status_fields = (
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "updatedReplicas",
        "unavailableReplicas",
        "observedGeneration",
        "conditions",
    )
    summed_fields = (
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "updatedReplicas",
        "unavailableReplicas",
    )
    condition_types = ("Available", "Progressing", "ReplicaFailure")

    def health(self, member_obj: Obj) -> Health:
        """Healthy when the latest generation is rolled out and every desired replica is available.

        Unhealthy when the rollout exceeded its progress deadline or a ReplicaSet failed to create
        pods (``ReplicaFailure``); Unknown before the controller wrote any status.
        """
        status = member_obj.get("status")
        if not status:
            return Health.UNKNOWN
        if generation_lags(member_obj):
            return Health.PROGRESSING
        progressing = st.condition(status, "Progressing")
        if progressing and progressing.get("status") == "False":
            return Health.UNHEALTHY
        if st.condition_true(status, "ReplicaFailure"):
            return Health.UNHEALTHY
        desired = self.replicas(member_obj) or 0
        updated = status.get("updatedReplicas", 0)
        available = status.get("availableReplicas", 0)
        total = status.get("replicas", 0)
        if updated >= desired and available >= desired and total <= updated:
            return Health.HEALTHY
        return Health.PROGRESSING
