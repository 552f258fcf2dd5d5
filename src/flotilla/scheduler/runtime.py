"""The framework runner: builds plugins from a registry and runs each extension point.

Timing lives here, never in plugins: when an ``observer`` is given, every plugin call is
timed with ``time.perf_counter`` and reported as ``observer(extension_point, plugin, seconds)``
(the operator turns that into Prometheus histograms; this package never imports a metrics
library).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from typing import cast

from flotilla.scheduler.framework import (
    MAX_SCORE,
    MIN_SCORE,
    SUCCESS,
    Code,
    CycleState,
    FilterPlugin,
    NodeFilterPlugin,
    NodeFitPlugin,
    NodeScorePlugin,
    Observer,
    PermitPlugin,
    Plugin,
    PreFilterPlugin,
    PreScorePlugin,
    Registry,
    ReservePlugin,
    ScoreExtensions,
    ScorePlugin,
    Status,
)
from flotilla.scheduler.nodefit import NodeFitEngine, PodAssignment
from flotilla.scheduler.plugins import DEFAULT_WEIGHTS, new_in_tree_registry
from flotilla.scheduler.snapshot import ClusterInfo, Snapshot
from flotilla.scheduler.workload import Workload

__all__ = ["NODE_SCORE", "Framework", "NormalizedScores", "ScoreDetails", "ScoreEntry", "normalize"]

NODE_SCORE = "NodeScore"
"""Name of the cluster score derived from the node score plugins (best node in the cluster)."""

ScoreEntry = tuple[float, float, float]
"""``(raw, normalized 0..100, weighted)`` score of one plugin for one cluster."""


def normalize(scores: dict[str, float]) -> None:
    """Min-max normalise in place to 0..100; all-equal scores all become 100."""
    scores.update(_normalized(scores))


def _normalized(scores: Mapping[str, float]) -> dict[str, float]:
    """:func:`normalize` into a new dict."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    if span <= 0:
        return dict.fromkeys(scores, MAX_SCORE)
    k = MAX_SCORE - MIN_SCORE
    return {name: MIN_SCORE + (value - lo) * k / span for name, value in scores.items()}


class NormalizedScores(Mapping[str, float]):
    """:func:`normalize` of ``scores`` given their minimum and maximum, computed per cluster when
    read (the same numbers: the same arithmetic), so a decision over many clusters that reads
    a few of them pays for a few."""

    __slots__ = ("_lo", "_scores", "_span")

    def __init__(self, scores: Mapping[str, float], lo: float, hi: float) -> None:
        self._scores, self._lo, self._span = scores, lo, hi - lo

    def value(self, raw: float) -> float:
        """The normalised value of a raw score between the minimum and the maximum."""
        span = self._span
        if span <= 0:
            return MAX_SCORE
        return MIN_SCORE + (raw - self._lo) * (MAX_SCORE - MIN_SCORE) / span

    def __getitem__(self, name: str) -> float:
        return self.value(self._scores[name])

    def __contains__(self, name: object) -> bool:
        return name in self._scores

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)


class ScoreDetails(Mapping[str, dict[str, ScoreEntry]]):
    """Per feasible cluster, ``plugin -> ScoreEntry``; kept as one column per plugin and built
    per cluster only when asked for (an explanation reads a few clusters, not all of them)."""

    __slots__ = ("_columns", "_names")

    def __init__(self, names: Iterable[str]) -> None:
        # A mapping given is kept as is (its keys are the names), not copied.
        self._names: Mapping[str, object] = names if isinstance(names, Mapping) else dict.fromkeys(names)
        self._columns: list[tuple[str, Mapping[str, float], Mapping[str, float], float | None]] = []

    def add(
        self, plugin: str, raw: Mapping[str, float], normalized: Mapping[str, float], weight: float | None
    ) -> None:
        """One plugin's raw and normalised scores; weighted = normalised x ``weight`` (None: 1, as is)."""
        self._columns.append((plugin, raw, normalized, weight))

    def __getitem__(self, name: str) -> dict[str, ScoreEntry]:
        if name not in self._names:
            raise KeyError(name)
        out: dict[str, ScoreEntry] = {}
        for plugin, raw, normalized, weight in self._columns:
            if name not in normalized:
                continue
            value = normalized[name]
            out[plugin] = (raw[name], value, value if weight is None else value * weight)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def keys(self) -> KeysView[str]:
        """The names' own keys view (a dict's: set operations on it run in C)."""
        return self._names.keys()


class Framework:
    """A scheduling profile: the enabled plugins (``"*,-Foo"`` syntax), their weights and an observer."""

    def __init__(
        self,
        registry: Registry | None = None,
        plugins: str | Iterable[str] = "*",
        weights: Mapping[str, float] | None = None,
        observer: Observer | None = None,
        instances: Mapping[str, Plugin] | None = None,
    ) -> None:
        registry = registry if registry is not None else new_in_tree_registry()
        instances = dict(instances or {})
        self.plugins: dict[str, Plugin] = {
            name: instances[name] if name in instances else registry[name]()
            for name in registry.filter(plugins)
        }
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.observer = observer
        values = list(self.plugins.values())
        self.pre_filters = [p for p in values if isinstance(p, PreFilterPlugin)]
        self.filters = [p for p in values if isinstance(p, FilterPlugin)]
        self.scorers = [p for p in values if isinstance(p, ScorePlugin)]
        self.reservers = [p for p in values if isinstance(p, ReservePlugin)]
        self.permitters = [p for p in values if isinstance(p, PermitPlugin)]
        self._pre_scorers = {p.name for p in self.scorers if isinstance(p, PreScorePlugin)}
        self._extended = {p.name for p in self.scorers if isinstance(p, ScoreExtensions)}
        node_scorers = [(p, self.weight(p.name)) for p in values if isinstance(p, NodeScorePlugin)]
        self.node_scorers = [p for p, _ in node_scorers]
        self.engine = NodeFitEngine(
            [p for p in values if isinstance(p, NodeFilterPlugin)],
            [p for p in values if isinstance(p, NodeFitPlugin)],
            node_scorers,
            observer,
        )

    def weight(self, name: str) -> float:
        return float(self.weights.get(name, 1.0))

    def _observe(self, point: str, plugin: str, start: float) -> None:
        if self.observer is not None:
            self.observer(point, plugin, time.perf_counter() - start)

    def run_pre_filter(
        self, state: CycleState, workload: Workload, snapshot: Snapshot
    ) -> tuple[list[FilterPlugin], Status]:
        """Run PreFilter; returns the Filter plugins still active this cycle and the overall status."""
        skipped: set[str] = set()
        timed = self.observer is not None
        for plugin in self.pre_filters:
            start = time.perf_counter() if timed else 0.0
            status = plugin.pre_filter(state, workload, snapshot)
            if timed:
                self._observe("PreFilter", plugin.name, start)
            if status.code is Code.SKIP:
                skipped.add(plugin.name)
            elif not status.is_success:
                return [], status.with_plugin(plugin.name)
        return [p for p in self.filters if p.name not in skipped], SUCCESS

    def run_filter(
        self, state: CycleState, workload: Workload, cluster: ClusterInfo, active: Sequence[FilterPlugin]
    ) -> Status:
        """Run the active Filter plugins on one cluster, stopping at the first non-success."""
        if self.observer is None:
            for plugin in active:
                status = plugin.filter(state, workload, cluster)
                if status.code is not Code.SUCCESS:
                    return status.with_plugin(plugin.name)
            return SUCCESS
        for plugin in active:
            start = time.perf_counter()
            status = plugin.filter(state, workload, cluster)
            self._observe("Filter", plugin.name, start)
            if status.code is not Code.SUCCESS:
                return status.with_plugin(plugin.name)
        return SUCCESS

    def run_reserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> Status:
        """Reserve ``pod`` with every Reserve plugin; on a refusal, unreserve the plugins that had
        reserved it (in reverse order) and return the refusal, naming its plugin."""
        timed = self.observer is not None
        for i, plugin in enumerate(self.reservers):
            start = time.perf_counter() if timed else 0.0
            status = plugin.reserve(state, workload, pod)
            if timed:
                self._observe("Reserve", plugin.name, start)
            if status is not SUCCESS and status.code is not Code.SUCCESS:
                self._unreserve(state, workload, pod, self.reservers[:i])
                return status.with_plugin(plugin.name)
        return SUCCESS

    def run_unreserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> None:
        """Unreserve ``pod`` with every Reserve plugin, in reverse order."""
        self._unreserve(state, workload, pod, self.reservers)

    def _unreserve(
        self, state: CycleState, workload: Workload, pod: PodAssignment, plugins: Sequence[ReservePlugin]
    ) -> None:
        timed = self.observer is not None
        for plugin in reversed(plugins):
            start = time.perf_counter() if timed else 0.0
            plugin.unreserve(state, workload, pod)
            if timed:
                self._observe("Unreserve", plugin.name, start)

    def run_permit(self, state: CycleState, workload: Workload) -> Status:
        """Ask every Permit plugin: the first rejection wins, else the first WAIT, else SUCCESS."""
        timed = self.observer is not None
        waiting: Status | None = None
        for plugin in self.permitters:
            start = time.perf_counter() if timed else 0.0
            status = plugin.permit(state, workload)
            if timed:
                self._observe("Permit", plugin.name, start)
            if status is SUCCESS:
                continue
            if status.code is Code.WAIT:
                if waiting is None:
                    waiting = status.with_plugin(plugin.name)
            elif status.code is not Code.SUCCESS:
                return status.with_plugin(plugin.name)
        return waiting if waiting is not None else SUCCESS

    def run_pre_score(
        self, state: CycleState, workload: Workload, clusters: Sequence[ClusterInfo]
    ) -> list[tuple[ScorePlugin, float]]:
        """The cluster Score plugins that score this cycle: those without PreScore, and those
        whose PreScore did not return SKIP, each with the seconds its PreScore took (timed with
        its Score), for :meth:`run_score`. Empty: the totals are the normalised node scores alone."""
        timed = self.observer is not None
        out: list[tuple[ScorePlugin, float]] = []
        for plugin in self.scorers:
            start = time.perf_counter() if timed else 0.0
            if (
                plugin.name in self._pre_scorers
                and cast(PreScorePlugin, plugin).pre_score(state, workload, clusters).code is Code.SKIP
            ):
                continue
            out.append((plugin, time.perf_counter() - start if timed else 0.0))
        return out

    def run_score(
        self,
        state: CycleState,
        workload: Workload,
        clusters: Sequence[ClusterInfo],
        node_scores: Mapping[str, float],
        scorers: Sequence[tuple[ScorePlugin, float]] | None = None,
    ) -> tuple[dict[str, float], ScoreDetails]:
        """Score, normalise and weight; returns totals and per-cluster ``plugin -> ScoreEntry``.

        ``node_scores`` (cluster -> best node score) enters as the :data:`NODE_SCORE` plugin.
        ``scorers``: what :meth:`run_pre_score` returned for ``clusters``, when it was called
        (PreScore runs once per cycle); None runs PreScore here.
        """
        totals = dict.fromkeys([c.name for c in clusters], 0.0)
        details = ScoreDetails(totals)
        timed = self.observer is not None
        for plugin, spent in self.run_pre_score(state, workload, clusters) if scorers is None else scorers:
            start = time.perf_counter() - spent if timed else 0.0
            raw = {c.name: plugin.score(state, workload, c) for c in clusters}
            if plugin.name in self._extended:
                normalized = dict(raw)
                cast(ScoreExtensions, plugin).normalize_score(state, workload, normalized)
            else:
                normalized = {k: min(max(v, MIN_SCORE), MAX_SCORE) for k, v in raw.items()}
            if timed:
                self._observe("Score", plugin.name, start)
            weight = self.weight(plugin.name)
            details.add(plugin.name, raw, normalized, weight)
            for name, value in normalized.items():
                totals[name] += value * weight
        if node_scores and self.node_scorers:
            normalized = _normalized(node_scores)
            details.add(NODE_SCORE, node_scores, normalized, None)
            totals = {
                name: total + normalized[name] if name in normalized else total
                for name, total in totals.items()
            }
        return totals, details
