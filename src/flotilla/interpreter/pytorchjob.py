"""kubeflow.org/v1 PyTorchJob: Master/Worker replica specs; whole to one cluster, a gang."""

from __future__ import annotations

from flotilla.interpreter import status as st
from flotilla.interpreter.base import BaseInterpreter, Component, Health, Obj, component_from_template

__all__ = ["PyTorchJobInterpreter"]

_ORDER = {"Master": 0, "Worker": 1}


class PyTorchJobInterpreter(BaseInterpreter):
    """PyTorchJob (kubeflow.org/v1). Components are named after the replica type, lower-cased."""

    group = "kubeflow.org"
    kind = "PyTorchJob"
    versions = frozenset({"v1"})
    suspend_path = ".spec.runPolicy.suspend"
    status_fields = ("conditions", "replicaStatuses", "startTime", "completionTime", "lastReconcileTime")

    def components(self, obj: Obj) -> list[Component]:
        """``master``, ``worker``, then any other replica type by name; replicas default to 1."""
        specs = (obj.get("spec") or {}).get("pytorchReplicaSpecs") or {}
        out = []
        for role in sorted(specs, key=lambda r: (_ORDER.get(r, len(_ORDER)), r)):
            spec = specs[role] or {}
            replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
            out.append(component_from_template(role.lower(), replicas, spec.get("template")))
        return out

    def implicit_gang(self, obj: Obj) -> int | None:
        """``runPolicy.schedulingPolicy.minAvailable`` when set, else every replica."""
        policy = ((obj.get("spec") or {}).get("runPolicy") or {}).get("schedulingPolicy") or {}
        if policy.get("minAvailable"):
            return int(policy["minAvailable"])
        return super().implicit_gang(obj)

    def health(self, member_obj: Obj) -> Health:
        """From the training-operator conditions (Running, Restarting, Succeeded, Failed, Suspended)."""
        status = member_obj.get("status")
        if not (status or {}).get("conditions"):
            return Health.UNKNOWN
        if st.condition_true(status, "Failed"):
            return Health.UNHEALTHY
        if st.condition_true(status, "Succeeded"):
            return Health.HEALTHY
        if st.condition_true(status, "Restarting") or st.condition_true(status, "Suspended"):
            return Health.PROGRESSING
        if st.condition_true(status, "Running"):
            return Health.HEALTHY
        return Health.PROGRESSING
