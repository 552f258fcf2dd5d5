"""Golden tests: each realistic manifest's interpretation is compared with ``golden/<name>.yaml``.

Regenerate after an intended change with ``FLOTILLA_UPDATE_GOLDEN=1 pytest tests/unit/interpreter``
and review the diff. The manifests of CRD kinds are also checked field by field against the
upstream CRD schemas in ``/work/shared/thirdparty-crds`` (skipped when that folder is absent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MANIFESTS, load_manifest, merge_patch

from flotilla.interpreter import Interpreter, InterpreterRegistry, dependencies, prepare_for_member

GOLDEN = Path(__file__).parent / "golden"
NAMES = sorted(p.stem for p in MANIFESTS.glob("*.yaml"))
CRDS = Path(os.environ.get("FLOTILLA_THIRDPARTY_CRDS", "/work/shared/thirdparty-crds"))
CRD_FILES = {
    "JobSet": "jobset.x-k8s.io_jobsets.yaml",
    "PyTorchJob": "kubeflow.org_pytorchjobs.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
    "LeaderWorkerSet": "leaderworkerset.x-k8s.io_leaderworkersets.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
}


def check_golden(file_name: str, got: Any) -> None:
    """Compare with ``golden/<file_name>`` (rewrite it first when FLOTILLA_UPDATE_GOLDEN is set)."""
    path = GOLDEN / file_name
    if os.environ.get("FLOTILLA_UPDATE_GOLDEN"):
        path.write_text(yaml.safe_dump(got, sort_keys=False))
    assert got == yaml.safe_load(path.read_text())


def summarize(interpreter: Interpreter, obj: dict[str, Any]) -> dict[str, Any]:
    """Everything an interpreter says about an object, minus the echoed pod templates."""
    return {
        "divisible": interpreter.divisible,
        "replicas": interpreter.replicas(obj),
        "implicit_gang": interpreter.implicit_gang(obj),
        "components": [
            {
                "name": c.name,
                "replicas": c.replicas,
                "per_replica": c.per_replica,
                "requests": dict(sorted(c.requests.items())),
                "node_selector": c.node_selector,
                "node_affinity": c.node_affinity,
                "tolerations": c.tolerations,
            }
            for c in interpreter.components(obj)
        ],
        "hold_back_patch": interpreter.hold_back_patch(obj),
        "dependencies": [list(d) for d in dependencies(obj, interpreter)],
    }


@pytest.mark.parametrize("name", NAMES)
def test_golden(name: str, registry: InterpreterRegistry) -> None:
    obj = load_manifest(name)
    interpreter = registry.get(obj["apiVersion"], obj["kind"])
    assert interpreter is not None
    check_golden(f"{name}.yaml", summarize(interpreter, obj))


@pytest.mark.parametrize("name", NAMES)
def test_golden_member_copy(name: str, registry: InterpreterRegistry) -> None:
    """The copy pushed to a member of a hub with controllers: held back there, released here,
    a third of the replicas when divisible."""
    obj = load_manifest(name)
    interpreter = registry.get(obj["apiVersion"], obj["kind"])
    assert interpreter is not None
    held = merge_patch(obj, interpreter.hold_back_patch(obj) or {})
    total = interpreter.replicas(obj)
    replicas = None if total is None else max(total // 3, 1)
    got = prepare_for_member(
        held, interpreter, replicas, "member-a", (obj["metadata"]["namespace"], f"{name}-binding")
    )
    check_golden(f"{name}.member.yaml", got)


def unknown_fields(node: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Paths in ``node`` that the OpenAPI ``schema`` does not declare (free-form objects accept anything)."""
    if isinstance(node, list):
        items = schema.get("items", {})
        return [e for i, item in enumerate(node) for e in unknown_fields(item, items, f"{where}[{i}]")]
    if not isinstance(node, dict):
        return []
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    out: list[str] = []
    for key, value in node.items():
        if props is not None and key in props:
            out += unknown_fields(value, props[key], f"{where}.{key}")
        elif isinstance(extra, dict):
            out += unknown_fields(value, extra, f"{where}.{key}")
        elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.append(f"{where}.{key}")
    return out


def test_unknown_fields_flags_a_typo() -> None:
    schema = {"properties": {"spec": {"properties": {"replicas": {"type": "integer"}}}}}
    assert unknown_fields({"spec": {"replicas": 1}}, schema) == []
    assert unknown_fields({"spec": {"replica": 1}}, schema) == [".spec.replica"]


@pytest.mark.parametrize("name", [n for n in NAMES if load_manifest(n)["kind"] in CRD_FILES])
def test_manifest_matches_upstream_crd(name: str) -> None:
    obj = load_manifest(name)
    crd_file = CRDS / CRD_FILES[obj["kind"]]
    if not crd_file.is_file():
        pytest.skip(f"{crd_file} is not available")
    with crd_file.open() as handle:
        crd = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = obj["apiVersion"].rsplit("/", 1)[1]
    (schema,) = [v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version]
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    assert unknown_fields(body, schema) == []
