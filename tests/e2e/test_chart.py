"""The Helm chart: lint, a matrix of renders, and the rendered objects accepted by a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from flotilla import kube
from flotilla.rig.binaries import helm_path
from flotilla.rig.cluster import ClusterHandle

CHART = Path(__file__).resolve().parents[2] / "charts" / "flotilla"
MATRIX = [
    [],
    ["--set", "metrics.serviceMonitor.enabled=true", "--set", "replicaCount=2"],
    ["--set", "crds.install=false", "--set", "serviceAccount.create=false"],
    ["--set", "crds.keep=false", "--set", "metrics.enabled=false", "--set", "operator.logLevel=debug"],
]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path()), *args], capture_output=True, text=True, check=False)


def render(extra: list[str]) -> list[dict[str, object]]:
    result = helm(
        "template", "fl", str(CHART), "--namespace", "flotilla-system", "--kube-version", "1.34.4", *extra
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_lint_strict() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_schema_rejects_bad_values() -> None:
    result = helm("template", "fl", str(CHART), "--kube-version", "1.34.4", "--set", "replicaCount=-1")
    assert result.returncode != 0
    assert "replicaCount" in result.stderr


@pytest.mark.parametrize("extra", MATRIX, ids=["default", "monitor-ha", "no-crds-no-sa", "no-metrics"])
def test_rendered_objects_are_accepted_by_the_api_server(hub: ClusterHandle, extra: list[str]) -> None:
    docs = render(extra)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert ("CustomResourceDefinition" in kinds) == ("crds.install=false" not in extra)
    api = hub.api_client()
    kube.ensure_namespace(api, "flotilla-system")
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            continue  # no Prometheus operator on the rig's hub
        kube.apply(api, doc, field_manager="helm-dry-run", dry_run=True)
