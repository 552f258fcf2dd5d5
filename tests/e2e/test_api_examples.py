"""Every manifest in examples/ is accepted by a real hub API server with our CRDs installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_e2e_support import OUR_CRDS, REPO, load_all

from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.demo import thirdparty_crds_for

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def hub_api(hub: ClusterHandle) -> Iterator[Any]:
    """The hub's client, with our CRDs and the third-party CRDs the examples use installed."""
    api = hub.api_client()
    docs = [d for path in EXAMPLES for d in load_all(path)]
    kube.install_crds(api, [*OUR_CRDS, *thirdparty_crds_for(docs)], timeout=120)
    yield api
    api.close()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_accepted(hub_api: Any, path: Path) -> None:
    docs = load_all(path)
    applied: list[dict[str, Any]] = []
    try:
        for doc in docs:
            stored = kube.apply(hub_api, doc)
            applied.append(doc)
            assert stored["kind"] == doc["kind"]
            assert stored["metadata"]["name"] == doc["metadata"]["name"]
            if doc["apiVersion"] == "flotilla.dev/v1alpha1":
                # Nothing was pruned: every field of the example is in the schema.
                for key, value in doc["spec"].items():
                    assert key in stored["spec"], f"{path.name}: spec.{key} was pruned"
                    if not isinstance(value, dict | list):
                        assert stored["spec"][key] == value, f"{path.name}: spec.{key} changed"
    finally:
        for doc in reversed(applied):
            if doc["kind"] != "Namespace":
                kube.delete(hub_api, doc)
