"""PodGroup: gang semantics with the union of Volcano's and scheduler-plugins' spec fields.

A workload joins a group through the annotation ``scheduling.k8s.io/group-name`` or the label
``scheduling.x-k8s.io/pod-group`` (on the workload or its pod template). The gang is placed whole
inside one member cluster unless ``spec.maxClusters`` allows more.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from flotilla.api.base import (
    AGE,
    CrdInfo,
    KubeModel,
    KubeResource,
    NonNegInt32,
    PrinterColumn,
    ResourceList,
    Rule,
    Schema,
    Timestamp,
    cel,
)
from flotilla.api.meta import LabelSelector, ObjectStatus

GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"
"""Volcano's way for a pod (template) to name its PodGroup."""
POD_GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
"""scheduler-plugins' way for a pod (template) to name its PodGroup."""

PodGroupPhase = Literal[
    "Pending", "Inqueue", "Scheduling", "Running", "Unknown", "Completed", "Finished", "Failed"
]

MinTaskMember = Annotated[dict[str, NonNegInt32], Field(max_length=32)]
"""Role (task) name -> the fewest members of that role the gang needs."""

MIN_TASK_MEMBER_SUM_RULE = Rule(
    "!has(self.minTaskMember) || !has(self.minMember)"
    " || self.minTaskMember.map(k, self.minTaskMember[k]).sum() <= self.minMember",
    "the sum of minTaskMember must not exceed minMember",
    field_path=".minTaskMember",
)


class NetworkTopology(KubeModel):
    """Volcano's network-topology constraint (accepted, ignored by Flotilla)."""

    mode: Literal["hard", "soft"] = Field(default="hard", description="hard or soft.")
    highest_tier_allowed: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Highest network tier the group may span.",
    )
    highest_tier_name: str | None = Field(default=None, max_length=253, description="Name of that tier.")


class SubGroupPolicy(KubeModel):
    """Volcano's sub-group policy (accepted, ignored by Flotilla)."""

    name: str | None = Field(default=None, max_length=253, description="Sub-group name.")
    label_selector: LabelSelector | None = Field(default=None, description="Pods of the sub-group.")
    match_label_keys: Annotated[list[str], Schema(x_kubernetes_list_type="atomic")] | None = Field(
        default=None,
        description="Label keys whose values split pods into sub-groups.",
    )
    min_sub_groups: NonNegInt32 = Field(default=0, description="Fewest sub-groups.")
    sub_group_size: Annotated[int, Field(ge=1, le=2**31 - 1), Schema(format="int32")] = Field(
        default=1,
        description="Pods per sub-group.",
    )
    network_topology: NetworkTopology | None = Field(default=None, description="Topology constraint.")


class PodGroupSpec(KubeModel):
    """The gang: how many members must be placed together, and where they may go."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            MIN_TASK_MEMBER_SUM_RULE,
            Rule(
                "!has(oldSelf.queue) || (has(self.queue) && self.queue == oldSelf.queue)",
                "queue is immutable",
                field_path=".queue",
            ),
        )
    )

    min_member: NonNegInt32 | None = Field(
        default=None,
        description="Fewest pods that must be placed at once; unset means every replica of the workload.",
    )
    min_task_member: MinTaskMember | None = Field(
        default=None,
        description="Per role (task) name, the fewest pods of that role (Volcano).",
    )
    min_resources: ResourceList | None = Field(
        default=None,
        description="Fewest resources the gang needs; a cluster that cannot fit them is filtered out.",
    )
    queue: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="Volcano queue (accepted, ignored by Flotilla); immutable.",
    )
    priority_class_name: str | None = Field(
        default=None,
        max_length=253,
        description="PriorityClass of the gang; orders gangs waiting for capacity.",
    )
    schedule_timeout_seconds: NonNegInt32 | None = Field(
        default=None,
        description=(
            "How long the gang's workload may stay not running (healthy) on its cluster before it is"
            " moved whole to another one (scheduler-plugins marks the group Failed instead)."
        ),
    )
    network_topology: NetworkTopology | None = Field(
        default=None,
        description="Volcano network topology (accepted, ignored by Flotilla).",
    )
    sub_group_policy: list[SubGroupPolicy] | None = Field(
        default=None,
        description="Volcano sub-groups (accepted, ignored by Flotilla).",
    )
    max_clusters: Annotated[int, Field(ge=1, le=64), Schema(format="int32")] = Field(
        default=1,
        description="Flotilla: member clusters the gang may span; 1 (the default) keeps it on one fabric.",
    )


class PodGroupStatus(ObjectStatus):
    """Where the gang is and how its members are doing."""

    phase: PodGroupPhase | None = Field(
        default=None, description="Summary phase, derived from the conditions."
    )
    cluster: str | None = Field(default=None, description="The member cluster the gang was placed on.")
    clusters: list[str] | None = Field(
        default=None,
        description="All clusters holding members, when maxClusters > 1.",
    )
    running: NonNegInt32 | None = Field(default=None, description="Members running.")
    succeeded: NonNegInt32 | None = Field(default=None, description="Members succeeded.")
    failed: NonNegInt32 | None = Field(default=None, description="Members failed.")
    schedule_start_time: Timestamp | None = Field(
        default=None,
        description="When placement of the gang started (for scheduleTimeoutSeconds).",
    )
    occupied_by: str | None = Field(default=None, description="The workload that owns the group.")


class PodGroup(KubeResource):
    """A gang of pods placed all at once or not at all."""

    crd = CrdInfo(
        "PodGroup",
        "podgroups",
        ("fpg",),
        "Namespaced",
        (
            PrinterColumn("PHASE", ".status.phase", "string", "Phase of the group."),
            PrinterColumn("MINMEMBER", ".spec.minMember", "integer", "Fewest members placed together."),
            PrinterColumn("CLUSTER", ".status.cluster", "string", "Member cluster of the group."),
            PrinterColumn("RUNNING", ".status.running", "integer", "Members running.", priority=1),
            PrinterColumn("QUEUE", ".spec.queue", "string", "Volcano queue.", priority=1),
            AGE,
        ),
    )

    spec: PodGroupSpec = Field(default_factory=PodGroupSpec, description="The gang.")
    status: PodGroupStatus | None = Field(default=None, description="Observed state.")
