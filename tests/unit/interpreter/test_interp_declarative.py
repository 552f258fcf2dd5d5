"""The declarative interpreter: parity with the built-in Deployment interpreter, expansion, errors."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from flotilla.interpreter import (
    ANNOTATION_RETAIN_REPLICAS,
    DeclarativeInterpreter,
    DeploymentInterpreter,
    Health,
    Interpreter,
    RayJobInterpreter,
)

Manifest = Callable[[str], dict[str, Any]]
COUNTS = ["replicas", "readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas"]

DEPLOYMENT_CUSTOMIZATION: dict[str, Any] = {
    "target": {"apiVersion": "apps/v1", "kind": "Deployment"},
    "components": [{"name": "main", "replicasPath": ".spec.replicas", "podTemplatePath": ".spec.template"}],
    "replicaPath": "{.spec.replicas}",
    "retainPaths": [],
    "statusPaths": [f".status.{f}" for f in [*COUNTS, "observedGeneration", "conditions"]],
    "statusAggregation": [{"path": f".status.{f}", "operation": "Sum"} for f in COUNTS],
    "health": {"path": '.status.conditions[?(@.type=="Available")].status', "healthyValues": ["True"]},
}

RAYJOB_CUSTOMIZATION: dict[str, Any] = {
    "target": {"apiVersion": "ray.io/v1", "kind": "RayJob"},
    "components": [
        {"name": "head", "replicas": 1, "podTemplatePath": ".spec.rayClusterSpec.headGroupSpec.template"},
        {
            "name": "workers",
            "replicasPath": ".spec.rayClusterSpec.workerGroupSpecs[*].replicas",
            "podTemplatePath": ".spec.rayClusterSpec.workerGroupSpecs[*].template",
        },
    ],
    "suspendPath": ".spec.suspend",
    "retainPaths": [".spec.jobId"],
    "statusPaths": [".status.jobDeploymentStatus", ".status.succeeded"],
    "statusAggregation": [
        {"path": ".status.jobDeploymentStatus", "operation": "First"},
        {"path": ".status.succeeded", "operation": "Max"},
    ],
    "health": {"path": ".status.jobDeploymentStatus", "healthyValues": ["Running", "Complete"]},
}


def _member(replicas: int, ready: int, available: str) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
            "conditions": [{"type": "Available", "status": available}],
        },
    }


def test_reproduces_the_deployment_interpreter(manifest: Manifest) -> None:
    obj = manifest("deployment")
    builtin: Interpreter = DeploymentInterpreter()
    custom: Interpreter = DeclarativeInterpreter(DEPLOYMENT_CUSTOMIZATION)
    assert custom.divisible is builtin.divisible is True
    assert custom.components(obj) == builtin.components(obj)
    assert custom.replicas(obj) == builtin.replicas(obj) == 9
    assert custom.implicit_gang(obj) == builtin.implicit_gang(obj)
    assert custom.revise_replicas(obj, 3) == builtin.revise_replicas(obj, 3)
    assert custom.divide(obj, {"a": 6, "b": 3}) == builtin.divide(obj, {"a": 6, "b": 3})
    assert custom.hold_back_patch(obj) is builtin.hold_back_patch(obj) is None
    no_replicas = copy.deepcopy(obj)
    del no_replicas["spec"]["replicas"]
    assert custom.replicas(no_replicas) == builtin.replicas(no_replicas) == 1
    assert custom.components(no_replicas) == builtin.components(no_replicas)

    desired = builtin.revise_replicas(obj, 3)
    desired["metadata"]["annotations"][ANNOTATION_RETAIN_REPLICAS] = "true"
    observed = {"spec": {"replicas": 5}}
    assert custom.retain(desired, observed) == builtin.retain(desired, observed)

    members = {"a": _member(6, 6, "True"), "b": _member(3, 2, "False")}
    for member in members.values():
        assert custom.reflect_status(member) == builtin.reflect_status(member)
    assert custom.health(members["a"]) == builtin.health(members["a"]) == Health.HEALTHY
    # The declarative form knows only healthy values: a rollout that the built-in calls
    # PROGRESSING is UNHEALTHY there (failover still waits for the toleration).
    assert (custom.health(members["b"]), builtin.health(members["b"])) == (
        Health.UNHEALTHY,
        Health.PROGRESSING,
    )
    reflected = {c: builtin.reflect_status(m) for c, m in members.items()}
    expected = {k: v for k, v in builtin.aggregate_status(reflected).items() if k != "conditions"}
    assert custom.aggregate_status(reflected) == expected
    assert custom.health({}) == builtin.health({}) == Health.UNKNOWN


def test_wildcard_components_expand_in_lockstep(manifest: Manifest) -> None:
    obj = manifest("rayjob")
    custom = DeclarativeInterpreter(RAYJOB_CUSTOMIZATION)
    comps = custom.components(obj)
    assert [(c.name, c.replicas) for c in comps] == [("head", 1), ("workers-0", 2), ("workers-1", 1)]
    builtin = {c.name: c for c in RayJobInterpreter().components(obj)}
    assert comps[1].requests == builtin["gpu"].requests
    assert comps[2].requests == builtin["cpu"].requests
    assert custom.divisible is False and custom.replicas(obj) is None
    assert custom.implicit_gang(obj) == 4
    with pytest.raises(ValueError, match="not divisible"):
        custom.revise_replicas(obj, 1)


def test_suspend_retain_status_and_health() -> None:
    custom = DeclarativeInterpreter(RAYJOB_CUSTOMIZATION)
    obj = {"metadata": {"name": "r"}, "spec": {"entrypoint": "python x.py"}}
    patch = custom.hold_back_patch(obj)
    assert patch is not None and patch["spec"] == {"suspend": True}
    retained = custom.retain(obj, {"spec": {"jobId": "r-abc"}})
    assert retained["spec"]["jobId"] == "r-abc" and "jobId" not in obj["spec"]
    member = {"status": {"jobDeploymentStatus": "Running", "succeeded": 0, "jobStatus": "RUNNING"}}
    assert custom.reflect_status(member) == {"jobDeploymentStatus": "Running", "succeeded": 0}
    assert custom.aggregate_status(
        {"b": {"jobDeploymentStatus": "Failed", "succeeded": 1}, "a": {"succeeded": 0}}
    ) == {
        "jobDeploymentStatus": "Failed",
        "succeeded": 1,
    }
    assert custom.health(member) == Health.HEALTHY
    assert custom.health({"status": {"jobDeploymentStatus": "Failed"}}) == Health.UNHEALTHY
    assert custom.health({"status": {}}) == Health.UNKNOWN


@pytest.mark.parametrize(
    ("operation", "values", "expected"),
    [
        ("Sum", [1, 2, None], 3),
        ("Max", [1, 7, 3], 7),
        ("Min", [4, 2, 9], 2),
        ("All", [True, False], False),
        ("All", [True, True], True),
        ("Any", [False, True], True),
        ("First", ["x", "y"], "x"),
        ("Sum", [None, None], None),
    ],
)
def test_aggregation_operations(operation: str, values: list[Any], expected: Any) -> None:
    spec = {
        "target": {"apiVersion": "example.com/v1", "kind": "Thing"},
        "components": [{"name": "main", "replicas": 1, "podTemplatePath": ".spec.template"}],
        "statusAggregation": [{"path": ".status.value", "operation": operation}],
    }
    per_cluster = {f"c{i}": ({} if v is None else {"value": v}) for i, v in enumerate(values)}
    got = DeclarativeInterpreter(spec).aggregate_status(per_cluster)
    assert got == ({} if expected is None else {"value": expected})


def test_boolean_health_values() -> None:
    spec = {
        "target": {"apiVersion": "example.com/v1", "kind": "Thing"},
        "components": [{"name": "main", "replicas": 1, "podTemplatePath": ".spec.template"}],
        "health": {"path": ".status.ready", "healthyValues": ["true"]},
    }
    custom = DeclarativeInterpreter(spec)
    assert custom.health({"status": {"ready": True}}) == Health.HEALTHY
    assert custom.health({"status": {"ready": False}}) == Health.UNHEALTHY


def test_absent_optional_component_is_left_out() -> None:
    spec = {
        "target": {"apiVersion": "example.com/v1", "kind": "Trainer"},
        "components": [
            {"name": "chief", "replicas": 1, "podTemplatePath": ".spec.chief.template"},
            {
                "name": "worker",
                "replicasPath": ".spec.worker.replicas",
                "podTemplatePath": ".spec.worker.template",
            },
        ],
    }
    obj = {"spec": {"worker": {"replicas": 4, "template": {"spec": {"containers": []}}}}}
    assert [(c.name, c.replicas) for c in DeclarativeInterpreter(spec).components(obj)] == [("worker", 4)]


def _spec(**overrides: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEPLOYMENT_CUSTOMIZATION)
    spec.update(overrides)
    return spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"components": []}, "spec.target is required"),
        (_spec(components=[]), "at least one component"),
        (
            _spec(
                components=[
                    {
                        "name": "m",
                        "replicas": 1,
                        "replicasPath": ".spec.replicas",
                        "podTemplatePath": ".spec.t",
                    }
                ]
            ),
            "exactly one of replicas and replicasPath",
        ),
        (
            _spec(components=[{"name": "m", "podTemplatePath": ".spec.t"}]),
            "exactly one of replicas and replicasPath",
        ),
        (
            _spec(components=[{"name": "m", "replicas": 1}]),
            r"spec.components\[0\].podTemplatePath is required",
        ),
        (
            _spec(components=[{"name": "m", "replicas": 1, "podTemplatePath": "spec.template"}]),
            r"invalid path 'spec.template' at segment 'spec'",
        ),
        (
            _spec(
                components=[
                    {"name": "m", "replicasPath": ".a[*].b[*].r", "podTemplatePath": ".a[*].t"},
                ]
            ),
            "lockstep",
        ),
        (
            _spec(components=[{"name": "m", "replicas": 1, "podTemplatePath": '.a[?(@.x=="y")]'}]),
            r"may only use \.key, \[index\] and \[\*\]",
        ),
        (_spec(replicaPath=".spec.groups[*].replicas"), r"may only use \.key and \[index\]"),
        (_spec(statusPaths=[".spec.replicas"]), "must start with .status"),
        (_spec(statusAggregation=[{"path": ".status.x", "operation": "Median"}]), "operation must be one of"),
        (
            _spec(statusAggregation=[{"path": ".status", "operation": "Sum"}]),
            "must name a field under .status",
        ),
        (_spec(health={"healthyValues": ["True"]}), "spec.health.path is required"),
        (_spec(retainPaths=[".spec..x"]), r"at segment '\.\.'"),
        (
            _spec(
                components=[
                    {"name": "m", "replicas": 1, "podTemplatePath": ".a"},
                    {"name": "m", "replicas": 2, "podTemplatePath": ".b"},
                ]
            ),
            "unique",
        ),
        (
            _spec(components=[{"name": "m", "replicas": "many", "podTemplatePath": ".a"}]),
            r"expected an integer at spec.components\[0\].replicas",
        ),
    ],
)
def test_invalid_customizations_are_explained(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeclarativeInterpreter(spec)


def test_non_integer_replicas_in_an_object() -> None:
    custom = DeclarativeInterpreter(DEPLOYMENT_CUSTOMIZATION)
    with pytest.raises(ValueError, match=r"expected an integer at \.spec\.replicas"):
        custom.components({"spec": {"replicas": [3], "template": {}}})
