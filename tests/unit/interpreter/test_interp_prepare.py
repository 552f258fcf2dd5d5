"""prepare_for_member and dependencies: what reaches a member cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flotilla.controllers.member_copies import binding_of
from flotilla.interpreter import (
    ANNOTATION_CLUSTER,
    ANNOTATION_RETAIN_REPLICAS,
    ANNOTATION_USER_SUSPENDED,
    LABEL_BINDING_NAME,
    LABEL_BINDING_NAMESPACE,
    LABEL_MANAGED_BY,
    DeploymentInterpreter,
    InterpreterRegistry,
    JobInterpreter,
    PyTorchJobInterpreter,
    dependencies,
    prepare_for_member,
)
from flotilla.interpreter.keys import ANNOTATION_BINDING_NAME, LABEL_POD_BINDING, label_value, pod_owner
from flotilla.interpreter.prepare import pod_templates

Manifest = Callable[[str], dict[str, Any]]
BINDING = ("inference", "llama-serve-deployment")


def test_prepare_strips_hub_fields_and_labels(manifest: Manifest) -> None:
    template = manifest("deployment")
    out = prepare_for_member(template, DeploymentInterpreter(), 3, "member-a", BINDING)
    meta = out["metadata"]
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "finalizers"):
        assert key not in meta
    assert "status" not in out
    assert meta["annotations"] == {"team.example.com/owner": "ml-platform", ANNOTATION_CLUSTER: "member-a"}
    assert meta["labels"] == {
        "app": "llama-serve",
        LABEL_MANAGED_BY: "flotilla",
        LABEL_BINDING_NAMESPACE: "inference",
        LABEL_BINDING_NAME: "llama-serve-deployment",
    }
    assert (meta["name"], meta["namespace"]) == ("llama-serve", "inference")
    assert out["spec"]["replicas"] == 3
    assert template["spec"]["replicas"] == 9 and "uid" in template["metadata"], "template untouched"


def test_prepare_keeps_member_visible_annotations(manifest: Manifest) -> None:
    template = manifest("deployment")
    template["metadata"]["annotations"][ANNOTATION_RETAIN_REPLICAS] = "true"
    out = prepare_for_member(template, DeploymentInterpreter(), None, "a", BINDING)
    assert out["metadata"]["annotations"][ANNOTATION_RETAIN_REPLICAS] == "true"
    assert out["spec"]["replicas"] == 9


def test_prepare_undoes_hold_back_and_job_selector(manifest: Manifest) -> None:
    interp = JobInterpreter()
    template = manifest("job")
    patch = interp.hold_back_patch(template)
    assert patch is not None
    template["spec"]["suspend"] = True
    template["metadata"]["annotations"] = dict(patch["metadata"]["annotations"])
    out = prepare_for_member(
        template, interp, None, "a", ("research", "eval-sweep-job"), assignment={"a": 3, "b": 1}
    )
    assert out["spec"]["suspend"] is False
    assert ANNOTATION_USER_SUSPENDED not in out["metadata"]["annotations"]
    assert (out["spec"]["parallelism"], out["spec"]["completions"]) == (3, 8)
    assert "selector" not in out["spec"]
    assert "batch.kubernetes.io/controller-uid" not in out["spec"]["template"]["metadata"]["labels"]
    assert "batch.kubernetes.io/controller-uid" not in out["metadata"]["labels"]


def test_prepare_user_suspended_job_stays_suspended(manifest: Manifest) -> None:
    template = manifest("job")
    template["spec"]["suspend"] = True
    template["metadata"]["annotations"] = {ANNOTATION_USER_SUSPENDED: "true"}
    out = prepare_for_member(template, JobInterpreter(), None, "a", BINDING)
    assert out["spec"]["suspend"] is True


def test_prepare_refuses_inconsistent_or_impossible_revise(manifest: Manifest) -> None:
    with pytest.raises(ValueError, match="not divisible"):
        prepare_for_member(manifest("pytorchjob"), PyTorchJobInterpreter(), 2, "a", BINDING)
    with pytest.raises(ValueError, match="disagrees"):
        prepare_for_member(manifest("job"), JobInterpreter(), 2, "a", BINDING, assignment={"a": 3})
    with pytest.raises(ValueError, match="not in the assignment"):
        prepare_for_member(manifest("job"), JobInterpreter(), None, "c", BINDING, assignment={"a": 3})


def test_prepare_plain_objects_without_interpreter() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf-token", "namespace": "ml", "uid": "x", "resourceVersion": "1"},
        "data": {"token": "aGk="},
    }
    out = prepare_for_member(secret, None, None, "a", BINDING)
    assert out["data"] == secret["data"] and "uid" not in out["metadata"]
    assert out["metadata"]["labels"][LABEL_MANAGED_BY] == "flotilla"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]},
    }
    assert "clusterIP" not in prepare_for_member(service, None, None, "a", BINDING)["spec"]
    headless = {**service, "spec": {"clusterIP": "None"}}
    assert prepare_for_member(headless, None, None, "a", BINDING)["spec"]["clusterIP"] == "None"
    with pytest.raises(ValueError, match="interpreter"):
        prepare_for_member(secret, None, 2, "a", BINDING)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "deployment",
            [
                ("ConfigMap", "ca-bundle"),
                ("ConfigMap", "llama-config"),
                ("Secret", "hf-token"),
                ("Secret", "registry-creds"),
                ("Secret", "serve-tls"),
            ],
        ),
        ("pytorchjob", [("Secret", "hf-token")]),
        ("jobset", [("Secret", "wandb")]),
        ("inferenceservice", [("Secret", "hf-token")]),
        ("rayjob", []),
    ],
)
def test_dependencies(
    name: str, expected: list[tuple[str, str]], manifest: Manifest, registry: InterpreterRegistry
) -> None:
    obj = manifest(name)
    interp = registry.get(obj["apiVersion"], obj["kind"])
    assert interp is not None
    assert dependencies(obj, interp) == expected


def test_dependencies_volume_plugins_and_duplicates(manifest: Manifest) -> None:
    obj = manifest("deployment")
    spec = obj["spec"]["template"]["spec"]
    spec["volumes"] += [
        {"name": "cfg", "configMap": {"name": "llama-config"}},
        {"name": "creds", "secret": {"secretName": "s3-creds"}},
        {
            "name": "blob",
            "csi": {"driver": "blob.csi.azure.com", "nodePublishSecretRef": {"name": "azure-blob"}},
        },
        {"name": "fs", "cephfs": {"monitors": ["10.0.0.1"], "secretRef": {"name": "ceph"}}},
    ]
    got = dependencies(obj, DeploymentInterpreter())
    assert ("Secret", "s3-creds") in got and ("Secret", "azure-blob") in got and ("Secret", "ceph") in got
    assert got.count(("ConfigMap", "llama-config")) == 1


def test_prepare_labels_every_pod_template_with_the_binding(manifest: Manifest) -> None:
    out = prepare_for_member(manifest("pytorchjob"), PyTorchJobInterpreter(), None, "member-a", BINDING)
    templates = pod_templates(out)
    assert len(templates) == len(out["spec"]["pytorchReplicaSpecs"]) >= 2
    assert all(t["metadata"]["labels"][LABEL_POD_BINDING] == BINDING[1] for t in templates)
    legacy = prepare_for_member(
        manifest("pytorchjob"), PyTorchJobInterpreter(), None, "member-a", BINDING, pod_labels=False
    )
    unlabelled = pod_templates(legacy)
    assert all(LABEL_POD_BINDING not in (t.get("metadata") or {}).get("labels", {}) for t in unlabelled)
    # Plain objects (dependencies) carry pod specs of nobody: untouched.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    assert pod_templates(pod) == [pod]
    plain = prepare_for_member(pod, None, None, "member-a", BINDING)
    assert LABEL_POD_BINDING not in plain["metadata"]["labels"]


def test_prepare_shortens_long_binding_names_into_valid_label_values(manifest: Manifest) -> None:
    name = "a-very-long-deployment-name-for-a-seventy-billion-parameter-model-deployment"
    out = prepare_for_member(manifest("deployment"), DeploymentInterpreter(), 1, "member-a", ("ns", name))
    label = out["metadata"]["labels"][LABEL_BINDING_NAME]
    assert len(name) > 63 and len(label) == 63 and label == label_value(name) != label_value(name + "x")
    assert out["metadata"]["annotations"][ANNOTATION_BINDING_NAME] == name
    assert out["spec"]["template"]["metadata"]["labels"][LABEL_POD_BINDING] == label
    assert binding_of(out) == ("ns", name)  # the member watch maps the copy back to its binding
    short = prepare_for_member(manifest("deployment"), DeploymentInterpreter(), 1, "member-a", BINDING)
    assert ANNOTATION_BINDING_NAME not in short["metadata"]["annotations"]
    assert binding_of(short) == BINDING
    assert pod_owner("ns", name) == f"ns/{label}"
