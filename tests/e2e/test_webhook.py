"""The hub API server calls a Kopf validating webhook on 127.0.0.1 with Flotilla-made certificates."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import loopback_webhook
from kopf.testing import KopfRunner
from kubernetes.client import ApiException

from flotilla import certs
from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.runner import free_port

pytestmark = loopback_webhook

OPERATOR = Path(__file__).with_name("webhook_operator.py")


@pytest.fixture
def webhook(hub: ClusterHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    ca, ca_key = certs.make_ca(tmp_path, "rigtest-webhook-ca")
    leaf = certs.make_leaf(tmp_path, "webhook", ca_cert=ca, ca_key=ca_key)
    monkeypatch.setenv("KUBECONFIG", str(hub.kubeconfig))
    monkeypatch.setenv("RIGTEST_WEBHOOK_PORT", str(free_port()))
    monkeypatch.setenv("RIGTEST_WEBHOOK_CERT", str(leaf.cert))
    monkeypatch.setenv("RIGTEST_WEBHOOK_KEY", str(leaf.key))
    monkeypatch.setenv("RIGTEST_WEBHOOK_CA", str(ca))
    api = hub.api_client()
    with KopfRunner(["run", "--standalone", "-A", str(OPERATOR)], timeout=60) as runner:
        cfg = ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "rigtest.flotilla.dev")
        kube.wait_for(
            lambda: (kube.get(api, *cfg) or {}).get("webhooks"),
            timeout=30,
            what="Kopf to register its ValidatingWebhookConfiguration",
        )
        # The API server may still be caching an empty webhook list: probe until it calls the webhook.
        probe = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "probe", "namespace": "default", "labels": {"rigtest": "webhook"}},
            "data": {"forbidden": "1"},
        }

        def denied() -> bool:
            try:
                kube.apply(api, probe, dry_run=True)
            except ApiException as exc:
                return exc.status == 403
            return False

        kube.wait_for(denied, timeout=30, what="the API server to call the webhook")
        yield
    assert runner.exception is None, runner.output
    kube.delete(api, {"apiVersion": cfg[0], "kind": cfg[1], "metadata": {"name": cfg[2]}})
    os.environ.pop("KUBECONFIG", None)


def test_denied_object_is_a_4xx_from_the_api_server(hub: ClusterHandle, webhook: None) -> None:
    api = hub.api_client()
    bad = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bad", "namespace": "default", "labels": {"rigtest": "webhook"}},
        "data": {"forbidden": "yes"},
    }
    with pytest.raises(ApiException) as info:
        kube.apply(api, bad)
    assert info.value.status == 403
    assert "data.forbidden is not allowed here" in str(info.value.body)
    assert kube.get(api, "v1", "ConfigMap", "bad", "default") is None

    good = {**bad, "metadata": {**bad["metadata"], "name": "good"}, "data": {"fine": "yes"}}
    assert kube.apply(api, good)["data"] == {"fine": "yes"}
    kube.delete(api, good)
