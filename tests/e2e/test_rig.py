"""The rig itself: GPU members that run real workloads, a hub that serves CRDs."""

from __future__ import annotations

import uuid
from typing import Any

from conftest import bare_hub_only
from pytorchjob_support import replica_types, wait_pytorchjob_pods_gone, wait_pytorchjob_running

from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle

GPU_JOB_IMAGE = "registry.example/train:latest"  # KWOK never pulls images


def _gpu_pod_spec(gpus: int) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "train",
                "image": GPU_JOB_IMAGE,
                "resources": {
                    "requests": {"cpu": "1", "nvidia.com/gpu": str(gpus)},
                    "limits": {"nvidia.com/gpu": str(gpus)},
                },
            }
        ],
    }


def test_members_have_gpu_nodes(members: dict[str, ClusterHandle]) -> None:
    expected = {
        "a": (5, "8", "NVIDIA-H100-80GB-HBM3"),
        "b": (12, "4", "NVIDIA-A100-SXM4-40GB"),
        "c": (16, "1", "NVIDIA-L4"),
    }
    for name, (count, gpus, product) in expected.items():
        api = members[name].api_client()
        nodes = kube.list_objects(api, "v1", "Node", label_selector="type=kwok")
        assert len(nodes) == count
        for node in nodes:
            assert node["status"]["allocatable"]["nvidia.com/gpu"] == gpus
            assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == product


def test_job_with_8_gpus_succeeds_on_h100_member(members: dict[str, ClusterHandle]) -> None:
    api = members["a"].api_client()
    name = f"train-{uuid.uuid4().hex[:6]}"
    kube.apply(
        api,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"backoffLimit": 0, "template": {"spec": _gpu_pod_spec(8)}},
        },
    )

    def succeeded() -> dict[str, Any] | None:
        job = kube.get(api, "batch/v1", "Job", name, "default")
        return job if job and job.get("status", {}).get("succeeded") == 1 else None

    kube.wait_for(succeeded, timeout=90, what=f"Job {name} to succeed on member a")
    pods = kube.list_objects(api, "v1", "Pod", "default", label_selector=f"job-name={name}")
    assert len(pods) == 1
    node = kube.get(api, "v1", "Node", pods[0]["spec"]["nodeName"])
    assert node is not None
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"


def test_pytorchjob_on_member_runs_master_and_worker_on_h100(members: dict[str, ClusterHandle]) -> None:
    """Member a runs the Kubeflow training operator: a PyTorchJob there becomes Running pods."""
    member = members["a"]
    api = member.api_client()
    name = f"pt-{uuid.uuid4().hex[:6]}"
    pod_spec = _gpu_pod_spec(1)
    pod_spec["containers"][0]["name"] = "pytorch"  # the container the operator configures
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": pod_spec}}
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}},
    }
    kube.apply(api, job)
    try:
        pods = wait_pytorchjob_running(member, "default", name, expected=2, timeout=120)
        assert replica_types(pods) == ["master", "worker"]
        for pod in pods:
            node = kube.get(api, "v1", "Node", pod["spec"]["nodeName"])
            assert node is not None
            assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    finally:
        kube.delete(api, job)
        wait_pytorchjob_pods_gone(member, "default", name, timeout=120)


def test_pod_with_8_gpus_stays_pending_where_no_node_has_8(members: dict[str, ClusterHandle]) -> None:
    api = members["c"].api_client()
    name = f"big-{uuid.uuid4().hex[:6]}"
    kube.apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": _gpu_pod_spec(8),
        },
    )

    def unschedulable() -> bool:
        pod = kube.get(api, "v1", "Pod", name, "default") or {}
        conds = pod.get("status", {}).get("conditions", [])
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

    kube.wait_for(unschedulable, timeout=60, what="the 8-GPU pod to be reported Unschedulable")
    pod = kube.get(api, "v1", "Pod", name, "default")
    assert pod is not None
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    msg = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "nvidia.com/gpu" in msg
    kube.delete(api, pod)


def test_hub_serves_a_new_crd(hub: ClusterHandle) -> None:
    api = hub.api_client()
    group = "rigtest.flotilla.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    import tempfile
    from pathlib import Path

    import yaml

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "crd.yaml"
        path.write_text(yaml.safe_dump(crd))
        kube.install_crds(api, [path])
    stored = kube.apply(
        api,
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default"},
            "spec": {"size": 3},
        },
    )
    assert stored["spec"]["size"] == 3
    assert kube.get(api, f"{group}/v1", "Widget", "w", "default") is not None


@bare_hub_only
def test_hub_runs_no_workload_controllers(hub: ClusterHandle) -> None:
    """A Deployment on the bare hub is a template: no ReplicaSet or Pod ever appears."""
    import time

    api = hub.api_client()
    kube.apply(
        api,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "tmpl", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "tmpl"}},
                "template": {
                    "metadata": {"labels": {"app": "tmpl"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        },
    )
    time.sleep(3)
    assert kube.list_objects(api, "apps/v1", "ReplicaSet", "default") == []
    assert kube.list_objects(api, "v1", "Pod", "default") == []
