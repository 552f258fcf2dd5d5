"""MemberInventory: one member's nodes and pods, mirrored into the shared SchedulerCache.

No I/O: the member connection's watch threads (or a benchmark, or a test) hand it Node and Pod
objects; it converts them, keeps what the MemberCluster summary needs, and applies each change
to the :class:`~flotilla.scheduler.cache.SchedulerCache` incrementally. Every method takes the
shared ``lock`` (the cache is not thread-safe); conversion happens before the lock is taken.
Methods return a :class:`Change` so the caller knows whether to notify anyone.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.inventory.convert import (
    node_info,
    node_is_cordoned,
    node_is_ready,
    node_summary,
    pod_info,
    resource_summary,
)
from flotilla.scheduler.cache import PodInfo, SchedulerCache
from flotilla.scheduler.quantity import ResourceList
from flotilla.scheduler.snapshot import ClusterInfo, NodeInfo, Taint

__all__ = ["POD_BATCH", "Change", "ClusterMeta", "MemberInventory"]

POD_BATCH = 256
"""Pods applied per lock hold during a full re-list (keeps scheduler cycles flowing)."""


class Change(enum.IntFlag):
    """What an update did: nothing, changed the inventory, and/or possibly freed capacity."""

    NONE = 0
    CHANGED = 1
    """Something the scheduler or the MemberCluster status sees changed."""
    FREED = 2
    """Capacity may have grown (pod gone, node added/changed, member Ready, new APIs)."""


@dataclass(frozen=True)
class ClusterMeta:
    """MemberCluster metadata the scheduler's cluster-level plugins read."""

    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    provider: str = ""
    region: str = ""
    zone: str = ""


def _same_node(a: NodeInfo, b: NodeInfo) -> bool:
    return (
        a.ready == b.ready
        and a.allocatable == b.allocatable
        and a.labels == b.labels
        and a.taints == b.taints
    )


class MemberInventory:
    """Nodes and pods of one member, kept in step with the cache entry of the same name."""

    def __init__(
        self, name: str, cache: SchedulerCache, lock: threading.RLock, meta: ClusterMeta | None = None
    ) -> None:
        self.name = name
        self.cache = cache
        self.lock = lock
        self.meta = meta or ClusterMeta()
        self.ready = False
        self.api_enablements: frozenset[str] | None = None
        self._nodes: dict[str, NodeInfo] = {}
        self._ready_nodes: set[str] = set()
        self._cordoned_nodes: set[str] = set()
        self._pods: dict[str, PodInfo] = {}
        self._used: dict[str, ResourceList] = {}

    # -- cluster ---------------------------------------------------------------------------------
    def _cluster_info(self) -> ClusterInfo:
        m = self.meta
        return ClusterInfo(
            name=self.name,
            nodes=self._nodes,
            labels=dict(m.labels),
            taints=m.taints,
            ready=self.ready,
            api_enablements=self.api_enablements,
            provider=m.provider,
            region=m.region,
            zone=m.zone,
        )

    def publish(self) -> None:
        """(Re)write the cluster entry: metadata, readiness and nodes; pods too if it was absent."""
        with self.lock:
            try:
                self.cache.cluster(self.name)
                present = True
            except KeyError:
                present = False
            self.cache.update_cluster(self._cluster_info())
            if not present:
                for pod in self._pods.values():
                    self.cache.add_pod(self.name, pod)

    def set_cluster(
        self,
        *,
        ready: bool | None = None,
        api_enablements: frozenset[str] | None = None,
        meta: ClusterMeta | None = None,
    ) -> Change:
        """Update readiness, API enablements and/or metadata; republishes only on a real change."""
        with self.lock:
            change = Change.NONE
            if ready is not None and ready != self.ready:
                self.ready = ready
                change |= Change.CHANGED | (Change.FREED if ready else Change.NONE)
            if api_enablements is not None and api_enablements != self.api_enablements:
                grew = self.api_enablements is None or not api_enablements <= self.api_enablements
                self.api_enablements = api_enablements
                change |= Change.CHANGED | (Change.FREED if grew else Change.NONE)
            if meta is not None and meta != self.meta:
                self.meta = meta
                change |= Change.CHANGED | Change.FREED
            if change:
                self.cache.update_cluster(self._cluster_info())
            return change

    def remove(self) -> None:
        """Drop the member from the cache (its nodes, pods and reservations)."""
        with self.lock:
            self.cache.remove_cluster(self.name)

    # -- nodes -----------------------------------------------------------------------------------
    def replace_nodes(self, objects: Iterable[Any]) -> Change:
        """A full Node list: the cache entry is rewritten once (nodes absent from it are dropped)."""
        return self.replace_node_infos(self.node_entry(o) for o in objects)

    @staticmethod
    def node_entry(obj: Any) -> tuple[NodeInfo, bool, bool]:
        """What a Node list keeps of one item: its NodeInfo, whether its Ready condition is True
        and whether it is cordoned."""
        return node_info(obj), node_is_ready(obj), node_is_cordoned(obj)

    def replace_node_infos(self, entries: Iterable[tuple[NodeInfo, bool, bool]]) -> Change:
        """:meth:`replace_nodes` with items already converted by :meth:`node_entry`."""
        infos: dict[str, NodeInfo] = {}
        ready: set[str] = set()
        cordoned: set[str] = set()
        for info, is_ready, is_cordoned in entries:
            infos[info.name] = info
            if is_ready:
                ready.add(info.name)
            if is_cordoned:
                cordoned.add(info.name)
        with self.lock:
            old = self._nodes
            same = old.keys() == infos.keys() and all(_same_node(old[n], infos[n]) for n in infos)
            counts_same = ready == self._ready_nodes and cordoned == self._cordoned_nodes
            self._ready_nodes = ready
            self._cordoned_nodes = cordoned
            if same:
                # Only nodeSummary may differ (e.g. a NotReady node was cordoned).
                return Change.NONE if counts_same else Change.CHANGED
            self._nodes = infos
            self.cache.update_cluster(self._cluster_info())
            return Change.CHANGED | Change.FREED

    def apply_node(self, event: str, obj: Any) -> Change:
        """One watch event (``ADDED``/``MODIFIED``/``DELETED``) for a Node."""
        info = node_info(obj)
        ready = node_is_ready(obj)
        cordoned = node_is_cordoned(obj)
        with self.lock:
            if event == "DELETED":
                self._ready_nodes.discard(info.name)
                self._cordoned_nodes.discard(info.name)
                if self._nodes.pop(info.name, None) is None:
                    return Change.NONE
                self.cache.remove_node(self.name, info.name)
                return Change.CHANGED
            counts_same = (info.name in self._ready_nodes) == ready and (
                info.name in self._cordoned_nodes
            ) == cordoned
            (self._ready_nodes.add if ready else self._ready_nodes.discard)(info.name)
            (self._cordoned_nodes.add if cordoned else self._cordoned_nodes.discard)(info.name)
            old = self._nodes.get(info.name)
            if old is not None and _same_node(old, info):
                # Only nodeSummary may differ (e.g. a NotReady node was cordoned).
                return Change.NONE if counts_same else Change.CHANGED
            self._nodes[info.name] = info
            self.cache.upsert_node(self.name, info)
            if old is None and info.name in self._used:  # re-added: the cache dropped its pods
                for pod in self._pods.values():
                    if pod.node == info.name:
                        self.cache.add_pod(self.name, pod)
            return Change.CHANGED | Change.FREED

    # -- pods ------------------------------------------------------------------------------------
    def _charge(self, pod: PodInfo, sign: int) -> None:
        used = self._used.setdefault(pod.node, {})
        for res, amount in pod.requests.items():
            used[res] = used.get(res, 0) + sign * amount
        used["pods"] = used.get("pods", 0) + sign
        if not used["pods"]:
            del self._used[pod.node]

    def _drop_pod(self, uid: str) -> Change:
        old = self._pods.pop(uid, None)
        if old is None:
            return Change.NONE
        self._charge(old, -1)
        self.cache.remove_pod(self.name, uid)
        return Change.CHANGED | Change.FREED

    def _put_pod(self, uid: str, info: PodInfo | None) -> Change:
        if info is None:
            return self._drop_pod(uid)
        old = self._pods.get(uid)
        if old is not None and (old.node, old.requests, old.owner) == (info.node, info.requests, info.owner):
            return Change.NONE
        change = self._drop_pod(uid) if old is not None else Change.NONE
        self._pods[uid] = info
        self._charge(info, +1)
        if self.cache.add_pod(self.name, info):  # its reservation elsewhere on the member is free
            change |= Change.FREED
        return change | Change.CHANGED

    @staticmethod
    def _uid(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")

    def apply_pod(self, event: str, obj: Mapping[str, Any]) -> Change:
        """One watch event for a Pod; pods that hold no resources are dropped."""
        uid = self._uid(obj)
        info = None if event == "DELETED" else pod_info(obj)
        with self.lock:
            return self._put_pod(uid, info)

    @classmethod
    def pod_entry(cls, obj: Mapping[str, Any]) -> tuple[str, PodInfo] | None:
        """What a Pod list keeps of one item: ``(uid, PodInfo)``, or None if it holds nothing."""
        info = pod_info(obj)
        return None if info is None else (cls._uid(obj), info)

    def replace_pods(self, objects: Iterable[Mapping[str, Any]]) -> Change:
        """A full Pod list: pods absent from it are dropped, the others added or updated."""
        return self.replace_pod_infos([e for e in map(self.pod_entry, objects) if e is not None])

    def replace_pod_infos(self, entries: Sequence[tuple[str, PodInfo]]) -> Change:
        """:meth:`replace_pods` with items already converted by :meth:`pod_entry`."""
        seen = {uid for uid, _ in entries}
        change = Change.NONE
        with self.lock:
            for uid in [u for u in self._pods if u not in seen]:
                change |= self._drop_pod(uid)
        for start in range(0, len(entries), POD_BATCH):
            with self.lock:
                for uid, info in entries[start : start + POD_BATCH]:
                    change |= self._put_pod(uid, info)
        return change

    # -- status ----------------------------------------------------------------------------------
    def summaries(self) -> tuple[dict[str, Any], dict[str, int]]:
        """``(resourceSummary, nodeSummary)`` for the MemberCluster status."""
        with self.lock:
            return (
                resource_summary(self._nodes.values(), self._used),
                node_summary(
                    len(self._nodes),
                    len(self._ready_nodes & self._nodes.keys()),
                    len(self._cordoned_nodes & self._nodes.keys()),
                ),
            )

    def node_readiness(self) -> tuple[int, int]:
        """``(nodes, Ready nodes)`` currently held (cheap)."""
        with self.lock:
            return len(self._nodes), len(self._ready_nodes & self._nodes.keys())

    def counts(self) -> tuple[int, int]:
        """``(nodes, pods)`` currently held."""
        with self.lock:
            return len(self._nodes), len(self._pods)
