"""Node/Pod conversion, kube-scheduler request arithmetic, summaries and discovery parsing."""

from __future__ import annotations

import pytest
from inventory_objects import GIB, ctr, node, pod
from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1ResourceRequirements

from flotilla.inventory.convert import (
    format_quantity,
    node_info,
    node_is_ready,
    pod_info,
    pod_requests,
    resource_summary,
)
from flotilla.inventory.discovery import (
    ApiResourceEntry,
    enablement_status,
    gvk_set,
    is_aggregated,
    parse_aggregated,
    parse_resource_list,
)
from flotilla.scheduler.snapshot import NodeInfo, Taint


class TestNodeInfo:
    def test_allocatable_labels_taints_and_gpu_model(self) -> None:
        info = node_info(node())
        assert info.name == "n1"
        assert info.allocatable == {"cpu": 95500, "memory": 1023 * GIB, "pods": 110, "nvidia.com/gpu": 8}
        assert info.gpu_model == "NVIDIA-H100-80GB-HBM3"
        assert info.gpu_memory_mib == 81559
        assert info.taints == (Taint("kwok.x-k8s.io/node", "fake", "NoSchedule"),)
        assert info.ready
        assert info.whole_free == 8
        assert info.used == {}

    @pytest.mark.parametrize(
        ("ready", "unschedulable", "usable"),
        [("True", False, True), ("False", False, False), ("Unknown", False, False), ("True", True, False)],
    )
    def test_not_ready_or_cordoned_nodes_are_unusable(
        self, ready: str, unschedulable: bool, usable: bool
    ) -> None:
        obj = node(ready=ready, unschedulable=unschedulable)
        assert node_info(obj).ready is usable
        assert node_is_ready(obj) is (ready == "True")

    def test_no_conditions_means_not_ready(self) -> None:
        obj = node()
        del obj["status"]["conditions"]
        assert not node_info(obj).ready

    def test_capacity_is_used_when_allocatable_is_missing(self) -> None:
        obj = node()
        del obj["status"]["allocatable"]
        assert node_info(obj).allocatable["cpu"] == 96000

    def test_kubernetes_model_objects_are_accepted(self) -> None:
        model = V1Pod(
            metadata=V1ObjectMeta(name="p", namespace="ns", uid="u-model"),
            spec=V1PodSpec(
                node_name="n1",
                containers=[
                    V1Container(name="c", resources=V1ResourceRequirements(requests={"cpu": "250m"}))
                ],
            ),
        )
        info = pod_info(model)
        assert info is not None
        assert (info.uid, info.node, info.requests) == ("u-model", "n1", {"cpu": 250})


class TestPodRequests:
    def test_containers_are_summed(self) -> None:
        spec = {
            "containers": [ctr({"cpu": "500m", "memory": "1Gi"}), ctr({"cpu": "1", "nvidia.com/gpu": "4"})]
        }
        assert pod_requests(spec) == {"cpu": 1500, "memory": GIB, "nvidia.com/gpu": 4}

    def test_limits_default_missing_requests(self) -> None:
        spec = {"containers": [ctr({"cpu": "1"}, {"cpu": "2", "nvidia.com/gpu": "8"})]}
        assert pod_requests(spec) == {"cpu": 1000, "nvidia.com/gpu": 8}

    def test_init_containers_take_the_max(self) -> None:
        spec = {
            "initContainers": [ctr({"cpu": "4", "memory": "1Gi"}), ctr({"cpu": "1", "memory": "8Gi"})],
            "containers": [ctr({"cpu": "2", "memory": "2Gi"})],
        }
        assert pod_requests(spec) == {"cpu": 4000, "memory": 8 * GIB}

    def test_sidecars_add_to_containers_and_later_init_containers(self) -> None:
        # kube-scheduler: sidecar (restartPolicy Always) runs alongside everything after it.
        spec = {
            "initContainers": [
                ctr({"cpu": "1"}, restartPolicy="Always"),
                ctr({"cpu": "3"}),  # peak while it runs: 3 + 1 sidecar = 4
            ],
            "containers": [ctr({"cpu": "2"})],  # steady state: 2 + 1 = 3
        }
        assert pod_requests(spec) == {"cpu": 4000}
        spec["initContainers"][1] = ctr({"cpu": "1"})
        assert pod_requests(spec) == {"cpu": 3000}

    def test_overhead_and_pod_level_resources(self) -> None:
        spec = {
            "containers": [ctr({"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"})],
            "resources": {"requests": {"cpu": "3"}},
            "overhead": {"cpu": "100m", "memory": "64Mi"},
        }
        assert pod_requests(spec) == {"cpu": 3100, "memory": GIB + 64 * 1024**2, "nvidia.com/gpu": 1}

    def test_unparsable_quantities_are_skipped(self) -> None:
        assert pod_requests({"containers": [ctr({"cpu": "lots", "memory": "1Gi"})]}) == {"memory": GIB}


class TestPodInfo:
    def test_bound_running_pod(self) -> None:
        info = pod_info(pod())
        assert info is not None
        assert (info.uid, info.node, info.requests) == ("u1", "n1", {"cpu": 1000, "nvidia.com/gpu": 2})

    @pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
    def test_terminal_pods_release_resources(self, phase: str) -> None:
        assert pod_info(pod(phase=phase)) is None

    def test_unbound_pods_do_not_count(self) -> None:
        assert pod_info(pod(node_name=None, phase="Pending")) is None

    def test_bound_pending_and_terminating_pods_count(self) -> None:
        assert pod_info(pod(phase="Pending")) is not None
        terminating = pod()
        terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        assert pod_info(terminating) is not None


class TestFormat:
    @pytest.mark.parametrize(
        ("resource", "amount", "text"),
        [
            ("cpu", 96000, "96"),
            ("cpu", 95500, "95500m"),
            ("cpu", 0, "0"),
            ("memory", 1024**4, "1Ti"),
            ("memory", 1023 * GIB, "1023Gi"),
            ("memory", 1500, "1500"),
            ("memory", 0, "0"),
            ("hugepages-2Mi", 4 * 1024**2, "4Mi"),
            ("nvidia.com/gpu", 32, "32"),
            ("pods", 440, "440"),
        ],
    )
    def test_format_quantity(self, resource: str, amount: int, text: str) -> None:
        assert format_quantity(resource, amount) == text


class TestResourceSummary:
    def test_totals_free_and_gpu_models(self) -> None:
        nodes = [
            node_info(node("h1")),
            node_info(node("h2")),
            node_info(node("l4", gpus=1, product="NVIDIA-L4")),
            node_info(node("cpu", gpus=0, product=None)),
            node_info(node("down", ready="False")),  # excluded: not schedulable
        ]
        used = {
            "h1": {"cpu": 2000, "nvidia.com/gpu": 8, "pods": 2},
            "h2": {"nvidia.com/gpu": 3, "flotilla.dev/gpu-milli": 500, "pods": 2},
            "down": {"nvidia.com/gpu": 1, "pods": 1},
        }
        summary = resource_summary(nodes, used)
        assert summary["allocatable"]["nvidia.com/gpu"] == "17"
        assert summary["allocatable"]["cpu"] == "382"
        assert summary["allocated"] == {
            "cpu": "2",
            "flotilla.dev/gpu-milli": "500",
            "nvidia.com/gpu": "11",
            "pods": "4",
        }
        # h1: 0 free, h2: 8 - 3 - 1 partially used = 4, l4: 1
        assert summary["free"]["nvidia.com/gpu"] == "5"
        assert summary["free"]["pods"] == str(4 * 110 - 4)
        assert summary["gpuModels"] == [
            {"model": "NVIDIA-H100-80GB-HBM3", "total": 16, "free": 4, "nodes": 2, "memoryMiB": 81559},
            {"model": "NVIDIA-L4", "total": 1, "free": 1, "nodes": 1, "memoryMiB": 81559},
        ]
        assert summary["gpuModelNames"] == "NVIDIA-H100-80GB-HBM3,NVIDIA-L4"

    def test_overcommitted_node_does_not_eat_other_nodes_free(self) -> None:
        nodes = [NodeInfo("a", {"cpu": 1000}), NodeInfo("b", {"cpu": 1000})]
        summary = resource_summary(nodes, {"a": {"cpu": 3000}})
        assert summary["free"]["cpu"] == "1"
        assert summary["allocated"]["cpu"] == "3"

    def test_gpu_node_without_product_label(self) -> None:
        summary = resource_summary([node_info(node(product=None))], {})
        assert summary["gpuModels"] == [{"model": "unknown", "total": 8, "free": 8, "nodes": 1}]

    def test_empty(self) -> None:
        assert resource_summary([], {}) == {
            "allocatable": {},
            "allocated": {},
            "free": {},
            "gpuModels": [],
            "gpuModelNames": "",
        }


class TestDiscovery:
    AGGREGATED = {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "items": [
            {
                "metadata": {"name": ""},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {
                                "resource": "pods",
                                "responseKind": {"kind": "Pod"},
                                "subresources": [{"subresource": "status"}],
                            },
                            {"resource": "nodes", "responseKind": {"kind": "Node"}},
                        ],
                    }
                ],
            },
            {
                "metadata": {"name": "kubeflow.org"},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [{"resource": "pytorchjobs", "responseKind": {"kind": "PyTorchJob"}}],
                    }
                ],
            },
        ],
    }

    def test_aggregated(self) -> None:
        assert is_aggregated(self.AGGREGATED)
        entries = parse_aggregated(self.AGGREGATED)
        assert gvk_set(entries) == {"v1/Pod", "v1/Node", "kubeflow.org/v1/PyTorchJob"}
        assert enablement_status(entries) == [
            {"groupVersion": "kubeflow.org/v1", "resources": [{"name": "pytorchjobs", "kind": "PyTorchJob"}]},
            {
                "groupVersion": "v1",
                "resources": [{"name": "nodes", "kind": "Node"}, {"name": "pods", "kind": "Pod"}],
            },
        ]

    def test_legacy_resource_list_skips_subresources(self) -> None:
        doc = {
            "kind": "APIResourceList",
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "kind": "Deployment"},
                {"name": "deployments/scale", "kind": "Scale"},
            ],
        }
        assert not is_aggregated(doc)
        assert parse_resource_list(doc) == [ApiResourceEntry("apps/v1", "deployments", "Deployment")]


def test_pod_info_owner_is_the_binding_named_by_flotillas_pod_label() -> None:
    labelled = pod("u7")
    labelled["metadata"]["labels"] = {"flotilla.dev/binding": "train-pytorchjob", "app": "x"}
    info = pod_info(labelled)
    assert info is not None and info.owner == "default/train-pytorchjob"
    plain = pod_info(pod("u8"))
    assert plain is not None and plain.owner is None
