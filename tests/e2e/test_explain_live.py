"""``kubectl flotilla explain -f`` against the rig: members' nodes and pods read through their
kubeconfig Secrets, decided with the shipped profile, nothing written; the same decision the
operator then makes when the manifest is applied."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from operator_support import (
    GROUP_VERSION,
    WAIT,
    binding,
    condition_of,
    delete_and_wait_gone,
    fleet_operator,
    gpu_deployment,
)

from flotilla import kube
from flotilla.rig.cluster import ClusterHandle


@pytest.fixture(scope="module")
def operator(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> Iterator[KopfRunner]:
    with fleet_operator(hub, members) as runner:
        yield runner


def kubectl_flotilla(hub: ClusterHandle, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("kubectl-flotilla")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flotilla.cli"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "KUBECONFIG": str(hub.kubeconfig)}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)


def test_explain_says_where_a_manifest_would_go_before_it_is_applied(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle], tmp_path: Path
) -> None:
    ns = f"explain-{uuid.uuid4().hex[:5]}"
    kube.ensure_namespace(hub.api_client(), ns)
    big = gpu_deployment(ns, "h100-only", replicas=1, gpus=8)
    policy: dict[str, Any] = {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": "gpus", "namespace": ns},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "placement": {"clusterAffinity": {"clusterNames": ["a", "b", "c"]}},
        },
    }
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all([policy, big]))

    result = kubectl_flotilla(hub, "explain", "-f", str(manifest), "-n", ns, "-o", "json")
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)
    assert report["workload"] == f"{ns}/Deployment/h100-only"
    assert report["policy"] == f"PropagationPolicy/{ns}/gpus"
    # Only a has nodes with 8 GPUs (b: 4 per node, c: 1 per node).
    assert report["schedulable"] and report["decision"] == "would be scheduled to a:1", report
    clusters = {c["cluster"]: c for c in report["explanation"]["clusters"]}
    assert clusters["a"]["selected"]
    assert not clusters["b"]["feasible"] and not clusters["c"]["feasible"]
    assert kube.get(hub.api_client(), "apps/v1", "Deployment", "h100-only", ns) is None  # nothing applied

    text = kubectl_flotilla(hub, "explain", "-f", str(manifest), "-n", ns)
    assert text.returncode == 0, text.stderr
    assert "Decision:   would be scheduled to a:1" in text.stdout
    assert any(line.lstrip().startswith("c ") and "rejected by" in line for line in text.stdout.splitlines())

    # Applied, the operator decides the same.
    for doc in (policy, big):
        kube.apply(hub.api_client(), doc)

    def scheduled() -> dict[str, Any] | None:
        cond = condition_of(binding(hub, ns, "h100-only-deployment"), "Scheduled")
        return cond if cond and cond["status"] == "True" else None

    try:
        cond = kube.wait_for(scheduled, timeout=WAIT, what="the operator's decision")
        assert cond["message"].startswith("scheduled to a:1 ")
    finally:  # its 8 GPUs on a would be missing from every later test of the shared fleet
        delete_and_wait_gone(hub, members, big)


def test_explain_names_a_bad_manifest(hub: ClusterHandle, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("kind: Deployment\n")
    result = kubectl_flotilla(hub, "explain", "-f", str(manifest))
    assert result.returncode == 1
    assert result.stderr == f"flotilla: error: -f {manifest}: document 1: not a Kubernetes object " + (
        "(apiVersion and kind are required)\n"
    )
