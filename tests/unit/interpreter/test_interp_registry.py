"""InterpreterRegistry: built-ins by group+kind and version, customizations by exact apiVersion."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.interpreter import (
    DeclarativeInterpreter,
    DeploymentInterpreter,
    InterpreterRegistry,
    RayJobInterpreter,
)


@pytest.mark.parametrize(
    ("api_version", "kind", "found"),
    [
        ("apps/v1", "Deployment", True),
        ("apps/v1", "StatefulSet", True),
        ("batch/v1", "Job", True),
        ("jobset.x-k8s.io/v1alpha2", "JobSet", True),
        ("kubeflow.org/v1", "PyTorchJob", True),
        ("serving.kserve.io/v1beta1", "InferenceService", True),
        ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", True),
        ("ray.io/v1", "RayJob", True),
        ("ray.io/v1alpha1", "RayJob", True),
        ("apps/v1beta9", "Deployment", False),
        ("v1", "Pod", False),
        ("kubeflow.org/v1", "TFJob", False),
    ],
)
def test_builtins(api_version: str, kind: str, found: bool) -> None:
    interp = InterpreterRegistry().get(api_version, kind)
    assert (interp is not None) is found
    if interp is not None:
        assert interp.kind == kind


def _customization(api_version: str, kind: str) -> dict[str, Any]:
    return {
        "target": {"apiVersion": api_version, "kind": kind},
        "components": [
            {"name": "main", "replicasPath": ".spec.replicas", "podTemplatePath": ".spec.template"}
        ],
        "replicaPath": ".spec.replicas",
    }


def test_customization_register_override_and_unregister() -> None:
    registry = InterpreterRegistry()
    custom = registry.register_customization(_customization("example.com/v1", "Notebook"))
    assert isinstance(custom, DeclarativeInterpreter)
    assert registry.get("example.com/v1", "Notebook") is custom
    assert registry.get("example.com/v2", "Notebook") is None
    assert ("example.com/v1", "Notebook") in registry.known()
    override = registry.register_customization(_customization("apps/v1", "Deployment"))
    assert registry.get("apps/v1", "Deployment") is override
    assert registry.unregister("apps/v1", "Deployment") is True
    assert isinstance(registry.get("apps/v1", "Deployment"), DeploymentInterpreter)
    assert registry.unregister("apps/v1", "Deployment") is False
    replacement = registry.register_customization(_customization("example.com/v1", "Notebook"))
    assert registry.get("example.com/v1", "Notebook") is replacement


def test_invalid_customization_is_not_registered() -> None:
    registry = InterpreterRegistry()
    with pytest.raises(ValueError):
        registry.register_customization(
            {"target": {"apiVersion": "example.com/v1", "kind": "X"}, "components": []}
        )
    assert registry.get("example.com/v1", "X") is None


def test_custom_builtin_set() -> None:
    registry = InterpreterRegistry(builtins=[RayJobInterpreter()])
    assert registry.get("apps/v1", "Deployment") is None
    assert registry.get("ray.io/v1", "RayJob") is not None
