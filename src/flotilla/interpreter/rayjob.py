"""ray.io/v1 RayJob: a head and worker groups from ``spec.rayClusterSpec``; whole to one cluster, a gang.

A worker group runs ``max(replicas, minReplicas)`` (capped at ``maxReplicas``) replicas of
``numOfHosts`` pods each (0 when the group is suspended). The ``submitter`` component is listed only
when ``submitterPodTemplate`` is given (KubeRay's default submitter pod is not modelled). A RayJob
that targets an existing cluster (``clusterSelector``) has no cluster components. ray.io/v1alpha1
has the same layout for these fields and is accepted too.
"""

from __future__ import annotations

from flotilla.interpreter.base import BaseInterpreter, Component, Health, Obj, component_from_template

__all__ = ["RayJobInterpreter"]

_FAILED = frozenset({"Failed", "ValidationFailed"})
_RUNNING = frozenset({"Running", "Complete"})


class RayJobInterpreter(BaseInterpreter):
    """RayJob (ray.io/v1)."""

    group = "ray.io"
    kind = "RayJob"
    versions = frozenset({"v1", "v1alpha1"})
    suspend_path = ".spec.suspend"
    status_fields = (
        "jobStatus",
        "jobDeploymentStatus",
        "jobId",
        "reason",
        "message",
        "startTime",
        "endTime",
        "succeeded",
        "failed",
        "rayClusterName",
        "dashboardURL",
    )

    def components(self, obj: Obj) -> list[Component]:
        """``head`` (1 pod), one component per worker group (named after it), optional ``submitter``."""
        spec = obj.get("spec") or {}
        cluster = spec.get("rayClusterSpec") or {}
        out = []
        if cluster.get("headGroupSpec"):
            out.append(component_from_template("head", 1, cluster["headGroupSpec"].get("template")))
        for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
            name = group.get("groupName") or f"worker-{i}"
            out.append(component_from_template(name, _group_pods(group), group.get("template")))
        if spec.get("submitterPodTemplate") and spec.get("submissionMode", "K8sJobMode") == "K8sJobMode":
            out.append(component_from_template("submitter", 1, spec["submitterPodTemplate"]))
        return out

    def health(self, member_obj: Obj) -> Health:
        """From ``jobDeploymentStatus`` and, once complete, ``jobStatus``."""
        status = member_obj.get("status")
        if not status or not status.get("jobDeploymentStatus"):
            return Health.UNKNOWN
        deployment = status["jobDeploymentStatus"]
        if deployment in _FAILED or status.get("jobStatus") in ("FAILED", "STOPPED"):
            return Health.UNHEALTHY
        if deployment in _RUNNING:
            return Health.HEALTHY
        return Health.PROGRESSING


def _group_pods(group: Obj) -> int:
    if group.get("suspend"):
        return 0
    replicas = max(int(group.get("replicas") or 0), int(group.get("minReplicas") or 0))
    if group.get("maxReplicas") is not None:
        replicas = min(replicas, int(group["maxReplicas"]))
    return replicas * int(group.get("numOfHosts") or 1)
