"""Label and node-affinity matching with Kubernetes semantics (pure functions over plain dicts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["match_expression", "match_labels", "match_node_selector_terms"]


def match_expression(labels: Mapping[str, str], key: str, operator: str, values: Sequence[str]) -> bool:
    """One ``matchExpressions`` requirement: In, NotIn, Exists, DoesNotExist, Gt, Lt.

    Gt/Lt compare integers (as nodeAffinity does); a missing or non-integer label never matches.
    """
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    raise ValueError(f"unknown selector operator {operator!r}")


def match_labels(
    labels: Mapping[str, str],
    match: Mapping[str, str] | None = None,
    expressions: Sequence[Mapping[str, Any]] = (),
) -> bool:
    """A LabelSelector (``matchLabels`` AND every ``matchExpressions`` entry)."""
    if match and any(labels.get(k) != v for k, v in match.items()):
        return False
    return all(
        match_expression(labels, str(e["key"]), str(e["operator"]), tuple(e.get("values") or ()))
        for e in expressions
    )


def match_node_selector_terms(
    labels: Mapping[str, str], node_name: str, terms: Sequence[Mapping[str, Any]]
) -> bool:
    """Required nodeAffinity: terms are ORed; inside a term every expression must hold.

    ``matchFields`` supports ``metadata.name``. An empty term list matches every node;
    a term with no requirements matches nothing (Kubernetes semantics).
    """
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchExpressions") or ()
        fields = term.get("matchFields") or ()
        if not exprs and not fields:
            continue
        if all(
            match_expression(labels, str(e["key"]), str(e["operator"]), tuple(e.get("values") or ()))
            for e in exprs
        ) and all(
            match_expression(
                {"metadata.name": node_name}, str(f["key"]), str(f["operator"]), tuple(f.get("values") or ())
            )
            for f in fields
        ):
            return True
    return False
