"""Our CRDs accept every field of the upstream CRDs, and the compatibility tables cover all of them.

Reads the upstream CRDs from shared/thirdparty-crds (``$FLOTILLA_SHARED_DIR``, else ../shared).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from flotilla.api import compat
from flotilla.api.base import KubeResource
from flotilla.api.gen import openapi_schema
from flotilla.api.paths import thirdparty_crds_dir
from flotilla.api.podgroup import PodGroup
from flotilla.api.policy import ClusterPropagationPolicy, PropagationPolicy
from flotilla.api.quota import FederatedResourceQuota
from flotilla.api.schema import field_paths

CRDS = thirdparty_crds_dir()
pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=f"upstream CRDs not found at {CRDS}")

CASES: list[tuple[str, type[KubeResource], tuple[compat.FieldSupport, ...]]] = [
    ("policy.karmada.io_propagationpolicies.yaml", PropagationPolicy, compat.KARMADA_POLICY_FIELDS),
    (
        "policy.karmada.io_clusterpropagationpolicies.yaml",
        ClusterPropagationPolicy,
        compat.KARMADA_POLICY_FIELDS,
    ),
    ("policy.karmada.io_federatedresourcequotas.yaml", FederatedResourceQuota, compat.KARMADA_QUOTA_FIELDS),
    ("scheduling.volcano.sh_podgroups.yaml", PodGroup, compat.VOLCANO_PODGROUP_FIELDS),
    ("scheduling.x-k8s.io_podgroups.yaml", PodGroup, compat.SCHEDULER_PLUGINS_PODGROUP_FIELDS),
]
IDS = [c[0].split("_")[0] + "/" + c[1].crd.kind for c in CASES]


def _upstream(filename: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / filename).read_text())
    (version,) = [v for v in doc["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.strip(".").split("."):
        key, _, rest = part.partition("[")
        name = key.split("{")[0]
        node = node["properties"][name]
        node = node["items"] if rest else node
        if part.endswith("{}"):
            node = node["additionalProperties"]
    return node


def _leaves(schema: dict[str, Any]) -> list[str]:
    paths = [p for p in field_paths(schema) if p.startswith((".spec.", ".status."))]
    return [p for p in paths if not any(q.startswith(p + ".") or q.startswith(p + "[]") for q in paths)]


@pytest.mark.parametrize(("filename", "cls", "table"), CASES, ids=IDS)
def test_every_upstream_spec_field_is_accepted_with_a_compatible_schema(
    filename: str, cls: type[KubeResource], table: tuple[compat.FieldSupport, ...]
) -> None:
    upstream = _upstream(filename)
    ours = openapi_schema(cls)
    our_paths = set(field_paths(ours))
    for path in field_paths(upstream):
        if not path.startswith(".spec"):
            continue
        assert path in our_paths, f"{cls.crd.kind}: upstream field {path} is missing"
        theirs, mine = _node(upstream, path), _node(ours, path)
        if theirs.get("x-kubernetes-int-or-string"):
            assert mine.get("x-kubernetes-int-or-string"), path
        else:
            assert mine.get("type") == theirs.get("type"), path
        if "enum" in theirs:
            assert set(theirs["enum"]) <= set(mine.get("enum", theirs["enum"])), path
        if "default" in theirs and path != ".spec.schedulerName" and path != ".spec.queue":
            assert mine.get("default") == theirs["default"], path


@pytest.mark.parametrize(("filename", "cls", "table"), CASES, ids=IDS)
def test_compatibility_table_covers_every_upstream_field(
    filename: str, cls: type[KubeResource], table: tuple[compat.FieldSupport, ...]
) -> None:
    upstream_paths = set(field_paths(_upstream(filename)))
    documented = ["." + f.path for f in table]
    for leaf in _leaves(_upstream(filename)):
        assert any(leaf == d or leaf.startswith((d + ".", d + "[]", d + "{}")) for d in documented), (
            f"{filename}: {leaf} is not in the compatibility table"
        )
    our_paths = set(field_paths(openapi_schema(cls)))
    for path in documented:
        assert path in upstream_paths, f"table entry {path} is not an upstream field"
        assert path in our_paths, f"table entry {path} is not in our {cls.crd.kind} schema"


def test_flotilla_only_podgroup_fields_exist() -> None:
    ours = set(field_paths(openapi_schema(PodGroup)))
    for field in compat.FLOTILLA_PODGROUP_FIELDS:
        assert "." + field.path in ours


def test_ignored_lists_come_from_the_tables() -> None:
    assert "spec.propagateDeps" in compat.IGNORED_KARMADA_FIELDS
    assert "spec.placement.clusterAffinity.labelSelector" not in compat.IGNORED_KARMADA_FIELDS
    assert set(compat.IGNORED_PODGROUP_FIELDS) == {
        "spec.queue",
        "spec.networkTopology",
        "spec.subGroupPolicy",
        "spec.priorityClassName",
    }


def test_docs_list_every_table_row() -> None:
    from flotilla.api.gen import COMPAT_DOC
    from flotilla.api.paths import repo_root

    text = (repo_root() / COMPAT_DOC).read_text()
    for _, _, table in CASES:
        for field in table:
            assert f"| `{field.path}` | {field.support.value} |" in text
