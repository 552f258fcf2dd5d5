"""Placement rules, mirroring Karmada's ``PropagationPolicy.spec.placement`` as dataclasses.

:meth:`Placement.from_dict` accepts the camelCase Kubernetes shape directly, so the operator can
pass a policy's ``spec.placement`` straight in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.scheduler.selectors import match_expression, match_labels
from flotilla.scheduler.snapshot import ClusterInfo, Toleration

__all__ = [
    "ClusterAffinity",
    "ClusterAffinityTerm",
    "Placement",
    "ReplicaScheduling",
    "SpreadConstraint",
    "StaticClusterWeight",
]

DUPLICATED = "Duplicated"
DIVIDED = "Divided"
AGGREGATED = "Aggregated"
WEIGHTED = "Weighted"
AVAILABLE_REPLICAS = "AvailableReplicas"


def _expressions(raw: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(
        {"key": str(e["key"]), "operator": str(e["operator"]), "values": list(e.get("values") or ())}
        for e in raw or ()
    )


@dataclass(frozen=True, slots=True)
class ClusterAffinity:
    """Which clusters are eligible: names, exclusions, a label selector and a field selector.

    ``field_expressions`` apply to the cluster fields ``provider``, ``region`` and ``zone``.
    An affinity with nothing set matches every cluster.
    """

    cluster_names: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Mapping[str, Any], ...] = ()
    field_expressions: tuple[Mapping[str, Any], ...] = ()

    def matches(self, cluster: ClusterInfo) -> bool:
        if self.cluster_names and cluster.name not in self.cluster_names:
            return False
        if cluster.name in self.exclude:
            return False
        if not match_labels(cluster.labels, self.match_labels, self.match_expressions):
            return False
        return all(
            match_expression(
                {str(e["key"]): cluster.field_value(str(e["key"]))},
                str(e["key"]),
                str(e["operator"]),
                tuple(e.get("values") or ()),
            )
            for e in self.field_expressions
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cluster_names:
            out["clusterNames"] = list(self.cluster_names)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        if self.match_labels or self.match_expressions:
            out["labelSelector"] = {
                "matchLabels": dict(self.match_labels),
                "matchExpressions": [dict(e) for e in self.match_expressions],
            }
        if self.field_expressions:
            out["fieldSelector"] = {"matchExpressions": [dict(e) for e in self.field_expressions]}
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterAffinity:
        selector = raw.get("labelSelector") or {}
        return cls(
            cluster_names=tuple(raw.get("clusterNames") or ()),
            exclude=tuple(raw.get("exclude") or ()),
            match_labels=dict(selector.get("matchLabels") or {}),
            match_expressions=_expressions(selector.get("matchExpressions")),
            field_expressions=_expressions((raw.get("fieldSelector") or {}).get("matchExpressions")),
        )


@dataclass(frozen=True, slots=True)
class ClusterAffinityTerm:
    """One entry of ``clusterAffinities``: an ordered fallback group."""

    affinity_name: str
    affinity: ClusterAffinity

    def to_dict(self) -> dict[str, Any]:
        return {"affinityName": self.affinity_name, **self.affinity.to_dict()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterAffinityTerm:
        return cls(str(raw.get("affinityName") or ""), ClusterAffinity.from_dict(raw))


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    """Spread over groups of clusters keyed by a field (cluster/region/zone/provider) or a label."""

    spread_by_field: str = ""
    spread_by_label: str = ""
    max_groups: int = 0
    min_groups: int = 0

    def group_of(self, cluster: ClusterInfo) -> str:
        if self.spread_by_field:
            return cluster.field_value(self.spread_by_field)
        return cluster.labels.get(self.spread_by_label, "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"maxGroups": self.max_groups, "minGroups": self.min_groups}
        if self.spread_by_field:
            out["spreadByField"] = self.spread_by_field
        if self.spread_by_label:
            out["spreadByLabel"] = self.spread_by_label
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SpreadConstraint:
        by_field = str(raw.get("spreadByField") or "")
        if by_field and by_field not in ("cluster", "region", "zone", "provider"):
            raise ValueError(f"unsupported spreadByField {by_field!r}")
        return cls(
            spread_by_field=by_field,
            spread_by_label=str(raw.get("spreadByLabel") or ""),
            max_groups=int(raw.get("maxGroups") or 0),
            min_groups=int(raw.get("minGroups") or 0),
        )


@dataclass(frozen=True, slots=True)
class StaticClusterWeight:
    target_cluster: ClusterAffinity
    weight: int

    def to_dict(self) -> dict[str, Any]:
        return {"targetCluster": self.target_cluster.to_dict(), "weight": self.weight}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StaticClusterWeight:
        return cls(ClusterAffinity.from_dict(raw.get("targetCluster") or {}), int(raw.get("weight") or 0))


@dataclass(frozen=True, slots=True)
class ReplicaScheduling:
    """``replicaScheduling``: Duplicated, or Divided by static/dynamic weight or Aggregated."""

    type: str = DUPLICATED
    division_preference: str = ""
    static_weights: tuple[StaticClusterWeight, ...] = ()
    dynamic_weight: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replicaSchedulingType": self.type}
        if self.division_preference:
            out["replicaDivisionPreference"] = self.division_preference
        if self.static_weights or self.dynamic_weight:
            pref: dict[str, Any] = {}
            if self.static_weights:
                pref["staticWeightList"] = [w.to_dict() for w in self.static_weights]
            if self.dynamic_weight:
                pref["dynamicWeight"] = self.dynamic_weight
            out["weightPreference"] = pref
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ReplicaScheduling:
        kind = str(raw.get("replicaSchedulingType") or DUPLICATED)
        pref = str(raw.get("replicaDivisionPreference") or "")
        if kind not in (DUPLICATED, DIVIDED):
            raise ValueError(f"unsupported replicaSchedulingType {kind!r}")
        if pref not in ("", AGGREGATED, WEIGHTED):
            raise ValueError(f"unsupported replicaDivisionPreference {pref!r}")
        weights = raw.get("weightPreference") or {}
        dynamic = str(weights.get("dynamicWeight") or "")
        if dynamic not in ("", AVAILABLE_REPLICAS):
            raise ValueError(f"unsupported dynamicWeight {dynamic!r}")
        return cls(
            type=kind,
            division_preference=pref,
            static_weights=tuple(
                StaticClusterWeight.from_dict(w) for w in weights.get("staticWeightList") or ()
            ),
            dynamic_weight=dynamic,
        )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a workload may go and how its replicas are divided."""

    cluster_affinity: ClusterAffinity | None = None
    cluster_affinities: tuple[ClusterAffinityTerm, ...] = ()
    cluster_tolerations: tuple[Toleration, ...] = ()
    spread_constraints: tuple[SpreadConstraint, ...] = ()
    replica_scheduling: ReplicaScheduling = field(default_factory=ReplicaScheduling)

    def affinity_terms(self) -> Sequence[tuple[str, ClusterAffinity | None]]:
        """The affinity groups to try, in order (``clusterAffinities`` wins over ``clusterAffinity``)."""
        if self.cluster_affinities:
            return [(t.affinity_name, t.affinity) for t in self.cluster_affinities]
        return [("", self.cluster_affinity)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"replicaScheduling": self.replica_scheduling.to_dict()}
        if self.cluster_affinity is not None:
            out["clusterAffinity"] = self.cluster_affinity.to_dict()
        if self.cluster_affinities:
            out["clusterAffinities"] = [t.to_dict() for t in self.cluster_affinities]
        if self.cluster_tolerations:
            out["clusterTolerations"] = [t.to_dict() for t in self.cluster_tolerations]
        if self.spread_constraints:
            out["spreadConstraints"] = [s.to_dict() for s in self.spread_constraints]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Placement:
        """Parse a Karmada-shaped (camelCase) placement dict; unknown keys are ignored."""
        affinity = raw.get("clusterAffinity")
        return cls(
            cluster_affinity=ClusterAffinity.from_dict(affinity) if affinity is not None else None,
            cluster_affinities=tuple(
                ClusterAffinityTerm.from_dict(t) for t in raw.get("clusterAffinities") or ()
            ),
            cluster_tolerations=tuple(Toleration.from_dict(t) for t in raw.get("clusterTolerations") or ()),
            spread_constraints=tuple(
                SpreadConstraint.from_dict(s) for s in raw.get("spreadConstraints") or ()
            ),
            replica_scheduling=ReplicaScheduling.from_dict(raw.get("replicaScheduling") or {}),
        )
