"""The Helm chart: lint, a matrix of renders, and the rendered objects accepted by a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla import kube
from flotilla.admission.settings import WebhookSettings
from flotilla.controllers.failover import FailoverSettings
from flotilla.controllers.profile import learning_from_env
from flotilla.rig.binaries import helm_path
from flotilla.rig.cluster import ClusterHandle
from flotilla.scheduler.plugins.fragmentation import LearningSettings

CHART = Path(__file__).resolve().parents[2] / "charts" / "flotilla"
MATRIX = [
    [],
    ["--set", "metrics.serviceMonitor.enabled=true", "--set", "replicaCount=2"],
    ["--set", "crds.install=false", "--set", "serviceAccount.create=false"],
    ["--set", "crds.keep=false", "--set", "metrics.enabled=false", "--set", "operator.logLevel=debug"],
    ["--set", "leaderElection.enabled=false"],
    ["--set", "webhook.certManager.enabled=true"],
    ["--set", "webhook.enabled=false"],
    [
        "--set",
        "rbac.readWorkloadSecrets=true",
        "--set",
        "webhook.hubHold=false",
        "--set",
        "operator.holdBack=true",
    ],
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
    "extra",
    MATRIX,
    ids=[
        "default",
        "monitor-ha",
        "no-crds-no-sa",
        "no-metrics",
        "no-leader-election",
        "webhook-cert-manager",
        "no-webhook",
        "workload-secrets-no-hub-hold",
    ],
)
def test_rendered_objects_are_accepted_by_the_api_server(hub: ClusterHandle, extra: list[str]) -> None:
    docs = render(extra)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "ClusterRoleBinding"} <= kinds
    assert ("CustomResourceDefinition" in kinds) == ("crds.install=false" not in extra)
    api = hub.api_client()
    kube.ensure_namespace(api, "flotilla-system")
    for doc in docs:
        if doc["kind"] in ("ServiceMonitor", "Issuer", "Certificate"):
            continue  # no Prometheus operator or cert-manager on the rig's hub
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
    roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election")]
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-leader-election")
    ]
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


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    container: dict[str, Any] = deploy["spec"]["template"]["spec"]["containers"][0]
    return container


def _grants(rules: list[dict[str, Any]], group: str, resource: str) -> set[tuple[str, tuple[str, ...]]]:
    return {
        (verb, tuple(rule.get("resourceNames", ())))
        for rule in rules
        if rule["apiGroups"] == [group] and rule["resources"] == [resource]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("cert_manager", [False, True], ids=["self-managed-certs", "cert-manager"])
def test_the_admission_webhook(cert_manager: bool) -> None:
    docs: list[dict[str, Any]] = render(["--set", f"webhook.certManager.enabled={str(cert_manager).lower()}"])
    by_kind_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    container = _container(docs)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}

    # The operator reads what the chart sets, and it matches the objects the chart renders.
    settings = WebhookSettings.from_env(env)
    assert settings.enabled and (settings.addr, settings.port) == ("0.0.0.0", 9443)
    # The hub hold's MutatingWebhookConfiguration has the same name as the validating one.
    assert settings.hub_hold_active and settings.config_name == "fl-flotilla"
    mutating = by_kind_name["MutatingWebhookConfiguration", "fl-flotilla"]
    injected = (mutating["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
    assert (injected is not None) == cert_manager
    assert (settings.failure_policy, settings.timeout_seconds) == ("Fail", 10)
    assert settings.client_config() == {
        "service": {
            "namespace": "flotilla-system",
            "name": "fl-flotilla-webhook",
            "port": 443,
            "path": "/validate",
        }
    }
    service = by_kind_name["Service", "fl-flotilla-webhook"]
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook"}]
    assert {"name": "webhook", "containerPort": 9443} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "webhook",
        "scheme": "HTTPS",
    }
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    selector = settings.namespace_selector or {}
    assert selector["matchExpressions"][0] == {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", "flotilla-system"],
    }
    assert {"key": "flotilla.dev/admission", "operator": "NotIn", "values": ["disabled"]} in selector[
        "matchExpressions"
    ]
    assert settings.object_selector is None

    # A writable /tmp (the root filesystem is read-only) for the key files while they load.
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/tmp"] == "tmp" and "emptyDir" in volumes["tmp"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The configuration is the release's (uninstall removes it); the operator fills in its webhook.
    vwc = by_kind_name["ValidatingWebhookConfiguration", settings.config_name]
    assert "webhooks" not in vwc
    annotations = vwc["metadata"].get("annotations") or {}

    (webhook_role,) = [
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-webhook")
    ]
    assert _grants(
        webhook_role["rules"], "admissionregistration.k8s.io", "validatingwebhookconfigurations"
    ) == {
        ("create", ()),
        ("get", ("fl-flotilla",)),
        ("patch", ("fl-flotilla",)),
        ("update", ("fl-flotilla",)),
    }
    cert_roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-webhook-cert")]
    if cert_manager:
        assert not settings.manages_certificates
        assert settings.cert_dir is not None and mounts[str(settings.cert_dir)] == "webhook-certs"
        assert volumes["webhook-certs"]["secret"]["secretName"] == "fl-flotilla-webhook-cert"
        assert annotations == {"cert-manager.io/inject-ca-from": "flotilla-system/fl-flotilla-webhook"}
        certificate = by_kind_name["Certificate", "fl-flotilla-webhook"]
        assert certificate["spec"]["secretName"] == "fl-flotilla-webhook-cert"
        assert set(certificate["spec"]["dnsNames"]) <= set(settings.dns_names())
        assert certificate["spec"]["issuerRef"]["name"] == "fl-flotilla-selfsigned"
        assert ("Issuer", "fl-flotilla-selfsigned") in by_kind_name
        assert cert_roles == []
    else:
        assert settings.manages_certificates and settings.secret_name == "fl-flotilla-webhook-cert"
        assert "webhook-certs" not in volumes and annotations == {}
        assert not any(d["kind"] in ("Issuer", "Certificate") for d in docs)
        (role,) = cert_roles
        assert role["metadata"]["namespace"] == "flotilla-system"
        assert _grants(role["rules"], "", "secrets") == {
            ("create", ()),
            ("get", ("fl-flotilla-webhook-cert",)),
            ("update", ("fl-flotilla-webhook-cert",)),
        }


def test_the_webhook_can_be_turned_off_or_use_another_issuer() -> None:
    docs: list[dict[str, Any]] = render(["--set", "webhook.enabled=false"])
    env = {e["name"]: e.get("value") for e in _container(docs)["env"]}
    assert env["FLOTILLA_WEBHOOK_ENABLED"] == "false"
    assert not WebhookSettings.from_env({k: v for k, v in env.items() if v is not None}).enabled
    assert not [n for n in env if n.startswith("FLOTILLA_WEBHOOK_") and n != "FLOTILLA_WEBHOOK_ENABLED"]
    assert not any(
        "webhook" in d["metadata"]["name"] for d in docs if d["kind"] != "CustomResourceDefinition"
    )
    assert not any(d["kind"] == "ValidatingWebhookConfiguration" for d in docs)

    docs = render(
        [
            "--set",
            "webhook.certManager.enabled=true",
            "--set",
            "webhook.certManager.issuerRef.name=corp-ca",
            "--set",
            "webhook.certManager.issuerRef.kind=ClusterIssuer",
            "--set",
            "webhook.failurePolicy=Ignore",
            "--set",
            "webhook.objectSelector.matchLabels.team=a",
        ]
    )
    (certificate,) = [d for d in docs if d["kind"] == "Certificate"]
    assert certificate["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert not any(d["kind"] == "Issuer" for d in docs)
    env = {e["name"]: e.get("value") for e in _container(docs)["env"]}
    settings = WebhookSettings.from_env({k: v for k, v in env.items() if v is not None})
    assert settings.failure_policy == "Ignore"
    assert settings.object_selector == {"matchLabels": {"team": "a"}}


@pytest.mark.parametrize(
    "bad", ["webhook.failurePolicy=Retry", "webhook.timeoutSeconds=31", "webhook.namespaceSelector.foo=1"]
)
def test_values_schema_rejects_bad_webhook_values(bad: str) -> None:
    result = helm("template", "fl", str(CHART), "--kube-version", "1.34.4", "--set", bad)
    assert result.returncode != 0
    assert "webhook" in result.stderr


def test_failover_settings_reach_the_operator() -> None:
    """The chart's failover values become the environment FailoverSettings.from_env reads."""

    def settings(extra: list[str]) -> FailoverSettings:
        docs: list[dict[str, Any]] = render(extra)
        (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e}
        return FailoverSettings.from_env(env)

    default = settings([])
    assert (default.enabled, default.purge_mode) == (True, "Gracefully")
    tuned = settings(
        ["--set", "operator.failover.purgeMode=Directly", "--set", "operator.failover.enabled=false"]
    )
    assert (tuned.enabled, tuned.purge_mode) == (False, "Directly")
    refused = helm("template", "fl", str(CHART), "--set", "operator.failover.purgeMode=Sometimes")
    assert refused.returncode != 0 and "purgeMode" in refused.stderr  # values.schema.json


def test_learning_settings_reach_the_operator() -> None:
    """The chart's operator.scheduler.fragmentation values become the environment
    flotilla.controllers.profile.learning_from_env reads; the schema refuses bad ones."""

    def settings(extra: list[str]) -> LearningSettings:
        docs: list[dict[str, Any]] = render(extra)
        (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e}
        return learning_from_env(env)

    assert settings([]) == LearningSettings()
    tuned = settings(
        [
            "--set", "operator.scheduler.fragmentation.learn=false",
            "--set", "operator.scheduler.fragmentation.halfLife=200",
            "--set", "operator.scheduler.fragmentation.interval=50",
        ]
    )  # fmt: skip
    assert (tuned.learn, tuned.half_life, tuned.interval) == (False, 200, 50)
    for bad in ("halfLife=0", "requantize=1", "interval=0", "learn=maybe"):
        refused = helm("template", "fl", str(CHART), "--set", f"operator.scheduler.fragmentation.{bad}")
        assert refused.returncode != 0 and bad.split("=")[0] in refused.stderr, (bad, refused.stderr)
