"""NodeTaintToleration: node taints (NoSchedule, NoExecute) vs the pod template's tolerations."""

from __future__ import annotations

from flotilla.scheduler.snapshot import NodeInfo, untolerated
from flotilla.scheduler.workload import PodShape

NAME = "NodeTaintToleration"
_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


class NodeTaintTolerationPlugin:
    name = NAME

    def reads_node_metadata_only(self, shape: PodShape) -> bool:
        return True

    def node_label_keys(self, shape: PodShape) -> frozenset[str]:
        return frozenset()  # taints only

    def node_filter(self, shape: PodShape, node: NodeInfo) -> str | None:
        if not node.taints:
            return None
        bad = untolerated(node.taints, shape.tolerations, _EFFECTS)
        return f"no node without an untolerated taint {{{bad[0]}}}" if bad else None


def new() -> NodeTaintTolerationPlugin:
    return NodeTaintTolerationPlugin()
