"""FederatedResourceQuota: a namespace's resource budget across all member clusters (Karmada's fields)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from flotilla.api.base import (
    AGE,
    CrdInfo,
    KubeModel,
    KubeResource,
    PrinterColumn,
    ResourceList,
    Rule,
    Schema,
    Timestamp,
    cel,
)
from flotilla.api.meta import ObjectStatus

ClusterKeyed = Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["clusterName"])


class StaticClusterAssignment(KubeModel):
    """A hard per-cluster limit inside the overall quota."""

    cluster_name: str = Field(min_length=1, max_length=253, description="The member cluster.")
    hard: ResourceList = Field(description="Limits on this cluster.")


class FederatedResourceQuotaSpec(KubeModel):
    """The namespace's budget."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!has(self.staticAssignments)"
                " || self.staticAssignments.all(a, a.hard.all(r, r in self.overall))",
                "every resource in staticAssignments[].hard must also be in overall",
                field_path=".staticAssignments",
            )
        )
    )

    overall: ResourceList = Field(
        description="Total over all clusters, e.g. {nvidia.com/gpu: 64}; enforced when workloads are applied",
    )
    static_assignments: (
        Annotated[list[StaticClusterAssignment], Field(max_length=64), ClusterKeyed] | None
    ) = Field(default=None, description="Optional per-cluster limits.")


class ClusterQuotaStatus(KubeModel):
    """Quota and usage on one cluster."""

    cluster_name: str = Field(description="The member cluster.")
    hard: ResourceList | None = Field(default=None, description="Limit on this cluster, if any.")
    used: ResourceList | None = Field(default=None, description="Usage on this cluster.")


class QuotaCharge(KubeModel):
    """Quota charged by the admission webhook for a workload the quota controller has not yet seen.

    Written before the workload is admitted, with an optimistic-concurrency update of the status,
    so two concurrent applies can never both take the last of the quota. The quota controller
    drops a charge once its workload shows the charged usage, or when it expires (the apply was
    rejected by a later admission step or never completed)."""

    workload: str = Field(
        min_length=1, max_length=512, description="apiVersion/kind/name of the workload charged for."
    )
    usage: ResourceList = Field(description="The workload's full usage after the apply (not the increase).")
    increase: ResourceList | None = Field(default=None, description="What the apply added to overallUsed.")
    expires: Timestamp = Field(description="When the charge is released if its workload has not shown it.")


class FederatedResourceQuotaStatus(ObjectStatus):
    """Observed usage."""

    overall: ResourceList | None = Field(default=None, description="The enforced overall quota.")
    overall_used: ResourceList | None = Field(default=None, description="Usage summed over all clusters.")
    aggregated_status: Annotated[list[ClusterQuotaStatus], ClusterKeyed] | None = Field(
        default=None,
        description="Usage per cluster.",
    )
    charges: Annotated[list[QuotaCharge], Field(max_length=4096)] | None = Field(
        default=None,
        description="Flotilla extension: admitted applies not yet seen by the quota controller"
        " (counted in overallUsed).",
    )


class FederatedResourceQuota(KubeResource):
    """Limits the resources the workloads of one namespace may use across the fleet."""

    crd = CrdInfo(
        "FederatedResourceQuota",
        "federatedresourcequotas",
        ("ffrq",),
        "Namespaced",
        (
            PrinterColumn("OVERALL", ".spec.overall", "string", "Overall limits."),
            PrinterColumn("OVERALL_USED", ".status.overallUsed", "string", "Usage over all clusters."),
            AGE,
        ),
    )

    spec: FederatedResourceQuotaSpec = Field(description="The budget.")
    status: FederatedResourceQuotaStatus | None = Field(default=None, description="Observed usage.")
