"""GPUAllocation: node scoring strategies for GPUs, computed as if the pod were placed.

* ``Balanced`` (default): prefer nodes whose GPU and CPU utilisation end up closest, so a
  node does not run out of CPU while GPUs are still free on it (or the other way round);
* ``MostAllocated`` (bin-packing): prefer nodes whose GPUs end up most used, keeping whole
  nodes free for large jobs;
* ``LeastAllocated``: spread, prefer the emptiest node.

Pods without a GPU request are scored on CPU instead. Scores lie in 0..100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flotilla.scheduler.framework import MAX_SCORE
from flotilla.scheduler.snapshot import MILLI_PER_GPU, NodeInfo
from flotilla.scheduler.workload import PodShape

NAME = "GPUAllocation"
MOST_ALLOCATED = "MostAllocated"
LEAST_ALLOCATED = "LeastAllocated"
BALANCED = "Balanced"
STRATEGIES = (MOST_ALLOCATED, LEAST_ALLOCATED, BALANCED)


def _fraction_used_after(total: int, free: int, request: int) -> float:
    if total <= 0:
        return 1.0
    return min(max((total - free + request) / total, 0.0), 1.0)


class GPUAllocationPlugin:
    name = NAME
    node_resources_only = True
    """The score reads only the node's resources (see ``NodeScorePlugin``)."""

    def __init__(self, strategy: str = BALANCED) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown GPU scoring strategy {strategy!r}")
        self.strategy = strategy

    def node_score(
        self, shape: PodShape, node: NodeInfo, free: Mapping[str, int], devices: Sequence[int]
    ) -> float:
        cpu_req = dict(shape.other).get("cpu", 0)
        cpu = _fraction_used_after(node.allocatable.get("cpu", 0), free.get("cpu", 0), cpu_req)
        demand = shape.gpu_demand_milli
        gpu = _fraction_used_after(len(devices) * MILLI_PER_GPU, sum(devices), demand) if demand else cpu
        if self.strategy == MOST_ALLOCATED:
            return MAX_SCORE * gpu
        if self.strategy == LEAST_ALLOCATED:
            return MAX_SCORE * (1.0 - gpu)
        return MAX_SCORE * (1.0 - abs(gpu - cpu))


def new(strategy: str = BALANCED) -> GPUAllocationPlugin:
    return GPUAllocationPlugin(strategy)
