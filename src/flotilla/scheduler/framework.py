"""Plugin framework shaped like kube-scheduler's and Karmada's.

Extension points (one ``typing.Protocol`` each):

* cluster level: :class:`PreFilterPlugin` (may return SKIP to drop its Filter for the cycle),
  :class:`FilterPlugin`, :class:`ScorePlugin` with optional :class:`ScoreExtensions`;
* node level (evaluated by :mod:`flotilla.scheduler.nodefit` inside each cluster):
  :class:`NodeFilterPlugin` (static: labels, taints), :class:`NodeFitPlugin` (capacity: how many
  pods of a shape fit a node's free resources) and :class:`NodeScorePlugin` (which node is best;
  the best node's score is also the cluster's score for that plugin);
* binding a gang pod by pod (as kube-scheduler's Reserve and Permit, with its coscheduling
  plugin's gang rule as the in-tree user): :class:`ReservePlugin` (``reserve`` each pod as it is
  bound on a node, ``unreserve`` it when it is dropped or the gang is rejected) and
  :class:`PermitPlugin` (``permit``: may the pods reserved so far bind? SUCCESS, WAIT for more
  pods, or a rejection of the whole workload). See :class:`PermitPlugin` for the cycle.

Scores are normalised to 0..100 (:data:`MIN_SCORE`, :data:`MAX_SCORE`) and multiplied by
per-plugin weights. A :class:`Registry` maps names to factories and understands the
``"*,-Foo"`` enable/disable syntax. The runner, never a plugin, times plugin calls and reports
them to an optional observer ``(extension_point, plugin, seconds) -> None``.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from flotilla.scheduler.snapshot import ClusterInfo, NodeInfo, Snapshot
from flotilla.scheduler.workload import PodShape, Workload

if TYPE_CHECKING:
    from flotilla.scheduler.nodefit import PodAssignment

__all__ = [
    "MAX_SCORE",
    "MIN_SCORE",
    "Code",
    "CycleState",
    "DevicePickerPlugin",
    "Diagnosis",
    "FilterPlugin",
    "NodeFilterPlugin",
    "NodeFitPlugin",
    "NodeScorePlugin",
    "Observer",
    "PermitPlugin",
    "Plugin",
    "PluginFactory",
    "PreFilterPlugin",
    "PreScorePlugin",
    "Registry",
    "ReservePlugin",
    "ScoreExtensions",
    "ScorePlugin",
    "Status",
]

MIN_SCORE = 0.0
MAX_SCORE = 100.0

Observer = Callable[[str, str, float], None]
"""Called as ``observer(extension_point, plugin_name, seconds)`` after each timed plugin call."""


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    WAIT = "Wait"
    SKIP = "Skip"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class Status:
    """The typed result of a plugin call; ``plugin`` names who produced it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str | None = None

    @property
    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def with_plugin(self, plugin: str) -> Status:
        return self if self.plugin == plugin else Status(self.code, self.reasons, plugin)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "reasons": list(self.reasons), "plugin": self.plugin}

    @classmethod
    def unschedulable(cls, *reasons: str, resolvable: bool = True) -> Status:
        code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return cls(code, reasons)


SUCCESS = Status()
SKIP = Status(Code.SKIP)


class CycleState(dict[str, Any]):
    """Per-cycle scratch space shared by plugins (PreFilter writes, Filter/Score read)."""


@runtime_checkable
class Plugin(Protocol):
    @property
    def name(self) -> str: ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> float: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    """Return SKIP to leave this cycle's scoring out for the plugin (e.g. nothing to prefer)."""

    def pre_score(self, state: CycleState, workload: Workload, clusters: Sequence[ClusterInfo]) -> Status: ...


@runtime_checkable
class ScoreExtensions(Protocol):
    def normalize_score(self, state: CycleState, workload: Workload, scores: dict[str, float]) -> None: ...


@runtime_checkable
class NodeFilterPlugin(Plugin, Protocol):
    """Static node check (labels, taints); returns a reason string or None when the node passes.

    A plugin may define ``reads_node_metadata_only(shape) -> bool``: True when its verdict on
    a node for ``shape`` reads nothing but the node's labels, taints and readiness. When every
    node filter of a profile says so for a shape, the filters run once per distinct set of
    them in a cluster instead of once per node. A plugin may also define
    ``node_label_keys(shape) -> Collection[str] | None``: the only label keys that verdict
    reads (None: it does not say). When every filter names them, nodes are grouped by those
    labels alone: real nodes carry labels of their own (``kubernetes.io/hostname``), which
    would otherwise make every node a group.
    """

    def node_filter(self, shape: PodShape, node: NodeInfo) -> str | None: ...


@runtime_checkable
class NodeFitPlugin(Plugin, Protocol):
    """How many pods of ``shape`` fit given the node's current ``free`` map and GPU ``devices``.

    A plugin whose capacity drops by exactly one for each pod of the shape bound on the node
    may set a class attribute ``additive_capacity = True``; when all of a profile's do, the
    scheduler checks that several roles of one shape fit a cluster at once from its available
    count instead of simulating the bindings pod by pod.
    """

    def node_capacity(self, shape: PodShape, free: Mapping[str, int], devices: Sequence[int]) -> int: ...

    def node_insufficient(
        self, shape: PodShape, free: Mapping[str, int], devices: Sequence[int]
    ) -> list[str]: ...


@runtime_checkable
class NodeScorePlugin(Plugin, Protocol):
    """Score (higher is better) of placing one pod of ``shape`` on a node in the given state.

    A plugin whose score reads nothing of ``node`` but its resources (``allocatable``, ``free``,
    the GPU ``devices``) and whose score for a given shape and node state never changes may set a
    class attribute ``node_resources_only = True``. When every node score plugin of a profile
    does, the scheduler evaluates each shape once per distinct node resource state in the fleet
    (:attr:`~flotilla.scheduler.snapshot.NodeInfo.resource_key`) instead of once per node.
    """

    def node_score(
        self, shape: PodShape, node: NodeInfo, free: Mapping[str, int], devices: Sequence[int]
    ) -> float: ...


@runtime_checkable
class DevicePickerPlugin(Plugin, Protocol):
    """Optional on a node score plugin: which GPU device a fractional pod should take (None = best-fit)."""

    def pick_device(
        self, shape: PodShape, node: NodeInfo, free: Mapping[str, int], devices: Sequence[int]
    ) -> int | None: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    """Accounts for each pod of a gang as it is bound on a node, in the cycle's state.

    ``reserve`` returning a non-success refuses the pod: it is taken off its node again and the
    Reserve plugins that had reserved it are unreserved (in reverse order), as when the pod fits
    no node. ``unreserve`` must undo ``reserve`` exactly; it is called for every reserved pod when
    the workload is rejected, and for a refused pod.
    """

    def reserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> Status: ...

    def unreserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    """Decides whether the pods reserved so far may bind: the gang's quorum rule.

    The scheduler binds a gang's pods one at a time (the pods each role needs first, largest
    first, then the rest) on the selected clusters' nodes, reserving each, and asks every Permit
    plugin when the answer decides something: when a pod fits no node (or a Reserve plugin
    refuses it), and once every pod was tried. The answer must therefore follow from the pods
    reserved at that moment (the plugin's Reserve/Unreserve accounting), not from when it is
    asked:

    * all SUCCESS: the pods reserved so far may bind; a pod that fits no node is left out, and
      after the last pod the placement stands;
    * any WAIT (none rejecting): the pods are held; a pod that fits no node, or the end of the
      pods, while a plugin still waits rejects the whole workload (every pod unreserved, in
      reverse order), and the WAIT status's reasons say why;
    * anything else rejects the whole workload, with that status.

    Unlike kube-scheduler's, a wait never outlasts one scheduling cycle: a workload is placed
    whole in one cycle, so the pods a plugin waits for come in the same cycle or not at all.
    """

    def permit(self, state: CycleState, workload: Workload) -> Status: ...


PluginFactory = Callable[[], Plugin]


class Registry(dict[str, PluginFactory]):
    """Plugin name -> factory, with Karmada-style ``"*,-Foo"`` selection."""

    def register(self, name: str, factory: PluginFactory) -> None:
        if name in self:
            raise ValueError(f"plugin {name!r} already registered")
        self[name] = factory

    def unregister(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        del self[name]

    def merge(self, other: Mapping[str, PluginFactory]) -> None:
        for name, factory in other.items():
            self.register(name, factory)

    def filter(self, spec: str | Iterable[str] = "*") -> list[str]:
        """Names enabled by ``spec``: ``*`` = all, ``Foo`` = enable, ``-Foo`` = disable.

        Order of the result is registration order. ``"-Foo"`` alone means ``"*,-Foo"``.
        """
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
        enabled = {i for i in items if not i.startswith("-") and i != "*"}
        disabled = {i[1:] for i in items if i.startswith("-")}
        unknown = (enabled | disabled) - set(self)
        if unknown:
            raise ValueError(f"unknown plugin(s): {', '.join(sorted(unknown))}")
        everything = "*" in items or not enabled
        return [n for n in self if (everything or n in enabled) and n not in disabled]


@dataclass(slots=True)
class Diagnosis:
    """Why a workload could not be placed: the per-cluster statuses plus cycle-level reasons."""

    num_clusters: int
    cluster_statuses: dict[str, Status] = field(default_factory=dict)
    extra_reasons: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    """Plugins behind the cycle-level ``extra_reasons`` (e.g. NodeResourcesFit when the replicas
    do not fit at node level, SpreadConstraint when the spread cannot be met)."""

    def histogram(self) -> list[tuple[str, int]]:
        counts: Counter[str] = Counter()
        for status in self.cluster_statuses.values():
            for reason in status.reasons or ("cluster(s) were rejected",):
                counts[reason] += 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def message(self) -> str:
        """``"0/N clusters are available: 2 cluster(s) had ..., 1 cluster(s) had ...."``"""
        parts = [f"{n} {reason}" for reason, n in self.histogram()] + list(self.extra_reasons)
        body = ", ".join(parts) if parts else "no cluster matched"
        return f"0/{self.num_clusters} clusters are available: {body}."

    def __str__(self) -> str:
        return self.message()

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message(),
            "clusters": {name: s.to_dict() for name, s in sorted(self.cluster_statuses.items())},
            "reasons": list(self.extra_reasons),
        }
