"""PropagationPolicy and ClusterPropagationPolicy: which workloads go where, with Karmada's field names.

Every field of Karmada's ``policy.karmada.io/v1alpha1`` PropagationPolicy is accepted with the
same name, type, enum and default, so a Karmada manifest applies with only ``apiVersion``
changed. What Flotilla does with each field is in :mod:`flotilla.api.compat` and
docs/api-compatibility.md. CEL rules enforce the cross-field checks Karmada's webhook does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from flotilla.api.base import (
    AGE,
    CrdInfo,
    Int32,
    KubeResource,
    NonNegInt32,
    PrinterColumn,
    Rule,
    Schema,
    cel,
)
from flotilla.api.base import KubeModel as _Model
from flotilla.api.meta import Atomic, LabelSelector, ObjectStatus, Tolerations

SpreadField = Literal["cluster", "region", "zone", "provider"]
PurgeMode = Literal["Directly", "Gracefully", "Never", "Immediately", "Graciously"]
"""Karmada's purge modes; ``Immediately``/``Graciously`` are deprecated aliases of Directly/Gracefully."""

FLOTILLA_SCHEDULER_NAMES = ("default-scheduler", "flotilla")
"""``spec.schedulerName`` values that name Flotilla or the default: no IgnoredField warning for them
(Flotilla schedules every selected workload whatever the field says; see the compatibility table)."""


class ResourceSelector(_Model):
    """Selects the resources a policy propagates."""

    api_version: str = Field(min_length=1, description="API version of the target resources.")
    kind: str = Field(min_length=1, description="Kind of the target resources.")
    namespace: str | None = Field(default=None, description="Namespace of the target resources.")
    name: str | None = Field(
        default=None,
        description="Name of the target resource; when set, labelSelector is ignored.",
    )
    label_selector: LabelSelector | None = Field(
        default=None,
        description="A label query over the target resources; ignored when name is set.",
    )


class FieldSelectorRequirement(_Model):
    """A requirement on a cluster field (provider, region or zone)."""

    key: Literal["provider", "region", "zone"] = Field(
        description="The cluster field: provider, region or zone."
    )
    operator: Literal["In", "NotIn"] = Field(description="In or NotIn.")
    values: Annotated[list[str], Atomic] | None = Field(default=None, description="Field values.")


class FieldSelector(_Model):
    """A query over cluster fields; the requirements are ANDed."""

    match_expressions: list[FieldSelectorRequirement] | None = Field(
        default=None,
        description="A list of field selector requirements.",
    )


class ClusterAffinity(_Model):
    """Cluster selection: names, exclusions, label and field selectors (all ANDed)."""

    label_selector: LabelSelector | None = Field(default=None, description="Label query over MemberClusters.")
    field_selector: FieldSelector | None = Field(
        default=None,
        description="Query over MemberCluster spec.provider, spec.region and spec.zone.",
    )
    cluster_names: list[str] | None = Field(default=None, description="Clusters that may be selected.")
    exclude: list[str] | None = Field(default=None, description="Clusters that must not be selected.")


class NamedClusterAffinity(ClusterAffinity):
    """A cluster affinity with a name, used as one fallback group."""

    affinity_name: str = Field(min_length=1, max_length=32, description="Name of this affinity group.")


class ClusterAffinityTerm(NamedClusterAffinity):
    """One ordered fallback group of clusterAffinities."""

    overflow_affinities: list[NamedClusterAffinity] | None = Field(
        default=None,
        description="Groups used when this one is full (accepted, ignored by Flotilla).",
    )


class SpreadConstraint(_Model):
    """Spread the workload over groups of clusters."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!(has(self.spreadByField) && has(self.spreadByLabel))",
                "spreadByField and spreadByLabel are mutually exclusive",
                field_path=".spreadByLabel",
            ),
            Rule(
                "!has(self.maxGroups) || self.maxGroups == 0 || !has(self.minGroups)"
                " || self.minGroups <= self.maxGroups",
                "minGroups must be less than or equal to maxGroups",
                field_path=".minGroups",
            ),
        )
    )

    spread_by_field: SpreadField | None = Field(
        default=None,
        description="Group clusters by a MemberCluster field: cluster, region, zone or provider.",
    )
    spread_by_label: str | None = Field(
        default=None, description="Group clusters by the value of this label."
    )
    max_groups: NonNegInt32 | None = Field(default=None, description="Most groups to use; 0 means no limit.")
    min_groups: NonNegInt32 = Field(default=0, description="Fewest groups to use.")


class StaticClusterWeight(_Model):
    """A static weight for the clusters matched by targetCluster."""

    target_cluster: ClusterAffinity = Field(description="The clusters this weight applies to.")
    weight: Annotated[int, Field(ge=1), Schema(format="int64")] = Field(description="Weight (at least 1).")


class WeightPreference(_Model):
    """How replicas are weighted across clusters: a static list or a dynamic factor, not both."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "(has(self.staticWeightList) && size(self.staticWeightList) > 0) != has(self.dynamicWeight)",
                "exactly one of staticWeightList (non-empty) or dynamicWeight must be set",
            )
        )
    )

    static_weight_list: list[StaticClusterWeight] | None = Field(
        default=None,
        description="Static weights per group of clusters.",
    )
    dynamic_weight: Literal["AvailableReplicas"] | None = Field(
        default=None,
        description="Weight clusters by how many replicas they can still fit.",
    )


class ReplicaSchedulingStrategy(_Model):
    """How replicas are assigned to the selected clusters."""

    replica_scheduling_type: Literal["Duplicated", "Divided"] = Field(
        default="Divided",
        description="Duplicated: every cluster gets all replicas. Divided: the replicas are split.",
    )
    replica_division_preference: Literal["Aggregated", "Weighted"] | None = Field(
        default=None,
        description="For Divided: Aggregated (as few clusters as possible) or Weighted.",
    )
    weight_preference: WeightPreference | None = Field(
        default=None,
        description="Weights for Weighted; when unset every cluster weighs the same (as in Karmada).",
    )


class WorkloadAffinityTerm(_Model):
    """Groups workloads by the value of a label."""

    group_by_label_key: str = Field(description="Workloads with the same value of this label form a group.")


class WorkloadAffinity(_Model):
    """Co-location rules between workloads (accepted, ignored by Flotilla)."""

    affinity: WorkloadAffinityTerm | None = Field(default=None, description="Place the group together.")
    anti_affinity: WorkloadAffinityTerm | None = Field(default=None, description="Place the group apart.")


class Placement(_Model):
    """Where the selected workloads may go and how their replicas are divided."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!(has(self.clusterAffinity) && has(self.clusterAffinities))",
                "clusterAffinity and clusterAffinities are mutually exclusive",
                field_path=".clusterAffinities",
            ),
            Rule(
                "!has(self.spreadConstraints) || !self.spreadConstraints.exists(c, has(c.spreadByField))"
                " || self.spreadConstraints.exists(c, has(c.spreadByField) && c.spreadByField == 'cluster')",
                "a spreadConstraint with spreadByField 'cluster' is required when any spreadByField is used",
                field_path=".spreadConstraints",
            ),
        )
    )

    cluster_affinity: ClusterAffinity | None = Field(default=None, description="The clusters to choose from.")
    cluster_affinities: (
        Annotated[
            list[ClusterAffinityTerm],
            Field(max_length=32),
            Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["affinityName"]),
        ]
        | None
    ) = Field(
        default=None,
        description="Ordered fallback groups: the first group that fits is used.",
    )
    cluster_tolerations: Tolerations | None = Field(
        default=None,
        description="Tolerations of MemberCluster taints.",
    )
    spread_constraints: Annotated[list[SpreadConstraint], Field(max_length=16)] | None = Field(
        default=None,
        description="How to spread over groups of clusters.",
    )
    replica_scheduling: ReplicaSchedulingStrategy | None = Field(
        default=None,
        description="How replicas are assigned; unset means Duplicated.",
    )
    workload_affinity: WorkloadAffinity | None = Field(
        default=None,
        description="Workload co-location (accepted, ignored by Flotilla).",
    )


class StatePreservationRule(_Model):
    """A piece of state carried to the new cluster on failover."""

    alias_label_name: str = Field(description="Label name the value is injected as.")
    json_path: str = Field(description="JSONPath into the old copy's status.")


class StatePreservation(_Model):
    """State carried across failover (accepted, ignored by Flotilla)."""

    rules: list[StatePreservationRule] = Field(description="The rules.")


class DecisionConditions(_Model):
    """When an application counts as failed on its cluster."""

    toleration_seconds: NonNegInt32 = Field(
        default=300,
        description="How long the application may stay unhealthy before it is moved.",
    )


class ApplicationFailoverBehavior(_Model):
    """Moving an application that stays unhealthy on its cluster."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!has(self.gracePeriodSeconds) || self.purgeMode in ['Gracefully', 'Graciously']",
                "gracePeriodSeconds only applies when purgeMode is Gracefully",
                field_path=".gracePeriodSeconds",
            )
        )
    )

    decision_conditions: DecisionConditions = Field(description="When to fail over.")
    purge_mode: PurgeMode = Field(
        default="Gracefully",
        description="How the old copy is removed: Directly, Gracefully (once the new one is up) or Never.",
    )
    grace_period_seconds: NonNegInt32 | None = Field(
        default=None,
        description="Longest wait for the new copy before the old one is removed (Gracefully).",
    )
    state_preservation: StatePreservation | None = Field(
        default=None,
        description="State carried to the new cluster (accepted, ignored by Flotilla).",
    )


class ClusterFailoverBehavior(_Model):
    """Moving workloads off a failed cluster."""

    purge_mode: Literal["Directly", "Gracefully", "Never"] = Field(
        default="Gracefully",
        description=(
            "How copies on the failed cluster are removed: Directly (at once, or when the cluster"
            " answers again), Gracefully (once the new copy is healthy or the operator's grace period"
            " ends) or Never (Flotilla only: until a user clears the eviction task's suppressDeletion)."
            " A gang is purged Directly unless Never."
        ),
    )
    state_preservation: StatePreservation | None = Field(
        default=None,
        description="State carried to the new cluster (accepted, ignored by Flotilla).",
    )


class FailoverBehavior(_Model):
    """Failover behaviour for clusters and applications."""

    cluster: ClusterFailoverBehavior | None = Field(default=None, description="Cluster failover.")
    application: ApplicationFailoverBehavior | None = Field(default=None, description="Application failover.")


class ClusterNames(_Model):
    """A list of clusters."""

    cluster_names: list[str] | None = Field(default=None, description="Cluster names.")


class Suspension(_Model):
    """Pauses propagation."""

    dispatching: bool | None = Field(default=None, description="Stop propagating to every cluster.")
    dispatching_on_clusters: ClusterNames | None = Field(
        default=None,
        description="Stop propagating to these clusters.",
    )


class SchedulePriority(_Model):
    """Scheduling-queue priority taken from a PriorityClass (accepted, ignored by Flotilla)."""

    priority_class_source: Literal["KubePriorityClass"] = Field(description="Where the class comes from.")
    priority_class_name: str = Field(description="Name of the PriorityClass.")


class PropagationSpec(_Model):
    """The desired propagation of the selected resources (Karmada's PropagationSpec)."""

    resource_selectors: Annotated[list[ResourceSelector], Field(min_length=1)] = Field(
        description="The resources this policy applies to.",
    )
    association: bool | None = Field(default=None, description="Deprecated in Karmada; use propagateDeps.")
    propagate_deps: bool | None = Field(
        default=None,
        description="Propagate referenced ConfigMaps/Secrets too (accepted, ignored by Flotilla).",
    )
    placement: Placement | None = Field(default=None, description="Where the resources go.")
    priority: Int32 = Field(
        default=0,
        description="Among policies matching a resource, higher priority wins.",
    )
    preemption: Literal["Always", "Never"] = Field(
        default="Never",
        description="Always: this policy may take over resources claimed by a lower-priority policy.",
    )
    dependent_overrides: list[str] | None = Field(
        default=None,
        description="OverridePolicies to wait for (accepted, ignored by Flotilla).",
    )
    scheduler_name: str | None = Field(
        default=None,
        description="Scheduler for the bindings; Flotilla schedules unset, default-scheduler and flotilla.",
    )
    failover: FailoverBehavior | None = Field(default=None, description="Failover behaviour.")
    conflict_resolution: Literal["Abort", "Overwrite"] = Field(
        default="Abort",
        description="What to do when the resource already exists on a member.",
    )
    activation_preference: Literal["Lazy"] | None = Field(
        default=None,
        description="Lazy: policy changes apply at the next resource change (accepted, ignored by Flotilla).",
    )
    suspension: Suspension | None = Field(default=None, description="Pause propagation.")
    preserve_resources_on_deletion: bool | None = Field(
        default=None,
        description="Keep member copies when the template is deleted (accepted, ignored by Flotilla).",
    )
    schedule_priority: SchedulePriority | None = Field(
        default=None,
        description="Scheduling-queue priority (accepted, ignored by Flotilla).",
    )


class PolicyStatus(ObjectStatus):
    """Observed state of a policy."""


POLICY_COLUMNS = (
    PrinterColumn("PRIORITY", ".spec.priority", "integer", "Policy priority."),
    PrinterColumn("PREEMPTION", ".spec.preemption", "string", "Preemption mode.", priority=1),
    AGE,
)


class PropagationPolicy(KubeResource):
    """Propagates namespaced resources of its own namespace to member clusters."""

    crd = CrdInfo("PropagationPolicy", "propagationpolicies", ("fpp",), "Namespaced", POLICY_COLUMNS)

    spec: PropagationSpec = Field(description="The desired propagation.")
    status: PolicyStatus | None = Field(default=None, description="Observed state.")


class ClusterPropagationPolicy(KubeResource):
    """Propagates cluster-scoped resources, and namespaced resources of any namespace."""

    crd = CrdInfo(
        "ClusterPropagationPolicy", "clusterpropagationpolicies", ("fcpp",), "Cluster", POLICY_COLUMNS
    )

    spec: PropagationSpec = Field(description="The desired propagation.")
    status: PolicyStatus | None = Field(default=None, description="Observed state.")
