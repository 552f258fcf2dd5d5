"""What is being scheduled: a workload made of components (roles), each a set of identical pods.

Requests are per replica (per pod) in canonical units (see :mod:`flotilla.scheduler.quantity`).

GPU requests come in two forms:

* ``nvidia.com/gpu: N`` - N whole GPUs, each needing a completely free device;
* ``flotilla.dev/gpu-milli: M`` - a *fractional* share of ONE GPU in thousandths
  (``0 < M < 1000``), placed on a single device that has at least ``M`` free. A component
  must not request both; ``M >= 1000`` is rejected (ask for whole GPUs instead).

A multi-role job (e.g. a PyTorchJob with 1 master and 3 workers) is one workload with two
components; every pod of every role counts for fit and gangs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.scheduler.placement import Placement
from flotilla.scheduler.quantity import ResourceList, parse_json_resource_list
from flotilla.scheduler.snapshot import GPU_MILLI_RESOURCE, GPU_RESOURCE, MILLI_PER_GPU, Toleration

__all__ = ["Component", "GangSpec", "PodShape", "Workload"]


@dataclass(frozen=True, slots=True, eq=False)
class PodShape:
    """The scheduling-relevant part of one pod, hashable through ``key`` (for memoisation).

    ``other`` holds every non-GPU request as sorted ``(name, amount)`` pairs.
    """

    other: tuple[tuple[str, int], ...]
    gpu_whole: int
    gpu_milli: int
    node_selector: tuple[tuple[str, str], ...]
    affinity_terms: tuple[Mapping[str, Any], ...]
    tolerations: tuple[Toleration, ...]
    key: tuple[Any, ...] = field(init=False, repr=False)
    constraint_key: tuple[Any, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        constraint = (
            self.node_selector,
            json.dumps(list(self.affinity_terms), sort_keys=True) if self.affinity_terms else "",
            self.tolerations,
        )
        object.__setattr__(self, "constraint_key", constraint)
        object.__setattr__(self, "key", (self.other, self.gpu_whole, self.gpu_milli, constraint))

    @property
    def gpu_demand_milli(self) -> int:
        """GPU demand of one pod in thousandths of a GPU."""
        return self.gpu_whole * MILLI_PER_GPU + self.gpu_milli

    def requests(self) -> ResourceList:
        out = dict(self.other)
        if self.gpu_whole:
            out[GPU_RESOURCE] = self.gpu_whole
        if self.gpu_milli:
            out[GPU_MILLI_RESOURCE] = self.gpu_milli
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Component:
    """One role of a workload: ``replicas`` identical pods with per-pod ``requests``.

    ``node_affinity`` is the list of *required* ``nodeSelectorTerms`` in Kubernetes shape
    (``[{"matchExpressions": [{"key": ..., "operator": ..., "values": [...]}]}]``).
    """

    name: str
    replicas: int
    requests: ResourceList = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    node_affinity: Sequence[Mapping[str, Any]] = ()
    tolerations: tuple[Toleration, ...] = ()
    shape: PodShape = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError(f"component {self.name}: replicas must be >= 0")
        whole = self.requests.get(GPU_RESOURCE, 0)
        milli = self.requests.get(GPU_MILLI_RESOURCE, 0)
        if milli and whole:
            raise ValueError(
                f"component {self.name}: {GPU_MILLI_RESOURCE} cannot be combined with {GPU_RESOURCE}"
            )
        if not 0 <= milli < MILLI_PER_GPU:
            raise ValueError(f"component {self.name}: {GPU_MILLI_RESOURCE} must be in [0, {MILLI_PER_GPU})")
        other = tuple(
            sorted(
                (k, v)
                for k, v in self.requests.items()
                if k not in (GPU_RESOURCE, GPU_MILLI_RESOURCE) and v > 0
            )
        )
        shape = PodShape(
            other=other,
            gpu_whole=max(whole, 0),
            gpu_milli=milli,
            node_selector=tuple(sorted(self.node_selector.items())),
            affinity_terms=tuple(self.node_affinity),
            tolerations=tuple(self.tolerations),
        )
        object.__setattr__(self, "shape", shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "replicas": self.replicas,
            "requests": dict(self.requests),
            "nodeSelector": dict(self.node_selector),
            "nodeAffinity": [dict(t) for t in self.node_affinity],
            "tolerations": [t.to_dict() for t in self.tolerations],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Component:
        return cls(
            name=str(raw.get("name") or "main"),
            replicas=int(raw.get("replicas", 1)),
            requests=parse_json_resource_list(raw.get("requests")),
            node_selector=dict(raw.get("nodeSelector") or {}),
            node_affinity=tuple(raw.get("nodeAffinity") or ()),
            tolerations=tuple(Toleration.from_dict(t) for t in raw.get("tolerations") or ()),
        )


@dataclass(frozen=True, slots=True)
class GangSpec:
    """A PodGroup: at least ``min_member`` pods (and ``min_task_member[role]`` per role) all at once.

    By default the gang must land in ONE cluster; ``allow_multi_cluster`` lets it span clusters
    (still all or nothing). ``min_resources`` (the PodGroup's ``minResources``, canonical units)
    is what a cluster must have free, summed over its Ready nodes, to be considered at all (the
    clusters together, for a gang that may span clusters); see the Coscheduling plugin.
    """

    min_member: int
    min_task_member: Mapping[str, int] = field(default_factory=dict)
    allow_multi_cluster: bool = False
    min_resources: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "minMember": self.min_member,
            "minTaskMember": dict(self.min_task_member),
            "allowMultiCluster": self.allow_multi_cluster,
        }
        if self.min_resources:
            out["minResources"] = dict(self.min_resources)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GangSpec:
        return cls(
            min_member=int(raw.get("minMember", 0)),
            min_task_member={str(k): int(v) for k, v in (raw.get("minTaskMember") or {}).items()},
            allow_multi_cluster=bool(raw.get("allowMultiCluster", False)),
            min_resources=parse_json_resource_list(raw.get("minResources")),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """A workload to place.

    ``gvk`` (``group/version/Kind``, e.g. ``kubeflow.org/v1/PyTorchJob``) is checked against the
    clusters' API enablements; empty skips the check. ``current`` maps clusters to the replicas
    the workload already runs there (locality / stickiness); ``evicted_from`` lists clusters the
    workload was evicted from (never chosen again by the eviction filter). ``cluster_limits``
    maps clusters to what the workload may still use there (a namespace's FederatedResourceQuota
    static assignments, less what its other workloads use); clusters not listed are unlimited.

    ``keep_current`` (failover): a Divided workload keeps the replicas ``current`` gives the
    clusters that are still feasible, and only the rest is divided (as Karmada's failover and
    scale-up do); without it every decision divides all replicas afresh. ``units`` is the kind's
    divisible replica count ``current`` is counted in when it has several roles (a
    LeaderWorkerSet's groups: each unit is a leader and ``size - 1`` workers); unset, ``current``
    counts the pods of a single role.
    """

    key: str
    components: tuple[Component, ...]
    placement: Placement = field(default_factory=Placement)
    gang: GangSpec | None = None
    gvk: str = ""
    current: Mapping[str, int] = field(default_factory=dict)
    evicted_from: frozenset[str] = frozenset()
    cluster_limits: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    keep_current: bool = False
    units: int | None = None

    @property
    def total_replicas(self) -> int:
        return sum(c.replicas for c in self.components)

    def gang_requirement(self) -> dict[str, int]:
        """Pods per component that the gang needs at once (role minimums, then topped up in order)."""
        if self.gang is None:
            return {}
        need = {c.name: min(c.replicas, self.gang.min_task_member.get(c.name, 0)) for c in self.components}
        missing = self.gang.min_member - sum(need.values())
        for c in self.components:
            if missing <= 0:
                break
            extra = min(c.replicas - need[c.name], missing)
            need[c.name] += extra
            missing -= extra
        return need

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "gvk": self.gvk,
            "components": [c.to_dict() for c in self.components],
            "placement": self.placement.to_dict(),
            "gang": self.gang.to_dict() if self.gang else None,
            "current": dict(self.current),
            "evictedFrom": sorted(self.evicted_from),
            "clusterLimits": {c: dict(v) for c, v in sorted(self.cluster_limits.items())},
            **({"keepCurrent": True} if self.keep_current else {}),
            **({"units": self.units} if self.units is not None else {}),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Workload:
        gang = raw.get("gang")
        return cls(
            key=str(raw["key"]),
            gvk=str(raw.get("gvk") or ""),
            components=tuple(Component.from_dict(c) for c in raw.get("components") or ()),
            placement=Placement.from_dict(raw.get("placement") or {}),
            gang=GangSpec.from_dict(gang) if gang else None,
            current={str(k): int(v) for k, v in (raw.get("current") or {}).items()},
            evicted_from=frozenset(raw.get("evictedFrom") or ()),
            cluster_limits={
                str(c): {str(r): int(v) for r, v in limits.items()}
                for c, limits in (raw.get("clusterLimits") or {}).items()
            },
            keep_current=bool(raw.get("keepCurrent", False)),
            units=int(raw["units"]) if raw.get("units") is not None else None,
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        return cls.from_dict(json.loads(Path(path).read_text()))
