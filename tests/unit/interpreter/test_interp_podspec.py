"""Pod request arithmetic (kube-scheduler semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.interpreter.podspec import pod_requests, required_node_selector_terms

MiB = 1024**2


def _c(
    requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": "c", "resources": resources, **extra}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": []}, {}),
        (
            {"containers": [_c({"cpu": "250m"}), _c({"cpu": "1", "memory": "64Mi"})]},
            {"cpu": 1250, "memory": 64 * MiB},
        ),
        # limits stand in for absent requests, per resource
        (
            {"containers": [_c({"cpu": "1"}, {"cpu": "2", "memory": "1Gi"})]},
            {"cpu": 1000, "memory": 1024 * MiB},
        ),
        # an init container bigger than the app sum raises that resource only
        (
            {
                "initContainers": [_c({"cpu": "4", "memory": "1Mi"})],
                "containers": [_c({"cpu": "1", "memory": "8Mi"})],
            },
            {"cpu": 4000, "memory": 8 * MiB},
        ),
        # sidecars (restartPolicy Always) add to the app sum and to later init containers
        (
            {
                "initContainers": [
                    _c({"cpu": "1"}, restartPolicy="Always"),
                    _c({"cpu": "3"}),
                ],
                "containers": [_c({"cpu": "1"})],
            },
            {"cpu": 4000},
        ),
        # overhead is added; pod-level resources replace the container sum for cpu/memory
        ({"containers": [_c({"cpu": "1"})], "overhead": {"cpu": "100m"}}, {"cpu": 1100}),
        (
            {"containers": [_c({"cpu": "1", "nvidia.com/gpu": "1"})], "resources": {"limits": {"cpu": "3"}}},
            {"cpu": 3000, "nvidia.com/gpu": 1},
        ),
        (
            {"containers": [_c({"flotilla.dev/gpu-milli": "500"}), _c({"flotilla.dev/gpu-milli": "250"})]},
            {"flotilla.dev/gpu-milli": 750},
        ),
        ({"containers": [_c({"cpu": "0"})]}, {}),
    ],
)
def test_pod_requests(spec: dict[str, Any], expected: dict[str, int]) -> None:
    assert pod_requests(spec) == expected


def test_bad_quantity_raises() -> None:
    with pytest.raises(ValueError):
        pod_requests({"containers": [_c({"cpu": "lots"})]})


def test_required_terms_only() -> None:
    term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": term}],
            }
        }
    }
    got = required_node_selector_terms(spec)
    assert got == [term]
    got[0]["matchExpressions"].clear()
    assert term["matchExpressions"], "a copy is returned"
    assert required_node_selector_terms({}) == []
