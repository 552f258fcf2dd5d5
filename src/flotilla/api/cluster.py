"""MemberCluster: a member cluster Flotilla places workloads on, and its GPU inventory."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flotilla.api.base import (
    AGE,
    CrdInfo,
    KubeModel,
    KubeResource,
    NonNegInt32,
    PrinterColumn,
    ResourceList,
    Schema,
)
from flotilla.api.meta import ObjectStatus, Taint

GPU_RESOURCE = "nvidia.com/gpu"
READY = "Ready"
"""The summary condition of a MemberCluster."""

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class SecretRef(KubeModel):
    """A key of a Secret on the hub."""

    namespace: str = Field(max_length=63, pattern=_DNS_SUBDOMAIN, description="Namespace of the Secret.")
    name: str = Field(max_length=253, pattern=_DNS_SUBDOMAIN, description="Name of the Secret.")
    key: str = Field(
        default="kubeconfig", min_length=1, max_length=253, description="Key holding the kubeconfig."
    )


class MemberClusterSpec(KubeModel):
    """How to reach the member and where it is."""

    secret_ref: SecretRef = Field(description="Secret with a kubeconfig for the member's API server.")
    provider: str | None = Field(
        default=None, max_length=128, description="Cloud provider, e.g. aws or onprem."
    )
    region: str | None = Field(default=None, max_length=128, description="Region, e.g. eu-west.")
    zone: str | None = Field(default=None, max_length=128, description="Zone, e.g. eu-west-1a.")
    taints: (
        Annotated[
            list[Taint],
            Field(max_length=64),
            Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["key", "effect"]),
        ]
        | None
    ) = Field(
        default=None,
        description=(
            "Taints; workloads without a matching clusterToleration avoid (or leave) the cluster. "
            "Keyed by key and effect, so server-side apply merges entries. The operator adds and "
            "removes cluster.flotilla.dev/not-ready and cluster.flotilla.dev/unreachable itself; "
            "kubectl flotilla cordon adds cluster.flotilla.dev/unschedulable."
        ),
    )


class ApiResource(KubeModel):
    """A resource the member serves."""

    name: str = Field(description="Plural resource name, e.g. pytorchjobs.")
    kind: str = Field(description="Kind, e.g. PyTorchJob.")


class ApiEnablement(KubeModel):
    """The resources served in one group/version."""

    group_version: str = Field(description="Group and version, e.g. kubeflow.org/v1.")
    resources: list[ApiResource] | None = Field(default=None, description="Resources served there.")


class GpuModelSummary(KubeModel):
    """GPU capacity of one GPU model on the member."""

    model: str = Field(description="The nvidia.com/gpu.product label, e.g. NVIDIA-H100-80GB-HBM3.")
    memory_mi_b: NonNegInt32 | None = Field(
        default=None,
        alias="memoryMiB",
        description="Memory per GPU in MiB (nvidia.com/gpu.memory).",
    )
    total: NonNegInt32 = Field(description="Allocatable GPUs of this model.")
    free: NonNegInt32 = Field(description="GPUs of this model not requested by pods.")
    nodes: NonNegInt32 = Field(description="Nodes with this model.")


class ResourceSummary(KubeModel):
    """Resources of the member's schedulable nodes."""

    allocatable: ResourceList | None = Field(default=None, description="Sum of node allocatable.")
    allocated: ResourceList | None = Field(default=None, description="Sum of pod requests.")
    free: ResourceList | None = Field(default=None, description="allocatable - allocated.")
    gpu_models: (
        Annotated[
            list[GpuModelSummary],
            Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["model"]),
        ]
        | None
    ) = Field(default=None, description="GPU capacity per GPU model.")
    gpu_model_names: str | None = Field(
        default=None,
        description="Comma-separated GPU models (for kubectl get); see models_summary().",
    )

    def models_summary(self) -> str:
        """The value for ``gpuModelNames``: models sorted by name, e.g. ``NVIDIA-A100,NVIDIA-L4``."""
        return ",".join(sorted(m.model for m in self.gpu_models or ()))


class NodeSummary(KubeModel):
    """Node counts."""

    total_num: NonNegInt32 = Field(default=0, description="Nodes.")
    ready_num: NonNegInt32 = Field(default=0, description="Ready nodes.")
    cordoned_num: NonNegInt32 = Field(
        default=0, description="Cordoned nodes (spec.unschedulable), Ready or not."
    )


class MemberClusterStatus(ObjectStatus):
    """Health and inventory of the member."""

    kubernetes_version: str | None = Field(default=None, description="The member's Kubernetes version.")
    api_enablements: list[ApiEnablement] | None = Field(default=None, description="Kinds the member serves.")
    resource_summary: ResourceSummary | None = Field(default=None, description="Resources and GPUs.")
    node_summary: NodeSummary | None = Field(default=None, description="Node counts.")


_GPU_KEY = GPU_RESOURCE.replace(".", "\\.")


class MemberCluster(KubeResource):
    """A member cluster: a kubeconfig Secret, location, taints; status carries health and GPU inventory.

    Labels on the object (region, zone, provider, GPU generation, ...) are what
    placement.clusterAffinity.labelSelector matches.
    """

    crd = CrdInfo(
        "MemberCluster",
        "memberclusters",
        ("mc",),
        "Cluster",
        (
            PrinterColumn(
                "READY",
                f'.status.conditions[?(@.type=="{READY}")].status',
                "string",
                "Whether the member is reachable and healthy.",
            ),
            PrinterColumn("GPUS FREE", f".status.resourceSummary.free.{_GPU_KEY}", "string", "Free GPUs."),
            PrinterColumn("GPUS TOTAL", f".status.resourceSummary.allocatable.{_GPU_KEY}", "string", "GPUs."),
            PrinterColumn("GPU MODELS", ".status.resourceSummary.gpuModelNames", "string", "GPU models."),
            PrinterColumn("REGION", ".spec.region", "string", "Region.", priority=1),
            PrinterColumn(
                "VERSION", ".status.kubernetesVersion", "string", "Kubernetes version.", priority=1
            ),
            AGE,
        ),
    )

    spec: MemberClusterSpec = Field(description="How to reach the member.")
    status: MemberClusterStatus | None = Field(default=None, description="Health and inventory.")
