"""The scheduling pipeline: filter clusters, check node-level fit, score, select, divide, bind.

``Scheduler.schedule(snapshot, workload)`` is pure: the same snapshot and workload always give
the same decision (every tie is broken by cluster name, then node name). A workload that does
not fit yields :class:`Unschedulable` with a :class:`~flotilla.scheduler.framework.Diagnosis`;
exceptions are reserved for invalid input.

Per cluster, after the cluster filters pass, node-level fit decides feasibility:

* gang (PodGroup): the gang's required pods (``minTaskMember`` per role, topped up to
  ``minMember``) must bind simultaneously, pod by pod, on the cluster's nodes (one cluster
  unless ``allow_multi_cluster``, in which case the gang spans clusters, still all or nothing).
  The pods are bound through the Reserve and Permit extension points; the all-or-nothing rule
  is the Coscheduling plugin's Permit (see :class:`~flotilla.scheduler.framework.PermitPlugin`);
* Duplicated: every replica of every component must bind simultaneously;
* Divided: at least one replica must fit; replicas are then divided (see
  :mod:`flotilla.scheduler.division`) never beyond what fits at node level. With
  ``workload.keep_current`` (failover) a workload keeps the replicas it already has on every
  cluster that still passes the filters (needing no room for more), and only the missing
  replicas are divided; a multi-role kind keeps whole units of its divisible replica count
  (``workload.units``, e.g. LeaderWorkerSet groups), every role in proportion.

``placement.clusterAffinities`` groups are tried in order until one yields a placement.
"""

from __future__ import annotations

import bisect
import heapq
import operator
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from flotilla.scheduler.division import aggregate, divide
from flotilla.scheduler.framework import SUCCESS, Code, CycleState, Diagnosis, Status
from flotilla.scheduler.nodefit import ClusterPlacer, PodAssignment, Verdict
from flotilla.scheduler.placement import AGGREGATED, DUPLICATED, ClusterAffinity, Placement
from flotilla.scheduler.plugins import cluster_affinity, node_resources_fit, spread_constraint
from flotilla.scheduler.plugins.quota_static_assignment import NAME as QUOTA_PLUGIN
from flotilla.scheduler.plugins.quota_static_assignment import pod_usage, pods_within
from flotilla.scheduler.quantity import scale, sub
from flotilla.scheduler.runtime import NODE_SCORE, Framework, NormalizedScores, ScoreDetails, ScoreEntry
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.spread import select_clusters
from flotilla.scheduler.workload import Component, PodShape, Workload

__all__ = [
    "Explanation",
    "ScheduleOutcome",
    "ScheduleResult",
    "Scheduler",
    "TargetCluster",
    "Unschedulable",
    "schedule",
]


@dataclass(slots=True)
class _Check:
    """Node-level verdict for one cluster: status, available pods per component, node score.

    Shared through memos and fleet views and never changed once made; not ``frozen`` only
    because a frozen dataclass costs four times as much to build (one per cluster when a
    new fleet view is filled)."""

    status: Status
    available: dict[str, int]
    node_reasons: dict[str, int] | None
    score: float


_KEY_LIMIT = 4096
"""Distinct node-check keys interned per scheduler before the table is reset."""
_VIEW_LIMIT = 64
"""Fleet views (one per node-check key) kept per scheduler; the least recently used goes first."""


class _FleetView:
    """The node-level verdict of every cluster of one snapshot lineage for one node-check key.

    Kept across decisions while the cluster set and the clusters' metadata stay the same (the
    snapshots share ``static_memo``) and brought up to date from the snapshot's change log, so a
    decision revisits only the clusters that changed since the last one with the same key.
    """

    __slots__ = (
        "available",
        "checks",
        "epoch",
        "feasible",
        "generation",
        "node_reasons",
        "ranking",
        "scores",
        "statuses",
    )

    def __init__(self, epoch: dict[Any, Any]) -> None:
        self.epoch = epoch
        self.generation = -1
        self.checks: dict[str, _Check] = {}
        self.feasible: list[str] = []
        """Names of the clusters that passed, in name order."""
        self.statuses: dict[str, Status] = {}
        self.node_reasons: dict[str, dict[str, int]] = {}
        self.available: dict[str, dict[str, int]] = {}
        self.scores: dict[str, float] = {}
        self.ranking: list[tuple[float, str]] = []
        """``(-node score, name)`` of the clusters that passed, best node score first."""

    def _record(self, name: str, check: _Check) -> bool:
        """Store ``name``'s verdict (its previous one already taken out); True when it passed,
        for the caller to place it in :attr:`feasible` and :attr:`ranking`."""
        self.checks[name] = check
        self.available[name] = check.available
        if check.status.code is Code.SUCCESS:
            self.scores[name] = check.score
            return True
        self.statuses[name] = check.status
        if check.node_reasons is not None:
            self.node_reasons[name] = check.node_reasons
        return False

    def fill(self, checks: Iterable[tuple[str, _Check]]) -> None:
        """Record every verdict of a new view at once: as :meth:`set` for each on an empty view,
        sorted once at the end (at thousands of clusters, inserting each into the ranking moved
        the list over and over)."""
        feasible, ranking = self.feasible, self.ranking
        for name, check in checks:
            if self._record(name, check):
                feasible.append(name)
                ranking.append((-check.score, name))
        feasible.sort()
        ranking.sort()

    def set(self, name: str, check: _Check) -> None:
        """Record ``name``'s verdict, replacing its previous one."""
        old = self.checks.get(name)
        if old is not None:
            if old.status.code is Code.SUCCESS:
                del self.feasible[bisect.bisect_left(self.feasible, name)]
                del self.ranking[bisect.bisect_left(self.ranking, (-self.scores.pop(name), name))]
            else:
                del self.statuses[name]
                self.node_reasons.pop(name, None)
        if self._record(name, check):
            bisect.insort(self.feasible, name)
            bisect.insort(self.ranking, (-check.score, name))


def _one_shape(comps: Sequence[Component], need: Mapping[str, int] | None, primary: PodShape | None) -> bool:
    """A node check that is one shape's verdict: one component, at least one pod of it."""
    return need is None and len(comps) == 1 and comps[0].shape is primary


def _verdict_check(component: str, fit: Verdict) -> _Check:
    """The node check of one component that needs at least one pod (:func:`_one_shape`)."""
    score = fit.best_score if fit.best_score is not None else 0.0
    if not fit.available:
        status = Status(Code.UNSCHEDULABLE, (f"cluster(s) had {fit.reason}",), fit.plugin)
        return _Check(status, {component: 0}, fit.node_reasons, score)
    return _Check(SUCCESS, {component: fit.available}, None, score)


Mode = Literal["gang", "gang-multi-cluster", "duplicated", "divided"]
PodGroup = tuple[str, PodShape, int]
"""``(component name, shape, pod count)``."""


@dataclass(frozen=True, slots=True)
class TargetCluster:
    """A chosen cluster and the replicas it gets (total and per component)."""

    name: str
    replicas: int
    components: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "replicas": self.replicas, "components": dict(self.components)}


@dataclass(slots=True)
class Explanation:
    """Why each cluster was or was not chosen; ``to_dict()`` is JSON-serialisable.

    Per cluster: the filter that rejected it (plugin, code, reasons, and the node-level reason
    histogram when node fit rejected it), or each score plugin's raw, normalised and weighted
    score, the total, the node-level available replicas per component, and the final replicas.
    """

    workload: str
    mode: str
    affinity_term: str = ""
    statuses: dict[str, Status] = field(default_factory=dict)
    node_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    available: dict[str, dict[str, int]] = field(default_factory=dict)
    scores: Mapping[str, Mapping[str, ScoreEntry]] = field(default_factory=dict)
    totals: Mapping[str, float] = field(default_factory=dict)
    selected: Sequence[str] = field(default_factory=list)
    replicas: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def cluster(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cluster": name, "feasible": name not in self.statuses}
        status = self.statuses.get(name)
        if status is not None:
            out["filter"] = status.to_dict()
        if name in self.node_reasons:
            out["nodes"] = dict(sorted(self.node_reasons[name].items()))
        if name in self.available:
            out["available"] = dict(self.available[name])
        if name in self.scores:
            out["scores"] = {
                plugin: {"raw": round(raw, 4), "normalized": round(norm, 4), "weighted": round(weighted, 4)}
                for plugin, (raw, norm, weighted) in sorted(self.scores[name].items())
            }
            out["total"] = round(self.totals[name], 4)
        out["selected"] = name in self.selected
        out["replicas"] = self.replicas.get(name, 0)
        return out

    def to_dict(self, max_clusters: int | None = None) -> dict[str, Any]:
        """Every cluster's entry, or, when more than ``max_clusters`` clusters were considered:
        every cluster given replicas, then, up to ``max_clusters`` in all, the best-ranked other
        selected clusters and the first rejected ones by name. The rest are counted under ``omitted``
        (feasible and rejected), ``rejections`` counts every rejected cluster per plugin and
        reason, and ``selected`` lists the first ``max_clusters`` (``selectedCount``: all)."""
        statuses, available = self.statuses, self.available
        # The clusters considered, counted with set operations on the maps' keys (at thousands
        # of clusters, building the set of every name costs more than the bounded entries).
        outside = statuses.keys() - available.keys()
        outside.update(self.scores.keys() - available.keys())
        considered = len(available) + len(outside)
        out: dict[str, Any] = {
            "workload": self.workload,
            "mode": self.mode,
            "affinityTerm": self.affinity_term,
        }
        if max_clusters is None or considered <= max_clusters:
            names = available.keys() | outside
            out["clusters"] = [self.cluster(n) for n in sorted(names)]
            out["selected"] = list(self.selected)
            out["notes"] = list(self.notes)
            return out
        keep = {n for n, r in self.replicas.items() if r > 0}
        for name in self.selected:
            if len(keep) >= max_clusters:
                break
            keep.add(name)
        if len(keep) < max_clusters:
            keep.update(heapq.nsmallest(max_clusters - len(keep), statuses.keys() - keep))
        rejections: dict[tuple[str, str], int] = {}
        for status in statuses.values():
            key = (status.plugin or "", "; ".join(status.reasons))
            rejections[key] = rejections.get(key, 0) + 1
        out["clusters"] = [self.cluster(n) for n in sorted(keep)]
        listed = [n for n in keep if n in available or n in outside]
        listed_rejected = sum(1 for n in listed if n in statuses)
        out["omitted"] = {  # (every rejected cluster is a considered one)
            "feasible": considered - len(statuses) - (len(listed) - listed_rejected),
            "rejected": len(statuses) - listed_rejected,
        }
        out["rejections"] = [
            {"plugin": plugin, "reason": reason, "clusters": n}
            for (plugin, reason), n in sorted(rejections.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        out["selected"] = list(self.selected[:max_clusters])
        out["selectedCount"] = len(self.selected)
        out["notes"] = list(self.notes)
        return out


@dataclass(slots=True)
class ScheduleResult:
    """A placement: target clusters, one :class:`PodAssignment` per pod (for reservation), why."""

    targets: list[TargetCluster]
    assignments: list[PodAssignment]
    explanation: Explanation
    ok: Literal[True] = True
    kept: dict[str, int] = field(default_factory=dict)
    """Failover of a Divided workload: the units of ``Workload.current`` each cluster keeps (its
    target's replicas include them); empty when everything was divided afresh."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": [t.to_dict() for t in self.targets],
            "assignments": [a.to_dict() for a in self.assignments],
            "explanation": self.explanation.to_dict(),
        }


@dataclass(slots=True)
class Unschedulable:
    """No placement this cycle; ``diagnosis.message()`` is the user-facing line."""

    diagnosis: Diagnosis
    explanation: Explanation
    ok: Literal[False] = False

    @property
    def message(self) -> str:
        return self.diagnosis.message()

    def to_dict(self) -> dict[str, Any]:
        return {"diagnosis": self.diagnosis.to_dict(), "explanation": self.explanation.to_dict()}


ScheduleOutcome = ScheduleResult | Unschedulable


def _pod_order(groups: Sequence[PodGroup]) -> list[PodGroup]:
    """Largest pods first (GPU share, then CPU), stable on component order."""
    return sorted(groups, key=lambda g: (-g[1].gpu_demand_milli, -dict(g[1].other).get("cpu", 0)))


_NO_NODE = Status(Code.UNSCHEDULABLE, plugin=node_resources_fit.NAME)
"""A gang's pod fits no node of the selected clusters."""


def _bind(placer: ClusterPlacer, groups: Sequence[PodGroup]) -> bool:
    """Bind ``groups`` on ``placer`` pod by pod, largest pods first, all or nothing: False at the
    first pod that fits no node (what is bound so far stays on the placer; callers discard it).

    Gangs are bound pod by pod too, through Reserve and Permit (``Scheduler._place_gang``)."""
    for comp, shape, n in _pod_order(groups) if len(groups) > 1 else groups:
        for _ in range(n):
            if placer.place(shape, comp) is None:
                return False
    return True


def _kept(workload: Workload, mode: Mode, comps: Sequence[Component]) -> dict[str, dict[str, int]]:
    """Pods a Divided workload keeps where it runs (failover), by component, then cluster.

    ``workload.current`` counts units of the kind's divisible replica count (``workload.units``;
    unset for a single role, whose units are its pods). Every role must scale with the units
    (a LeaderWorkerSet's leaders and workers: ``replicas`` a multiple of the units); a role fixed
    per member copy, or fewer units wanted than kept, divides afresh."""
    if mode != "divided" or not workload.keep_current or not comps:
        return {}
    current = {name: n for name, n in workload.current.items() if n > 0}
    units = workload.units if workload.units is not None else comps[0].replicas
    if not current or units <= 0 or sum(current.values()) > units:
        return {}
    if workload.units is None and len(comps) != 1:
        return {}
    if any(c.replicas % units for c in comps):
        return {}
    return {c.name: {name: n * (c.replicas // units) for name, n in current.items()} for c in comps}


def _mode(workload: Workload) -> Mode:
    if workload.gang is not None:
        return "gang-multi-cluster" if workload.gang.allow_multi_cluster else "gang"
    if workload.placement.replica_scheduling.type == DUPLICATED:
        return "duplicated"
    return "divided"


class _Available(Mapping[str, int]):
    """Pods of ``comp`` each selected cluster can still take, computed only when asked for."""

    def __init__(
        self,
        names: _Selection,
        placers: Mapping[str, ClusterPlacer],
        checked: Mapping[str, Mapping[str, int]],
        comp: Component,
    ) -> None:
        self._names, self._placers, self._checked, self._comp = names, placers, checked, comp
        self._values: dict[str, int] = {}

    def __getitem__(self, name: str) -> int:
        value = self._values.get(name)
        if value is None:
            if name not in self._names:
                raise KeyError(name)
            placer = self._placers.get(name)
            if placer is not None:
                value = placer.available(self._comp.shape)
            else:
                value = self._checked[name][self._comp.name]
            self._values[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _Clusters(Sequence[ClusterInfo]):
    """The clusters of ``names`` (looked up in ``clusters`` when read)."""

    __slots__ = ("_clusters", "_names")

    def __init__(self, clusters: Mapping[str, ClusterInfo], names: Sequence[str]) -> None:
        self._clusters, self._names = clusters, names

    @overload
    def __getitem__(self, index: int) -> ClusterInfo: ...

    @overload
    def __getitem__(self, index: slice) -> list[ClusterInfo]: ...

    def __getitem__(self, index: int | slice) -> ClusterInfo | list[ClusterInfo]:
        if isinstance(index, slice):
            return [self._clusters[n] for n in self._names[index]]
        return self._clusters[self._names[index]]

    def __iter__(self) -> Iterator[ClusterInfo]:
        return map(self._clusters.__getitem__, self._names)

    def __len__(self) -> int:
        return len(self._names)


_first = operator.itemgetter(0)
_second = operator.itemgetter(1)


class _Selection(Sequence[str]):
    """The names of the selected clusters, best first, with a set-fast ``in``.

    Built from a list (:meth:`of`), or (:meth:`ranked`) read lazily off a fleet view's ranking
    when the totals are the normalised node scores alone: the names come out as they are read,
    in exactly the order a stable sort of the name-ordered totals gives (best total first,
    then name). Normalising is monotone, so the raw ranking is cut into runs of equal
    normalised score and each run is put in name order. A decision that takes the first
    cluster with room then ranks a few clusters, not the whole fleet.
    """

    __slots__ = ("_members", "_names", "_next", "_ranking", "_value")

    def __init__(
        self,
        names: list[str],
        members: Container[str] | None,
        ranking: Sequence[tuple[float, str]] = (),
        value: Callable[[float], float] | None = None,
    ) -> None:
        self._names = names
        self._members = members
        self._ranking = ranking
        self._value = value
        self._next = 0

    @classmethod
    def of(cls, names: list[str]) -> _Selection:
        return cls(names, None)

    @classmethod
    def ranked(
        cls, ranking: Sequence[tuple[float, str]], value: Callable[[float], float], members: Container[str]
    ) -> _Selection:
        """From ``(-raw score, name)`` in ascending order and the normalisation ``value``."""
        return cls([], members, ranking, value)

    def _fill(self, count: int) -> None:
        ranking, value, names = self._ranking, self._value, self._names
        i, n = self._next, len(ranking)
        while len(names) < count and i < n:
            assert value is not None
            # A run of equal raw scores is in name order already; runs whose normalised
            # scores are equal (rounding) are merged and put in name order.
            j = bisect.bisect_right(ranking, ranking[i][0], i, key=_first)
            v = value(-ranking[i][0])
            end = j
            while end < n and value(-ranking[end][0]) == v:
                end = bisect.bisect_right(ranking, ranking[end][0], end, key=_first)
            if end == j:
                names.extend(map(_second, ranking[i:j]))
            else:
                names.extend(sorted(map(_second, ranking[i:end])))
            i = end
        self._next = i

    def __len__(self) -> int:
        return len(self._ranking) if self._value is not None else len(self._names)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            wanted = range(len(self))[index]
            if wanted:
                self._fill(max(wanted) + 1)
            return [self._names[i] for i in wanted]
        if index < 0:
            index += len(self)
        self._fill(index + 1)
        return self._names[index]

    def __iter__(self) -> Iterator[str]:
        names, i = self._names, 0
        while True:
            if i >= len(names):
                self._fill(i + 1)
                if i >= len(names):
                    return
            yield names[i]
            i += 1

    def __contains__(self, name: object) -> bool:
        if self._members is None:
            self._members = frozenset(self._names)
        return name in self._members


class _Capped(Mapping[str, int]):
    """``available`` capped per cluster (a namespace's quota share there)."""

    def __init__(self, available: Mapping[str, int], caps: Mapping[str, int]) -> None:
        self._available, self._caps = available, caps

    def __getitem__(self, name: str) -> int:
        value = self._available[name]
        cap = self._caps.get(name)
        return value if cap is None else min(value, cap)

    def __iter__(self) -> Iterator[str]:
        return iter(self._available)

    def __len__(self) -> int:
        return len(self._available)


class Scheduler:
    """Runs one framework profile over snapshots. Stateless apart from memoised per-cluster fits."""

    def __init__(self, framework: Framework | None = None) -> None:
        self.framework = framework if framework is not None else Framework()
        self.engine = self.framework.engine
        self._check_keys: dict[tuple[Any, ...], object] = {}
        self._views: dict[object, _FleetView] = {}

    # -- entry point -------------------------------------------------------------------------
    def schedule(self, snapshot: Snapshot, workload: Workload) -> ScheduleOutcome:
        outcome: ScheduleOutcome | None = None
        for term_name, affinity in workload.placement.affinity_terms():
            outcome = self._schedule_term(snapshot, workload, term_name, affinity)
            if outcome.ok:
                return outcome
        assert outcome is not None
        return outcome

    # -- node-level helpers --------------------------------------------------------------------
    def _simulate(self, cluster: ClusterInfo, groups: Sequence[PodGroup]) -> tuple[PodAssignment, ...] | None:
        """Bind ``groups`` pod by pod onto the cluster's nodes; memoised per cluster version."""
        key = (self.engine.token, "sim", tuple((g[0], g[1].key, g[2]) for g in groups))
        if key in cluster.memo:
            return cluster.memo[key]  # type: ignore[no-any-return]
        placer = self.engine.placer(cluster)
        result = tuple(placer.assignments) if _bind(placer, groups) else None
        cluster.memo[key] = result
        return result

    def _check_key(
        self, comps: Sequence[Component], need: Mapping[str, int] | None, primary: PodShape | None
    ) -> object:
        """A memo key for one node check, interned so per-cluster lookups hash a plain object."""
        full = (
            tuple((c.name, c.shape.key) for c in comps),
            tuple(sorted(need.items())) if need is not None else None,
            primary.key if primary is not None else None,
        )
        key = self._check_keys.get(full)
        if key is None:
            if len(self._check_keys) > _KEY_LIMIT:
                self._check_keys.clear()
            key = self._check_keys[full] = object()
        return key

    def _node_check(
        self,
        cluster: ClusterInfo,
        key: object,
        comps: Sequence[Component],
        need: Mapping[str, int] | None,
        primary: PodShape | None,
    ) -> _Check:
        """Node-level feasibility of one cluster, memoised per cluster version under ``key``.

        ``need`` None means at least one replica of some component must fit; otherwise every
        component needs ``need[name]`` pods at once. ``primary`` is the shape whose best node
        gives the cluster its node score.
        """
        hit = cluster.memo.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        check = self._compute_check(cluster, comps, need, primary)
        cluster.memo[key] = check
        return check

    def _fleet_checks(
        self,
        clusters: Sequence[ClusterInfo],
        key: object,
        comps: Sequence[Component],
        need: Mapping[str, int] | None,
        primary: PodShape | None,
    ) -> list[tuple[str, _Check]]:
        """:meth:`_node_check` of every cluster (a new fleet view): each shape's verdicts are
        taken for all clusters at once (:meth:`NodeFitEngine.verdicts`), and a one-shape
        check is made from its verdict in the same loop."""
        engine = self.engine
        if _one_shape(comps, need, primary):
            assert primary is not None
            name, out = comps[0].name, []
            for cluster, verdict in zip(clusters, engine.verdicts(clusters, primary), strict=True):
                memo = cluster.memo
                check = memo.get(key)
                if check is None:
                    check = memo[key] = _verdict_check(name, verdict)
                out.append((cluster.name, check))
            return out
        shapes = {c.shape.key: c.shape for c in comps}
        if primary is not None:
            shapes.setdefault(primary.key, primary)
        for shape in shapes.values():
            engine.verdicts(clusters, shape)
        node_check = self._node_check
        return [(c.name, node_check(c, key, comps, need, primary)) for c in clusters]

    def _compute_check(
        self,
        cluster: ClusterInfo,
        comps: Sequence[Component],
        need: Mapping[str, int] | None,
        primary: PodShape | None,
    ) -> _Check:
        engine = self.engine
        if _one_shape(comps, need, primary):
            assert primary is not None
            return _verdict_check(comps[0].name, engine.verdict(cluster, primary))
        fits = {c.name: engine.verdict(cluster, c.shape) for c in comps}
        avail = {name: fit.available for name, fit in fits.items()}
        if primary is None:
            best = None
        elif len(comps) == 1 and comps[0].shape is primary:
            best = fits[comps[0].name].best_score
        else:
            best = engine.verdict(cluster, primary).best_score
        score = best if best is not None else 0.0
        if need is None:
            if comps and not any(avail.values()):
                fit = fits[comps[0].name]
                status = Status(Code.UNSCHEDULABLE, (f"cluster(s) had {fit.reason}",), fit.plugin)
                return _Check(status, avail, fit.node_reasons, score)
            return _Check(SUCCESS, avail, None, score)
        for comp in comps:
            wanted = need.get(comp.name, 0)
            if wanted and avail[comp.name] < wanted:
                fit = fits[comp.name]
                if avail[comp.name] == 0:
                    status = Status(Code.UNSCHEDULABLE, (f"cluster(s) had {fit.reason}",), fit.plugin)
                else:
                    reason = "cluster(s) had room for fewer pods than the workload needs at once"
                    status = Status(Code.UNSCHEDULABLE, (reason,), node_resources_fit.NAME)
                return _Check(status, avail, fit.node_reasons, score)
        wanted_comps = [c for c in comps if need.get(c.name, 0)]
        if len(wanted_comps) > 1:
            groups = [(c.name, c.shape, need[c.name]) for c in wanted_comps]
            if len({c.shape.key for c in wanted_comps}) == 1 and engine.additive:
                # One shape, additive capacity: binding pod by pod succeeds while any node has
                # room, so exactly when the available count holds every pod.
                together = sum(n for _, _, n in groups) <= avail[wanted_comps[0].name]
            else:
                together = self._simulate(cluster, groups) is not None
            if not together:
                reason = "cluster(s) could not bind all required pods on their nodes at once"
                status = Status(Code.UNSCHEDULABLE, (reason,), node_resources_fit.NAME)
                return _Check(status, avail, None, score)
        return _Check(SUCCESS, avail, None, score)

    def _fleet_view(
        self,
        snapshot: Snapshot,
        key: object,
        comps: Sequence[Component],
        need: Mapping[str, int] | None,
        primary: PodShape | None,
    ) -> _FleetView | None:
        """The :class:`_FleetView` of ``key`` brought to ``snapshot``, or None when the snapshot
        carries no change log (not from a cache)."""
        log = snapshot.changes
        if log is None:
            return None
        view = self._views.pop(key, None)  # re-inserted below: least recently used goes first
        since = None
        if view is not None and view.epoch is snapshot.static_memo:
            since = log.since(view.generation, snapshot.generation)
        if view is None or since is None:  # a new view: every cluster
            view = _FleetView(snapshot.static_memo)
            while len(self._views) >= _VIEW_LIMIT:
                del self._views[next(iter(self._views))]
            view.fill(self._fleet_checks(snapshot.ordered, key, comps, need, primary))
        else:
            clusters, node_check = snapshot.clusters, self._node_check
            for name in since:
                cluster = clusters[name]
                check = cluster.memo.get(key)
                if check is None:
                    check = node_check(cluster, key, comps, need, primary)
                if view.checks.get(name) is not check:
                    view.set(name, check)
        view.generation = snapshot.generation
        self._views[key] = view
        return view

    # -- one affinity term ---------------------------------------------------------------------
    def _schedule_term(
        self, snapshot: Snapshot, workload: Workload, term_name: str, affinity: ClusterAffinity | None
    ) -> ScheduleOutcome:
        fw = self.framework
        mode = _mode(workload)
        expl = Explanation(workload.key, mode, term_name)
        state = CycleState({cluster_affinity.STATE_KEY: affinity})
        comps = [c for c in workload.components if c.replicas > 0]
        active, pre = fw.run_pre_filter(state, workload, snapshot)
        if self.engine.refresh():  # a learned score moved: nothing keyed by the old scores is used
            self._check_keys.clear()
            self._views.clear()
        if not pre.is_success:
            expl.statuses = dict.fromkeys(snapshot.cluster_names, pre)
            return Unschedulable(Diagnosis(len(snapshot.clusters), dict(expl.statuses)), expl)

        need: dict[str, int] | None
        if mode == "gang":
            need = workload.gang_requirement()
        elif mode == "duplicated":
            need = {c.name: c.replicas for c in comps}
        else:
            need = None

        kept = _kept(workload, mode, comps)
        keeping = {name for per in kept.values() for name, n in per.items() if n > 0}
        primary = _pod_order([(c.name, c.shape, c.replicas) for c in comps])[0][1] if comps else None
        found: list[ClusterInfo] = []
        feasible: Sequence[ClusterInfo] = found
        node_scores: dict[str, float] = {}
        run_filter, node_check = fw.run_filter, self._node_check
        key = self._check_key(comps, need, primary)
        statuses, available = expl.statuses, expl.available
        success = Code.SUCCESS
        view = None
        if not active and not keeping:
            # No cluster filter this cycle: every cluster's verdict is its node check alone.
            view = self._fleet_view(snapshot, key, comps, need, primary)
        if view is not None:
            expl.statuses, expl.available = statuses, available = dict(view.statuses), dict(view.available)
            expl.node_reasons = dict(view.node_reasons)
            feasible = _Clusters(snapshot.clusters, list(view.feasible))
            node_scores = dict(view.scores)
        for cluster in snapshot.ordered if view is None else ():
            name = cluster.name
            if active:
                status = run_filter(state, workload, cluster, active)
                if status.code is not success:
                    statuses[name] = status
                    continue
            check = cluster.memo.get(key)
            if check is None:
                check = node_check(cluster, key, comps, need, primary)
            available[name] = check.available
            if check.status.code is success or name in keeping:
                # (A cluster keeping its replicas needs no room for more.)
                found.append(cluster)
                node_scores[name] = check.score
            else:
                statuses[name] = check.status
                if check.node_reasons is not None:
                    expl.node_reasons[name] = check.node_reasons
        if not feasible:
            return Unschedulable(Diagnosis(len(snapshot.clusters), dict(expl.statuses)), expl)
        constraints = workload.placement.spread_constraints
        scorers = fw.run_pre_score(state, workload, feasible)
        if view is not None and not scorers and fw.node_scorers and not constraints:
            # The totals are the normalised node scores alone, and the view keeps the clusters
            # ranked by node score: nothing here is per cluster (the fleet-scale path).
            ranking = list(view.ranking)
            totals = NormalizedScores(node_scores, -ranking[-1][0], -ranking[0][0])
            details = ScoreDetails(node_scores)
            details.add(NODE_SCORE, node_scores, totals, None)
            expl.scores, expl.totals = details, totals
            selection = _Selection.ranked(ranking, totals.value, node_scores)
        else:
            if not fw.node_scorers:
                node_scores = {}
            full, expl.scores = fw.run_score(state, workload, feasible, node_scores, scorers)
            expl.totals = full
            # ``feasible`` is in name order and the sort is stable: best total first, then name.
            # (The totals are keyed in ``feasible``'s order.)
            ranked = [snapshot.clusters[n] for n in sorted(full, key=full.__getitem__, reverse=True)]
            selected, reason = select_clusters(ranked, constraints)
            if reason is not None:
                return self._fail(snapshot, expl, reason, spread_constraint.NAME)
            selection = _Selection.of([c.name for c in selected])
        expl.selected = selection

        outcome: ScheduleOutcome
        if mode == "gang" or mode == "gang-multi-cluster":
            outcome = self._place_gang(snapshot, state, workload, comps, selection, expl)
        elif mode == "duplicated":
            outcome = self._place_duplicated(snapshot, comps, selection, expl)
        else:
            outcome = self._place_divided(
                snapshot, workload.placement, comps, selection, expl, workload.cluster_limits, kept
            )
            if isinstance(outcome, ScheduleResult) and kept:
                outcome.kept = {n: workload.current[n] for n in sorted(keeping) if n in selection}
        if isinstance(outcome, ScheduleResult):
            outcome.targets = [
                TargetCluster(
                    t.name, t.replicas, {c.name: t.components.get(c.name, 0) for c in workload.components}
                )
                for t in outcome.targets
            ]
        return outcome

    # -- placement per mode --------------------------------------------------------------------
    def _fail(
        self, snapshot: Snapshot, expl: Explanation, reason: str, plugin: str = node_resources_fit.NAME
    ) -> Unschedulable:
        """Unschedulable for a cycle-level ``reason``, which ``plugin``'s verdict stands for."""
        expl.notes.append(reason)
        diagnosis = Diagnosis(len(snapshot.clusters), dict(expl.statuses), [reason], [plugin])
        return Unschedulable(diagnosis, expl)

    def _result(
        self, placers: Mapping[str, ClusterPlacer], comps: Sequence[Component], expl: Explanation
    ) -> ScheduleResult:
        targets: list[TargetCluster] = []
        assignments: list[PodAssignment] = []
        for name in sorted(placers):
            pods = placers[name].assignments
            per = {c.name: 0 for c in comps}
            for pod in pods:
                per[pod.component] = per.get(pod.component, 0) + 1
            targets.append(TargetCluster(name, len(pods), per))
            assignments.extend(pods)
            expl.replicas[name] = len(pods)
        return ScheduleResult(targets, assignments, expl)

    def _extras(self, need: Mapping[str, int], comps: Sequence[Component]) -> list[PodGroup]:
        """The pods above the gang's requirement ``need``, per component."""
        return [
            (c.name, c.shape, c.replicas - need.get(c.name, 0))
            for c in comps
            if c.replicas > need.get(c.name, 0)
        ]

    def _place_gang(
        self,
        snapshot: Snapshot,
        state: CycleState,
        workload: Workload,
        comps: Sequence[Component],
        selection: _Selection,
        expl: Explanation,
    ) -> ScheduleOutcome:
        """Bind a gang pod by pod through the Reserve and Permit extension points.

        Pods go on the first selected cluster (on every selected cluster in order when the gang
        may span clusters), the pods each role needs first, largest first, then the extras. The
        gang's rule (wait for ``minMember`` pods, then allow) is the Permit plugins' (see
        :class:`~flotilla.scheduler.framework.PermitPlugin` for the protocol).
        """
        fw = self.framework
        multi = workload.gang is not None and workload.gang.allow_multi_cluster
        clusters = snapshot.clusters
        placers = {n: self.engine.placer(clusters[n]) for n in (selection if multi else selection[:1])}
        order = list(placers.values())
        need = workload.gang_requirement()
        pods = _pod_order([(c.name, c.shape, need.get(c.name, 0)) for c in comps])
        pods += _pod_order(self._extras(need, comps))
        reserved: list[PodAssignment] = []

        def reject(status: Status) -> Unschedulable:
            for pod in reversed(reserved):
                fw.run_unreserve(state, workload, pod)
            plugin = status.plugin or node_resources_fit.NAME
            reason = ", ".join(status.reasons) or f"{plugin} did not permit the workload's pods"
            return self._fail(snapshot, expl, reason, plugin)

        # Permit is asked when its answer decides something: when a pod fits no node (left out,
        # or the gang rejected) and once every pod was tried. (The runner returns the SUCCESS
        # singleton for success.)
        run_reserve, run_permit = fw.run_reserve, fw.run_permit
        for comp, shape, n in pods:
            for _ in range(n):
                status = _NO_NODE
                for placer in order:
                    pod = placer.place(shape, comp)
                    if pod is None:
                        continue
                    status = run_reserve(state, workload, pod)
                    if status is SUCCESS:
                        reserved.append(pod)
                        break
                    placer.unplace(pod)  # refused here: try the next cluster
                if status is SUCCESS:
                    continue
                permit = run_permit(state, workload)
                if permit is SUCCESS:
                    continue  # left out of a gang already permitted
                if permit.code is not Code.WAIT:
                    return reject(permit)
                # The pod fits no node (or was refused) while the gang still waits: reject it
                # whole, with the waiting plugin's reasons, under whoever kept this pod out.
                return reject(Status(permit.code, permit.reasons, status.plugin))
        permit = run_permit(state, workload)
        if permit is not SUCCESS:
            return reject(permit)
        if multi:
            placers = {k: p for k, p in placers.items() if p.assignments}
        return self._result(placers, comps, expl)

    def _place_duplicated(
        self,
        snapshot: Snapshot,
        comps: Sequence[Component],
        selection: _Selection,
        expl: Explanation,
    ) -> ScheduleOutcome:
        placers: dict[str, ClusterPlacer] = {}
        for name in selection:
            cluster = snapshot.clusters[name]
            placer = self.engine.placer(cluster)
            if not _bind(placer, [(c.name, c.shape, c.replicas) for c in comps]):
                return self._fail(snapshot, expl, f"cluster {cluster.name} could not bind every replica")
            placers[cluster.name] = placer
        return self._result(placers, comps, expl)

    def _place_divided(
        self,
        snapshot: Snapshot,
        placement: Placement,
        comps: Sequence[Component],
        names: _Selection,
        expl: Explanation,
        limits: Mapping[str, Mapping[str, int]],
        kept: Mapping[str, Mapping[str, int]] | None = None,
    ) -> ScheduleOutcome:
        rs = placement.replica_scheduling
        by_name = snapshot.clusters
        placers: dict[str, ClusterPlacer] = {}
        left = {name: dict(lim) for name, lim in limits.items() if name in names} if limits else {}
        # Failover: pods kept where they run (per role); only the missing ones are divided.
        base = {comp: {n: per[n] for n in names if per.get(n, 0) > 0} for comp, per in (kept or {}).items()}
        base = {comp: per for comp, per in base.items() if per}
        if base:
            for comp in comps:
                for name, n in base.get(comp.name, {}).items():
                    if name in left:
                        left[name] = sub(left[name], scale(pod_usage(comp), n))
            pods: dict[str, int] = {}
            for per in base.values():
                for name, n in per.items():
                    pods[name] = pods.get(name, 0) + n
            expl.notes.append(
                "kept " + ",".join(f"{n}:{r}" for n, r in sorted(pods.items())) + " pods; divided the rest"
            )
        for comp in comps:
            kept_here = base.get(comp.name, {})
            wanted = comp.replicas - sum(kept_here.values())
            avail: Mapping[str, int] = _Available(names, placers, expl.available, comp)
            if left:
                avail = _Capped(avail, {n: pods_within(lim, comp) for n, lim in left.items()})
            split: dict[str, int] | None
            if wanted <= 0:
                split = {}
            elif rs.division_preference == AGGREGATED:
                split = aggregate(wanted, names, avail)
            elif rs.static_weights:
                weights = {
                    n: max(
                        (w.weight for w in rs.static_weights if w.target_cluster.matches(by_name[n])),
                        default=0,
                    )
                    for n in names
                }
                if not any(weights.values()):
                    weights = dict.fromkeys(names, 1)
                split = divide(wanted, weights, avail)
            elif rs.dynamic_weight:
                split = divide(wanted, avail, avail)
            else:
                split = divide(wanted, dict.fromkeys(names, 1), avail)
            if split is None:
                fit = sum(avail.values())
                where = "at node level within the namespace's quota shares" if left else "at node level"
                reason = f"{wanted} {comp.name} replica(s) requested but only {fit} fit {where}"
                if kept_here:
                    reason += f" (besides the {sum(kept_here.values())} kept)"
                return self._fail(snapshot, expl, reason, QUOTA_PLUGIN if left else node_resources_fit.NAME)
            for name in sorted(split):
                if split[name] <= 0:
                    continue
                if name in left:
                    left[name] = sub(left[name], scale(pod_usage(comp), split[name]))
                placer = placers.get(name)
                if placer is None:
                    placer = placers[name] = self.engine.placer(by_name[name])
                if not _bind(placer, [(comp.name, comp.shape, split[name])]):
                    return self._fail(
                        snapshot, expl, f"cluster {name} could not bind its share at node level"
                    )
        if not comps:
            placers = {name: self.engine.placer(by_name[name]) for name in names}
        result = self._result(placers, comps, expl)
        if base:
            result.targets = _with_kept(result.targets, base)
            for per in base.values():
                for name, n in per.items():
                    expl.replicas[name] = expl.replicas.get(name, 0) + n
        return result


def _with_kept(
    targets: Sequence[TargetCluster], kept: Mapping[str, Mapping[str, int]]
) -> list[TargetCluster]:
    """``targets`` (the pods placed now) plus the pods kept, by cluster name."""
    out = {t.name: t for t in targets}
    for comp, per in kept.items():
        for name, n in per.items():
            t = out.get(name)
            components = dict(t.components) if t is not None else {}
            components[comp] = components.get(comp, 0) + n
            out[name] = TargetCluster(name, (t.replicas if t is not None else 0) + n, components)
    return [out[n] for n in sorted(out)]


_default: Scheduler | None = None


def schedule(snapshot: Snapshot, workload: Workload) -> ScheduleOutcome:
    """Schedule with the default profile (one shared :class:`Scheduler`)."""
    global _default
    if _default is None:
        _default = Scheduler()
    return _default.schedule(snapshot, workload)
