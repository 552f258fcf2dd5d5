"""Label and annotation keys the interpreters read and write."""

from __future__ import annotations

import hashlib

from flotilla import API_GROUP

__all__ = [
    "ANNOTATION_BINDING_NAME",
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
    "LABEL_POD_BINDING",
    "MANAGED_BY_VALUE",
    "MEMBER_VISIBLE_ANNOTATIONS",
    "label_value",
    "pod_owner",
]

FLOTILLA_PREFIX = f"{API_GROUP}/"

LABEL_MANAGED_BY = f"{API_GROUP}/managed-by"
"""Ownership label on every member copy; its value is :data:`MANAGED_BY_VALUE`."""
MANAGED_BY_VALUE = "flotilla"
LABEL_BINDING_NAMESPACE = f"{API_GROUP}/binding-namespace"
LABEL_BINDING_NAME = f"{API_GROUP}/binding-name"
"""The binding's name, as a label value (:func:`label_value`: names over 63 characters are shortened)."""
ANNOTATION_BINDING_NAME = f"{API_GROUP}/binding-name"
"""On a copy whose binding name was shortened for its label: the full name."""
LABEL_POD_BINDING = f"{API_GROUP}/binding"
"""On the pod templates of member copies: the binding's name (:func:`label_value`), so the
inventory knows which workload a member's pod belongs to (the pod's namespace is the binding's)."""
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


LABEL_VALUE_MAX = 63


def label_value(text: str) -> str:
    """``text`` if it is a valid label value's length, else its first 52 characters, ``-`` and a
    10-character hash (object names may be 253 characters long; label values only 63)."""
    if len(text) <= LABEL_VALUE_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[:52]}-{digest}"


def pod_owner(namespace: str, binding_name: str) -> str:
    """The owner token of a binding's pods: what the inventory builds from :data:`LABEL_POD_BINDING`."""
    return f"{namespace}/{label_value(binding_name)}"
