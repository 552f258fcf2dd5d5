"""The interpreter interface, its value types, and the base class the built-in interpreters share.

An interpreter is pure: dicts in, dicts out, no I/O, and it never mutates its arguments.
"""

from __future__ import annotations

import copy
import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from flotilla.interpreter import status as st
from flotilla.interpreter.keys import ANNOTATION_RETAIN_REPLICAS, ANNOTATION_USER_SUSPENDED
from flotilla.interpreter.paths import Path, get_path, set_path
from flotilla.interpreter.podspec import pod_requests, required_node_selector_terms
from flotilla.scheduler.quantity import ResourceList

__all__ = [
    "BaseInterpreter",
    "Component",
    "Health",
    "Interpreter",
    "Obj",
    "as_int",
    "component_from_template",
    "generation_lags",
    "retain_paths",
    "total_requests",
]

Obj = Mapping[str, Any]
"""A Kubernetes object (or part of one) as a plain mapping."""


class Health(enum.StrEnum):
    """How a member copy is doing, as judged from its own status."""

    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    PROGRESSING = "Progressing"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Component:
    """One role of a workload: ``replicas`` identical pods, each needing ``requests``.

    ``requests`` is per pod, in canonical units (see :mod:`flotilla.scheduler.quantity`).
    ``node_affinity`` is the list of required ``nodeSelectorTerms`` (ORed). ``per_replica`` is how
    many pods of this role one unit of the object's divisible replica count brings (Deployment: 1,
    LeaderWorkerSet worker: ``size - 1``); it is 0 when the role does not scale with Division
    (every member copy keeps ``replicas`` of it) and for kinds that are not divisible.
    """

    name: str
    replicas: int
    requests: ResourceList
    node_selector: dict[str, str] = field(default_factory=dict)
    node_affinity: list[dict[str, Any]] = field(default_factory=list)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    pod_template: dict[str, Any] = field(default_factory=dict)
    per_replica: int = 0


def component_from_template(
    name: str, replicas: int, pod_template: Obj | None, *, per_replica: int = 0
) -> Component:
    """Build a :class:`Component` from a PodTemplateSpec (``{"metadata": ..., "spec": ...}``)."""
    template = copy.deepcopy(dict(pod_template or {}))
    spec = template.get("spec") or {}
    return Component(
        name=name,
        replicas=max(int(replicas), 0),
        requests=pod_requests(spec),
        node_selector=dict(spec.get("nodeSelector") or {}),
        node_affinity=required_node_selector_terms(spec),
        tolerations=copy.deepcopy(list(spec.get("tolerations") or [])),
        pod_template=template,
        per_replica=per_replica,
    )


def total_requests(components: list[Component]) -> ResourceList:
    """What all pods of all components ask for together (for quota)."""
    out: ResourceList = {}
    for comp in components:
        for name, amount in comp.requests.items():
            out[name] = out.get(name, 0) + amount * comp.replicas
    return out


@runtime_checkable
class Interpreter(Protocol):
    """What Flotilla needs to know about one workload kind."""

    @property
    def group(self) -> str:
        """API group (``""`` for the core group)."""
        ...

    @property
    def kind(self) -> str:
        """Kind, e.g. ``Deployment``."""
        ...

    @property
    def divisible(self) -> bool:
        """Whether ``Divided`` replica scheduling applies (the kind can be split across clusters)."""
        ...

    def components(self, obj: Obj) -> list[Component]:
        """Every role with its replica count and per-pod requests."""
        ...

    def replicas(self, obj: Obj) -> int | None:
        """The divisible replica count; None when this object cannot be divided."""
        ...

    def implicit_gang(self, obj: Obj) -> int | None:
        """Minimum members that must be placed together, or None when the kind is no gang."""
        ...

    def revise_replicas(self, obj: Obj, replicas: int) -> dict[str, Any]:
        """A deep copy with the divisible replica count set to ``replicas``."""
        ...

    def divide(self, obj: Obj, assignment: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """Revise for a whole assignment ``{cluster: replicas}`` at once (exact splits: Job completions)."""
        ...

    def retain(self, desired: Obj, observed: Obj) -> dict[str, Any]:
        """``desired`` with the member-owned fields of ``observed`` kept."""
        ...

    def reflect_status(self, member_obj: Obj) -> dict[str, Any]:
        """The part of a member copy's status worth copying back to the hub."""
        ...

    def aggregate_status(self, per_cluster: Mapping[str, Obj]) -> dict[str, Any]:
        """The hub template's status from the reflected statuses ``{cluster: reflect_status(...)}``."""
        ...

    def health(self, member_obj: Obj) -> Health:
        """Health of one member copy."""
        ...

    def hold_back_patch(self, obj: Obj) -> dict[str, Any] | None:
        """Merge patch that keeps a batch template from running on a hub with controllers, or None."""
        ...

    def release_hold_back(self, obj: Obj) -> dict[str, Any]:
        """A copy with the hub hold-back undone: suspend restored to the user's intent."""
        ...

    def strip_for_member(self, obj: Obj) -> dict[str, Any]:
        """A copy without kind-specific fields that the hub's API server generated (e.g. Job selectors)."""
        ...


class BaseInterpreter(ABC):
    """Shared behaviour; a kind sets the class attributes and implements ``components`` and ``health``.

    * ``replica_path``: the field ``revise_replicas`` sets (and ``retain`` keeps when the desired
      object is annotated ``flotilla.dev/retain-replicas: "true"``).
    * ``suspend_path``: the boolean field used for hub hold-back.
    * ``status_fields``: top-level status fields ``reflect_status`` keeps.
    * ``summed_fields`` / ``condition_types``: how a divisible kind aggregates (counts summed,
      conditions True only when True everywhere; ``condition_types = None`` means every type
      reported); a kind that is not divisible runs in one cluster
      and aggregates by taking that cluster's status.
    """

    group: str = ""
    kind: str = ""
    versions: frozenset[str] = frozenset()
    divisible: bool = False
    replica_path: str | None = None
    default_replicas: int = 1
    suspend_path: str | None = None
    status_fields: tuple[str, ...] = ()
    summed_fields: tuple[str, ...] = ()
    condition_types: tuple[str, ...] | None = ()

    @abstractmethod
    def components(self, obj: Obj) -> list[Component]:
        """Every role with its replica count and per-pod requests."""

    @abstractmethod
    def health(self, member_obj: Obj) -> Health:
        """Health of one member copy."""

    # -- replicas ---------------------------------------------------------------------------

    def replicas(self, obj: Obj) -> int | None:
        """The value at ``replica_path`` (default ``default_replicas``) for divisible kinds, else None."""
        if not self.divisible or self.replica_path is None:
            return None
        return as_int(get_path(obj, self.replica_path, self.default_replicas), self.replica_path)

    def implicit_gang(self, obj: Obj) -> int | None:
        """Divisible kinds are no gang; the others are a gang of all their pods."""
        if self.divisible:
            return None
        return sum(c.replicas for c in self.components(obj)) or None

    def revise_replicas(self, obj: Obj, replicas: int) -> dict[str, Any]:
        """A deep copy with ``replica_path`` set; refused for kinds that cannot be divided."""
        if not self.divisible or self.replica_path is None:
            raise ValueError(f"{self.kind} is not divisible; it cannot be revised to {replicas} replicas")
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        out = copy.deepcopy(dict(obj))
        set_path(out, self.replica_path, replicas)
        return out

    def divide(self, obj: Obj, assignment: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """``{cluster: revise_replicas(obj, n)}``; kinds with extra divisible fields override it."""
        return {cluster: self.revise_replicas(obj, n) for cluster, n in assignment.items()}

    # -- propagation ------------------------------------------------------------------------

    def retain(self, desired: Obj, observed: Obj) -> dict[str, Any]:
        """Keep the member's replica count when the desired object says an HPA owns it there."""
        out = copy.deepcopy(dict(desired))
        annotations = (desired.get("metadata") or {}).get("annotations") or {}
        if self.replica_path and annotations.get(ANNOTATION_RETAIN_REPLICAS) == "true":
            retain_paths(out, observed, [self.replica_path])
        return out

    def strip_for_member(self, obj: Obj) -> dict[str, Any]:
        """Nothing kind-specific to strip by default."""
        return copy.deepcopy(dict(obj))

    # -- hold-back --------------------------------------------------------------------------

    def hold_back_patch(self, obj: Obj) -> dict[str, Any] | None:
        """Suspend the template on the hub and record whether the user had suspended it.

        The user's intent goes to the ``flotilla.dev/user-suspended`` annotation the first time.
        If the template is later found unsuspended (the user resumed it), it is suspended again and
        the intent is updated to ``"false"``. A user who wants to suspend an already held-back
        template sets that annotation to ``"true"``.
        """
        if self.suspend_path is None:
            return None
        suspended = get_path(obj, self.suspend_path) is True
        recorded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_USER_SUSPENDED)
        if suspended and recorded is not None:
            return None
        patch: dict[str, Any] = {"metadata": {"annotations": {ANNOTATION_USER_SUSPENDED: "false"}}}
        if suspended:
            patch["metadata"]["annotations"][ANNOTATION_USER_SUSPENDED] = "true"
        else:
            set_path(patch, self.suspend_path, True)
        return patch

    def release_hold_back(self, obj: Obj) -> dict[str, Any]:
        """Set suspend from the recorded user intent and drop the annotation (no annotation: unchanged)."""
        out = copy.deepcopy(dict(obj))
        annotations = (out.get("metadata") or {}).get("annotations") or {}
        if self.suspend_path is None or ANNOTATION_USER_SUSPENDED not in annotations:
            return out
        intent = annotations.pop(ANNOTATION_USER_SUSPENDED) == "true"
        set_path(out, self.suspend_path, intent)
        return out

    # -- status -----------------------------------------------------------------------------

    def reflect_status(self, member_obj: Obj) -> dict[str, Any]:
        """``status_fields`` of the member's status."""
        return st.pick(member_obj.get("status"), self.status_fields)

    def aggregate_status(self, per_cluster: Mapping[str, Obj]) -> dict[str, Any]:
        """Divisible kinds: sums and all-True conditions; the others: their one cluster's status."""
        if not self.divisible:
            return st.first_status(per_cluster)
        out: dict[str, Any] = dict(st.sum_fields(per_cluster, self.summed_fields))
        conditions = st.aggregate_conditions(per_cluster, self.condition_types)
        if conditions:
            out["conditions"] = conditions
        return out


def retain_paths(desired: dict[str, Any], observed: Obj, paths: list[str] | list[Path]) -> None:
    """Copy the observed value at each (plain) path into ``desired`` in place, when observed has one."""
    for path in paths:
        value = get_path(observed, path)
        if value is not None:
            set_path(desired, path, copy.deepcopy(value))


def as_int(value: Any, path: str) -> int:
    """``value`` as an int (ints and integer strings), or a ValueError naming ``path``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer at {path}, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expected an integer at {path}, got {value!r}") from None


def generation_lags(obj: Obj) -> bool:
    """True when the controller has not yet observed the object's latest generation."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return isinstance(generation, int) and isinstance(observed, int) and observed < generation
