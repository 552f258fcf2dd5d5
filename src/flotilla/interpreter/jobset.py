"""jobset.x-k8s.io/v1alpha2 JobSet: one component per replicated job; whole to one cluster, a gang."""

from __future__ import annotations

from flotilla.interpreter import status as st
from flotilla.interpreter.base import BaseInterpreter, Component, Health, Obj, component_from_template
from flotilla.interpreter.job import job_pods

__all__ = ["JobSetInterpreter"]


class JobSetInterpreter(BaseInterpreter):
    """JobSet (jobset.x-k8s.io/v1alpha2)."""

    group = "jobset.x-k8s.io"
    kind = "JobSet"
    versions = frozenset({"v1alpha2"})
    suspend_path = ".spec.suspend"
    status_fields = (
        "conditions",
        "replicatedJobsStatus",
        "restarts",
        "restartsCountTowardsMax",
        "terminalState",
    )

    def components(self, obj: Obj) -> list[Component]:
        """Per replicated job: ``replicas`` Jobs (default 1) times the pods each Job runs at once."""
        out = []
        for rjob in (obj.get("spec") or {}).get("replicatedJobs") or []:
            job_template = rjob.get("template") or {}
            job_spec = job_template.get("spec") or {}
            jobs = 1 if rjob.get("replicas") is None else int(rjob["replicas"])
            out.append(
                component_from_template(rjob["name"], jobs * job_pods(job_spec), job_spec.get("template"))
            )
        return out

    def health(self, member_obj: Obj) -> Health:
        """From the JobSet conditions: Failed, Completed, Suspended; running otherwise."""
        status = member_obj.get("status")
        if status is None:
            return Health.UNKNOWN
        if st.condition_true(status, "Failed") or status.get("terminalState") == "Failed":
            return Health.UNHEALTHY
        if st.condition_true(status, "Completed") or status.get("terminalState") == "Completed":
            return Health.HEALTHY
        if st.condition_true(status, "Suspended"):
            return Health.PROGRESSING
        jobs = status.get("replicatedJobsStatus") or []
        if any(j.get("active") or j.get("ready") or j.get("succeeded") for j in jobs):
            return Health.HEALTHY
        return Health.PROGRESSING
