"""Which propagation policy governs a workload template (pure; no I/O).

Precedence, as in Karmada:

1. a namespaced PropagationPolicy beats any ClusterPropagationPolicy;
2. within one kind, a selector naming the template explicitly (``name``) beats a
   ``labelSelector`` match, which beats a match on apiVersion/kind alone;
3. then the higher ``spec.priority``;
4. then the policy name in alphabetical order.

A resourceSelector matches when apiVersion and kind are equal, ``namespace`` (if set) equals
the template's, ``name`` (if set) equals the template's, and ``labelSelector`` (if set) selects
the template's labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MATCH_NONE, MATCH_ALL, MATCH_LABELS, MATCH_NAME = 0, 1, 2, 3


@dataclass(frozen=True)
class PolicyRef:
    kind: str  # PropagationPolicy | ClusterPropagationPolicy
    name: str
    namespace: str | None
    priority: int
    spec: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace or ''}/{self.name}"


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against a label map (an empty selector matches everything)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        op, key, values = expr.get("operator"), expr.get("key", ""), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def match_strength(selector: Mapping[str, Any], template: Mapping[str, Any]) -> int:
    """How specifically one resourceSelector matches a template (MATCH_NONE if it does not)."""
    meta = template.get("metadata", {})
    if selector.get("apiVersion") != template.get("apiVersion") or selector.get("kind") != template.get(
        "kind"
    ):
        return MATCH_NONE
    if selector.get("namespace") and selector["namespace"] != meta.get("namespace"):
        return MATCH_NONE
    if selector.get("name"):
        return MATCH_NAME if selector["name"] == meta.get("name") else MATCH_NONE
    if selector.get("labelSelector"):
        return (
            MATCH_LABELS
            if selector_matches(selector["labelSelector"], meta.get("labels") or {})
            else MATCH_NONE
        )
    return MATCH_ALL


def policy_strength(policy: PolicyRef, template: Mapping[str, Any]) -> int:
    if policy.namespace is not None and policy.namespace != template.get("metadata", {}).get("namespace"):
        return MATCH_NONE
    return max((match_strength(s, template) for s in policy.spec.get("resourceSelectors") or ()), default=0)


def best_policy(policies: Iterable[PolicyRef], template: Mapping[str, Any]) -> PolicyRef | None:
    """The policy that governs ``template``, or None."""
    best: tuple[int, int, int, str] | None = None
    chosen: PolicyRef | None = None
    for policy in policies:
        strength = policy_strength(policy, template)
        if strength == MATCH_NONE:
            continue
        namespaced = 1 if policy.kind == "PropagationPolicy" else 0
        # Sort key: higher is better for the first three; the name breaks ties alphabetically.
        rank = (namespaced, strength, policy.priority, policy.name)
        if best is None or rank[:3] > best[:3] or (rank[:3] == best[:3] and rank[3] < best[3]):
            best, chosen = rank, policy
    return chosen


def policy_from_body(body: Mapping[str, Any]) -> PolicyRef:
    meta = body.get("metadata", {})
    spec = body.get("spec") or {}
    kind = str(body.get("kind", "PropagationPolicy"))
    return PolicyRef(
        kind=kind,
        name=str(meta.get("name")),
        namespace=meta.get("namespace") if kind == "PropagationPolicy" else None,
        priority=int(spec.get("priority") or 0),
        spec=spec,
    )
