"""The Helm chart: lint, a matrix of renders, and the rendered objects accepted by a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

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
    ["--set", "leaderElection.enabled=false"],
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


@pytest.mark.parametrize(
    "extra", MATRIX, ids=["default", "monitor-ha", "no-crds-no-sa", "no-metrics", "no-leader-election"]
)
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


@pytest.mark.parametrize(
    ("extra", "elect"),
    [
        ([], "true"),
        (["--set", "leaderElection.enabled=false"], "false"),
        (["--set", "leaderElection.enabled=false", "--set", "replicaCount=2"], "true"),
    ],
    ids=["default", "disabled", "disabled-but-two-replicas"],
)
def test_leader_election_through_a_lease(extra: list[str], elect: str) -> None:
    docs: list[dict[str, Any]] = render(extra)
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert not any(str(arg).startswith("--peering") for arg in container["args"])
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["FLOTILLA_LEADER_ELECT"] == elect
    assert env["FLOTILLA_LEADER_ELECTION_NAMESPACE"] == "flotilla-system"
    assert env["FLOTILLA_LEADER_ELECTION_NAME"] == "flotilla-operator"
    assert env["FLOTILLA_LEASE_DURATION"] == "15"
    assert env["FLOTILLA_RENEW_DEADLINE"] == "10"
    assert env["FLOTILLA_RETRY_PERIOD"] == "2"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for role in (d for d in docs if d["kind"] == "ClusterRole"):
        assert all("kopf.dev" not in rule["apiGroups"] for rule in role["rules"])
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    if elect == "false":
        assert roles == [] and bindings == []
        return
    (role,) = roles
    (binding,) = bindings
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "flotilla-system"
    grants = {
        (verb, tuple(rule.get("resourceNames", ())))
        for rule in role["rules"]
        if rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]
        for verb in rule["verbs"]
    }
    assert grants == {("create", ()), ("get", ("flotilla-operator",)), ("update", ("flotilla-operator",))}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_leader_election_periods_must_nest() -> None:
    result = helm(
        "template",
        "fl",
        str(CHART),
        "--kube-version",
        "1.34.4",
        "--set",
        "leaderElection.renewDeadlineSeconds=20",
    )
    assert result.returncode != 0
    assert "leaseDurationSeconds > renewDeadlineSeconds > retryPeriodSeconds" in result.stderr
