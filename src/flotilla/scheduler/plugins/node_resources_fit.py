"""NodeResourcesFit: every requested resource must fit ONE node's free amount.

Covers cpu (millicores), memory (bytes), pods, ``nvidia.com/gpu`` (whole, fully free devices),
``flotilla.dev/gpu-milli`` (a share of one device) and any extended resource (a resource the
node does not list counts as zero). Capacity is a count, so the scheduler can sum it per cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flotilla.scheduler.nodefit import insufficient_resources, pod_capacity
from flotilla.scheduler.workload import PodShape

NAME = "NodeResourcesFit"


class NodeResourcesFitPlugin:
    name = NAME
    additive_capacity = True
    """Binding one pod of a shape on a node lowers the node's capacity for it by exactly one."""

    def node_capacity(self, shape: PodShape, free: Mapping[str, int], devices: Sequence[int]) -> int:
        return pod_capacity(shape, free, devices)

    def node_insufficient(
        self, shape: PodShape, free: Mapping[str, int], devices: Sequence[int]
    ) -> list[str]:
        return insufficient_resources(shape, free, devices)


def new() -> NodeResourcesFitPlugin:
    return NodeResourcesFitPlugin()
