"""NodeAffinity: the pod template's nodeSelector and required nodeAffinity, per node.

GPU model and memory constraints are ordinary node labels here: ``nvidia.com/gpu.product``
(``In``/``NotIn``/``Exists``) and ``nvidia.com/gpu.memory`` in MiB (``Gt``/``Lt``). When a
node fails only on those labels the reason says so, so a diagnosis reads
``cluster(s) had no node with the requested GPU model/memory``.
"""

from __future__ import annotations

from flotilla.scheduler.selectors import match_node_selector_terms
from flotilla.scheduler.snapshot import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL, NodeInfo
from flotilla.scheduler.workload import PodShape

NAME = "NodeAffinity"
GPU_REASON = "no node with the requested GPU model/memory"
REASON = "no node matching the pod's node selector/affinity"
_GPU_LABELS = frozenset({GPU_PRODUCT_LABEL, GPU_MEMORY_LABEL})


def _touches_gpu_labels(shape: PodShape) -> bool:
    if any(k in _GPU_LABELS for k, _ in shape.node_selector):
        return True
    return any(
        e.get("key") in _GPU_LABELS
        for term in shape.affinity_terms
        for e in term.get("matchExpressions") or ()
    )


class NodeAffinityPlugin:
    name = NAME

    def reads_node_metadata_only(self, shape: PodShape) -> bool:
        """Labels only, unless a term matches the node's name (``matchFields``)."""
        return not any(term.get("matchFields") for term in shape.affinity_terms)

    def node_label_keys(self, shape: PodShape) -> frozenset[str]:
        """The keys of the node selector and of the affinity's ``matchExpressions``."""
        keys = {k for k, _ in shape.node_selector}
        keys.update(
            str(e["key"]) for term in shape.affinity_terms for e in term.get("matchExpressions") or ()
        )
        return frozenset(keys)

    def node_filter(self, shape: PodShape, node: NodeInfo) -> str | None:
        labels = node.labels
        ok = all(labels.get(k) == v for k, v in shape.node_selector) and match_node_selector_terms(
            labels, node.name, shape.affinity_terms
        )
        if ok:
            return None
        return GPU_REASON if _touches_gpu_labels(shape) else REASON


def new() -> NodeAffinityPlugin:
    return NodeAffinityPlugin()
