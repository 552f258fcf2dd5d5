"""Label and annotation keys the interpreters read and write."""

from __future__ import annotations

from flotilla import API_GROUP

__all__ = [
    "ANNOTATION_CLUSTER",
    "ANNOTATION_RETAIN_REPLICAS",
    "ANNOTATION_USER_SUSPENDED",
    "FLOTILLA_PREFIX",
    "HUB_HOLD_GATE",
    "HUB_MANAGER",
    "HUB_ONLY_ANNOTATIONS",
    "LABEL_BINDING_NAME",
    "LABEL_BINDING_NAMESPACE",
    "LABEL_MANAGED_BY",
    "MANAGED_BY_VALUE",
    "MEMBER_VISIBLE_ANNOTATIONS",
]

FLOTILLA_PREFIX = f"{API_GROUP}/"

LABEL_MANAGED_BY = f"{API_GROUP}/managed-by"
"""Ownership label on every member copy; its value is :data:`MANAGED_BY_VALUE`."""
MANAGED_BY_VALUE = "flotilla"
LABEL_BINDING_NAMESPACE = f"{API_GROUP}/binding-namespace"
LABEL_BINDING_NAME = f"{API_GROUP}/binding-name"
ANNOTATION_CLUSTER = f"{API_GROUP}/cluster"
"""The member cluster a copy was prepared for."""

ANNOTATION_USER_SUSPENDED = f"{API_GROUP}/user-suspended"
"""On a held-back hub template: ``"true"`` when the *user* suspended it, ``"false"`` when Flotilla did."""

HUB_MANAGER = f"{API_GROUP}/multicluster"
"""``spec.managedBy`` of a Job or JobSet Flotilla propagates, set on the hub when it is created
(as MultiKueue sets ``kueue.x-k8s.io/multikueue``): the hub's own controller leaves it alone.
Member copies go without it."""

HUB_HOLD_GATE = f"{API_GROUP}/hub-hold"
"""The scheduling gate on pods the hub's controllers create for a workload Flotilla propagates."""

ANNOTATION_RETAIN_REPLICAS = f"{API_GROUP}/retain-replicas"
"""``"true"`` on a template: the member's replica count is owned there (e.g. by an HPA) and is retained."""

HUB_ONLY_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
    }
)
"""Annotations written on the hub by kubectl or hub controllers; never copied to members.

Every ``flotilla.dev/`` label and annotation is hub-only too, except :data:`MEMBER_VISIBLE_ANNOTATIONS`.
"""

MEMBER_VISIBLE_ANNOTATIONS = frozenset({ANNOTATION_RETAIN_REPLICAS})
"""Flotilla annotations that do travel to member copies (``retain`` reads them on the desired object)."""
