"""The fleet description: which clusters the rig starts and what GPU nodes each member has.

A fleet is a small YAML file::

    hub:
      name: hub
      controllers: false          # true: an ordinary cluster with workload controllers, and then
      scheduler: false            #   optionally kube-scheduler, KWOK nodePools and the training
      nodePools: []               #   operator, as a member has (see fleets/hub-with-controllers.yaml)
    members:
      - name: a
        labels: {region: eu-west, provider: onprem}
        thirdPartyCRDs: [kubeflow.org_pytorchjobs.yaml, jobset.x-k8s.io_jobsets.yaml]
        trainingOperator: true    # run the Kubeflow training operator (PyTorchJob) against it
        nodePools:
          - name: h100
            count: 4
            gpu: {count: 8, product: NVIDIA-H100-80GB-HBM3, memoryMiB: 81559, family: hopper}
            cpu: "96"
            memory: 1Ti

Errors are raised as :class:`FleetError` with the path of the offending field, e.g.
``members[1].nodePools[0].gpu.count: Input should be greater than or equal to 0``.

Names are DNS labels, so every ``name`` is read as the text written: ``name: no``, ``name: y``,
``name: null`` or ``name: 0123`` name clusters ``no``, ``y``, ``null`` and ``0123`` (plain YAML would
read a boolean, null or the octal number 83). Other string fields (labels, ``product``, ``cpu``)
follow YAML; a value YAML reads as a boolean, null or number is reported with a hint to quote it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PYTORCHJOB_CRD = "kubeflow.org_pytorchjobs.yaml"


class FleetError(ValueError):
    """A fleet description that cannot be used; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class GPUSpec(_Model):
    """The GPUs on every node of a pool, published the way NVIDIA GPU Feature Discovery labels them."""

    count: int = Field(ge=0, le=64, description="GPUs per node (nvidia.com/gpu capacity).")
    product: str = Field(min_length=1, description="nvidia.com/gpu.product label.")
    memory_mib: int = Field(alias="memoryMiB", ge=0, description="nvidia.com/gpu.memory label (MiB per GPU).")
    family: str | None = Field(default=None, description="nvidia.com/gpu.family label.")


class NodePool(_Model):
    """A group of identical simulated nodes."""

    name: str
    count: int = Field(ge=1, le=5000)
    cpu: str = "96"
    memory: str = "1Ti"
    pods: int = Field(default=110, ge=1)
    gpu: GPUSpec | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[dict[str, str]] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not _DNS_LABEL.match(v):
            raise ValueError(f"{v!r} is not a DNS label (lower-case letters, digits and '-')")
        return v


class ClusterSpec(_Model):
    """One control plane started by the rig."""

    name: str
    port: int | None = Field(default=None, ge=1024, le=65535, description="Fixed API server port.")
    labels: dict[str, str] = Field(default_factory=dict)
    controllers: bool = Field(
        default=True,
        description="Run kube-controller-manager with workload controllers (members always do).",
    )
    scheduler: bool = True
    third_party_crds: list[str] = Field(default_factory=list, alias="thirdPartyCRDs")
    training_operator: bool = Field(
        default=False,
        alias="trainingOperator",
        description="Run the Kubeflow training operator (PyTorchJob controller) against this member; "
        f"needs {PYTORCHJOB_CRD} in thirdPartyCRDs.",
    )
    node_pools: list[NodePool] = Field(default_factory=list, alias="nodePools")

    @field_validator("name")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not _DNS_LABEL.match(v) or len(v) > 40:
            raise ValueError(f"{v!r} is not a DNS label of at most 40 characters")
        return v

    @model_validator(mode="after")
    def _unique_pools(self) -> ClusterSpec:
        names = [p.name for p in self.node_pools]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate nodePools names: {sorted(dup)}")
        if self.training_operator and PYTORCHJOB_CRD not in self.third_party_crds:
            raise ValueError(f"trainingOperator needs {PYTORCHJOB_CRD} in thirdPartyCRDs")
        return self

    def nodes(self) -> list[dict[str, Any]]:
        """The Node objects (with status) that KWOK will keep alive for this cluster."""
        out: list[dict[str, Any]] = []
        for pool in self.node_pools:
            for i in range(pool.count):
                out.append(_node(self.name, pool, i))
        return out


class HubSpec(_Model):
    name: str = "hub"
    port: int | None = Field(default=None, ge=1024, le=65535)
    controllers: bool = Field(
        default=False,
        description="false: a bare API server plus namespace/GC controllers (Karmada-style hub); "
        "true: an ordinary cluster whose controllers would run templates (Flotilla holds them back).",
    )
    scheduler: bool = Field(
        default=False,
        description="Run kube-scheduler on the hub (with nodePools: pods the hub's controllers "
        "create would bind to its KWOK nodes unless Flotilla gates them).",
    )
    third_party_crds: list[str] = Field(default_factory=list, alias="thirdPartyCRDs")
    training_operator: bool = Field(
        default=False,
        alias="trainingOperator",
        description=f"Run the Kubeflow training operator against the hub; needs {PYTORCHJOB_CRD}.",
    )
    node_pools: list[NodePool] = Field(default_factory=list, alias="nodePools")

    @model_validator(mode="after")
    def _consistent(self) -> HubSpec:
        if (self.scheduler or self.node_pools or self.training_operator) and not self.controllers:
            raise ValueError("scheduler, nodePools and trainingOperator need controllers: true")
        if self.training_operator and PYTORCHJOB_CRD not in self.third_party_crds:
            raise ValueError(f"trainingOperator needs {PYTORCHJOB_CRD} in thirdPartyCRDs")
        names = [p.name for p in self.node_pools]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate nodePools names: {dup}")
        return self

    def as_cluster(self) -> ClusterSpec:
        """The hub as a :class:`ClusterSpec`, for the agents (KWOK nodes, training operator) a hub
        with controllers runs like a member does."""
        return ClusterSpec.model_validate(
            {
                "name": self.name,
                "port": self.port,
                "controllers": self.controllers,
                "scheduler": self.scheduler,
                "thirdPartyCRDs": self.third_party_crds,
                "trainingOperator": self.training_operator,
                "nodePools": [p.model_dump(by_alias=True) for p in self.node_pools],
            }
        )


class Fleet(_Model):
    hub: HubSpec = Field(default_factory=HubSpec)
    members: list[ClusterSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Fleet:
        names = [self.hub.name] + [m.name for m in self.members]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"cluster names must be unique, repeated: {dup}")
        ports = [p for p in [self.hub.port] + [m.port for m in self.members] if p is not None]
        if len(ports) != len(set(ports)):
            raise ValueError("two clusters ask for the same port")
        return self

    def components(self, base: tuple[str, ...]) -> tuple[str, ...]:
        """``base`` plus the optional rig components (see tools/rig-bin/build.sh) some member asks for."""
        wanted = self.hub.training_operator or any(m.training_operator for m in self.members)
        extra = ("training-operator",) if wanted else ()
        return base + extra

    def member(self, name: str) -> ClusterSpec:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


def _node(cluster: str, pool: NodePool, index: int) -> dict[str, Any]:
    name = f"{cluster}-{pool.name}-{index}"
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": pool.name,
        **pool.labels,
    }
    capacity: dict[str, str] = {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.pods)}
    if pool.gpu is not None and pool.gpu.count > 0:
        capacity["nvidia.com/gpu"] = str(pool.gpu.count)
        labels.update(
            {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": pool.gpu.product,
                "nvidia.com/gpu.count": str(pool.gpu.count),
                "nvidia.com/gpu.memory": str(pool.gpu.memory_mib),
            }
        )
        if pool.gpu.family:
            labels["nvidia.com/gpu.family"] = pool.gpu.family
    # No kwok.x-k8s.io/node taint: the rig has no real nodes, so workloads need no toleration for it.
    taints = list(pool.taints)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": labels},
        "spec": {"taints": taints},
        "status": {"capacity": dict(capacity), "allocatable": dict(capacity)},
    }


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any) -> str:
    msg = str(error["msg"])
    value = error.get("input")
    if error["type"] == "string_type" and (value is None or isinstance(value, bool | int | float)):
        # YAML 1.1 read an unquoted yes/no/on/off/y/n/true/false/null or a number.
        msg += f" (YAML read {value!r}: quote the value to keep it as text)"
    return msg


def parse_fleet(data: Any, source: str = "fleet") -> Fleet:
    """Validate a fleet description, turning pydantic errors into one message per field."""
    if not isinstance(data, dict):
        raise FleetError(f"{source}: expected a mapping with 'hub' and 'members', got {type(data).__name__}")
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        lines = [f"{_loc(e['loc']) or '<root>'}: {_message(e)}" for e in exc.errors()]
        raise FleetError(f"{source}: invalid fleet description:\n  " + "\n  ".join(lines)) from None


_STR_TAG = "tag:yaml.org,2002:str"


class _FleetLoader(yaml.SafeLoader):
    """``SafeLoader`` that reads the plain scalar value of every ``name`` key as a string.

    Cluster and pool names are DNS labels, and ``no``, ``on``, ``y``, ``null``, ``0123`` or ``1e3``
    are DNS labels too: they must not turn into booleans, null or numbers.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        for key, value in node.value:
            if (
                isinstance(key, yaml.ScalarNode)
                and key.tag == _STR_TAG
                and key.value == "name"
                and isinstance(value, yaml.ScalarNode)
                and not value.style  # plain: quoted scalars are strings already
            ):
                value.tag = _STR_TAG
        return super().construct_mapping(node, deep=deep)


def load_fleet(path: Path) -> Fleet:
    try:
        data = yaml.load(path.read_text(), Loader=_FleetLoader)  # a SafeLoader subclass
    except FileNotFoundError:
        raise FleetError(f"{path}: no such fleet file") from None
    except yaml.YAMLError as exc:
        raise FleetError(f"{path}: not valid YAML: {exc}") from None
    return parse_fleet(data, str(path))
