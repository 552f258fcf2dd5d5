"""Quota arithmetic: usage of workloads, the admission check and its message, recomputed status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flotilla.interpreter import InterpreterRegistry
from flotilla.quota import (
    Charge,
    Quota,
    binding_cluster_usage,
    check,
    compute_status,
    effective_usage,
    finished,
    increase_of,
    workload_usage,
)
from flotilla.quota.ledger import charged

REGISTRY = InterpreterRegistry()
GPU = "nvidia.com/gpu"
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def pod(gpus: int, cpu: str = "4") -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu, GPU: str(gpus)}}}
            ]
        }
    }


def deployment(replicas: int, gpus: int = 8) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}}, "template": pod(gpus)},
    }


def pytorchjob() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train", "namespace": "team-a"},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "template": pod(8)},
                "Worker": {"replicas": 3, "template": pod(8)},
            }
        },
    }


def quota(
    hard: dict[str, Any], status: dict[str, Any] | None = None, static: list[Any] | None = None
) -> Quota:
    spec: dict[str, Any] = {"overall": hard}
    if static:
        spec["staticAssignments"] = static
    body = {"metadata": {"name": "gpus", "namespace": "team-a", "generation": 1}, "spec": spec}
    if status is not None:
        body["status"] = status
    return Quota.from_body(body)


def test_usage_counts_every_role_and_pods() -> None:
    interp = REGISTRY.get("kubeflow.org/v1", "PyTorchJob")
    assert interp is not None
    assert workload_usage(interp, pytorchjob()) == {GPU: 32, "cpu": 16_000, "pods": 4}


def test_finished_and_scaled_to_zero_use_nothing() -> None:
    interp = REGISTRY.get("batch/v1", "Job")
    assert interp is not None
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "team-a"},
        "spec": {"parallelism": 2, "completions": 2, "template": pod(1)},
    }
    assert workload_usage(interp, job)[GPU] == 2
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    assert finished(job) and workload_usage(interp, job) == {}
    dep = REGISTRY.get("apps/v1", "Deployment")
    assert dep is not None and workload_usage(dep, deployment(0)) == {}
    assert finished({"status": {"jobDeploymentStatus": "Complete"}})  # RayJob
    assert not finished({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})


def test_denial_names_quota_resource_asked_used_and_left() -> None:
    q = quota({GPU: 64}, {"observedGeneration": 1, "overallUsed": {GPU: "56"}})
    verdict = check(q, {GPU: 16, "cpu": 4000}, q.used or {})
    assert not verdict.allowed
    assert (
        verdict.message
        == "FederatedResourceQuota team-a/gpus: requested nvidia.com/gpu=16, used 56 of 64, 8 left"
    )
    assert check(q, {GPU: 8}, q.used or {}).allowed
    assert check(q, {"cpu": 10**9}, q.used or {}).increase == {}  # cpu is not limited by this quota


def test_requests_prefix_and_cpu_units() -> None:
    q = quota({"requests.cpu": "10", "requests.nvidia.com/gpu": 4})
    verdict = check(q, {"cpu": 12_000, GPU: 1}, {})
    assert not verdict.allowed and "requested requests.cpu=12, used 0 of 10, 10 left" in verdict.message
    assert q.restrict({"cpu": 500, GPU: 1}) == {"requests.cpu": 500, "requests.nvidia.com/gpu": 1}


def test_increase_only_counts_what_grows() -> None:
    assert increase_of({GPU: 16, "cpu": 1000}, {GPU: 8, "cpu": 2000}) == {GPU: 8}
    assert increase_of({GPU: 8}, {GPU: 16}) == {}


def test_charge_counts_until_shown_or_expired() -> None:
    charge = Charge("apps/v1/Deployment/web", {GPU: 16}, {GPU: 8}, NOW + dt.timedelta(seconds=30))
    q = quota({GPU: 64}, {"charges": [charge.to_dict()]})
    assert effective_usage(q, {}, NOW) == ({GPU: 16}, (charge,))  # not seen yet
    seen_old = {"apps/v1/Deployment/web": {GPU: 8}}
    assert effective_usage(q, seen_old, NOW)[0] == {GPU: 16}  # still at its old size: the charge counts
    seen_new = {"apps/v1/Deployment/web": {GPU: 16}}
    assert effective_usage(q, seen_new, NOW) == ({GPU: 16}, ())  # shown: the workload counts itself
    assert effective_usage(q, seen_old, NOW + dt.timedelta(seconds=31)) == ({GPU: 8}, ())  # expired


def test_charged_status_adds_the_increase_and_the_charge() -> None:
    q = quota({GPU: 64}, {"observedGeneration": 1, "overallUsed": {GPU: "8"}})
    charge = Charge("apps/v1/Deployment/web", {GPU: 8}, {GPU: 8}, NOW)
    status = charged({"overallUsed": {GPU: "8"}}, q, charge, q.used or {})
    assert status["overallUsed"] == {GPU: "16"}
    assert Charge.from_dict(status["charges"][0]) == charge


def test_status_over_quota_after_lowering_keeps_conditions_honest() -> None:
    q = quota({GPU: 16}, {}, static=[{"clusterName": "b", "hard": {GPU: 8}}])
    observed = {"apps/v1/Deployment/a": {GPU: 24, "cpu": 1}}
    status = compute_status(q, {}, observed, {"a": {GPU: 24}}, NOW)
    assert status["overallUsed"] == {GPU: "24"}
    exceeded = next(c for c in status["conditions"] if c["type"] == "Exceeded")
    assert exceeded["status"] == "True" and "used 24 of 16" in exceeded["message"]
    assert status["aggregatedStatus"] == [
        {"clusterName": "a", "used": {GPU: "24"}},
        {"clusterName": "b", "hard": {GPU: "8"}, "used": {}},
    ]
    again = compute_status(q, status, {}, {}, NOW + dt.timedelta(hours=1))
    exceeded2 = next(c for c in again["conditions"] if c["type"] == "Exceeded")
    assert exceeded2["status"] == "False"
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert (
        ready["lastTransitionTime"]
        == next(c for c in status["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
    )


def test_binding_usage_per_cluster_divided_and_duplicated() -> None:
    comps = [
        {"name": "web", "replicas": 4, "replicaRequirements": {"resourceRequest": {GPU: "2", "cpu": "1"}}}
    ]
    divided = {
        "spec": {
            "replicas": 4,
            "components": comps,
            "clusters": [{"name": "a", "replicas": 3}, {"name": "b", "replicas": 1}],
        }
    }
    assert binding_cluster_usage(divided) == {
        "a": {GPU: 6, "cpu": 3000, "pods": 3},
        "b": {GPU: 2, "cpu": 1000, "pods": 1},
    }
    duplicated = {"spec": {"components": comps, "clusters": [{"name": "a"}, {"name": "b"}]}}
    assert binding_cluster_usage(duplicated)["b"] == {GPU: 8, "cpu": 4000, "pods": 4}
    assert binding_cluster_usage({"spec": {"components": comps}}) == {}
