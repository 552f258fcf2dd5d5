"""The ValidatingWebhookConfiguration document, its rules, its server-side apply, and the settings."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from admission_support import FakeSecrets

from flotilla import kube, leader
from flotilla.admission import config
from flotilla.admission.config import apply_webhook_configuration, rules_for, webhook_configuration
from flotilla.admission.settings import WebhookSettings
from flotilla.admission.tls import CertificateManager, FileCertificateSource

PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("batch/v1", "Job"): "jobs",
    ("v1", "ConfigMap"): "configmaps",
    ("kubeflow.org/v1", "PyTorchJob"): "pytorchjobs",
}


def resolve(api_version: str, kind: str) -> str:
    try:
        return PLURALS[api_version, kind]
    except KeyError:
        raise LookupError(f"the API server does not serve {kind} in {api_version}") from None


def test_rules_group_kinds_by_group_and_version() -> None:
    kinds = [
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("apps/v1", "Deployment"),
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),  # duplicates collapse
        ("ray.io/v1", "RayJob"),  # not served: left out
    ]
    rules = rules_for(kinds, resolve)
    create_update = ["CREATE", "UPDATE"]
    assert rules == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["configmaps"],
            "operations": create_update,
            "scope": "Namespaced",
        },
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "resources": ["deployments", "statefulsets"],
            "operations": create_update,
            "scope": "Namespaced",
        },
        {
            "apiGroups": ["batch"],
            "apiVersions": ["v1"],
            "resources": ["jobs"],
            "operations": create_update,
            "scope": "Namespaced",
        },
    ]


def test_rules_can_cover_subresources() -> None:
    (rule,) = rules_for([("apps/v1", "Deployment")], resolve, subresources=("scale",))
    assert rule["resources"] == ["deployments", "deployments/scale"]


def test_the_configuration_document() -> None:
    rules = rules_for([("kubeflow.org/v1", "PyTorchJob")], resolve)
    doc = webhook_configuration(
        "flotilla",
        client_config={"url": "https://127.0.0.1:9443/validate"},
        rules=rules,
        ca_bundle=b"PEM",
        failure_policy="Fail",
        timeout_seconds=10,
        namespace_selector={"matchLabels": {"a": "b"}},
        object_selector=None,
    )
    assert doc == {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "flotilla"},
        "webhooks": [
            {
                "name": "admission.flotilla.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {
                    "url": "https://127.0.0.1:9443/validate",
                    "caBundle": base64.b64encode(b"PEM").decode(),
                },
                "rules": rules,
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "NoneOnDryRun",
                "timeoutSeconds": 10,
                "namespaceSelector": {"matchLabels": {"a": "b"}},
            }
        ],
    }


def test_without_a_ca_bundle_the_field_is_left_out() -> None:
    service = {"service": {"namespace": "ns", "name": "svc", "port": 443, "path": "/validate"}}
    doc = webhook_configuration(
        "flotilla",
        client_config=service,
        rules=[],
        ca_bundle=None,
        failure_policy="Ignore",
        timeout_seconds=5,
        namespace_selector=None,
        object_selector={"matchLabels": {"x": "y"}},
    )
    (webhook,) = doc["webhooks"]
    assert webhook["clientConfig"] == service
    assert "namespaceSelector" not in webhook
    assert webhook["objectSelector"] == {"matchLabels": {"x": "y"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"failure_policy": "Retry"}, "failure_policy"),
        ({"timeout_seconds": 31}, "timeout_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"client_config": {}}, "exactly one"),
    ],
)
def test_bad_configuration_values(change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "client_config": {"url": "https://x/validate"},
        "rules": [],
        "ca_bundle": None,
        "failure_policy": "Fail",
        "timeout_seconds": 10,
        "namespace_selector": None,
        "object_selector": None,
    }
    with pytest.raises(ValueError, match=message):
        webhook_configuration("flotilla", **{**args, **change})


def test_apply_is_a_forced_server_side_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def request(api: Any, method: str, path: str, **kwargs: Any) -> Any:
        calls.append({"method": method, "path": path, **kwargs})
        return {"metadata": {"name": "flotilla", "resourceVersion": "7"}}

    monkeypatch.setattr(kube, "request", request)
    doc = webhook_configuration(
        "flotilla",
        client_config={"url": "https://127.0.0.1:1/validate"},
        rules=[],
        ca_bundle=None,
        failure_policy="Fail",
        timeout_seconds=10,
        namespace_selector=None,
        object_selector=None,
    )
    assert apply_webhook_configuration(object(), doc)["metadata"]["resourceVersion"] == "7"
    (call,) = calls
    assert call["method"] == "PATCH"
    assert call["path"] == "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/flotilla"
    assert call["content_type"] == "application/apply-patch+yaml"
    assert call["query"] == [("fieldManager", "flotilla"), ("force", "true")]
    assert json.loads(call["body"]) == doc
    assert doc["apiVersion"] == config.API_VERSION


# ------------------------------------------------------------------ settings
def test_settings_defaults_suit_a_local_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(leader, "_SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    s = WebhookSettings.from_env({})
    assert s.enabled is False
    assert (s.addr, s.port, s.path) == ("127.0.0.1", 9443, "/validate")
    assert (s.failure_policy, s.timeout_seconds, s.config_name) == ("Fail", 10, "flotilla-admission")
    assert s.client_config() == {
        "service": {"namespace": "default", "name": "flotilla-webhook", "port": 443, "path": "/validate"}
    }
    assert s.namespace_selector == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["default", "kube-system"]}
        ]
    }
    assert s.dns_names() == (
        "flotilla-webhook.default.svc",
        "flotilla-webhook.default.svc.cluster.local",
        "flotilla-webhook.default",
        "flotilla-webhook",
    )
    assert s.ips() == ()
    assert s.manages_certificates
    source = s.certificate_source(FakeSecrets())
    assert isinstance(source, CertificateManager)
    assert (source.namespace, source.secret_name) == ("default", "flotilla-webhook-cert")
    assert source.dns_names == s.dns_names()


def test_settings_from_the_chart_environment(tmp_path: Path) -> None:
    selector = {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}
    env = {
        "FLOTILLA_WEBHOOK_ENABLED": "true",
        "FLOTILLA_WEBHOOK_PORT": "9443",
        "FLOTILLA_WEBHOOK_ADDR": "0.0.0.0",
        "FLOTILLA_WEBHOOK_SERVICE_NAME": "fl-flotilla-webhook",
        "FLOTILLA_WEBHOOK_SERVICE_NAMESPACE": "flotilla-system",
        "FLOTILLA_WEBHOOK_SERVICE_PORT": "443",
        "FLOTILLA_WEBHOOK_CERT_DIR": str(tmp_path),
        "FLOTILLA_WEBHOOK_FAILURE_POLICY": "Ignore",
        "FLOTILLA_WEBHOOK_TIMEOUT_SECONDS": "5",
        "FLOTILLA_WEBHOOK_CONFIG_NAME": "fl-flotilla",
        "FLOTILLA_WEBHOOK_NAMESPACE_SELECTOR": json.dumps(selector),
        "FLOTILLA_WEBHOOK_OBJECT_SELECTOR": '{"matchLabels": {"a": "b"}}',
        "FLOTILLA_WEBHOOK_CERT_CHECK_INTERVAL": "60",
    }
    s = WebhookSettings.from_env(env)
    assert s.enabled and s.addr == "0.0.0.0" and s.cert_check_interval == 60
    assert not s.manages_certificates
    assert isinstance(s.certificate_source(None), FileCertificateSource)
    doc = s.configuration(rules=[], ca_bundle=b"ignored in cert-manager mode")
    (webhook,) = doc["webhooks"]
    assert doc["metadata"]["name"] == "fl-flotilla"
    service = {"namespace": "flotilla-system", "name": "fl-flotilla-webhook", "port": 443}
    service["path"] = "/validate"
    assert webhook["clientConfig"] == {"service": service}
    assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Ignore", 5)
    assert webhook["namespaceSelector"] == selector
    assert webhook["objectSelector"] == {"matchLabels": {"a": "b"}}


def test_a_url_overrides_the_service() -> None:
    s = WebhookSettings.from_env(
        {"FLOTILLA_WEBHOOK_URL": "https://127.0.0.1:18443/admit", "FLOTILLA_WEBHOOK_SERVICE_NAMESPACE": "ns"}
    )
    assert s.client_config() == {"url": "https://127.0.0.1:18443/admit"}
    assert s.path == "/admit"
    assert (s.dns_names(), s.ips()) == ((), ("127.0.0.1",))
    doc = s.configuration(rules=[], ca_bundle=b"CA")
    assert doc["webhooks"][0]["clientConfig"]["caBundle"] == base64.b64encode(b"CA").decode()
    named = WebhookSettings.from_env({"FLOTILLA_WEBHOOK_URL": "https://webhook.example.com/validate"})
    assert (named.dns_names(), named.ips()) == (("webhook.example.com",), ())
    with pytest.raises(ValueError, match="managing the webhook certificates"):
        s.certificate_source(None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLOTILLA_WEBHOOK_URL", "http://127.0.0.1:1/validate"),
        ("FLOTILLA_WEBHOOK_FAILURE_POLICY", "fail"),
        ("FLOTILLA_WEBHOOK_TIMEOUT_SECONDS", "60"),
        ("FLOTILLA_WEBHOOK_PORT", "nine"),
        ("FLOTILLA_WEBHOOK_NAMESPACE_SELECTOR", "[1]"),
        ("FLOTILLA_WEBHOOK_OBJECT_SELECTOR", "{not json"),
        ("FLOTILLA_WEBHOOK_CERT_CHECK_INTERVAL", "0"),
    ],
)
def test_unusable_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        WebhookSettings.from_env({name: value})
