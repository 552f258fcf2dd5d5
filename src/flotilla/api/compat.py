"""What Flotilla does with each Karmada, Volcano and scheduler-plugins field (the compatibility table).

Every field their CRDs accept is accepted by ours (same name, type and enum). For each one the
tables below say whether Flotilla acts on it (``supported``), accepts it but does nothing with it
(``ignored``: the operator emits a Warning event, see :func:`ignored_fields_in`), or fills it in
itself (``status``). No field is rejected outright; combinations that Karmada's webhook rejects
are rejected by our CEL rules, listed per kind in docs/api-compatibility.md.

docs/api-compatibility.md is generated from these tables by ``python -m flotilla.api.gen``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flotilla.api.policy import FLOTILLA_SCHEDULER_NAMES


class Support(StrEnum):
    SUPPORTED = "supported"
    IGNORED = "accepted, ignored (Warning event)"
    STATUS = "status, written by Flotilla"
    UNWRITTEN = "status, not written by Flotilla (stays empty)"
    REJECTED = "rejected"


@dataclass(frozen=True)
class FieldSupport:
    """One upstream field and what Flotilla does with it."""

    path: str
    support: Support
    note: str
    inert: tuple[Any, ...] = ()
    """Values of an ignored field that change nothing, so no warning is due (e.g. Karmada defaults)."""


S, IG, ST, NW = Support.SUPPORTED, Support.IGNORED, Support.STATUS, Support.UNWRITTEN

_AFFINITY = "spec.placement.clusterAffinity"
_AFFINITIES = "spec.placement.clusterAffinities[]"
_REPLICAS = "spec.placement.replicaScheduling"
_APP = "spec.failover.application"

KARMADA_POLICY_FIELDS: tuple[FieldSupport, ...] = (
    FieldSupport("spec.resourceSelectors[].apiVersion", S, "Matched against the template's apiVersion."),
    FieldSupport("spec.resourceSelectors[].kind", S, "Matched against the template's kind."),
    FieldSupport("spec.resourceSelectors[].namespace", S, "Only used by ClusterPropagationPolicy."),
    FieldSupport("spec.resourceSelectors[].name", S, "An explicit name beats a label selector."),
    FieldSupport("spec.resourceSelectors[].labelSelector", S, "Ignored when name is set (as in Karmada)."),
    FieldSupport("spec.association", IG, "Deprecated in Karmada in favour of propagateDeps.", (False,)),
    FieldSupport(
        "spec.propagateDeps", IG, "Dependencies are not propagated; create them on members.", (False,)
    ),
    FieldSupport(f"{_AFFINITY}.clusterNames", S, "Only these MemberClusters."),
    FieldSupport(f"{_AFFINITY}.exclude", S, "Never these MemberClusters."),
    FieldSupport(f"{_AFFINITY}.labelSelector", S, "Over MemberCluster labels."),
    FieldSupport(f"{_AFFINITY}.fieldSelector", S, "Over MemberCluster spec.provider/region/zone."),
    FieldSupport(f"{_AFFINITIES}.affinityName", S, "Groups are tried in order; the first that fits wins."),
    FieldSupport(f"{_AFFINITIES}.clusterNames", S, "As in clusterAffinity."),
    FieldSupport(f"{_AFFINITIES}.exclude", S, "As in clusterAffinity."),
    FieldSupport(f"{_AFFINITIES}.labelSelector", S, "As in clusterAffinity."),
    FieldSupport(f"{_AFFINITIES}.fieldSelector", S, "As in clusterAffinity."),
    FieldSupport(f"{_AFFINITIES}.overflowAffinities", IG, "No overflow scheduling; the group is used alone."),
    FieldSupport(
        "spec.placement.clusterTolerations",
        S,
        "Tolerate MemberCluster spec.taints; tolerationSeconds: how long a NoExecute taint is"
        " tolerated (from its timeAdded) before the workload fails over.",
    ),
    FieldSupport("spec.placement.spreadConstraints[].spreadByField", S, "cluster, region, zone or provider."),
    FieldSupport("spec.placement.spreadConstraints[].spreadByLabel", S, "Groups clusters by a label value."),
    FieldSupport("spec.placement.spreadConstraints[].maxGroups", S, "0 means no limit (as in Karmada)."),
    FieldSupport("spec.placement.spreadConstraints[].minGroups", S, "Fewest groups."),
    FieldSupport(
        f"{_REPLICAS}.replicaSchedulingType", S, "Duplicated or Divided; no replicaScheduling = Duplicated."
    ),
    FieldSupport(f"{_REPLICAS}.replicaDivisionPreference", S, "Aggregated or Weighted."),
    FieldSupport(f"{_REPLICAS}.weightPreference.staticWeightList", S, "Static weights per cluster group."),
    FieldSupport(f"{_REPLICAS}.weightPreference.dynamicWeight", S, "AvailableReplicas, from node-level fit."),
    FieldSupport(
        "spec.placement.workloadAffinity", IG, "Workload (anti-)affinity groups are not implemented."
    ),
    FieldSupport("spec.priority", S, "Higher wins among matching policies, then name order."),
    FieldSupport("spec.preemption", S, "Always: may take over workloads claimed by a lower-priority policy."),
    FieldSupport("spec.dependentOverrides", IG, "Flotilla has no OverridePolicy."),
    FieldSupport(
        "spec.schedulerName",
        IG,
        "Flotilla schedules every workload a policy selects, whatever scheduler is named.",
        FLOTILLA_SCHEDULER_NAMES,
    ),
    FieldSupport(
        f"{_APP}.decisionConditions.tolerationSeconds",
        S,
        "A copy not healthy on a Ready member for this long (its interpreter's verdict, e.g. pods that"
        " cannot be bound there) is moved to another cluster; the cluster it left is avoided until"
        " the workload is healthy where it went. The clock is kept in memory: a restart starts it again.",
    ),
    FieldSupport(
        f"{_APP}.purgeMode",
        S,
        "The copy left behind: Directly, Gracefully (until the new copy is healthy) or Never; a gang is"
        " purged Directly unless Never.",
    ),
    FieldSupport(
        f"{_APP}.gracePeriodSeconds",
        S,
        "Gracefully: longest wait for the new copy (unset: FLOTILLA_GRACEFUL_EVICTION_TIMEOUT, 600 s).",
    ),
    FieldSupport(f"{_APP}.statePreservation", IG, "State is not carried across failover."),
    FieldSupport(
        "spec.failover.cluster.purgeMode",
        S,
        "Copies left on a cluster tainted NoExecute: Directly, Gracefully (until the new copy is"
        " healthy, at most FLOTILLA_GRACEFUL_EVICTION_TIMEOUT, 600 s) or Never (Flotilla only)."
        " Unset: FLOTILLA_FAILOVER_PURGE_MODE (Gracefully). A gang is purged Directly unless Never.",
    ),
    FieldSupport("spec.failover.cluster.statePreservation", IG, "State is not carried across failover."),
    FieldSupport(
        "spec.conflictResolution",
        IG,
        "Flotilla never takes over a member object it did not create (always Abort).",
        ("Abort",),
    ),
    FieldSupport("spec.activationPreference", IG, "Policy changes apply at once."),
    FieldSupport(
        "spec.suspension.dispatching", IG, "Propagation cannot be suspended; copies stay in step.", (False,)
    ),
    FieldSupport(
        "spec.suspension.dispatchingOnClusters",
        IG,
        "Propagation cannot be suspended per cluster; copies stay in step.",
        ({},),
    ),
    FieldSupport(
        "spec.preserveResourcesOnDeletion", IG, "Member copies are removed with the template.", (False,)
    ),
    FieldSupport("spec.schedulePriority", IG, "Queue order follows spec.priority."),
)
"""PropagationPolicy and ClusterPropagationPolicy (policy.karmada.io/v1alpha1, Karmada v1.18)."""

KARMADA_QUOTA_FIELDS: tuple[FieldSupport, ...] = (
    FieldSupport(
        "spec.overall",
        S,
        "Enforced by the admission webhook: an apply that would go past it is rejected.",
    ),
    FieldSupport("spec.staticAssignments[].clusterName", S, "A MemberCluster name."),
    FieldSupport(
        "spec.staticAssignments[].hard",
        S,
        "The namespace's share of the cluster, enforced when placing; a ResourceQuota on the member.",
    ),
    FieldSupport("status.overall", ST, "The enforced overall quota."),
    FieldSupport("status.overallUsed", ST, "Requests x replicas of the namespace's workloads, plus charges."),
    FieldSupport("status.aggregatedStatus[].clusterName", ST, "Assigned clusters and clusters in use."),
    FieldSupport("status.aggregatedStatus[].hard", ST, "The cluster's static assignment, if any."),
    FieldSupport("status.aggregatedStatus[].used", ST, "Usage placed on the cluster by the bindings."),
)
"""FederatedResourceQuota (policy.karmada.io/v1alpha1, Karmada v1.18)."""

VOLCANO_PODGROUP_FIELDS: tuple[FieldSupport, ...] = (
    FieldSupport("spec.minMember", S, "Gang size; 0 or unset means all replicas of the workload."),
    FieldSupport("spec.minTaskMember", S, "Per-role minimum; the sum may not exceed minMember."),
    FieldSupport(
        "spec.minResources",
        S,
        "A cluster with less free (summed over its Ready nodes) is filtered out before node-level fit;"
        " with maxClusters > 1, the clusters together.",
    ),
    FieldSupport("spec.queue", IG, "Flotilla has no queues; immutable once set.", ("default",)),
    FieldSupport("spec.priorityClassName", IG, "Waiting gangs are retried in arrival order, not by class."),
    FieldSupport(
        "spec.networkTopology", IG, "Network-tier placement is not implemented; use maxClusters: 1."
    ),
    FieldSupport("spec.subGroupPolicy", IG, "Sub-groups are not implemented."),
    FieldSupport(
        "status.phase",
        ST,
        "Pending while the gang waits, Inqueue once it is placed (Running, Completed: not set).",
    ),
    FieldSupport("status.running", NW, "Pod counts stay on the member; see the workload's own status."),
    FieldSupport("status.succeeded", NW, "Pod counts stay on the member; see the workload's own status."),
    FieldSupport("status.failed", NW, "Pod counts stay on the member; see the workload's own status."),
    FieldSupport("status.conditions", ST, "metav1.Condition shape; Volcano's transitionID is not kept."),
)
"""PodGroup (scheduling.volcano.sh/v1beta1, Volcano v1.15)."""

SCHEDULER_PLUGINS_PODGROUP_FIELDS: tuple[FieldSupport, ...] = (
    FieldSupport("spec.minMember", S, "Gang size (scheduler-plugins requires >= 1; Flotilla accepts 0)."),
    FieldSupport(
        "spec.minResources",
        S,
        "A cluster with less free (summed over its Ready nodes) is filtered out before node-level fit;"
        " with maxClusters > 1, the clusters together.",
    ),
    FieldSupport(
        "spec.scheduleTimeoutSeconds",
        S,
        "A gang not running on its cluster this long after it was placed is moved whole to another"
        " one (as application failover; scheduler-plugins marks the group Failed instead).",
    ),
    FieldSupport(
        "status.phase",
        ST,
        "Pending while the gang waits, Inqueue once it is placed (Running, Finished: not set).",
    ),
    FieldSupport("status.running", NW, "Pod counts stay on the member; see the workload's own status."),
    FieldSupport("status.succeeded", NW, "Pod counts stay on the member; see the workload's own status."),
    FieldSupport("status.failed", NW, "Pod counts stay on the member; see the workload's own status."),
    FieldSupport("status.occupiedBy", NW, "The binding names the workload (spec.schedulingGroup)."),
    FieldSupport("status.scheduleStartTime", NW, "The Scheduled condition's lastTransitionTime says when."),
)
"""PodGroup (scheduling.x-k8s.io/v1alpha1, scheduler-plugins v0.34)."""

FLOTILLA_PODGROUP_FIELDS: tuple[FieldSupport, ...] = (
    FieldSupport("spec.maxClusters", S, "Flotilla only: clusters the gang may span (default 1)."),
    FieldSupport("status.cluster", ST, "Flotilla only: the cluster the gang was placed on."),
)

IGNORED_KARMADA_FIELDS: tuple[str, ...] = tuple(f.path for f in KARMADA_POLICY_FIELDS if f.support is IG)
"""Policy fields the operator accepts without acting on them (warn when set, see ignored_fields_in)."""
PODGROUP_FIELDS: tuple[FieldSupport, ...] = (
    tuple({f.path: f for f in SCHEDULER_PLUGINS_PODGROUP_FIELDS + VOLCANO_PODGROUP_FIELDS}.values())
    + FLOTILLA_PODGROUP_FIELDS
)
"""Every PodGroup field (Volcano's row where both projects have one): what the operator reads."""
IGNORED_PODGROUP_FIELDS: tuple[str, ...] = tuple(f.path for f in PODGROUP_FIELDS if f.support is IG)
"""PodGroup fields the operator accepts without acting on them (warn when set, see ignored_fields_in)."""


def _values_at(obj: Any, parts: Sequence[str]) -> Iterable[Any]:
    if not parts:
        yield obj
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(obj, Mapping) or key not in obj or obj[key] is None:
        return
    value = obj[key]
    for item in value if many and isinstance(value, list) else [value]:
        yield from _values_at(item, rest)


def ignored_fields_in(
    body: Mapping[str, Any], table: Sequence[FieldSupport] = KARMADA_POLICY_FIELDS
) -> list[str]:
    """Paths of ignored fields that ``body`` (a whole object) sets to a value that matters.

    The operator emits one Warning event per path, e.g. reason ``IgnoredField``, message
    ``spec.propagateDeps is accepted but not implemented by Flotilla: ...``.
    """
    found: list[str] = []
    for field in table:
        if field.support is not IG:
            continue
        values = [v for v in _values_at(body, field.path.split(".")) if v not in field.inert and v != []]
        if values:
            found.append(field.path)
    return found


def ignored_field_message(path: str, table: Sequence[FieldSupport] = KARMADA_POLICY_FIELDS) -> str:
    """The Warning event message for one ignored field."""
    note = next((f.note for f in table if f.path == path), "")
    return f"{path} is accepted for compatibility but ignored by Flotilla. {note}".strip()
