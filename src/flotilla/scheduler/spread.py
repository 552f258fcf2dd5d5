"""Cluster selection under spread constraints (after scoring, before replica division).

Constraints are applied coarsest first (provider, region, zone, label, cluster). For each, the
clusters (already ordered best first) are grouped by the constraint's field; groups are ranked
by their best cluster; at most ``maxGroups`` groups are kept (0 = no limit) and fewer than
``minGroups`` available groups makes the workload unschedulable.
"""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.scheduler.placement import SpreadConstraint
from flotilla.scheduler.snapshot import ClusterInfo

__all__ = ["select_clusters"]

_ORDER = {"provider": 0, "region": 1, "zone": 2, "": 3, "cluster": 4}


def select_clusters(
    ranked: Sequence[ClusterInfo], constraints: Sequence[SpreadConstraint]
) -> tuple[list[ClusterInfo], str | None]:
    """Return the clusters kept (still best first), or an empty list and the reason."""
    selected = list(ranked)
    for constraint in sorted(constraints, key=lambda c: _ORDER.get(c.spread_by_field, 3)):
        groups: dict[str, None] = {}
        for cluster in selected:
            groups.setdefault(constraint.group_of(cluster), None)
        by = constraint.spread_by_field or f"label {constraint.spread_by_label}"
        if len(groups) < constraint.min_groups:
            return [], (
                f"spread constraint needs at least {constraint.min_groups} {by} group(s), "
                f"only {len(groups)} had a feasible cluster"
            )
        if constraint.max_groups > 0:
            keep = set(list(groups)[: constraint.max_groups])
            selected = [c for c in selected if constraint.group_of(c) in keep]
    return selected, None
