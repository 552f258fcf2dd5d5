"""batch/v1 Job.

Division: a ``NonIndexed`` Job is divisible on its effective parallelism
``min(parallelism, completions)`` (parallelism defaults to 1; a work-queue Job without
``completions`` uses ``parallelism``). Revising to ``n`` sets ``parallelism = n`` and gives the
member its proportional share of ``completions``: ``revise_replicas`` alone rounds the share *up*
(the fleet never does less work than asked, at most one extra completion per cluster), and
``divide`` splits ``completions`` exactly by largest remainder (ties by cluster name). An ``Indexed``
Job is not divisible (indices would repeat in every cluster): ``replicas`` is None and it goes whole.

A Job is no gang (its pods are independent); use an explicit PodGroup for gang semantics.

Hub-generated fields: the API server adds ``spec.selector`` and the ``controller-uid`` template
labels (with the *hub's* uid) unless ``manualSelector`` is set; the member's API server rejects
them, so ``strip_for_member`` removes them and ``retain`` keeps the member's own, together with
``completions`` (immutable once created).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from flotilla.interpreter import status as st
from flotilla.interpreter.base import BaseInterpreter, Component, Health, Obj, component_from_template

__all__ = ["JobInterpreter", "job_pods", "split_proportionally"]

_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
_JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
_COUNTS = ("active", "succeeded", "failed", "ready", "terminating")


def job_pods(job_spec: Obj) -> int:
    """Pods a Job runs at once: ``min(parallelism, completions)``, parallelism defaulting to 1."""
    parallelism = job_spec.get("parallelism")
    parallelism = 1 if parallelism is None else int(parallelism)
    completions = job_spec.get("completions")
    return parallelism if completions is None else min(parallelism, int(completions))


def split_proportionally(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` exactly (largest remainder, ties by key)."""
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        return dict.fromkeys(weights, 0)
    shares = {key: total * w // weight_sum for key, w in weights.items()}
    remainders = sorted(weights, key=lambda key: (-(total * weights[key] % weight_sum), key))
    for key in remainders[: total - sum(shares.values())]:
        shares[key] += 1
    return shares


class JobInterpreter(BaseInterpreter):
    """Job (batch/v1)."""

    group = "batch"
    kind = "Job"
    versions = frozenset({"v1"})
    divisible = True
    suspend_path = ".spec.suspend"
    status_fields = (
        "active",
        "succeeded",
        "failed",
        "ready",
        "terminating",
        "startTime",
        "completionTime",
        "conditions",
    )

    def components(self, obj: Obj) -> list[Component]:
        """One component ``main``: the pods the Job runs at once."""
        spec = obj.get("spec") or {}
        per_replica = 1 if self.replicas(obj) is not None else 0
        return [
            component_from_template("main", job_pods(spec), spec.get("template"), per_replica=per_replica)
        ]

    def replicas(self, obj: Obj) -> int | None:
        """Effective parallelism of a NonIndexed Job; None for an Indexed one."""
        spec = obj.get("spec") or {}
        if spec.get("completionMode") == "Indexed":
            return None
        return job_pods(spec)

    def revise_replicas(self, obj: Obj, replicas: int) -> dict[str, Any]:
        """Set parallelism to ``replicas`` and completions to the member's share, rounded up."""
        total = self._require_divisible(obj)
        completions = (obj.get("spec") or {}).get("completions")
        if completions is None:
            return self._revised(obj, replicas, None)
        share = math.ceil(int(completions) * replicas / total) if total else 0
        return self._revised(obj, replicas, share)

    def divide(self, obj: Obj, assignment: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """Revise every member at once so that their completions add up to the template's exactly."""
        self._require_divisible(obj)
        completions = (obj.get("spec") or {}).get("completions")
        if completions is None:
            return {cluster: self._revised(obj, n, None) for cluster, n in assignment.items()}
        shares = split_proportionally(int(completions), assignment)
        return {cluster: self._revised(obj, n, shares[cluster]) for cluster, n in assignment.items()}

    def _require_divisible(self, obj: Obj) -> int:
        total = self.replicas(obj)
        if total is None:
            raise ValueError("an Indexed Job is not divisible")
        return total

    @staticmethod
    def _revised(obj: Obj, parallelism: int, completions: int | None) -> dict[str, Any]:
        if parallelism < 0:
            raise ValueError(f"replicas must be >= 0, got {parallelism}")
        out = copy.deepcopy(dict(obj))
        spec = out.setdefault("spec", {})
        spec["parallelism"] = parallelism
        if completions is not None:
            spec["completions"] = completions
        return out

    def strip_for_member(self, obj: Obj) -> dict[str, Any]:
        """Drop the hub-generated selector and controller-uid labels (unless ``manualSelector``)."""
        out = copy.deepcopy(dict(obj))
        spec = out.get("spec") or {}
        if spec.get("manualSelector"):
            return out
        selector = spec.get("selector")
        if isinstance(selector, dict):
            match_labels = selector.get("matchLabels") or {}
            for label in _UID_LABELS:
                match_labels.pop(label, None)
            if not match_labels:
                selector.pop("matchLabels", None)
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                spec.pop("selector")
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        # The API server copies template labels to a Job created without labels of its own.
        for labels in (template_labels, (out.get("metadata") or {}).get("labels")):
            if isinstance(labels, dict):
                for label in _UID_LABELS:
                    labels.pop(label, None)
        return out

    def retain(self, desired: Obj, observed: Obj) -> dict[str, Any]:
        """Keep the member's selector, its controller-uid/job-name template labels and its completions."""
        out = super().retain(desired, observed)
        observed_spec = observed.get("spec") or {}
        spec = out.setdefault("spec", {})
        if "selector" in observed_spec:
            spec["selector"] = copy.deepcopy(observed_spec["selector"])
        observed_labels = ((observed_spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        kept = {k: v for k, v in observed_labels.items() if k in _UID_LABELS + _JOB_NAME_LABELS}
        if kept:
            metadata = spec.setdefault("template", {}).setdefault("metadata", {})
            metadata.setdefault("labels", {}).update(kept)
        if observed_spec.get("completionMode") != "Indexed" and "completions" in observed_spec:
            spec["completions"] = observed_spec["completions"]
        return out

    def aggregate_status(self, per_cluster: Mapping[str, Obj]) -> dict[str, Any]:
        """Counts summed; earliest start; ``Complete`` once every member completed, and ``Failed`` once
        every member finished and at least one failed (then ``completionTime`` is not set)."""
        out: dict[str, Any] = dict(st.sum_fields(per_cluster, _COUNTS))
        starts = [str(s["startTime"]) for s in per_cluster.values() if s.get("startTime")]
        if starts:
            out["startTime"] = min(starts)
        if not per_cluster:
            return out
        complete = {c: st.condition_true(s, "Complete") for c, s in per_cluster.items()}
        failed = {c: st.condition_true(s, "Failed") for c, s in per_cluster.items()}
        if all(complete.values()):
            # The Job API (1.31+) accepts Complete only after SuccessCriteriaMet (members report both).
            out["conditions"] = st.aggregate_conditions(per_cluster, ["SuccessCriteriaMet", "Complete"])
            ends = [str(s["completionTime"]) for s in per_cluster.values() if s.get("completionTime")]
            if ends:
                out["completionTime"] = max(ends)
        elif all(complete[c] or failed[c] for c in per_cluster) and any(failed.values()):
            failures = {c: s for c, s in per_cluster.items() if failed[c]}
            # ... and Failed only after FailureTarget.
            conds = st.aggregate_conditions(failures, ["FailureTarget", "Failed"])
            cond = conds[-1]
            cond["message"] = "failed in " + ", ".join(sorted(failures)) + _messages(failures, "Failed")
            out["conditions"] = conds
        return out

    def health(self, member_obj: Obj) -> Health:
        """Unhealthy once Failed; Healthy once Complete or started; Progressing before it starts."""
        status = member_obj.get("status")
        if st.condition_true(status, "Failed"):
            return Health.UNHEALTHY
        if st.condition_true(status, "Complete"):
            return Health.HEALTHY
        if status is None:
            return Health.UNKNOWN
        if status.get("startTime") or status.get("active") or status.get("succeeded"):
            return Health.HEALTHY
        return Health.PROGRESSING


def _messages(per_cluster: Mapping[str, Obj], type_: str) -> str:
    parts = []
    for cluster in sorted(per_cluster):
        cond = st.condition(per_cluster[cluster], type_) or {}
        if cond.get("reason") or cond.get("message"):
            parts.append(f"{cluster}: {cond.get('reason', '')} {cond.get('message', '')}".rstrip())
    return (": " + "; ".join(parts)) if parts else ""
