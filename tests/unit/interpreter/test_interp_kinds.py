"""Per-kind behaviour on realistic manifests: components, revise, retain, status, health, hold-back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import merge_patch

from flotilla.interpreter import (
    ANNOTATION_RETAIN_REPLICAS,
    ANNOTATION_USER_SUSPENDED,
    BUILTIN_INTERPRETERS,
    DeploymentInterpreter,
    Health,
    InferenceServiceInterpreter,
    Interpreter,
    InterpreterRegistry,
    JobInterpreter,
    JobSetInterpreter,
    LeaderWorkerSetInterpreter,
    PyTorchJobInterpreter,
    RayJobInterpreter,
    StatefulSetInterpreter,
    total_requests,
)
from flotilla.interpreter.job import split_proportionally

Manifest = Callable[[str], dict[str, Any]]
GiB = 1024**3


def test_builtins_satisfy_the_interface() -> None:
    for cls in BUILTIN_INTERPRETERS:
        assert isinstance(cls(), Interpreter)


# -- components ------------------------------------------------------------------------------


def test_pytorchjob_master_and_three_workers(manifest: Manifest) -> None:
    obj = manifest("pytorchjob")
    interp = PyTorchJobInterpreter()
    master, worker = interp.components(obj)
    assert (master.name, master.replicas) == ("master", 1)
    assert (worker.name, worker.replicas) == ("worker", 3)
    for comp in (master, worker):
        assert comp.requests == {"cpu": 64_000, "memory": 900 * GiB, "nvidia.com/gpu": 8}
        assert comp.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert comp.pod_template["spec"]["containers"][0]["name"] == "pytorch"
    assert interp.divisible is False
    assert interp.replicas(obj) is None
    assert interp.implicit_gang(obj) == 4
    assert total_requests(interp.components(obj))["nvidia.com/gpu"] == 32


def test_pytorchjob_min_available_sets_the_gang(manifest: Manifest) -> None:
    obj = manifest("pytorchjob")
    obj["spec"]["runPolicy"]["schedulingPolicy"] = {"minAvailable": 2}
    assert PyTorchJobInterpreter().implicit_gang(obj) == 2


def test_fractional_gpu_passes_through(manifest: Manifest) -> None:
    (comp,) = StatefulSetInterpreter().components(manifest("statefulset"))
    assert comp.requests["flotilla.dev/gpu-milli"] == 250
    assert "nvidia.com/gpu" not in comp.requests


def test_lws_groups_are_the_divisible_unit(manifest: Manifest) -> None:
    obj = manifest("leaderworkerset")
    interp = LeaderWorkerSetInterpreter()
    leader, worker = interp.components(obj)
    assert (leader.replicas, leader.per_replica, worker.replicas, worker.per_replica) == (3, 1, 9, 3)
    revised = interp.revise_replicas(obj, 1)
    assert [c.replicas for c in interp.components(revised)] == [1, 3]


def test_lws_without_leader_template_uses_worker_template(manifest: Manifest) -> None:
    obj = manifest("leaderworkerset")
    del obj["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    leader, worker = LeaderWorkerSetInterpreter().components(obj)
    assert leader.requests == worker.requests


def test_rayjob_groups_clamp_and_multiply_hosts(manifest: Manifest) -> None:
    obj = manifest("rayjob")
    interp = RayJobInterpreter()
    assert [(c.name, c.replicas) for c in interp.components(obj)] == [("head", 1), ("gpu", 4), ("cpu", 3)]
    obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][1]["suspend"] = True
    obj["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = 9
    assert [c.replicas for c in interp.components(obj)] == [1, 8, 0]
    assert interp.implicit_gang(obj) == 9


def test_inferenceservice_model_container_and_revise(manifest: Manifest) -> None:
    obj = manifest("inferenceservice")
    interp = InferenceServiceInterpreter()
    predictor, transformer = interp.components(obj)
    assert predictor.requests == {"cpu": 6000, "memory": 24 * GiB, "nvidia.com/gpu": 1}
    assert predictor.pod_template["spec"]["containers"][0]["name"] == "kserve-container"
    assert "storageUri" not in predictor.pod_template["spec"]["containers"][0]
    assert (transformer.replicas, transformer.per_replica) == (1, 0)
    revised = interp.revise_replicas(obj, 1)
    assert revised["spec"]["predictor"]["minReplicas"] == 1
    assert revised["spec"]["predictor"]["maxReplicas"] == 3
    assert revised["spec"]["transformer"] == obj["spec"]["transformer"]
    obj["spec"]["predictor"]["minReplicas"] = 0
    assert interp.replicas(obj) is None
    with pytest.raises(ValueError, match="scales to zero"):
        interp.revise_replicas(obj, 1)


def test_inferenceservice_multinode_workers() -> None:
    obj = {
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "model": {"resources": {"limits": {"nvidia.com/gpu": "8"}}},
                "workerSpec": {
                    "pipelineParallelSize": 3,
                    "containers": [{"name": "worker", "resources": {"limits": {"nvidia.com/gpu": "8"}}}],
                },
            }
        }
    }
    _predictor, worker = InferenceServiceInterpreter().components(obj)
    assert (worker.name, worker.replicas, worker.per_replica) == ("predictor-worker", 4, 2)
    assert worker.requests == {"nvidia.com/gpu": 8}


# -- revise ----------------------------------------------------------------------------------


def test_deployment_of_nine_revised_to_three(manifest: Manifest) -> None:
    obj = manifest("deployment")
    interp = DeploymentInterpreter()
    revised = interp.revise_replicas(obj, 3)
    assert revised["spec"]["replicas"] == 3
    assert obj["spec"]["replicas"] == 9, "the input must not be mutated"
    assert interp.replicas(revised) == 3
    assert interp.components(revised)[0].replicas == 3
    revised["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] != "changed", "deep copy"


def test_deployment_without_replicas_defaults_to_one(manifest: Manifest) -> None:
    obj = manifest("deployment")
    del obj["spec"]["replicas"]
    assert DeploymentInterpreter().replicas(obj) == 1


def test_job_revise_is_proportional_and_rounds_up(manifest: Manifest) -> None:
    obj = manifest("job")  # parallelism 4, completions 10
    interp = JobInterpreter()
    three, one = interp.revise_replicas(obj, 3), interp.revise_replicas(obj, 1)
    assert (three["spec"]["parallelism"], three["spec"]["completions"]) == (3, 8)  # ceil(7.5)
    assert (one["spec"]["parallelism"], one["spec"]["completions"]) == (1, 3)  # ceil(2.5)


def test_job_divide_splits_completions_exactly(manifest: Manifest) -> None:
    obj = manifest("job")
    out = JobInterpreter().divide(obj, {"b": 1, "a": 3})
    assert {c: (o["spec"]["parallelism"], o["spec"]["completions"]) for c, o in out.items()} == {
        "a": (3, 8),  # 7.5 and 2.5: the tie goes to the first cluster by name
        "b": (1, 2),
    }
    even = JobInterpreter().divide(obj, {"a": 2, "b": 2})
    assert sorted(o["spec"]["completions"] for o in even.values()) == [5, 5]


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (10, {"a": 3, "b": 1}, {"a": 8, "b": 2}),
        (10, {"a": 1, "b": 1, "c": 1}, {"a": 4, "b": 3, "c": 3}),
        (7, {"a": 0, "b": 2}, {"a": 0, "b": 7}),
        (5, {"a": 0}, {"a": 0}),
    ],
)
def test_split_proportionally(total: int, weights: dict[str, int], expected: dict[str, int]) -> None:
    assert split_proportionally(total, weights) == expected


def test_job_work_queue_and_indexed(manifest: Manifest) -> None:
    obj = manifest("job")
    del obj["spec"]["completions"]
    revised = JobInterpreter().revise_replicas(obj, 2)
    assert revised["spec"]["parallelism"] == 2 and "completions" not in revised["spec"]
    indexed = manifest("job-indexed")
    assert JobInterpreter().replicas(indexed) is None
    with pytest.raises(ValueError, match="Indexed"):
        JobInterpreter().revise_replicas(indexed, 4)


def test_parallelism_above_completions_counts_completions(manifest: Manifest) -> None:
    obj = manifest("job")
    obj["spec"]["parallelism"], obj["spec"]["completions"] = 10, 4
    assert JobInterpreter().replicas(obj) == 4
    assert JobInterpreter().components(obj)[0].replicas == 4


@pytest.mark.parametrize("cls", [PyTorchJobInterpreter, JobSetInterpreter, RayJobInterpreter])
def test_whole_kinds_refuse_revise(cls: type[Any], manifest: Manifest) -> None:
    name = {PyTorchJobInterpreter: "pytorchjob", JobSetInterpreter: "jobset", RayJobInterpreter: "rayjob"}[
        cls
    ]
    with pytest.raises(ValueError, match="not divisible"):
        cls().revise_replicas(manifest(name), 1)


# -- retain ----------------------------------------------------------------------------------


def test_job_retain_keeps_member_selector_labels_and_completions(manifest: Manifest) -> None:
    interp = JobInterpreter()
    desired = interp.strip_for_member(interp.revise_replicas(manifest("job"), 2))
    assert "selector" not in desired["spec"]
    assert "controller-uid" not in desired["spec"]["template"]["metadata"]["labels"]
    observed = {
        "spec": {
            "completions": 6,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "member-uid"}},
            "template": {
                "metadata": {
                    "labels": {
                        "batch.kubernetes.io/controller-uid": "member-uid",
                        "controller-uid": "member-uid",
                        "job-name": "eval-sweep",
                        "app": "something-else",
                    }
                }
            },
        }
    }
    retained = interp.retain(desired, observed)
    assert retained["spec"]["selector"] == observed["spec"]["selector"]
    labels = retained["spec"]["template"]["metadata"]["labels"]
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == "member-uid"
    assert "app" not in labels, "only the member-owned labels are retained"
    assert retained["spec"]["completions"] == 6
    assert retained["spec"]["parallelism"] == 2


def test_job_manual_selector_is_kept(manifest: Manifest) -> None:
    obj = manifest("job")
    obj["spec"]["manualSelector"] = True
    assert JobInterpreter().strip_for_member(obj)["spec"]["selector"] == obj["spec"]["selector"]


@pytest.mark.parametrize("annotated", [True, False])
def test_deployment_retains_replicas_only_when_annotated(annotated: bool, manifest: Manifest) -> None:
    desired = DeploymentInterpreter().revise_replicas(manifest("deployment"), 3)
    if annotated:
        desired["metadata"]["annotations"][ANNOTATION_RETAIN_REPLICAS] = "true"
    retained = DeploymentInterpreter().retain(desired, {"spec": {"replicas": 7}})
    assert retained["spec"]["replicas"] == (7 if annotated else 3)


# -- status ----------------------------------------------------------------------------------


def _deployment_status(replicas: int, ready: int, available: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": available, "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        },
    }


def test_deployment_status_sums_and_conditions() -> None:
    interp = DeploymentInterpreter()
    per_cluster = {
        "a": interp.reflect_status(_deployment_status(6, 6)),
        "b": interp.reflect_status(_deployment_status(3, 1, available="False")),
    }
    assert "spec" not in per_cluster["a"] and per_cluster["a"]["observedGeneration"] == 2
    agg = interp.aggregate_status(per_cluster)
    assert (agg["replicas"], agg["readyReplicas"], agg["availableReplicas"], agg["updatedReplicas"]) == (
        9,
        7,
        7,
        9,
    )
    conditions = {c["type"]: c for c in agg["conditions"]}
    assert conditions["Available"]["status"] == "False"
    assert conditions["Available"]["message"].startswith("b: False")
    assert conditions["Progressing"]["status"] == "True"
    assert "observedGeneration" not in agg


def _job_status(**counts: int) -> dict[str, Any]:
    return {
        "active": counts.get("active", 0),
        "succeeded": counts.get("succeeded", 0),
        "failed": counts.get("failed", 0),
    }


def test_job_status_sums_and_completes_only_when_all_complete() -> None:
    interp = JobInterpreter()
    complete = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
    a = {**_job_status(succeeded=7), "conditions": [complete], "startTime": "t1", "completionTime": "t5"}
    b = {**_job_status(active=1, succeeded=2), "startTime": "t0"}
    agg = interp.aggregate_status({"a": a, "b": b})
    assert (agg["active"], agg["succeeded"], agg["failed"]) == (1, 9, 0)
    assert agg["startTime"] == "t0"
    assert "conditions" not in agg and "completionTime" not in agg
    b = {**_job_status(succeeded=3), "conditions": [complete], "startTime": "t0", "completionTime": "t9"}
    agg = interp.aggregate_status({"a": a, "b": b})
    assert agg["conditions"][0]["type"] == "Complete" and agg["conditions"][0]["status"] == "True"
    assert agg["completionTime"] == "t9"


def test_job_status_failed_once_all_finished() -> None:
    interp = JobInterpreter()
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many"}
    a = {**_job_status(failed=4), "conditions": [failed]}
    running = {**_job_status(active=2)}
    assert "conditions" not in interp.aggregate_status({"a": a, "b": running})
    done = {**_job_status(succeeded=5), "conditions": [{"type": "Complete", "status": "True"}]}
    agg = interp.aggregate_status({"a": a, "b": done})
    (cond,) = agg["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Failed", "True", "BackoffLimitExceeded")
    assert "failed in a" in cond["message"] and "too many" in cond["message"]


def test_pytorchjob_status_comes_from_its_one_cluster() -> None:
    interp = PyTorchJobInterpreter()
    member = {
        "status": {
            "conditions": [{"type": "Running", "status": "True"}],
            "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": 3}},
            "startTime": "2026-11-25T10:00:00Z",
        }
    }
    reflected = interp.reflect_status(member)
    assert interp.aggregate_status({"only": reflected}) == member["status"]
    assert interp.aggregate_status({}) == {}


# -- health ----------------------------------------------------------------------------------

HEALTH_CASES: list[tuple[Any, dict[str, Any], Health]] = [
    (DeploymentInterpreter(), {}, Health.UNKNOWN),
    (DeploymentInterpreter(), _deployment_status(3, 3), Health.HEALTHY),
    (DeploymentInterpreter(), _deployment_status(3, 1), Health.PROGRESSING),
    (
        DeploymentInterpreter(),
        {**_deployment_status(3, 3), "metadata": {"generation": 3}},
        Health.PROGRESSING,
    ),
    (
        DeploymentInterpreter(),
        {
            "spec": {"replicas": 3},
            "status": {
                "replicas": 3,
                "conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ],
            },
        },
        Health.UNHEALTHY,
    ),
    (
        StatefulSetInterpreter(),
        {"spec": {"replicas": 2}, "status": {"readyReplicas": 2, "updatedReplicas": 2}},
        Health.HEALTHY,
    ),
    (StatefulSetInterpreter(), {"spec": {"replicas": 2}, "status": {"readyReplicas": 1}}, Health.PROGRESSING),
    (JobInterpreter(), {"spec": {}}, Health.UNKNOWN),
    (JobInterpreter(), {"status": {"startTime": "t", "active": 2}}, Health.HEALTHY),
    (JobInterpreter(), {"status": {}}, Health.PROGRESSING),
    (JobInterpreter(), {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}, Health.UNHEALTHY),
    (JobInterpreter(), {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, Health.HEALTHY),
    (JobSetInterpreter(), {"status": {"terminalState": "Failed"}}, Health.UNHEALTHY),
    (
        JobSetInterpreter(),
        {"status": {"conditions": [{"type": "Suspended", "status": "True"}]}},
        Health.PROGRESSING,
    ),
    (JobSetInterpreter(), {"status": {"replicatedJobsStatus": [{"name": "w", "active": 2}]}}, Health.HEALTHY),
    (PyTorchJobInterpreter(), {"status": {}}, Health.UNKNOWN),
    (
        PyTorchJobInterpreter(),
        {
            "status": {
                "conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}]
            }
        },
        Health.HEALTHY,
    ),
    (
        PyTorchJobInterpreter(),
        {
            "status": {
                "conditions": [{"type": "Running", "status": "False"}, {"type": "Failed", "status": "True"}]
            }
        },
        Health.UNHEALTHY,
    ),
    (
        PyTorchJobInterpreter(),
        {"status": {"conditions": [{"type": "Created", "status": "True"}]}},
        Health.PROGRESSING,
    ),
    (RayJobInterpreter(), {"status": {"jobDeploymentStatus": "Initializing"}}, Health.PROGRESSING),
    (
        RayJobInterpreter(),
        {"status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}},
        Health.HEALTHY,
    ),
    (
        RayJobInterpreter(),
        {"status": {"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}},
        Health.UNHEALTHY,
    ),
    (
        LeaderWorkerSetInterpreter(),
        {"spec": {"replicas": 2}, "status": {"readyReplicas": 2, "updatedReplicas": 2}},
        Health.HEALTHY,
    ),
    (
        LeaderWorkerSetInterpreter(),
        {"spec": {"replicas": 2}, "status": {"readyReplicas": 1}},
        Health.PROGRESSING,
    ),
    (
        InferenceServiceInterpreter(),
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        Health.HEALTHY,
    ),
    (
        InferenceServiceInterpreter(),
        {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        Health.PROGRESSING,
    ),
    (
        InferenceServiceInterpreter(),
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "modelStatus": {"transitionStatus": "BlockedByFailedLoad"},
            }
        },
        Health.UNHEALTHY,
    ),
]


@pytest.mark.parametrize(("interp", "obj", "expected"), HEALTH_CASES)
def test_health(interp: Interpreter, obj: dict[str, Any], expected: Health) -> None:
    assert interp.health(obj) is expected


# -- hold-back -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("job", ("spec", "suspend")),
        ("jobset", ("spec", "suspend")),
        ("pytorchjob", ("spec", "runPolicy", "suspend")),
        ("rayjob", ("spec", "suspend")),
    ],
)
def test_hold_back_round_trip(
    name: str, path: tuple[str, ...], manifest: Manifest, registry: InterpreterRegistry
) -> None:
    obj = manifest(name)
    interp = registry.get(obj["apiVersion"], obj["kind"])
    assert interp is not None
    patch = interp.hold_back_patch(obj)
    assert patch is not None
    held = merge_patch(obj, patch)
    node: Any = held
    for key in path:
        node = node[key]
    assert node is True
    assert held["metadata"]["annotations"][ANNOTATION_USER_SUSPENDED] == "false"
    assert interp.hold_back_patch(held) is None, "idempotent once held back"
    released = interp.release_hold_back(held)
    node = released
    for key in path:
        node = node[key]
    assert node is False
    assert ANNOTATION_USER_SUSPENDED not in released["metadata"]["annotations"]


def test_hold_back_remembers_a_user_suspend(manifest: Manifest) -> None:
    obj = manifest("job")
    obj["spec"]["suspend"] = True
    patch = JobInterpreter().hold_back_patch(obj)
    assert patch == {"metadata": {"annotations": {ANNOTATION_USER_SUSPENDED: "true"}}}
    released = JobInterpreter().release_hold_back(merge_patch(obj, patch))
    assert released["spec"]["suspend"] is True


def test_hold_back_after_user_resumes(manifest: Manifest) -> None:
    obj = manifest("job")
    obj["metadata"]["annotations"] = {ANNOTATION_USER_SUSPENDED: "true"}
    obj["spec"]["suspend"] = False  # the user resumed a held-back template
    patch = JobInterpreter().hold_back_patch(obj)
    assert patch is not None
    assert patch["spec"]["suspend"] is True
    assert patch["metadata"]["annotations"][ANNOTATION_USER_SUSPENDED] == "false"


def test_services_have_no_hold_back(manifest: Manifest) -> None:
    assert DeploymentInterpreter().hold_back_patch(manifest("deployment")) is None
    obj = manifest("deployment")
    assert DeploymentInterpreter().release_hold_back(obj) == obj
