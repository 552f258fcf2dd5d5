"""The flotilla.dev/v1alpha1 API: pydantic models, the single source of the CRDs.

Parse a Kubernetes object (a dict or a Kopf body) with ``Kind.parse(body)`` or
``Kind.model_validate(body)``; dump with ``obj.to_json()``. The CRD YAML in crds/ and the Helm
chart is generated from these models by ``python -m flotilla.api.gen``.
"""

from flotilla.api.base import GROUP_VERSION, CrdInfo, KubeModel, KubeResource, ObjectMeta, PrinterColumn, Rule
from flotilla.api.binding import (
    FULLY_APPLIED,
    SCHEDULED,
    ResourceBinding,
    ResourceBindingSpec,
    ResourceBindingStatus,
)
from flotilla.api.cluster import GPU_RESOURCE, READY, MemberCluster, MemberClusterSpec, MemberClusterStatus
from flotilla.api.compat import (
    IGNORED_KARMADA_FIELDS,
    IGNORED_PODGROUP_FIELDS,
    PODGROUP_FIELDS,
    ignored_field_message,
    ignored_fields_in,
)
from flotilla.api.conditions import Condition, find_condition, is_true, new_condition, set_condition
from flotilla.api.customization import InterpreterCustomization, InterpreterCustomizationSpec
from flotilla.api.podgroup import (
    GROUP_NAME_ANNOTATION,
    POD_GROUP_LABEL,
    PodGroup,
    PodGroupSpec,
    PodGroupStatus,
)
from flotilla.api.policy import ClusterPropagationPolicy, Placement, PropagationPolicy, PropagationSpec
from flotilla.api.quota import (
    FederatedResourceQuota,
    FederatedResourceQuotaSpec,
    FederatedResourceQuotaStatus,
)

KINDS: dict[str, type[KubeResource]] = {
    cls.crd.kind: cls
    for cls in (
        PropagationPolicy,
        ClusterPropagationPolicy,
        FederatedResourceQuota,
        PodGroup,
        MemberCluster,
        ResourceBinding,
        InterpreterCustomization,
    )
}
"""Kind name -> model class, for every kind of the group."""

__all__ = [
    "FULLY_APPLIED",
    "GPU_RESOURCE",
    "GROUP_NAME_ANNOTATION",
    "GROUP_VERSION",
    "IGNORED_KARMADA_FIELDS",
    "IGNORED_PODGROUP_FIELDS",
    "KINDS",
    "PODGROUP_FIELDS",
    "POD_GROUP_LABEL",
    "READY",
    "SCHEDULED",
    "ClusterPropagationPolicy",
    "Condition",
    "CrdInfo",
    "FederatedResourceQuota",
    "FederatedResourceQuotaSpec",
    "FederatedResourceQuotaStatus",
    "InterpreterCustomization",
    "InterpreterCustomizationSpec",
    "KubeModel",
    "KubeResource",
    "MemberCluster",
    "MemberClusterSpec",
    "MemberClusterStatus",
    "ObjectMeta",
    "Placement",
    "PodGroup",
    "PodGroupSpec",
    "PodGroupStatus",
    "PrinterColumn",
    "PropagationPolicy",
    "PropagationSpec",
    "ResourceBinding",
    "ResourceBindingSpec",
    "ResourceBindingStatus",
    "Rule",
    "find_condition",
    "ignored_field_message",
    "ignored_fields_in",
    "is_true",
    "new_condition",
    "set_condition",
]
