"""Node-level fit inside one cluster: capacity, candidate ranking and pod-by-pod binding.

Pod capacity of a node for a shape is exact and additive: binding one pod on a node lowers
that node's capacity for the same shape by exactly one (whole GPUs take fully free devices,
a fractional pod takes one device with enough share), so the sum over nodes is the true number
of replicas a cluster can hold - what Karmada's cluster-sum estimator cannot know.

Results that depend only on a cluster's state are memoised on the :class:`ClusterInfo` object
(``memo`` per version, ``static_memo`` for label/taint-only results, which the cache carries
over when only usage changes). Per (cluster, shape) a :class:`FitIndex` (kept in
``static_memo``) holds every eligible node's capacity and score; when a newer version of the
cluster is asked about, only the nodes its :class:`~flotilla.scheduler.snapshot.ChangeLog`
lists are re-evaluated, so a decision costs O(changed nodes), not O(clusters x nodes).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from flotilla.scheduler.framework import (
    DevicePickerPlugin,
    NodeFilterPlugin,
    NodeFitPlugin,
    NodeScorePlugin,
    Observer,
)
from flotilla.scheduler.quantity import ResourceList
from flotilla.scheduler.snapshot import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    MILLI_PER_GPU,
    ChangeLog,
    ClusterInfo,
    ClusterSummary,
    NodeInfo,
    release_devices,
    take_devices,
)
from flotilla.scheduler.statematrix import StateMatrix
from flotilla.scheduler.workload import PodShape

__all__ = [
    "ClusterPlacer",
    "FitIndex",
    "NodeFitEngine",
    "NodeState",
    "PodAssignment",
    "ShapeFit",
    "Verdict",
    "insufficient_resources",
    "pod_capacity",
]

UNBOUNDED = 1 << 30
_MEMO_LIMIT = 512
_INDEX_LIMIT = 64
"""Fit indexes (one per pod shape) kept per cluster; the least recently used is dropped first."""


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``value`` in a node's or cluster's memo, emptied first once it holds ``_MEMO_LIMIT``."""
    if len(memo) > _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


_SHARED_LIMIT = 1 << 18
"""Node entries shared per resource state an engine keeps, over all shapes (~30 MB at most;
all are dropped beyond, and recomputed as needed)."""


def pod_capacity(shape: PodShape, free: Mapping[str, int], devices: Sequence[int]) -> int:
    """How many pods of ``shape`` fit in ``free`` / ``devices`` (``pods`` is implied when present)."""
    n = UNBOUNDED
    for name, amount in shape.other:
        have = free.get(name, 0)
        if have < amount:
            return 0
        q = have // amount
        if q < n:
            n = q
    pods = free.get("pods")
    if pods is not None and pods < n:
        n = max(pods, 0)
    if shape.gpu_whole:
        q = free.get(GPU_RESOURCE, 0) // shape.gpu_whole
        if q < n:
            n = q
    elif shape.gpu_milli:
        m = shape.gpu_milli
        q = 0
        for d in devices:
            if d >= m:
                q += d // m
        if q < n:
            n = q
    return n


def insufficient_resources(shape: PodShape, free: Mapping[str, int], devices: Sequence[int]) -> list[str]:
    """Names of the resources that keep even one pod of ``shape`` off this node."""
    out = [name for name, amount in shape.other if free.get(name, 0) < amount]
    pods = free.get("pods")
    if pods is not None and pods < 1:
        out.append("pods")
    if shape.gpu_whole and free.get(GPU_RESOURCE, 0) < shape.gpu_whole:
        out.append(GPU_RESOURCE)
    if shape.gpu_milli and not any(d >= shape.gpu_milli for d in devices):
        out.append(GPU_MILLI_RESOURCE)
    return out


class NodeState:
    """A mutable copy of one node's free resources, used while simulating bindings."""

    __slots__ = ("devices", "free", "node")

    def __init__(self, node: NodeInfo) -> None:
        self.node = node
        self.free: dict[str, int] = dict(node.free)
        self.devices: list[int] = list(node.devices)

    def bind(self, shape: PodShape, device: int | None = None) -> tuple[int, ...]:
        """Take one pod's resources; returns the GPU device indexes used.

        A fractional pod takes ``device`` when given (and big enough), else the best-fit device.
        """
        free = self.free
        for name, amount in shape.other:
            free[name] = free.get(name, 0) - amount
        if "pods" in free:
            free["pods"] -= 1
        if shape.gpu_whole:
            chosen = take_devices(self.devices, whole=shape.gpu_whole)
            free[GPU_RESOURCE] -= len(chosen)
            free[GPU_MILLI_RESOURCE] -= MILLI_PER_GPU * len(chosen)
            return chosen
        if shape.gpu_milli:
            m = shape.gpu_milli
            # (The node's capacity for the shape was checked: some device holds the share.)
            chosen = take_devices(self.devices, milli=m, preferred=() if device is None else (device,))
            if self.devices[chosen[0]] + m >= MILLI_PER_GPU:
                free[GPU_RESOURCE] -= 1
            free[GPU_MILLI_RESOURCE] -= m
            return chosen
        return ()

    def release(self, requests: Mapping[str, int], devices: Sequence[int], milli: int) -> None:
        """Undo :meth:`bind` of one pod with these ``requests`` that took ``devices`` (``milli``
        on each)."""
        free = self.free
        for name, amount in requests.items():
            if name not in (GPU_RESOURCE, GPU_MILLI_RESOURCE):
                free[name] = free.get(name, 0) + amount
        if "pods" in free:
            free["pods"] += 1
        devs = self.devices
        whole_before = sum(1 for i in devices if devs[i] >= MILLI_PER_GPU)
        release_devices(devs, devices, milli)
        free[GPU_RESOURCE] += sum(1 for i in devices if devs[i] >= MILLI_PER_GPU) - whole_before
        free[GPU_MILLI_RESOURCE] += milli * len(devices)


@dataclass(frozen=True, slots=True, eq=False)
class PodAssignment:
    """One pod placed on a node; ``gpu_milli`` is the share taken on each listed device."""

    cluster: str
    node: str
    component: str
    requests: ResourceList
    gpu_devices: tuple[int, ...] = ()
    gpu_milli: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "node": self.node,
            "component": self.component,
            "requests": dict(self.requests),
            "gpuDevices": list(self.gpu_devices),
            "gpuMilli": self.gpu_milli,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PodAssignment:
        return cls(
            cluster=str(raw["cluster"]),
            node=str(raw["node"]),
            component=str(raw.get("component") or ""),
            requests={str(k): int(v) for k, v in (raw.get("requests") or {}).items()},
            gpu_devices=tuple(int(i) for i in raw.get("gpuDevices") or ()),
            gpu_milli=int(raw.get("gpuMilli") or 0),
        )


@dataclass(slots=True)
class ShapeFit:
    """Node-level fit of one pod shape in one cluster version."""

    available: int
    candidates: list[tuple[float, str]]
    """``(-score, node)`` of every node with room for one more pod, best first."""
    node_reasons: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    plugin: str = ""

    @property
    def best_score(self) -> float | None:
        return -self.candidates[0][0] if self.candidates else None


@dataclass(slots=True)
class Verdict:
    """What the cluster-level filter needs of a shape's node-level fit: the pods that fit, the
    best node's score, and why nothing fits (the fields of :class:`ShapeFit` but the ranking).

    Memoised and shared, never changed once made (not ``frozen``: that costs four times as
    much to build, once per cluster on a new shape's first pass)."""

    available: int
    best_score: float | None
    node_reasons: dict[str, int]
    reason: str = ""
    plugin: str = ""


def _with_room(pods: int, best: float, rejected: Mapping[str, tuple[str, int]]) -> Verdict:
    """The verdict of a cluster whose summary shows room: the pods, the best score, and the
    nodes the node filters left out (``rejected``: reason -> (plugin, nodes))."""
    return Verdict(min(pods, UNBOUNDED), best, {r: n for r, (_, n) in rejected.items()} if rejected else {})


_Usable = tuple[ClusterSummary, dict[int, int], frozenset[str] | None, dict[str, tuple[str, int]]]
"""``(summary, counts, only, rejected)``: see :meth:`NodeFitEngine._summary`."""

NodeEntry = tuple[int, float, tuple[tuple[str, str], ...]]
"""``(capacity, score, ((plugin, reason), ...))`` of one shape on one node state."""


class FitIndex:
    """Fit of one pod shape over the eligible nodes of one cluster, updatable node by node.

    Holds each eligible node's :data:`NodeEntry`, the total pod capacity, the candidate nodes
    ranked best first and a histogram of why the other nodes cannot take one pod. ``update``
    re-evaluates only the nodes given, so keeping the index across cluster versions costs
    O(changed nodes x log nodes) per version instead of a full scan.
    """

    __slots__ = (
        "available",
        "candidates",
        "entries",
        "log",
        "rejected",
        "short",
        "short_plugin",
        "token",
        "version",
    )

    def __init__(self, version: int, rejected: dict[str, tuple[str, int]], token: int = 0) -> None:
        self.version = version
        self.token = token
        """The engine's :attr:`NodeFitEngine.token` the scores were computed under."""
        self.log: ChangeLog | None = None
        """The change log ``version`` refers to (set when the index is kept across versions)."""
        self.rejected = rejected
        self.entries: dict[str, NodeEntry] = {}
        self.available = 0
        self.candidates: list[tuple[float, str]] = []
        self.short: Counter[str] = Counter()
        self.short_plugin: dict[str, str] = {}

    @classmethod
    def build(cls, engine: NodeFitEngine, cluster: ClusterInfo, shape: PodShape) -> FitIndex:
        """Full scan of the cluster's eligible nodes."""
        names, rejected = engine.eligible(cluster, shape)
        index = cls(cluster.version, rejected, engine.token)
        nodes = cluster.nodes
        entries = index.entries
        shared = engine.shared_entries(shape)
        node_entry = engine.node_entry
        for name in names:
            entries[name] = entry = node_entry(shape, nodes[name], shared)
            index._add(name, entry, sort=False)
        index.candidates.sort()
        return index

    def _add(self, name: str, entry: NodeEntry, sort: bool = True) -> None:
        n = entry[0]
        if n > 0:
            self.available += n
            if sort:
                bisect.insort(self.candidates, (-entry[1], name))
            else:
                self.candidates.append((-entry[1], name))
            return
        for plugin, res in entry[2]:
            self.short[res] += 1
            self.short_plugin.setdefault(res, plugin)

    def _remove(self, name: str, entry: NodeEntry) -> None:
        n = entry[0]
        if n > 0:
            self.available -= n
            candidates = self.candidates
            del candidates[bisect.bisect_left(candidates, (-entry[1], name))]
            return
        short = self.short
        for _, res in entry[2]:
            short[res] -= 1
            if not short[res]:
                del short[res]

    def update(self, engine: NodeFitEngine, cluster: ClusterInfo, shape: PodShape, changed: set[str]) -> None:
        """Re-evaluate the ``changed`` eligible nodes and move to ``cluster``'s version."""
        entries, nodes = self.entries, cluster.nodes
        shared = engine.shared_entries(shape)
        for name in changed:
            old = entries.get(name)
            if old is None:
                continue  # not eligible for this shape (labels/taints never change in a lineage)
            self._remove(name, old)
            node = nodes.get(name)
            if node is None:
                del entries[name]
                continue
            entries[name] = entry = engine.node_entry(shape, node, shared)
            self._add(name, entry)
        self.version = cluster.version

    def fit(self) -> ShapeFit:
        """The :class:`ShapeFit` of the current state (a copy: later updates do not change it)."""
        candidates = list(self.candidates)
        if candidates:
            node_reasons = {r: n for r, (_, n) in self.rejected.items()}
            return ShapeFit(min(self.available, UNBOUNDED), candidates, node_reasons)
        return _no_room(self.rejected, self.short, self.short_plugin)


def _no_room(
    rejected: Mapping[str, tuple[str, int]], short: Mapping[str, int], short_plugin: Mapping[str, str]
) -> ShapeFit:
    """The :class:`ShapeFit` of a cluster where no node has room for one pod: the node reason
    histogram, and the commonest reason (ties by name) as the cluster's."""
    node_reasons = {r: n for r, (_, n) in rejected.items()}
    fit = ShapeFit(0, [], node_reasons)
    node_reasons.update(short)
    if short:
        top = min(short.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        fit.reason, fit.plugin = f"{top} on any single node", short_plugin[top]
    elif rejected:
        top = min(rejected.items(), key=lambda kv: (-kv[1][1], kv[0]))[0]
        fit.reason, fit.plugin = top, rejected[top][0]
    else:
        fit.reason, fit.plugin = "no nodes", "NodeReady"
    return fit


class _Aggregate:
    """One pod shape over the node states of a cluster summary: the pods its nodes can take
    (capacity x nodes, summed), how many nodes of each node score have room, and the reasons
    of the nodes without room (nodes per reason, and each reason's plugin). Kept per summary
    lineage and updated node by node (:meth:`NodeFitEngine._aggregate`): the same sums as a
    pass over every state."""

    __slots__ = ("available", "only", "plugins", "scores", "seq", "short")

    def __init__(self, seq: int, only: frozenset[str] | None = None) -> None:
        self.seq = seq
        self.only = only
        """The nodes counted (the shape's eligible nodes), or None: every Ready node."""
        self.available = 0
        self.scores: dict[float, int] = {}
        self.short: dict[str, int] = {}
        self.plugins: dict[str, str] = {}

    def add(self, entries: Iterable[tuple[NodeEntry, int]]) -> None:
        """For each ``(entry, count)``: add ``count`` nodes (negative: remove them) whose entry
        for the shape is ``entry``."""
        available, scores, short, plugins = self.available, self.scores, self.short, self.plugins
        for (capacity, score, reasons), count in entries:
            if capacity > 0:
                available += capacity * count
                n = scores.get(score, 0) + count
                if n:
                    scores[score] = n
                else:
                    del scores[score]
                continue
            for plugin, res in reasons:
                n = short.get(res, 0) + count
                if n:
                    short[res] = n
                else:
                    del short[res]
                plugins.setdefault(res, plugin)
        self.available = available


class _Eligible:
    """The Ready nodes of a summary that a shape's node filters admit (``only``), counted by
    resource state: the summary of that part of the cluster, kept per summary lineage and
    brought up to date from the changed nodes, like an aggregate."""

    __slots__ = ("counts", "only", "seq")

    def __init__(self, seq: int, only: frozenset[str], counts: dict[int, int]) -> None:
        self.seq = seq
        self.only = only
        self.counts = counts


_Kept = TypeVar("_Kept", _Aggregate, _Eligible)


def _in_lineage(
    summary: ClusterSummary,
    key: Any,
    only: frozenset[str] | None,
    advance: Callable[[_Kept, Iterable[tuple[tuple[NodeInfo, int], ...]]], None],
    compute: Callable[[], _Kept],
) -> _Kept:
    """What is kept under ``key`` in the summary's log (over the nodes ``only``, None: every
    Ready node), brought up to ``summary`` by ``advance`` from the node changes since its
    ``seq``; ``compute()`` anew the first time, when the eligible set changed (labels or taints
    moved), or when the log cannot tell (then kept, unless the one kept is newer: an older
    summary was asked about). At most ``_INDEX_LIMIT`` are kept per log, least recently used
    dropped first."""
    log = summary.log
    kept: _Kept | None = None
    if log is not None:
        kept = log.aggregates.pop(key, None)  # re-inserted below: least recently used first
        if kept is not None and kept.only is only:
            changes = log.since(kept.seq, summary.seq)
            if changes is not None:
                advance(kept, changes)
                kept.seq = summary.seq
                log.aggregates[key] = kept
                return kept
    fresh = compute()
    if log is not None:
        newer = kept is not None and kept.only is only and kept.seq > summary.seq
        while len(log.aggregates) >= _INDEX_LIMIT:
            del log.aggregates[next(iter(log.aggregates))]
        log.aggregates[key] = kept if newer else fresh
    return fresh


def _no(shape: PodShape) -> bool:
    return False


def _unnamed(shape: PodShape) -> None:
    return None


_SORTED_NAMES = ("sorted-node-names",)


def _node_groups(cluster: ClusterInfo, keys: tuple[str, ...] | None) -> list[tuple[NodeInfo, list[str]]]:
    """The cluster's nodes grouped by readiness, labels (only ``keys``, unless None) and taints:
    one node of each group and the group's names, groups in order of their first name (kept in
    ``static_memo``, which the cache renews when any of these or the node set changes)."""
    memo = cluster.static_memo
    groups: list[tuple[NodeInfo, list[str]]] | None = memo.get(("node-groups", keys))
    if groups is None:
        by: dict[Any, tuple[NodeInfo, list[str]]] = {}
        nodes = cluster.nodes
        names: list[str] | None = memo.get(_SORTED_NAMES)
        if names is None:
            names = memo[_SORTED_NAMES] = sorted(nodes)
        for name in names:
            node = nodes[name]
            labels = node.labels
            key = (
                node.ready,
                tuple(labels.items()) if keys is None else tuple(map(labels.get, keys)),
                node.taints,
            )
            group = by.get(key)
            if group is None:
                by[key] = (node, [name])
            else:
                group[1].append(name)
        groups = list(by.values())
        _remember(memo, ("node-groups", keys), groups)
    return groups


_tokens = itertools.count(1)


class NodeFitEngine:
    """Runs the node-level plugins of one framework over the nodes of a cluster."""

    summary_max_states = 0.5
    """A cluster's summary answers for it while its Ready nodes fall into at most this many
    resource states per node (a cost choice only: summary and index give the same answers;
    past it, a state is little more than a node, and an index is updated node by node)."""

    def __init__(
        self,
        filters: Sequence[NodeFilterPlugin],
        fits: Sequence[NodeFitPlugin],
        scorers: Sequence[tuple[NodeScorePlugin, float]],
        observer: Observer | None = None,
    ) -> None:
        self.filters = tuple(filters)
        self.fits = tuple(fits)
        self.scorers = tuple(scorers)
        self.observer = observer
        self.token = next(_tokens)
        """Part of every memo key holding scores; replaced when a scorer's ``epoch`` changes."""
        self._static_token = self.token
        """Part of the memo keys that hold no scores (eligibility, the per-shape index store)."""
        self._versioned = tuple(p for p, _ in self.scorers if hasattr(p, "epoch"))
        self._epochs = self._current_epochs()
        pickers = [p for p, _ in self.scorers if isinstance(p, DevicePickerPlugin)]
        self.device_picker: DevicePickerPlugin | None = pickers[0] if pickers else None
        self.additive = bool(self.fits) and all(getattr(f, "additive_capacity", False) for f in self.fits)
        """Every fit plugin's capacity drops by exactly one per pod bound: pods of one shape fit a
        cluster at once exactly when its available count holds them (no simulation needed)."""
        self.by_resources = all(getattr(p, "node_resources_only", False) for p, _ in self.scorers)
        """Node entries depend only on the node's resource state: share them across nodes."""
        self._shared: dict[Any, dict[int, NodeEntry]] = {}
        self._shared_size = 0
        self._columns: dict[Any, tuple[dict[int, int], dict[int, float]]] = {}
        """Per shape, the capacity and the score of each shared entry (``resource_id ->``), so
        a summary's states are summed by C-level ``map`` instead of a Python loop."""
        self._matrix = StateMatrix()
        """Every cluster's summary as array rows, for :meth:`verdicts` over many clusters."""

    matrix_min_clusters = 64
    """:meth:`verdicts` sums the clusters' summaries as one array (:class:`StateMatrix`) from
    this many clusters (a cost choice only: both ways give the same numbers)."""

    def _current_epochs(self) -> tuple[int, ...]:
        return tuple(p.epoch for p in self._versioned)

    def refresh(self) -> bool:
        """Start a new :attr:`token` (and drop the shared node entries) when a node score
        plugin's ``epoch`` moved: a plugin whose scores may change over time (a learned
        distribution) exposes an ``epoch`` it bumps when they do, and no score memoised under
        the old epoch is used again. True when it moved (the caller drops what it keeps)."""
        if not self._versioned:
            return False
        epochs = self._current_epochs()
        if epochs == self._epochs:
            return False
        self._epochs = epochs
        self.token = next(_tokens)
        self._drop_shared()
        return True

    def _drop_shared(self) -> None:
        self._shared.clear()
        self._columns.clear()
        self._matrix.drop_columns()
        self._shared_size = 0

    # -- static eligibility (labels, taints) -------------------------------------------------
    def eligible(
        self, cluster: ClusterInfo, shape: PodShape
    ) -> tuple[tuple[str, ...], dict[str, tuple[str, int]]]:
        """Nodes passing every node filter, and ``reason -> (plugin, nodes)`` for the others."""
        key = (self._static_token, "eligible", shape.constraint_key)
        memo = cluster.static_memo
        hit = memo.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        names: list[str] = []
        rejected: dict[str, tuple[str, int]] = {}
        groups: Iterable[tuple[NodeInfo, Sequence[str]]]
        if all(getattr(f, "reads_node_metadata_only", _no)(shape) for f in self.filters):
            # The filters read labels, taints and readiness only: once per distinct set of them
            # (of the labels they name, when each names them).
            named: list[Collection[str] | None] = [
                getattr(f, "node_label_keys", _unnamed)(shape) for f in self.filters
            ]
            keys = None
            if all(some is not None for some in named):
                keys = tuple(sorted({k for some in named if some is not None for k in some}))
            groups = _node_groups(cluster, keys)
        else:
            groups = ((cluster.nodes[name], (name,)) for name in sorted(cluster.nodes))
        for node, members in groups:  # in order of their first node's name
            reason = None if node.ready else "no Ready node"
            plugin = "NodeReady"
            if reason is None:
                for f in self.filters:
                    reason = f.node_filter(shape, node)
                    if reason is not None:
                        plugin = f.name
                        break
            if reason is None:
                names.extend(members)
            else:
                old = rejected.get(reason, (plugin, 0))
                rejected[reason] = (old[0], old[1] + len(members))
        names.sort()
        result = (tuple(names), rejected)
        _remember(memo, key, result)
        return result

    # -- capacity and score over node views --------------------------------------------------
    def capacity(self, shape: PodShape, free: Mapping[str, int], devices: Sequence[int]) -> int:
        n = UNBOUNDED
        for f in self.fits:
            c = f.node_capacity(shape, free, devices)
            if c < n:
                n = c
                if n == 0:
                    return 0
        return n

    def score(
        self, shape: PodShape, node: NodeInfo, free: Mapping[str, int], devices: Sequence[int]
    ) -> float:
        total = 0.0
        for plugin, weight in self.scorers:
            total += weight * plugin.node_score(shape, node, free, devices)
        return total

    def _node_entry(self, shape: PodShape, node: NodeInfo) -> NodeEntry:
        """``(capacity, score, ((plugin, reason), ...))`` of an untouched node (memoised on the node)."""
        free, devices = node.free, node.devices
        n = self.capacity(shape, free, devices)
        if n > 0:
            return n, self.score(shape, node, free, devices), ()
        reasons = tuple(
            (f.name, f"insufficient {res}")
            for f in self.fits
            for res in f.node_insufficient(shape, free, devices)
        )
        return 0, 0.0, reasons

    def shared_entries(self, shape: PodShape) -> dict[int, NodeEntry] | None:
        """``resource_id -> NodeEntry`` of ``shape``, shared by every node in the fleet; None
        when a node score plugin may read more than resources (then entries are per node)."""
        if not self.by_resources:
            return None
        if self._shared_size >= _SHARED_LIMIT:
            self._drop_shared()
        table = self._shared.get(shape.key)
        if table is None:
            table = self._shared[shape.key] = {}
        return table

    def node_entry(
        self, shape: PodShape, node: NodeInfo, shared: dict[int, NodeEntry] | None = None
    ) -> NodeEntry:
        """:meth:`_node_entry`, memoised per node resource state (``shared``, from
        :meth:`shared_entries`) or else on the (immutable) node."""
        if shared is None:
            shared = self.shared_entries(shape)
        if shared is not None:
            rid = node.resource_id
            hit = shared.get(rid)
            if hit is None:
                hit = shared[rid] = self._node_entry(shape, node)
                self._shared_size += 1
            return hit
        node_key = (self.token, shape.key)
        memo = node.memo
        entry: NodeEntry | None = memo.get(node_key)
        if entry is None:
            entry = self._node_entry(shape, node)
            _remember(memo, node_key, entry)
        return entry

    def fit_index(self, cluster: ClusterInfo, shape: PodShape) -> FitIndex:
        """The per-(cluster, shape) index brought up to ``cluster``'s version.

        Kept in ``static_memo`` (shared by the usage-only versions of a cluster; at most
        ``_INDEX_LIMIT`` shapes per cluster, least recently used dropped first) and updated
        from the cluster's :class:`~flotilla.scheduler.snapshot.ChangeLog`: only the nodes that
        changed since the index was last used are re-evaluated. Clusters without a change log
        (not built by the cache), or an index already ahead of ``cluster`` (an older snapshot),
        get a fresh index built by a full scan.
        """
        changes = cluster.changes
        if changes is None:
            return FitIndex.build(self, cluster, shape)
        indexes: dict[Any, FitIndex] = cluster.static_memo.setdefault((self._static_token, "indexes"), {})
        index = indexes.pop(shape.key, None)  # re-inserted below: least recently used goes first
        if index is not None and (index.log is not changes or index.token != self.token):
            index = None  # another lineage's log (its versions mean nothing here), or old scores
        if index is not None and index.version != cluster.version:
            changed = changes.since(index.version, cluster.version)
            if changed is None and index.version > cluster.version:
                indexes[shape.key] = index
                return FitIndex.build(self, cluster, shape)
            if changed is None:
                index = None
            else:
                index.update(self, cluster, shape, changed)
        if index is None:
            index = FitIndex.build(self, cluster, shape)
            index.log = changes
            while len(indexes) >= _INDEX_LIMIT:
                del indexes[next(iter(indexes))]
        indexes[shape.key] = index
        return index

    def summary_fit(self, cluster: ClusterInfo, shape: PodShape) -> ShapeFit | None:
        """The :class:`ShapeFit` read from the cluster's summary when it shows that no node has
        room for one pod of ``shape``; None when some node may have room, or when the summary
        cannot tell (no summary or one of other nodes, plugins reading more than resources; see
        :meth:`_summary`).

        Exactly what the per-shape index would say, from the summary's aggregate for the shape
        (:meth:`_aggregate`, the one :meth:`verdict` reads): every eligible node is a Ready node
        counted by state (all of them, or those the node filters admit), so the reasons of each
        state, times its count, make the same histogram. The cluster then needs no index for
        this shape.
        """
        usable = self._summary(cluster, shape)
        if usable is None:
            return None
        summary, counts, only, rejected = usable
        agg = self._aggregate(summary, shape, counts, only)
        if agg.scores:
            return None
        return _no_room(rejected, agg.short, agg.plugins)

    def verdict(self, cluster: ClusterInfo, shape: PodShape) -> Verdict:
        """The shape's :class:`Verdict` on the cluster, memoised per cluster version.

        From the cluster's summary when it can tell (as :meth:`summary_fit`: plugins reading
        only resources; a node selector, affinity or taints read the eligible nodes' counts):
        the available pods are the capacity of each node resource state times its count
        (:meth:`_room`), the best score the best state's, so no per-shape
        index is built for a cluster that is only filtered and scored, not placed on. Else from
        :meth:`shape_fit`. Both give the same numbers (the index sums the same shared entries).
        """
        key = (self.token, "verdict", shape.key)
        memo = cluster.memo
        hit = memo.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        verdict = self._summary_verdict(cluster, shape)
        if verdict is None:
            fit = self.shape_fit(cluster, shape)
            verdict = Verdict(fit.available, fit.best_score, fit.node_reasons, fit.reason, fit.plugin)
        _remember(memo, key, verdict)
        return verdict

    def _summary(self, cluster: ClusterInfo, shape: PodShape) -> _Usable | None:
        """``(summary, counts, only, rejected)`` when the cluster's summary can answer for
        ``shape`` exactly and cheaply: it summarises the cluster's nodes, the node plugins read
        only resources (one fit plugin, so each reason has one author), the nodes fall into few
        enough resource states (``summary_max_states``), and no index of the shape is kept for
        the cluster (updating one costs only the nodes that changed). ``counts`` are the Ready
        nodes per resource state the shape may use: the summary's own when every Ready node is
        eligible (``only`` None), else those of the eligible nodes ``only`` (a node selector,
        affinity or taints leave some out; see :meth:`_eligible_counts`). ``rejected``: the
        node filters' rejections.

        All but the index check is kept per cluster version and node constraint when every
        Ready node is eligible (a selector's counts move on in place with the summary's
        lineage: read at once, not kept)."""
        key = (self._static_token, "summary", shape.constraint_key)
        memo = cluster.memo
        usable: _Usable | Literal[False] | None = memo.get(key)
        if usable is None:
            usable = self._usable_summary(cluster, shape)
            if usable is False or usable[2] is None:
                _remember(memo, key, usable)
        if usable is False:
            return None
        indexes = cluster.static_memo.get((self._static_token, "indexes"))
        if indexes:
            index = indexes.get(shape.key)
            if index is not None:
                if index.token == self.token:
                    return None
                del indexes[shape.key]  # scored under an old epoch: the summary answers, no rebuild
        return usable

    def _usable_summary(self, cluster: ClusterInfo, shape: PodShape) -> _Usable | Literal[False]:
        """:meth:`_summary` but the index check; False when the summary cannot answer."""
        summary = cluster.summary
        if (
            summary is None
            or summary.source is not cluster.nodes
            or not self.by_resources
            or len(self.fits) > 1
            or len(summary.counts) > self.summary_max_states * summary.ready
        ):
            return False
        names, rejected = self.eligible(cluster, shape)
        if len(names) == summary.ready:
            return summary, summary.counts, None, rejected
        only = self._eligible_set(cluster, shape, names)
        return summary, self._eligible_counts(summary, cluster, shape, only), only, rejected

    def _eligible_set(self, cluster: ClusterInfo, shape: PodShape, names: Sequence[str]) -> frozenset[str]:
        """:meth:`eligible`'s names as a set, kept beside them (one object per static lineage)."""
        key = (self._static_token, "eligible-set", shape.constraint_key)
        memo = cluster.static_memo
        only: frozenset[str] | None = memo.get(key)
        if only is None:
            only = frozenset(names)
            _remember(memo, key, only)
        return only

    def _eligible_counts(
        self, summary: ClusterSummary, cluster: ClusterInfo, shape: PodShape, only: frozenset[str]
    ) -> dict[int, int]:
        """The eligible nodes ``only`` per resource state, kept in the summary's log per node
        constraint (shared by every shape with the same selector, affinity and tolerations,
        and across score epochs; see :func:`_in_lineage`). The caller reads it at once (a kept
        one moves on in place)."""

        def advance(kept: _Eligible, changes: Iterable[tuple[tuple[NodeInfo, int], ...]]) -> None:
            counts = kept.counts
            for change in changes:
                for node, sign in change:
                    if node.name in only:
                        rid = node.resource_id
                        n = counts.get(rid, 0) + sign
                        if n:
                            counts[rid] = n
                        else:
                            del counts[rid]

        def count() -> _Eligible:
            counts: dict[int, int] = {}
            nodes = cluster.nodes
            for name in only:
                rid = nodes[name].resource_id
                counts[rid] = counts.get(rid, 0) + 1
            return _Eligible(summary.seq, only, counts)

        return _in_lineage(summary, ("eligible", shape.constraint_key), only, advance, count).counts

    def _summary_verdict(self, cluster: ClusterInfo, shape: PodShape) -> Verdict | None:
        usable = self._summary(cluster, shape)
        if usable is None:
            return None
        summary, counts, only, rejected = usable
        room = self._room(summary, shape, counts)
        if room is not None:
            return _with_room(room[0], room[1], rejected)
        agg = self._aggregate(summary, shape, counts, only)
        if agg.scores:
            return _with_room(agg.available, max(agg.scores), rejected)
        fit = _no_room(rejected, agg.short, agg.plugins)
        return Verdict(0, None, fit.node_reasons, fit.reason, fit.plugin)

    def _room(
        self, summary: ClusterSummary, shape: PodShape, counts: dict[int, int]
    ) -> tuple[int, float] | None:
        """The pods of ``shape`` the ``counts`` nodes can take and the best score of a node with
        room, when some node has room and no aggregate of the shape is kept for the summary's
        lineage (that one is brought up to date from the changed states instead); else None.

        The same sums as :meth:`_aggregate`, from the shape's per-state capacity and score
        columns: ``map`` over the summary's states runs in C, so a cluster first asked about
        a shape (every cluster, on the first decision of a new shape) costs a few microseconds
        instead of a Python pass over its states. A cluster without room goes to the aggregate,
        which also counts why.
        """
        log = summary.log
        if log is not None and (self.token, shape.key) in log.aggregates:
            return None
        return self._sum_room(shape, summary, counts, self._room_columns(shape))

    def _room_columns(self, shape: PodShape) -> tuple[dict[int, int], dict[int, float]]:
        """The shape's capacity and score per shared entry (``resource_id ->``), filled as states
        are met (:meth:`_sum_room`)."""
        columns = self._columns.get(shape.key)
        if columns is None:
            columns = self._columns[shape.key] = ({}, {})
        return columns

    def _sum_room(
        self,
        shape: PodShape,
        summary: ClusterSummary,
        counts: dict[int, int],
        columns: tuple[dict[int, int], dict[int, float]],
    ) -> tuple[int, float] | None:
        """:meth:`_room`'s sums over ``counts`` (``columns`` from :meth:`_room_columns`)."""
        caps, scores = columns
        if not caps.keys() >= counts.keys():
            shared = self.shared_entries(shape)
            assert shared is not None  # (the summary answers only for plugins reading resources)
            nodes = summary.nodes
            for rid in counts:
                if rid not in caps:
                    entry = shared.get(rid) or self.node_entry(shape, nodes[rid], shared)
                    caps[rid], scores[rid] = entry[0], entry[1]
        room = list(map(caps.__getitem__, counts))
        available = sum(map(operator.mul, room, counts.values()))
        if not available:
            return None
        return available, max(itertools.compress(map(scores.__getitem__, counts), room))

    def verdicts(self, clusters: Iterable[ClusterInfo], shape: PodShape) -> list[Verdict]:
        """:meth:`verdict` of every cluster, memoised the same way: the pass over the fleet on
        the first decision of a new shape (or after a score epoch). The clusters whose summary
        answers from every Ready node are summed at once as array rows (:class:`StateMatrix`,
        from :attr:`matrix_min_clusters` clusters), those it answers from the eligible nodes'
        counts (a node selector) as :meth:`_room` does, in the same loop; clusters without
        room (the aggregate counts why) or without a usable summary go through
        :meth:`verdict`."""
        clusters = list(clusters)
        key = (self.token, "verdict", shape.key)
        aggregated = (self.token, shape.key)
        columns = self._room_columns(shape)
        summary_of, sum_room, verdict = self._summary, self._sum_room, self.verdict
        out: list[Verdict | None] = []
        batch = len(clusters) >= self.matrix_min_clusters
        rows: list[tuple[int, ClusterSummary, dict[str, tuple[str, int]]]] = []
        for cluster in clusters:
            memo = cluster.memo
            hit = memo.get(key)
            if hit is None:
                usable = summary_of(cluster, shape)
                room = None
                if usable is not None:
                    summary, counts, only, rejected = usable
                    log = summary.log
                    if log is None or aggregated not in log.aggregates:
                        if batch and only is None and counts:
                            rows.append((len(out), summary, rejected))  # summed below, all at once
                            out.append(None)
                            continue
                        room = sum_room(shape, summary, counts, columns)
                if room is None:
                    hit = verdict(cluster, shape)  # no room (it counts why), or no summary
                else:
                    hit = _with_room(room[0], room[1], rejected)
                    _remember(memo, key, hit)
            out.append(hit)
        if rows:
            shared = self.shared_entries(shape)
            assert shared is not None  # (the summary answers only for plugins reading resources)

            def entry(node: NodeInfo) -> tuple[int, float]:
                capacity, score, _ = shared.get(node.resource_id) or self.node_entry(shape, node, shared)
                return capacity, score

            available, best = self._matrix.rooms(
                [clusters[i].name for i, _, _ in rows], [s for _, s, _ in rows], shape.key, entry
            )
            for (i, _, rejected), pods, score in zip(rows, available, best, strict=True):
                cluster = clusters[i]
                if pods:
                    out[i] = hit = _with_room(pods, score, rejected)
                    _remember(cluster.memo, key, hit)
                else:
                    out[i] = verdict(cluster, shape)  # no room: it counts why
        return out  # type: ignore[return-value]  # (every None was filled)

    def _aggregate(
        self, summary: ClusterSummary, shape: PodShape, counts: dict[int, int], only: frozenset[str] | None
    ) -> _Aggregate:
        """The shape's :class:`_Aggregate` over the ``counts`` nodes of ``summary`` (the eligible
        ``only``, or None: every Ready node), kept in the summary's log (:func:`_in_lineage`):
        O(changed nodes) to bring up to date, O(states) to compute."""
        shared = self.shared_entries(shape)
        assert shared is not None  # (the summary answers only for plugins reading resources)
        node_entry = self.node_entry

        def advance(kept: _Aggregate, changes: Iterable[tuple[tuple[NodeInfo, int], ...]]) -> None:
            kept.add(
                (node_entry(shape, node, shared), sign)
                for change in changes
                for node, sign in change
                if only is None or node.name in only
            )

        def compute() -> _Aggregate:
            agg = _Aggregate(summary.seq, only)
            nodes = summary.nodes
            agg.add(
                (shared.get(rid) or node_entry(shape, nodes[rid], shared), count)
                for rid, count in counts.items()
            )
            return agg

        return _in_lineage(summary, (self.token, shape.key), only, advance, compute)

    def shape_fit(self, cluster: ClusterInfo, shape: PodShape) -> ShapeFit:
        """Memoised per cluster version: available pods, ranked candidate nodes and a rejection reason.

        A cluster whose summary shows no room for the shape is answered from the summary
        (:meth:`summary_fit`); the others from the shape's index (:meth:`fit_index`).
        """
        key = (self.token, "fit", shape.key)
        memo = cluster.memo
        hit = memo.get(key)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        fit = self.summary_fit(cluster, shape)
        if fit is None:
            fit = self.fit_index(cluster, shape).fit()
        _remember(memo, key, fit)
        return fit

    def placer(self, cluster: ClusterInfo) -> ClusterPlacer:
        return ClusterPlacer(self, cluster)


class ClusterPlacer:
    """Simulates binding pods one by one onto the nodes of one cluster (best-scored node first)."""

    def __init__(self, engine: NodeFitEngine, cluster: ClusterInfo) -> None:
        self.engine = engine
        self.cluster = cluster
        self.states: dict[str, NodeState] = {}
        self._ranked: dict[tuple[Any, ...], tuple[PodShape, list[tuple[float, str]], dict[str, float]]] = {}
        self.assignments: list[PodAssignment] = []

    def _view(self, name: str) -> tuple[NodeInfo, Mapping[str, int], Sequence[int]]:
        st = self.states.get(name)
        if st is not None:
            return st.node, st.free, st.devices
        node = self.cluster.nodes[name]
        return node, node.free, node.devices

    def _ranking(self, shape: PodShape) -> tuple[PodShape, list[tuple[float, str]], dict[str, float]]:
        entry = self._ranked.get(shape.key)
        if entry is not None:
            return entry
        if not self.states:
            ranked = list(self.engine.shape_fit(self.cluster, shape).candidates)
        else:
            names, _ = self.engine.eligible(self.cluster, shape)
            ranked = []
            for name in names:
                node, free, devices = self._view(name)
                if self.engine.capacity(shape, free, devices) > 0:
                    ranked.append((-self.engine.score(shape, node, free, devices), name))
            ranked.sort()
        entry = (shape, ranked, {name: s for s, name in ranked})
        self._ranked[shape.key] = entry
        return entry

    def available(self, shape: PodShape) -> int:
        """Pods of ``shape`` that still fit given the simulated bindings so far."""
        if not self.states:
            return self.engine.shape_fit(self.cluster, shape).available
        names, _ = self.engine.eligible(self.cluster, shape)
        total = 0
        for name in names:
            _, free, devices = self._view(name)
            total += self.engine.capacity(shape, free, devices)
        return total

    def place(self, shape: PodShape, component: str) -> PodAssignment | None:
        """Bind one pod on the best node, or return None when no node has room."""
        _, ranked, _ = self._ranking(shape)
        if not ranked:
            return None
        name = ranked[0][1]
        st = self.states.get(name)
        if st is None:
            st = self.states[name] = NodeState(self.cluster.nodes[name])
        device = None
        picker = self.engine.device_picker
        if shape.gpu_milli and picker is not None:
            device = picker.pick_device(shape, st.node, st.free, st.devices)
        devices = st.bind(shape, device)
        milli = MILLI_PER_GPU if shape.gpu_whole else shape.gpu_milli
        pod = PodAssignment(
            self.cluster.name, name, component, shape.requests(), devices, milli if devices else 0
        )
        self.assignments.append(pod)
        self._rerank(name)
        return pod

    def unplace(self, pod: PodAssignment) -> None:
        """Take back a pod :meth:`place` bound (a Reserve plugin refused it)."""
        self.assignments.remove(pod)
        self.states[pod.node].release(pod.requests, pod.gpu_devices, pod.gpu_milli)
        self._rerank(pod.node)

    def _rerank(self, name: str) -> None:
        """Node ``name`` changed: move it to its new place in every ranking built so far."""
        node, free, devices = self._view(name)
        for shape, ranked, scores in self._ranked.values():
            old = scores.pop(name, None)
            if old is not None:
                i = bisect.bisect_left(ranked, (old, name))
                del ranked[i]
            if self.engine.capacity(shape, free, devices) > 0:
                s = -self.engine.score(shape, node, free, devices)
                scores[name] = s
                bisect.insort(ranked, (s, name))
