"""The fleet as the scheduler sees it: clusters, nodes, GPU devices, and JSON snapshots.

Everything here is immutable by convention: a change produces a new :class:`NodeInfo` /
:class:`ClusterInfo` (the :class:`~flotilla.scheduler.cache.SchedulerCache` does this), so a
:class:`Snapshot` handed to one scheduling cycle never changes under it, and per-cluster
memoised fit results (stored on the ClusterInfo object itself) can never go stale.

GPUs are modelled as individual devices: ``NodeInfo.gpu_free[i]`` is the free share of
device ``i`` in thousandths (``1000`` = a whole free GPU). Whole-GPU requests
(``nvidia.com/gpu``) need that many fully free devices; fractional requests
(``flotilla.dev/gpu-milli``, see :mod:`flotilla.scheduler.workload`) need one device with
at least that share free.
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from flotilla.scheduler.quantity import ResourceList, parse_json_resource_list

_T = TypeVar("_T")

__all__ = [
    "GPU_MEMORY_LABEL",
    "GPU_MILLI_RESOURCE",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "MILLI_PER_GPU",
    "ChangeLog",
    "ClusterInfo",
    "ClusterSummary",
    "NodeInfo",
    "Snapshot",
    "SummaryLog",
    "Taint",
    "Toleration",
    "release_devices",
    "take_devices",
]

GPU_RESOURCE = "nvidia.com/gpu"
GPU_MILLI_RESOURCE = "flotilla.dev/gpu-milli"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
MILLI_PER_GPU = 1000
_GPU_NAMES = frozenset({GPU_RESOURCE, GPU_MILLI_RESOURCE})


@dataclass(frozen=True, slots=True)
class Taint:
    """A cluster or node taint (``effect`` is NoSchedule, PreferNoSchedule or NoExecute).

    ``time_added`` is the taint's ``timeAdded`` (timezone-aware), when it has one: Flotilla's
    automatic member taints carry it, so how long a member has been tainted can be read here.
    """

    key: str
    value: str = ""
    effect: str = "NoSchedule"
    time_added: datetime | None = None

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"

    def to_dict(self) -> dict[str, str]:
        out = {"key": self.key, "value": self.value, "effect": self.effect}
        if self.time_added is not None:
            out["timeAdded"] = self.time_added.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Taint:
        return cls(
            str(raw["key"]),
            str(raw.get("value") or ""),
            str(raw.get("effect") or "NoSchedule"),
            parse_time(raw.get("timeAdded")),
        )


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (or a datetime) as an aware datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Toleration:
    """A Kubernetes toleration (``operator`` is Equal or Exists; empty effect matches any).

    ``toleration_seconds`` (NoExecute only) bounds how long a workload already placed stays on a
    cluster with the tolerated NoExecute taint, counted from the taint's ``timeAdded``. As in
    Kubernetes and Karmada, it does not change filtering: failover reads it (see
    :func:`flotilla.controllers.eviction.eviction_due`).
    """

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes semantics: empty key with Exists matches everything."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return not self.key or self.key == taint.key
        return self.key == taint.key and self.value == taint.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
        }
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Toleration:
        seconds = raw.get("tolerationSeconds")
        return cls(
            key=str(raw.get("key") or ""),
            operator=str(raw.get("operator") or "Equal"),
            value=str(raw.get("value") or ""),
            effect=str(raw.get("effect") or ""),
            toleration_seconds=int(seconds) if seconds is not None else None,
        )


def untolerated(
    taints: Iterable[Taint], tolerations: Iterable[Toleration], effects: frozenset[str]
) -> list[Taint]:
    """The taints with one of ``effects`` that no toleration tolerates."""
    tols = tuple(tolerations)
    return [t for t in taints if t.effect in effects and not any(tol.tolerates(t) for tol in tols)]


def take_devices(
    devices: list[int], whole: int = 0, milli: int = 0, preferred: Iterable[int] = ()
) -> tuple[int, ...]:
    """Charge one pod's GPUs to ``devices`` (free share per device) in place; returns the indexes charged.

    The one place GPU devices are accounted: the scheduler's simulated bindings, the cache's
    reported and reserved pods, and a node described only by counts all go through it.

    * ``whole`` GPUs take that many fully free devices: the ``preferred`` ones first (a device
      plugin's report, a decision's assignment), then the lowest free indexes. Fewer are taken
      when fewer are free.
    * ``milli`` (a share of one device, when ``whole`` is 0) takes the first ``preferred``
      device with that much free, else the best fit: the device with the least free share that
      holds it (lowest index among equals). When no device holds it (usage reported beyond
      what the devices have), the freest device is charged, down to zero.
    """
    want = tuple(preferred)
    if whole:
        chosen = [i for i in want if 0 <= i < len(devices) and devices[i] >= MILLI_PER_GPU][:whole]
        if len(chosen) < whole:
            chosen += [i for i, d in enumerate(devices) if d >= MILLI_PER_GPU and i not in chosen][
                : whole - len(chosen)
            ]
        for i in chosen:
            devices[i] = 0
        return tuple(chosen)
    if not milli or not devices:
        return ()
    for i in want:
        if 0 <= i < len(devices) and devices[i] >= milli:
            break
    else:
        fit = [i for i, d in enumerate(devices) if d >= milli]
        if fit:
            i = min(fit, key=lambda j: (devices[j], j))
        else:
            i = max(range(len(devices)), key=lambda j: (devices[j], -j))
            devices[i] = max(devices[i] - milli, 0)
            return (i,)
    devices[i] -= milli
    return (i,)


def release_devices(devices: list[int], taken: Iterable[int], milli: int) -> None:
    """Undo :func:`take_devices` for one pod: give ``milli`` back to each device in ``taken``
    (``MILLI_PER_GPU`` for whole GPUs), never above a whole device."""
    for i in taken:
        devices[i] = min(devices[i] + milli, MILLI_PER_GPU)


def _default_devices(allocatable: Mapping[str, int], used: Mapping[str, int]) -> tuple[int, ...]:
    """Devices for a node described only by counts: used whole GPUs first, then the fractional
    use, a device's worth at a time, on the freest devices."""
    count = max(allocatable.get(GPU_RESOURCE, 0), 0)
    devices = [MILLI_PER_GPU] * count
    take_devices(devices, whole=min(max(used.get(GPU_RESOURCE, 0), 0), count))
    milli = max(used.get(GPU_MILLI_RESOURCE, 0), 0)
    while milli > 0 and any(devices):
        # Every device is whole or empty here, so the best fit of up to one device's worth is
        # the freest device with the lowest index.
        take = min(max(devices), milli)
        take_devices(devices, milli=take)
        milli -= take
    return tuple(devices)


_CLUSTER_NAMES = ("Snapshot", "names")
_RESOURCE_IDS: dict[tuple[Any, ...], int] = {}
_RESOURCE_ID_LIMIT = 1 << 16
"""Resource states interned before the table is reset (~30 MB at most)."""
_next_resource_id = itertools.count(1)


def _intern_resources(key: tuple[Any, ...]) -> int:
    """The id of a resource state (a fresh one once the table was reset at its size bound:
    ids are never reused, so a reset only costs memo hits, never a wrong answer)."""
    rid = _RESOURCE_IDS.get(key)
    if rid is None:
        if len(_RESOURCE_IDS) >= _RESOURCE_ID_LIMIT:
            _RESOURCE_IDS.clear()
        rid = _RESOURCE_IDS[key] = next(_next_resource_id)
    return rid


@dataclass(frozen=True, slots=True, eq=False)
class NodeInfo:
    """One node: allocatable, used and (derived) free resources, labels, taints and GPU devices.

    ``free`` holds ``allocatable - used`` for every non-GPU resource, plus ``nvidia.com/gpu`` =
    number of fully free devices and ``flotilla.dev/gpu-milli`` = total free share.
    """

    name: str
    allocatable: ResourceList
    used: ResourceList = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    gpu_free: tuple[int, ...] | None = None
    ready: bool = True
    free: ResourceList = field(init=False, repr=False)
    gpu_model: str = field(init=False, repr=False)
    gpu_memory_mib: int | None = field(init=False, repr=False)
    whole_free: int = field(init=False, repr=False)
    memo: dict[Any, Any] = field(init=False, repr=False, default_factory=dict)
    """Per-shape fit/score results for this (immutable) node state."""
    _resource_id: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        devices = (
            self.gpu_free if self.gpu_free is not None else _default_devices(self.allocatable, self.used)
        )
        object.__setattr__(self, "gpu_free", tuple(devices))
        free = {k: v - self.used.get(k, 0) for k, v in self.allocatable.items() if k not in _GPU_NAMES}
        whole = sum(1 for d in devices if d >= MILLI_PER_GPU)
        free[GPU_RESOURCE] = whole
        free[GPU_MILLI_RESOURCE] = sum(devices)
        object.__setattr__(self, "free", free)
        object.__setattr__(self, "whole_free", whole)
        object.__setattr__(self, "gpu_model", self.labels.get(GPU_PRODUCT_LABEL, ""))
        mem = self.labels.get(GPU_MEMORY_LABEL)
        object.__setattr__(self, "gpu_memory_mib", int(mem) if mem and mem.isdigit() else None)

    @property
    def resource_key(self) -> tuple[Any, ...]:
        """The node's resource state: allocatable, free and the free share per GPU device.

        Two nodes with equal keys look the same to every plugin that reads only resources
        (``node_resources_only``), so the scheduler evaluates a shape once per resource state,
        not once per node (see :class:`~flotilla.scheduler.nodefit.NodeFitEngine`).
        """
        return (tuple(sorted(self.allocatable.items())), tuple(sorted(self.free.items())), self.devices)

    @property
    def resource_id(self) -> int:
        """A small integer standing for :attr:`resource_key` (equal keys, equal ids; interned
        process-wide on first use, so nodes in equal states share one id)."""
        rid = self._resource_id
        if not rid:
            rid = _intern_resources(self.resource_key)
            object.__setattr__(self, "_resource_id", rid)
        return rid

    @property
    def devices(self) -> tuple[int, ...]:
        """Free share per GPU device (never None after construction)."""
        assert self.gpu_free is not None
        return self.gpu_free

    @property
    def gpu_count(self) -> int:
        return len(self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "allocatable": dict(self.allocatable),
            "used": dict(self.used),
            "labels": dict(self.labels),
            "taints": [t.to_dict() for t in self.taints],
            "gpuFree": list(self.devices),
            "ready": self.ready,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NodeInfo:
        """Build from :meth:`to_dict` output.

        Integers are canonical units, strings Kubernetes quantities (``"8Gi"``).
        """
        gpu_free = raw.get("gpuFree")
        return cls(
            name=str(raw["name"]),
            allocatable=parse_json_resource_list(raw.get("allocatable")),
            used=parse_json_resource_list(raw.get("used")),
            labels=dict(raw.get("labels") or {}),
            taints=tuple(Taint.from_dict(t) for t in raw.get("taints") or ()),
            gpu_free=tuple(int(x) for x in gpu_free) if gpu_free is not None else None,
            ready=bool(raw.get("ready", True)),
        )


class ChangeLog:
    """Which nodes changed in each usage-only version of one cluster (shared by those versions).

    The :class:`~flotilla.scheduler.cache.SchedulerCache` appends ``(version, node names)`` each
    time it publishes a usage-only change and starts a new log when labels, taints, readiness
    or the node set change. Indexes kept across versions (see
    :class:`~flotilla.scheduler.nodefit.NodeFitEngine`) ask :meth:`since` which nodes to
    re-evaluate instead of rescanning the cluster. Only the last ``limit`` entries are kept;
    older questions get ``None`` (rescan).
    """

    __slots__ = ("_floor", "_limit", "_names", "_versions")

    def __init__(self, version: int, limit: int = 4096) -> None:
        self._floor = version
        self._limit = limit
        self._versions: list[int] = []
        self._names: list[tuple[str, ...]] = []

    def append(self, version: int, names: Iterable[str]) -> None:
        """Record that ``names`` changed in ``version`` (versions must increase)."""
        self._versions.append(version)
        self._names.append(tuple(names))
        if len(self._versions) > 2 * self._limit:
            self._floor = self._versions[self._limit - 1]
            del self._versions[: self._limit]
            del self._names[: self._limit]

    def since(self, old: int, new: int) -> set[str] | None:
        """Nodes changed after version ``old`` up to ``new``; None when ``old`` is unknown here."""
        if old < self._floor or old > new:
            return None
        versions = self._versions
        out: set[str] = set()
        for names in self._names[bisect.bisect_right(versions, old) : bisect.bisect_right(versions, new)]:
            out.update(names)
        return out


class SummaryLog:
    """The node state changes between successive summaries of one cluster (one lineage of
    :meth:`ClusterSummary.updated`), so that an aggregate over a summary (the node fit engine
    keeps one per pod shape in :attr:`aggregates`) is brought up to a newer summary from the
    states that changed, not recomputed from every state. Only the last ``limit`` changes are
    kept (they hold the nodes they name); an older aggregate is recomputed."""

    __slots__ = ("_changes", "_floor", "_limit", "aggregates", "head")

    def __init__(self, seq: int, limit: int = 16) -> None:
        self._floor = seq
        self._limit = limit
        self._changes: list[tuple[tuple[NodeInfo, int], ...]] = []
        self.head = seq
        """The newest summary's ``seq``: only it may be updated within this log."""
        self.aggregates: dict[Any, Any] = {}
        """Per-shape aggregates kept by the node fit engine (its business)."""

    def append(self, change: tuple[tuple[NodeInfo, int], ...]) -> int:
        """Record the next summary's change (``(node, +1 or -1)`` per Ready node added or
        removed); returns its ``seq``."""
        self._changes.append(change)
        if len(self._changes) > 2 * self._limit:
            del self._changes[: self._limit]
            self._floor += self._limit
        self.head += 1
        return self.head

    def since(self, old: int, new: int) -> list[tuple[tuple[NodeInfo, int], ...]] | None:
        """The changes after summary ``old`` up to ``new``; None when ``old`` is gone from the log
        or ``new`` is older than ``old``."""
        if old < self._floor or old > new or new > self.head:
            return None
        return self._changes[old - self._floor : new - self._floor]


class ClusterSummary:
    """How many Ready nodes of one cluster are in each resource state (``NodeInfo.resource_id``).

    The :class:`~flotilla.scheduler.cache.SchedulerCache` keeps it on every
    :class:`ClusterInfo` it publishes, updated from the nodes that changed (copy on write: a
    summary handed out never changes). It answers "can any node of this cluster hold one pod
    of this shape, and if not, why" in O(distinct resource states) instead of O(nodes):
    ``nodes`` holds one node per state to evaluate the plugins on.
    """

    __slots__ = ("counts", "log", "nodes", "ready", "seq", "source")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        """``resource_id -> Ready nodes`` in that state."""
        self.nodes: dict[int, NodeInfo] = {}
        """One node per resource state (any node in that state: the state is all that is read)."""
        self.ready = 0
        """Ready nodes in the cluster."""
        self.source: Mapping[str, NodeInfo] | None = None
        """The node map summarised (the cache sets it): a copy of the ClusterInfo with other
        nodes (``dataclasses.replace``) keeps the summary but not the map, so it is not used."""
        self.log: SummaryLog | None = None
        """The changes of this summary's lineage (set by :meth:`updated`)."""
        self.seq = 0
        """This summary's place in :attr:`log`."""

    @classmethod
    def of(cls, nodes: Iterable[NodeInfo]) -> ClusterSummary:
        """The summary of ``nodes``, computed from scratch."""
        return cls().updated((), nodes)

    def updated(self, removed: Iterable[NodeInfo], added: Iterable[NodeInfo]) -> ClusterSummary:
        """A new summary: this one without the ``removed`` node states, with the ``added`` ones."""
        out = ClusterSummary()
        counts, nodes = out.counts, out.nodes
        counts.update(self.counts)
        nodes.update(self.nodes)
        ready = self.ready
        change: list[tuple[NodeInfo, int]] = []
        for node in removed:
            if node.ready:
                rid = node.resource_id
                left = counts[rid] - 1
                if left:
                    counts[rid] = left
                else:
                    del counts[rid], nodes[rid]
                ready -= 1
                change.append((node, -1))
        for node in added:
            if node.ready:
                rid = node.resource_id
                counts[rid] = counts.get(rid, 0) + 1
                nodes.setdefault(rid, node)
                ready += 1
                change.append((node, 1))
        out.ready = ready
        log = self.log
        if log is None or log.head != self.seq:
            log = SummaryLog(self.seq)  # a new lineage (or a branch off an older summary)
        out.log, out.seq = log, log.append(tuple(change))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClusterSummary):
            return NotImplemented
        return self.ready == other.ready and self.counts == other.counts

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ClusterSummary(ready={self.ready}, states={len(self.counts)})"


@dataclass(frozen=True, slots=True, eq=False)
class ClusterInfo:
    """One member cluster: metadata the cluster-level plugins read, and its nodes.

    ``api_enablements`` is a set of ``group/version/Kind`` strings (core group: ``v1/Pod``);
    ``None`` means the member has not reported them yet, which the API-enablement filter lets
    through. ``version`` changes whenever the cluster or any node changes (the cache bumps it).
    """

    name: str
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    api_enablements: frozenset[str] | None = None
    provider: str = ""
    region: str = ""
    zone: str = ""
    version: int = 0
    static_memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Memo for results that depend only on labels/taints; shared across usage-only versions."""
    changes: ChangeLog | None = field(default=None, repr=False)
    """Node changes per usage-only version, shared with the versions before (set by the cache)."""
    summary: ClusterSummary | None = field(default=None, repr=False)
    """Ready nodes per resource state (set by the cache, kept up to date from node changes);
    read only while ``summary.source is nodes``."""
    memo: dict[Any, Any] = field(init=False, repr=False, default_factory=dict)
    """Memo for results that depend on usage; private to this version."""

    def field_value(self, name: str) -> str:
        """Value of a spread/field-selector field: ``cluster``, ``provider``, ``region`` or ``zone``."""
        if name == "cluster":
            return self.name
        if name in ("provider", "region", "zone"):
            return str(getattr(self, name))
        raise ValueError(f"unknown cluster field {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "taints": [t.to_dict() for t in self.taints],
            "ready": self.ready,
            "apiEnablements": sorted(self.api_enablements) if self.api_enablements is not None else None,
            "provider": self.provider,
            "region": self.region,
            "zone": self.zone,
            "version": self.version,
            "nodes": [n.to_dict() for n in self.nodes.values()],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterInfo:
        apis = raw.get("apiEnablements")
        nodes = [NodeInfo.from_dict(n) for n in raw.get("nodes") or ()]
        return cls(
            name=str(raw["name"]),
            nodes={n.name: n for n in nodes},
            labels=dict(raw.get("labels") or {}),
            taints=tuple(Taint.from_dict(t) for t in raw.get("taints") or ()),
            ready=bool(raw.get("ready", True)),
            api_enablements=frozenset(apis) if apis is not None else None,
            provider=str(raw.get("provider") or ""),
            region=str(raw.get("region") or ""),
            zone=str(raw.get("zone") or ""),
            version=int(raw.get("version") or 0),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """An immutable view of the fleet for one scheduling cycle."""

    clusters: Mapping[str, ClusterInfo]
    generation: int = 0
    static_memo: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Memo for results that depend only on the cluster set and the clusters' own metadata
    (labels, taints, readiness, APIs; not nodes or usage): the cache shares it among its
    snapshots until a cluster is added, replaced or removed."""
    changes: ChangeLog | None = field(default=None, repr=False)
    """Which clusters changed in each generation since ``static_memo`` was started (set by the
    cache): lets the scheduler revisit only those clusters."""
    _sorted: tuple[str, ...] = field(init=False, repr=False)
    _ordered: tuple[ClusterInfo, ...] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        names = self.static_memo.get(_CLUSTER_NAMES)
        if names is None:
            names = self.static_memo[_CLUSTER_NAMES] = tuple(sorted(self.clusters))
        object.__setattr__(self, "_sorted", names)

    @property
    def ordered(self) -> tuple[ClusterInfo, ...]:
        """The clusters in name order (built when first read: a decision answered from a fleet
        view never reads it)."""
        ordered = self._ordered
        if ordered is None:
            ordered = tuple(map(self.clusters.__getitem__, self._sorted))
            object.__setattr__(self, "_ordered", ordered)
        return ordered

    def static(self, key: Any, compute: Callable[[], _T]) -> _T:
        """``compute()`` of the cluster set and metadata, kept in :attr:`static_memo` under ``key``."""
        memo = self.static_memo
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        value = memo[key] = compute()
        return value

    @classmethod
    def of(cls, clusters: Iterable[ClusterInfo], generation: int = 0) -> Snapshot:
        return cls({c.name: c for c in clusters}, generation)

    @property
    def cluster_names(self) -> tuple[str, ...]:
        """Cluster names in sorted order (the deterministic iteration order)."""
        return self._sorted

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "clusters": [self.clusters[n].to_dict() for n in self._sorted],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Snapshot:
        return cls.of(
            (ClusterInfo.from_dict(c) for c in raw.get("clusters") or ()), int(raw.get("generation") or 0)
        )

    def save(self, path: str | Path) -> None:
        """Write the snapshot as JSON (so a decision can be replayed later)."""
        Path(path).write_text(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        return cls.from_dict(json.loads(Path(path).read_text()))
