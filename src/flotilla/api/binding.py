"""ResourceBinding: one per placed workload, holding the scheduler's decision and per-cluster status."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from flotilla.api.base import (
    AGE,
    CrdInfo,
    JsonObject,
    KubeModel,
    KubeResource,
    NonNegInt32,
    NonNegInt64,
    PrinterColumn,
    ResourceList,
    Rule,
    Schema,
    Timestamp,
    cel,
    condition_column,
)
from flotilla.api.meta import ObjectStatus, Tolerations
from flotilla.api.podgroup import MIN_TASK_MEMBER_SUM_RULE, MinTaskMember
from flotilla.api.policy import Placement

SCHEDULED = "Scheduled"
FULLY_APPLIED = "FullyApplied"
"""Condition types of a ResourceBinding (Karmada's)."""

Health = Literal["Healthy", "Unhealthy", "Unknown"]


def _keyed(*keys: str) -> Schema:
    return Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=list(keys))


class ObjectReference(KubeModel):
    """The workload template on the hub."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                # `namespace` is a CEL keyword: Kubernetes exposes the field as __namespace__.
                "self.kind == oldSelf.kind && self.name == oldSelf.name"
                " && has(self.__namespace__) == has(oldSelf.__namespace__)"
                " && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)",
                "kind, namespace and name of spec.resource are immutable",
            )
        )
    )

    api_version: str = Field(min_length=1, max_length=317, description="API version of the workload.")
    kind: str = Field(min_length=1, max_length=63, description="Kind of the workload.")
    namespace: str | None = Field(default=None, max_length=63, description="Namespace of the workload.")
    name: str = Field(min_length=1, max_length=253, description="Name of the workload.")
    uid: str | None = Field(default=None, description="UID of the workload.")
    resource_version: str | None = Field(
        default=None, description="resourceVersion the binding was built from."
    )


class NodeClaim(KubeModel):
    """Node constraints of the workload's pods."""

    node_selector: dict[str, str] | None = Field(default=None, description="The pods' nodeSelector.")
    tolerations: Tolerations | None = Field(default=None, description="The pods' tolerations.")
    hard_node_affinity: JsonObject | None = Field(
        default=None,
        description="The pods' requiredDuringSchedulingIgnoredDuringExecution node selector.",
    )


class ReplicaRequirements(KubeModel):
    """What one replica (pod) needs."""

    resource_request: ResourceList | None = Field(default=None, description="Requests of one replica.")
    node_claim: NodeClaim | None = Field(default=None, description="Node constraints of one replica.")
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the pods.")
    namespace: str | None = Field(default=None, description="Namespace of the pods.")


class Component(KubeModel):
    """One role of a multi-role workload (e.g. PyTorchJob Master / Worker)."""

    name: str = Field(min_length=1, max_length=63, description="Role name.")
    replicas: NonNegInt32 = Field(description="Replicas of this role.")
    replica_requirements: ReplicaRequirements | None = Field(default=None, description="Per-replica needs.")


class TargetCluster(KubeModel):
    """A cluster chosen by the scheduler."""

    name: str = Field(min_length=1, max_length=253, description="MemberCluster name.")
    replicas: NonNegInt32 | None = Field(default=None, description="Replicas on this cluster (Divided).")


class GracefulEvictionTask(KubeModel):
    """An eviction from a cluster (failover). While it stands the cluster is kept out of the
    workload's decisions, and the old copy there is kept as long as ``suppressDeletion`` is true."""

    from_cluster: str = Field(min_length=1, description="The cluster being left.")
    reason: str = Field(min_length=1, max_length=32, description="Why, in CamelCase (e.g. ClusterNotReady).")
    message: str | None = Field(default=None, max_length=1024, description="Human-readable detail.")
    producer: str | None = Field(default=None, description="The controller that created the task.")
    replicas: NonNegInt32 | None = Field(default=None, description="Replicas that were on that cluster.")
    purge_mode: Literal["Directly", "Gracefully", "Never"] | None = Field(
        default=None,
        description="How the old copy is removed.",
    )
    grace_period_seconds: NonNegInt32 | None = Field(
        default=None,
        description="Longest wait before the old copy is removed anyway.",
    )
    suppress_deletion: bool | None = Field(
        default=None,
        description=(
            "Keep the old copy until this is cleared: by Flotilla when the replacement is healthy or"
            " the grace period ends (Gracefully), by a user (Never)."
        ),
    )
    creation_timestamp: Timestamp | None = Field(default=None, description="When the task was created.")


class PolicyRef(KubeModel):
    """The policy that matched the workload."""

    kind: Literal["PropagationPolicy", "ClusterPropagationPolicy"] = Field(description="Policy kind.")
    namespace: str | None = Field(default=None, description="Namespace (PropagationPolicy only).")
    name: str = Field(min_length=1, description="Policy name.")


class SchedulingGroup(KubeModel):
    """The gang the workload forms: from a PodGroup, or implicit (all replicas of all components)."""

    model_config = ConfigDict(json_schema_extra=cel(MIN_TASK_MEMBER_SUM_RULE))

    pod_group: str | None = Field(default=None, description="Name of the PodGroup, if one was given.")
    min_member: NonNegInt32 | None = Field(default=None, description="Fewest replicas placed together.")
    min_task_member: MinTaskMember | None = Field(
        default=None,
        description="Fewest replicas per component; keys are spec.components names.",
    )
    max_clusters: Annotated[int, Field(ge=1, le=64), Schema(format="int32")] = Field(
        default=1,
        description="How many clusters the gang may span.",
    )
    min_resources: ResourceList | None = Field(
        default=None,
        description=(
            "The PodGroup's minResources: a cluster with less free (summed over its Ready nodes) is"
            " filtered out; with maxClusters > 1, the clusters together."
        ),
    )


class ResourceBindingSpec(KubeModel):
    """The workload, its needs, and the scheduler's decision."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!has(self.schedulingGroup) || !has(self.schedulingGroup.minTaskMember)"
                " || (has(self.components) && self.schedulingGroup.minTaskMember.all(r,"
                " self.components.exists(c, c.name == r)))",
                "every key of schedulingGroup.minTaskMember must name one of spec.components",
                field_path=".schedulingGroup.minTaskMember",
            )
        )
    )

    resource: ObjectReference = Field(description="The workload template; its identity is immutable.")
    replicas: NonNegInt32 | None = Field(default=None, description="Replicas of a single-role workload.")
    replica_requirements: ReplicaRequirements | None = Field(
        default=None,
        description="Per-replica needs of a single-role workload.",
    )
    components: Annotated[list[Component], Field(max_length=32), _keyed("name")] | None = Field(
        default=None,
        description="Roles of a multi-role workload, each with replicas and per-replica needs.",
    )
    clusters: Annotated[list[TargetCluster], Field(max_length=256), _keyed("name")] | None = Field(
        default=None,
        description="The decision: clusters and their replicas.",
    )
    graceful_eviction_tasks: (
        Annotated[list[GracefulEvictionTask], Field(max_length=256), _keyed("fromCluster")] | None
    ) = Field(
        default=None,
        description="Clusters the workload was evicted from (failover), and whether their old copies stay.",
    )
    placement: Placement | None = Field(default=None, description="Copy of the policy's placement.")
    policy_ref: PolicyRef | None = Field(default=None, description="The matched policy.")
    scheduling_group: SchedulingGroup | None = Field(default=None, description="The gang, if any.")
    priority: NonNegInt32 | None = Field(default=None, description="Scheduling priority (from the policy).")


def clusters_summary(clusters: list[TargetCluster] | None) -> str:
    """``status.clustersSummary`` for a decision: ``name`` or ``name:replicas``, comma-separated."""
    return ",".join(c.name if c.replicas is None else f"{c.name}:{c.replicas}" for c in clusters or ())


class AggregatedStatusItem(KubeModel):
    """The workload on one member cluster."""

    cluster_name: str = Field(description="MemberCluster name.")
    applied: bool | None = Field(default=None, description="Whether the copy was applied.")
    applied_message: str | None = Field(default=None, description="Why applying failed, if it did.")
    applied_generation: NonNegInt64 | None = Field(
        default=None,
        description="metadata.generation of the member copy as Flotilla last applied it (drift check).",
    )
    member_uid: str | None = Field(
        default=None, alias="memberUID", description="metadata.uid of the member copy."
    )
    applied_time: Timestamp | None = Field(default=None, description="When the copy was last applied.")
    applied_hash: str | None = Field(
        default=None,
        max_length=64,
        description="Digest of what was applied (the copy and its dependencies): unchanged means no apply.",
    )
    health: Health | None = Field(default=None, description="Healthy, Unhealthy or Unknown.")
    status: JsonObject | None = Field(default=None, description="The copy's status as the member reports it.")


class ResourceBindingStatus(ObjectStatus):
    """Scheduling and propagation state."""

    scheduler_observed_generation: NonNegInt64 | None = Field(
        default=None,
        description="The generation the scheduler last decided on.",
    )
    last_scheduled_time: Timestamp | None = Field(
        default=None, description="When the last decision was made."
    )
    explanation: JsonObject | None = Field(
        default=None,
        description="Why: per cluster, the filter that rejected it or each score plugin's score.",
    )
    clusters_summary: str | None = Field(
        default=None,
        description="The decision as text for kubectl get, e.g. a:4,b:2; see clusters_summary().",
    )
    aggregated_status: Annotated[list[AggregatedStatusItem], _keyed("clusterName")] | None = Field(
        default=None,
        description="Per cluster: applied, health and observed status.",
    )


class ResourceBinding(KubeResource):
    """The placement decision for one workload template, and how it is doing on each cluster."""

    crd = CrdInfo(
        "ResourceBinding",
        "resourcebindings",
        ("frb",),
        "Namespaced",
        (
            condition_column("SCHEDULED", SCHEDULED),
            PrinterColumn("CLUSTERS", ".status.clustersSummary", "string", "Chosen clusters and replicas."),
            condition_column("APPLIED", FULLY_APPLIED),
            PrinterColumn("KIND", ".spec.resource.kind", "string", "Workload kind.", priority=1),
            PrinterColumn("POLICY", ".spec.policyRef.name", "string", "Matched policy.", priority=1),
            AGE,
        ),
    )

    spec: ResourceBindingSpec = Field(description="The workload and the decision.")
    status: ResourceBindingStatus | None = Field(default=None, description="Observed state.")
