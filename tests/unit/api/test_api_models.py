"""The pydantic models: they parse every example, round-trip, and carry the helpers the operator uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flotilla.api import (
    IGNORED_KARMADA_FIELDS,
    KINDS,
    ClusterPropagationPolicy,
    InterpreterCustomization,
    MemberCluster,
    PodGroup,
    PropagationPolicy,
    ResourceBinding,
    find_condition,
    ignored_field_message,
    ignored_fields_in,
    is_true,
    new_condition,
    set_condition,
)
from flotilla.api.binding import TargetCluster, clusters_summary
from flotilla.api.compat import VOLCANO_PODGROUP_FIELDS
from flotilla.api.customization import COMPONENT_PATH_PATTERN, PATH_PATTERN
from flotilla.api.paths import repo_root

EXAMPLES = sorted((repo_root() / "examples").glob("*.yaml"))


def _ours(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["apiVersion"] == "flotilla.dev/v1alpha1":
            yield doc


def test_there_are_examples_of_every_required_scenario() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {
        "pytorchjob-gang-h100",
        "inference-weighted-regions",
        "namespace-gpu-quota",
        "member-cluster",
        "karmada-style-policy",
        "jobset",
        "raycluster-customization",
    } <= names
    for path in EXAMPLES:
        assert len([d for d in yaml.safe_load_all(path.read_text()) if d]) >= 2, path.name


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_parse_and_round_trip(path: Path) -> None:
    docs = list(_ours(path))
    assert docs, f"{path.name} has no flotilla.dev object"
    for doc in docs:
        obj = KINDS[doc["kind"]].parse(doc)
        # Nothing in the example is unknown to the model (the API server would prune it).
        assert obj.model_dump(mode="json", by_alias=True, exclude_unset=True) == doc


def test_parse_accepts_a_whole_object_and_mapping_views() -> None:
    class View(Mapping[str, Any]):
        """Like a Kopf body: a read-only mapping, not a dict."""

        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            value = self._data[key]
            return View(value) if isinstance(value, dict) else value

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "PodGroup",
        "metadata": {"name": "g", "namespace": "n", "generation": 3, "managedFields": [{"x": 1}]},
        "spec": {"minMember": 4, "minTaskMember": {"Worker": 3}},
        "status": {"phase": "Pending", "conditions": []},
    }
    group = PodGroup.parse(View(body))
    assert group.metadata.generation == 3
    assert group.spec.min_member == 4 and group.spec.min_task_member == {"Worker": 3}
    assert group.spec.max_clusters == 1
    assert group.status is not None and group.status.phase == "Pending"
    assert PodGroup.model_validate(body).spec.min_member == 4


def test_defaults_follow_karmada() -> None:
    policy = PropagationPolicy.parse(
        {
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                "placement": {"replicaScheduling": {}},
                "failover": {"application": {"decisionConditions": {}}},
            },
        }
    )
    assert policy.kind == "PropagationPolicy" and policy.api_version == "flotilla.dev/v1alpha1"
    assert policy.spec.priority == 0 and policy.spec.preemption == "Never"
    assert policy.spec.conflict_resolution == "Abort"
    assert policy.spec.placement is not None and policy.spec.placement.replica_scheduling is not None
    assert policy.spec.placement.replica_scheduling.replica_scheduling_type == "Divided"
    assert policy.spec.failover is not None and policy.spec.failover.application is not None
    assert policy.spec.failover.application.purge_mode == "Gracefully"
    assert policy.spec.failover.application.decision_conditions.toleration_seconds == 300


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (PodGroup, {"spec": {"minMember": -1}}, "minMember"),
        (PodGroup, {"spec": {"minResources": {"cpu": "lots"}}}, "minResources"),
        (MemberCluster, {"spec": {"secretRef": {"namespace": "NS", "name": "s"}}}, "namespace"),
        (PropagationPolicy, {"spec": {"resourceSelectors": []}}, "resourceSelectors"),
        (ClusterPropagationPolicy, {"spec": {"resourceSelectors": [{"kind": "X"}]}}, "apiVersion"),
        (
            InterpreterCustomization,
            {
                "spec": {
                    "target": {"apiVersion": "ray.io/v1", "kind": "RayCluster"},
                    "components": [{"name": "w", "replicas": 1, "podTemplatePath": "spec.template"}],
                }
            },
            "podTemplatePath",
        ),
    ],
)
def test_models_reject_invalid_values_naming_the_field(kind: Any, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        kind.parse({"metadata": {"name": "x"}, **body})
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("path", "plain", "component"),
    [
        (".spec.replicas", True, True),
        (".spec.workerGroupSpecs[0].template", True, True),
        (".spec.workerGroupSpecs[*].replicas", False, True),
        (".status.ready-replicas", True, True),
        ("spec.replicas", False, False),
        (".spec..replicas", False, False),
        (".spec.replicas[]", False, False),
        (".spec['replicas']", False, False),
        ("", False, False),
    ],
)
def test_path_grammar(path: str, plain: bool, component: bool) -> None:
    import re

    assert bool(re.match(PATH_PATTERN, path)) is plain
    assert bool(re.match(COMPONENT_PATH_PATTERN, path)) is component


def test_new_condition_is_a_valid_metav1_condition() -> None:
    cond = new_condition("Scheduled", True, "Success", "placed on a", observed_generation=2)
    assert cond["status"] == "True" and cond["observedGeneration"] == 2
    assert cond["lastTransitionTime"].endswith("Z")
    with pytest.raises(ValidationError):
        new_condition("Scheduled", False, "not camel case", "x")


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    first = new_condition("Ready", True, "Healthy", "ok")
    first["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    other = new_condition("Synced", True, "Done")
    same = set_condition([first, other], new_condition("Ready", True, "Healthy", "still ok"))
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z" and same[0]["message"] == "still ok"
    assert same[1] == other
    flipped = set_condition(same, new_condition("Ready", False, "Unreachable", "timeout"))
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert not is_true(flipped, "Ready") and is_true(flipped, "Synced")
    added = set_condition(None, new_condition("Scheduled", "Unknown", "Pending"))
    assert find_condition(added, "Scheduled") is not None and find_condition(added, "Ready") is None


def test_ignored_fields_are_reported_only_when_they_matter() -> None:
    body = {
        "spec": {
            "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap"}],
            "conflictResolution": "Abort",
            "propagateDeps": False,
            "placement": {
                "clusterAffinities": [{"affinityName": "a", "overflowAffinities": [{"affinityName": "b"}]}]
            },
        }
    }
    assert ignored_fields_in(body) == ["spec.placement.clusterAffinities[].overflowAffinities"]
    body["spec"]["conflictResolution"] = "Overwrite"
    body["spec"]["propagateDeps"] = True
    assert set(ignored_fields_in(body)) == {
        "spec.propagateDeps",
        "spec.conflictResolution",
        "spec.placement.clusterAffinities[].overflowAffinities",
    }
    assert set(ignored_fields_in(body)) <= set(IGNORED_KARMADA_FIELDS)
    assert "spec.propagateDeps is accepted for compatibility but ignored" in ignored_field_message(
        "spec.propagateDeps"
    )
    group = {"spec": {"queue": "default", "networkTopology": {"mode": "hard"}}}
    assert ignored_fields_in(group, VOLCANO_PODGROUP_FIELDS) == ["spec.networkTopology"]
    # Application failover is read by the failover controller: only state preservation is ignored.
    app = {
        "decisionConditions": {"tolerationSeconds": 60},
        "purgeMode": "Directly",
        "statePreservation": {"rules": [{"aliasLabelName": "x", "jsonPath": "{.x}"}]},
    }
    assert ignored_fields_in({"spec": {"failover": {"application": app}}}) == [
        "spec.failover.application.statePreservation"
    ]


def test_display_summaries() -> None:
    assert clusters_summary([TargetCluster(name="a", replicas=4), TargetCluster(name="b")]) == "a:4,b"
    cluster = MemberCluster.parse(
        {
            "metadata": {"name": "a"},
            "spec": {"secretRef": {"namespace": "s", "name": "k"}},
            "status": {
                "resourceSummary": {
                    "gpuModels": [
                        {"model": "NVIDIA-L4", "total": 1, "free": 1, "nodes": 1},
                        {"model": "NVIDIA-A100", "total": 8, "free": 0, "nodes": 2, "memoryMiB": 40960},
                    ]
                }
            },
        }
    )
    assert cluster.spec.secret_ref.key == "kubeconfig"
    assert cluster.status is not None and cluster.status.resource_summary is not None
    assert cluster.status.resource_summary.models_summary() == "NVIDIA-A100,NVIDIA-L4"
    assert cluster.status.resource_summary.gpu_models is not None
    assert cluster.status.resource_summary.gpu_models[1].memory_mi_b == 40960


def test_binding_status_round_trips_free_form_fields() -> None:
    body = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ResourceBinding",
        "metadata": {"name": "job-pytorchjob", "namespace": "ml"},
        "spec": {
            "resource": {
                "apiVersion": "kubeflow.org/v1",
                "kind": "PyTorchJob",
                "name": "job",
                "namespace": "ml",
            },
            "components": [
                {
                    "name": "Master",
                    "replicas": 1,
                    "replicaRequirements": {"resourceRequest": {"nvidia.com/gpu": 8}},
                },
                {
                    "name": "Worker",
                    "replicas": 3,
                    "replicaRequirements": {"resourceRequest": {"nvidia.com/gpu": 8}},
                },
            ],
            "clusters": [{"name": "a"}],
            "schedulingGroup": {"minMember": 4, "minTaskMember": {"Master": 1, "Worker": 3}},
        },
        "status": {
            "explanation": {"a": {"score": 87, "plugins": {"GpuFit": 100}}, "b": {"filter": "GpuFit"}},
            "aggregatedStatus": [
                {"clusterName": "a", "applied": True, "health": "Healthy", "status": {"x": [1]}}
            ],
        },
    }
    binding = ResourceBinding.parse(body)
    assert binding.to_json() == body


def test_to_json_of_a_constructed_object_is_a_manifest() -> None:
    from flotilla.api import ObjectMeta
    from flotilla.api.binding import ObjectReference, ResourceBindingSpec

    binding = ResourceBinding(
        metadata=ObjectMeta(name="web-deployment", namespace="prod"),
        spec=ResourceBindingSpec(
            resource=ObjectReference(api_version="apps/v1", kind="Deployment", name="web", namespace="prod"),
            clusters=[TargetCluster(name="a", replicas=2)],
        ),
    )
    assert binding.to_json() == {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ResourceBinding",
        "metadata": {"name": "web-deployment", "namespace": "prod"},
        "spec": {
            "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "prod"},
            "clusters": [{"name": "a", "replicas": 2}],
        },
    }
