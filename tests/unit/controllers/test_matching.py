from __future__ import annotations

from typing import Any

import pytest

from flotilla.controllers.matching import PolicyRef, best_policy, policy_from_body, selector_matches

DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "prod", "labels": {"tier": "gpu", "team": "ml"}},
}


def pp(name: str, selectors: list[dict[str, Any]], priority: int = 0, ns: str = "prod") -> PolicyRef:
    return policy_from_body(
        {
            "kind": "PropagationPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"resourceSelectors": selectors, "priority": priority},
        }
    )


def cpp(name: str, selectors: list[dict[str, Any]], priority: int = 0) -> PolicyRef:
    return policy_from_body(
        {
            "kind": "ClusterPropagationPolicy",
            "metadata": {"name": name},
            "spec": {"resourceSelectors": selectors},
        }
        | {"spec": {"resourceSelectors": selectors, "priority": priority}}
    )


ALL = {"apiVersion": "apps/v1", "kind": "Deployment"}
BY_NAME = {**ALL, "name": "web"}
BY_LABEL = {**ALL, "labelSelector": {"matchLabels": {"tier": "gpu"}}}


@pytest.mark.parametrize(
    ("policies", "winner"),
    [
        ([pp("all", [ALL]), pp("named", [BY_NAME])], "named"),
        ([pp("label", [BY_LABEL]), pp("all", [ALL], priority=100)], "label"),
        ([pp("named", [BY_NAME]), pp("label", [BY_LABEL], priority=100)], "named"),
        ([pp("low", [ALL], priority=1), pp("high", [ALL], priority=5)], "high"),
        ([pp("b", [ALL]), pp("a", [ALL])], "a"),
        ([cpp("cluster-named", [BY_NAME], priority=999), pp("ns-all", [ALL])], "ns-all"),
        ([cpp("c-all", [ALL]), cpp("c-named", [BY_NAME])], "c-named"),
        ([pp("other-ns", [BY_NAME], ns="dev")], None),
        ([pp("wrong-kind", [{"apiVersion": "batch/v1", "kind": "Job"}])], None),
        ([pp("wrong-name", [{**ALL, "name": "api"}])], None),
        ([pp("no-label", [{**ALL, "labelSelector": {"matchLabels": {"tier": "cpu"}}}])], None),
        ([pp("sel-ns", [{**ALL, "namespace": "dev"}])], None),
    ],
)
def test_precedence(policies: list[PolicyRef], winner: str | None) -> None:
    chosen = best_policy(policies, DEPLOY)
    assert (chosen.name if chosen else None) == winner


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        ({"matchLabels": {"tier": "gpu"}}, True),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml", "x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ml"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        (
            {
                "matchLabels": {"tier": "gpu"},
                "matchExpressions": [{"key": "team", "operator": "In", "values": ["x"]}],
            },
            False,
        ),
    ],
)
def test_label_selector(selector: dict[str, Any], expected: bool) -> None:
    assert selector_matches(selector, DEPLOY["metadata"]["labels"]) is expected
