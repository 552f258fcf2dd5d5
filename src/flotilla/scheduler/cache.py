"""SchedulerCache: the inventory the operator feeds, plus reservations ("assumed" pods).

The effective state of a node is ``base node + reported pods + reserved pods``, rebuilt for
that node only whenever one of the three changes. Every change produces a new immutable
:class:`~flotilla.scheduler.snapshot.NodeInfo` and a new :class:`ClusterInfo` version (the
cluster's node map is copied shallowly - a few microseconds per change, no deep copies), so
:meth:`SchedulerCache.snapshot` is cheap and snapshots already handed out never change.
Results memoised on an unchanged ClusterInfo stay valid; label/taint-only results are carried
over to the next version when only usage changed, together with a
:class:`~flotilla.scheduler.snapshot.ChangeLog` naming the nodes each such version changed (so
the scheduler's per-shape fit indexes re-evaluate only those nodes).

Reservations follow kube-scheduler's assume/confirm/forget: after a decision, ``assume()``
reserves its pods on their nodes so the next decision cannot double-book them. A reservation is
confirmed pod by pod as the members report the real pods: a pod passed to ``add_pod`` whose
``owner`` is the reservation's owner token takes the place of one reserved pod on that cluster
(the one on its node if there is one), so nothing is counted twice between a pod's binding and
its workload turning healthy. ``confirm(key)`` drops what is left at once (for pods that carry no
owner); if nothing is confirmed within the TTL (default 300 s, measured with the injected clock)
the reservation rolls back by itself. ``forget``/``confirm`` are idempotent.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flotilla.scheduler.nodefit import PodAssignment
from flotilla.scheduler.quantity import ResourceList
from flotilla.scheduler.snapshot import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    ChangeLog,
    ClusterInfo,
    ClusterSummary,
    NodeInfo,
    Snapshot,
    take_devices,
)

__all__ = ["DEFAULT_ASSUME_TTL", "PodInfo", "SchedulerCache"]

DEFAULT_ASSUME_TTL = 300.0


@dataclass(frozen=True, slots=True, eq=False)
class PodInfo:
    """A pod a member reports as bound to ``node``; ``gpu_devices`` when the device plugin says which."""

    uid: str
    node: str
    requests: ResourceList
    gpu_devices: tuple[int, ...] | None = None
    owner: str | None = None
    """The owner token of the workload the pod belongs to (see ``SchedulerCache.assume``), if known."""


@dataclass(slots=True)
class _Reservation:
    key: str
    pods: list[PodAssignment]
    deadline: float
    owner: str
    seen: set[str] = field(default_factory=set)
    """Uids of owned pods that already took a reserved pod's place, or existed before the decision."""


@dataclass(slots=True)
class _ClusterEntry:
    base: ClusterInfo
    base_nodes: dict[str, NodeInfo] = field(default_factory=dict)
    pods: dict[str, dict[str, PodInfo]] = field(default_factory=dict)
    reserved: dict[str, list[tuple[str, PodAssignment]]] = field(default_factory=dict)


def _with_requests(
    base: NodeInfo, start: NodeInfo, requests: Iterable[tuple[Mapping[str, int], Iterable[int]]]
) -> NodeInfo:
    """``start`` (``base`` or a state folded from it) with ``requests`` taken in order: each
    adds its non-GPU amounts and a pod to ``used`` and takes its GPUs (``preferred`` devices
    first, see :func:`~flotilla.scheduler.snapshot.take_devices`)."""
    used = dict(start.used)
    devices = list(start.devices)
    counts_pods = "pods" in base.allocatable
    for req, preferred in requests:
        for res, amount in req.items():
            if res not in (GPU_RESOURCE, GPU_MILLI_RESOURCE):
                used[res] = used.get(res, 0) + amount
        if counts_pods:
            used["pods"] = used.get("pods", 0) + 1
        take_devices(devices, req.get(GPU_RESOURCE, 0), req.get(GPU_MILLI_RESOURCE, 0), preferred)
    # (The constructor, not dataclasses.replace: this runs for every node each decision changes.)
    return NodeInfo(
        name=base.name,
        allocatable=base.allocatable,
        used=used,
        labels=base.labels,
        taints=base.taints,
        gpu_free=tuple(devices),
        ready=base.ready,
    )


class SchedulerCache:
    """Cluster inventories + reservations, handing out cheap immutable snapshots.

    Inventory API (called by the operator's inventory):

    * ``update_cluster(info)`` - add or replace a cluster: metadata and its *base* nodes
      (``info.nodes``; their ``used`` should exclude pods you report with ``add_pod``);
    * ``remove_cluster(name)``;
    * ``upsert_node(cluster, node)`` / ``remove_node(cluster, node_name)``;
    * ``add_pod(cluster, pod)`` / ``remove_pod(cluster, uid)`` (idempotent);

    Reservation API (called after each decision):

    * ``assume(key, assignments, ttl=None, owner=None)`` - reserve a decision's pods (replaces
      any earlier reservation of the same workload); pods later added with ``PodInfo.owner ==
      owner`` (default: ``key``) replace reserved pods one by one;
    * ``confirm(key)`` - the member now reports the pods: drop what is left of the reservation;
    * ``forget(key)`` - roll back (failed push, rescheduling); idempotent;
    * ``expire()`` - roll back reservations past their TTL (also done by ``snapshot()``).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, assume_ttl: float = DEFAULT_ASSUME_TTL
    ) -> None:
        self._clock = clock
        self._ttl = assume_ttl
        self._entries: dict[str, _ClusterEntry] = {}
        self._effective: dict[str, ClusterInfo] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._by_owner: dict[str, str] = {}  # owner token -> reservation key
        self._deadlines: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._versions = itertools.count(1)
        self._generation = 0
        self._snapshot: Snapshot | None = None
        self._owned: dict[str, set[tuple[str, str]]] = {}
        """Owner token -> ``(cluster, uid)`` of the reported pods carrying it."""
        self._static: dict[Any, Any] = {}
        """Snapshot memo shared while no cluster is added, replaced or removed (``Snapshot.static_memo``)."""
        self._fleet_log = ChangeLog(0)
        """Which clusters each generation changed, since the last add/replace/remove of a cluster."""

    # -- internals ---------------------------------------------------------------------------
    def _node_effective(self, entry: _ClusterEntry, name: str) -> NodeInfo:
        base = entry.base_nodes[name]
        pods = entry.pods.get(name, {})
        reserved = entry.reserved.get(name, [])
        if not pods and not reserved:
            return base
        requests: list[tuple[Mapping[str, int], Iterable[int]]] = [
            (p.requests, p.gpu_devices or ()) for p in pods.values()
        ]
        requests += [(a.requests, a.gpu_devices) for _, a in reserved]
        return _with_requests(base, base, requests)

    def _node_plus(self, entry: _ClusterEntry, name: str, prev: NodeInfo, added: int) -> NodeInfo:
        """:meth:`_node_effective` of a node whose last ``added`` reservations were just appended,
        from its previous effective state ``prev``: the same fold, its last steps only."""
        reserved = entry.reserved[name]
        return _with_requests(
            entry.base_nodes[name], prev, [(a.requests, a.gpu_devices) for _, a in reserved[-added:]]
        )

    def _publish(
        self,
        name: str,
        changed_nodes: Iterable[str] | None,
        usage_only: bool,
        appended: Mapping[str, int] | None = None,
    ) -> None:
        """Rebuild the effective ClusterInfo after a change (``None`` = every node). ``appended``:
        nodes whose only change is that many reservations appended (built from their previous
        effective state)."""
        entry = self._entries[name]
        old = self._effective.get(name)
        changed: tuple[str, ...] = ()
        if old is None or changed_nodes is None or old.summary is None:
            nodes = {n: self._node_effective(entry, n) for n in sorted(entry.base_nodes)}
            summary = ClusterSummary.of(nodes.values())
        else:
            nodes = dict(old.nodes)
            changed = tuple(changed_nodes)
            removed: list[NodeInfo] = []
            added: list[NodeInfo] = []
            for n in changed:
                prev = nodes.get(n)
                if prev is not None:
                    removed.append(prev)
                if n in entry.base_nodes:
                    count = appended.get(n, 0) if appended else 0
                    if count and prev is not None:
                        node = self._node_plus(entry, n, prev, count)
                    else:
                        node = self._node_effective(entry, n)
                    nodes[n] = node
                    added.append(node)
                elif prev is not None:
                    del nodes[n]
            summary = old.summary.updated(removed, added)
        summary.source = nodes
        version = next(self._versions)
        if old is not None and usage_only and changed_nodes is not None and old.changes is not None:
            static, changes = old.static_memo, old.changes
            changes.append(version, changed)
        else:
            static = old.static_memo if (old is not None and usage_only) else {}
            changes = ChangeLog(version)
        base = entry.base
        self._effective[name] = ClusterInfo(  # (the constructor: dataclasses.replace costs more)
            name=base.name,
            nodes=nodes,
            labels=base.labels,
            taints=base.taints,
            ready=base.ready,
            api_enablements=base.api_enablements,
            provider=base.provider,
            region=base.region,
            zone=base.zone,
            version=version,
            static_memo=static,
            changes=changes,
            summary=summary,
        )
        self._generation += 1
        self._snapshot = None
        self._fleet_log.append(self._generation, (name,))

    def _new_epoch(self) -> None:
        """The cluster set or a cluster's metadata changed: snapshots start a new static memo."""
        self._static = {}
        self._fleet_log = ChangeLog(self._generation)

    def _reserve(self, res: _Reservation, sign: int) -> None:
        touched: dict[str, dict[str, int]] = {}  # cluster -> node -> reservations appended
        for pod in res.pods:
            entry = self._entries.get(pod.cluster)
            if entry is None:
                continue
            lst = entry.reserved.setdefault(pod.node, [])
            if sign > 0:
                lst.append((res.key, pod))
            else:
                entry.reserved[pod.node] = [(k, p) for k, p in lst if p is not pod]
                if not entry.reserved[pod.node]:
                    del entry.reserved[pod.node]
            per = touched.setdefault(pod.cluster, {})
            per[pod.node] = per.get(pod.node, 0) + 1
        for cluster, nodes in touched.items():
            self._publish(cluster, nodes, usage_only=True, appended=nodes if sign > 0 else None)

    # -- inventory -----------------------------------------------------------------------------
    def update_cluster(self, info: ClusterInfo) -> None:
        """Add or replace a cluster (metadata and base nodes); pods and reservations are kept."""
        entry = self._entries.get(info.name)
        if entry is None:
            entry = self._entries[info.name] = _ClusterEntry(info)
        entry.base = replace(info, nodes={}, static_memo={}, changes=None, summary=None)
        entry.base_nodes = dict(info.nodes)
        self._publish(info.name, None, usage_only=False)
        self._new_epoch()

    def remove_cluster(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        if entry is not None:
            for pods in entry.pods.values():
                for pod in pods.values():
                    self._unown(name, pod)
            self._effective.pop(name, None)
            self._generation += 1
            self._snapshot = None
            self._new_epoch()

    def upsert_node(self, cluster: str, node: NodeInfo) -> None:
        entry = self._entries[cluster]
        old = entry.base_nodes.get(node.name)
        entry.base_nodes[node.name] = node
        same_static = old is not None and old.labels == node.labels and old.taints == node.taints
        self._publish(
            cluster, [node.name], usage_only=same_static and old is not None and old.ready == node.ready
        )

    def remove_node(self, cluster: str, node_name: str) -> None:
        entry = self._entries.get(cluster)
        if entry is None or entry.base_nodes.pop(node_name, None) is None:
            return
        for pod in entry.pods.pop(node_name, {}).values():
            self._unown(cluster, pod)
        self._publish(cluster, [node_name], usage_only=False)

    def add_pod(self, cluster: str, pod: PodInfo) -> bool:
        """Count a pod the member reports; True when it took the place of a pod reserved on
        another node (that node has room again)."""
        entry = self._entries[cluster]
        self.remove_pod(cluster, pod.uid)
        entry.pods.setdefault(pod.node, {})[pod.uid] = pod
        if pod.owner:
            self._owned.setdefault(pod.owner, set()).add((cluster, pod.uid))
        changed = [pod.node]
        replaced = self._take_reserved(entry, cluster, pod)
        if replaced is not None and replaced != pod.node:
            changed.append(replaced)
        self._publish(cluster, changed, usage_only=True)
        return len(changed) > 1

    def _take_reserved(self, entry: _ClusterEntry, cluster: str, pod: PodInfo) -> str | None:
        """A reported pod of a reserved workload takes one reserved pod's place on its cluster
        (preferably on its node); returns the node that reserved pod was on."""
        key = self._by_owner.get(pod.owner) if pod.owner else None
        res = self._reservations.get(key) if key is not None else None
        if res is None or pod.uid in res.seen:
            return None
        mine = [a for a in res.pods if a.cluster == cluster]
        if not mine:
            return None
        res.seen.add(pod.uid)
        taken = next((a for a in mine if a.node == pod.node), mine[0])
        res.pods = [a for a in res.pods if a is not taken]
        lst = [(k, a) for k, a in entry.reserved.get(taken.node, []) if a is not taken]
        if lst:
            entry.reserved[taken.node] = lst
        else:
            entry.reserved.pop(taken.node, None)
        if not res.pods:
            self._drop(res.key)
        return taken.node

    def remove_pod(self, cluster: str, uid: str) -> None:
        entry = self._entries.get(cluster)
        if entry is None:
            return
        for node, pods in entry.pods.items():
            pod = pods.pop(uid, None)
            if pod is not None:
                self._unown(cluster, pod)
                self._publish(cluster, [node], usage_only=True)
                return

    def _unown(self, cluster: str, pod: PodInfo) -> None:
        if pod.owner:
            owned = self._owned.get(pod.owner)
            if owned is not None:
                owned.discard((cluster, pod.uid))
                if not owned:
                    del self._owned[pod.owner]

    # -- reservations --------------------------------------------------------------------------
    def assume(
        self,
        key: str,
        assignments: Iterable[PodAssignment],
        ttl: float | None = None,
        owner: str | None = None,
    ) -> None:
        """Reserve a decision's pods until the members report them, ``confirm``/``forget`` or the TTL.

        ``owner`` is the token the workload's pods carry (``PodInfo.owner``; default ``key``).
        Pods of that owner the cache already holds were there before this decision: they never
        take a reserved pod's place.
        """
        self.expire()
        self.forget(key)
        token = key if owner is None else owner
        res = _Reservation(key, list(assignments), self._clock() + (self._ttl if ttl is None else ttl), token)
        if not res.pods:
            return
        res.seen = {uid for _, uid in self._owned.get(token, ())}
        self._reservations[key] = res
        self._by_owner[token] = key
        heapq.heappush(self._deadlines, (res.deadline, next(self._seq), key))
        self._reserve(res, +1)

    def forget(self, key: str) -> bool:
        """Drop a reservation (rollback); returns whether one existed. Idempotent."""
        res = self._drop(key)
        if res is None:
            return False
        self._reserve(res, -1)
        return True

    def _drop(self, key: str) -> _Reservation | None:
        res = self._reservations.pop(key, None)
        if res is not None and self._by_owner.get(res.owner) == key:
            del self._by_owner[res.owner]
        return res

    def confirm(self, key: str) -> bool:
        """The members report the workload (e.g. it is healthy): drop what is left of its reservation."""
        return self.forget(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._reservations

    def assumed_pods(self, key: str) -> int:
        """How many of the workload's reserved pods the members have not reported yet."""
        res = self._reservations.get(key)
        return len(res.pods) if res is not None else 0

    def expire(self) -> list[str]:
        """Roll back reservations whose TTL passed; returns their keys."""
        now = self._clock()
        expired: list[str] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, key = heapq.heappop(self._deadlines)
            res = self._reservations.get(key)
            if res is not None and res.deadline == deadline:
                self.forget(key)
                expired.append(key)
        return expired

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """An immutable view for one cycle (expires stale reservations first)."""
        self.expire()
        if self._snapshot is None:
            self._snapshot = Snapshot(dict(self._effective), self._generation, self._static, self._fleet_log)
        return self._snapshot

    def cluster(self, name: str) -> ClusterInfo:
        return self._effective[name]

    def stats(self) -> dict[str, Any]:
        return {
            "clusters": len(self._entries),
            "nodes": sum(len(e.base_nodes) for e in self._entries.values()),
            "reservations": len(self._reservations),
            "generation": self._generation,
        }
