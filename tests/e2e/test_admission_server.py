"""The hub API server calls Flotilla's own admission server (flotilla.admission) over TLS.

Certificates are kept in a Secret on the hub by CertificateManager; the ValidatingWebhookConfiguration
is built with rules_for/webhook_configuration and server-side applied with a url clientConfig to
127.0.0.1. The handler denies ConfigMaps labelled ``deny``; only ConfigMaps labelled for this test,
in this test's namespace, are sent to it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from conftest import loopback_webhook
from kubernetes.client import ApiException

from flotilla import certs
from flotilla.admission.config import apply_webhook_configuration, rules_for, webhook_configuration
from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.admission.server import AdmissionServer
from flotilla.admission.tls import CertificateManager, KubeSecretAPI, ReloadableTLS, TLSMaterial, refresh
from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle

pytestmark = loopback_webhook

NS = "admission-server-e2e"
SECRET = "admission-server-cert"
CONFIG = "rigtest-admission-server"
SELECTED = {"rigtest-admission-server": "yes"}


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": {**SELECTED, **labels}},
        "data": {"k": "v"},
    }


class DenyLabelled:
    """Denies ConfigMaps that carry a ``deny`` label; remembers every request it saw."""

    def __init__(self) -> None:
        self.seen: list[AdmissionRequest] = []

    async def __call__(self, request: AdmissionRequest) -> AdmissionResponse:
        self.seen.append(request)
        labels = ((request.object or {}).get("metadata") or {}).get("labels") or {}
        if "deny" in labels:
            where = f"{request.namespace}/{request.name}"
            return AdmissionResponse.deny(f"ConfigMap {where}: deny={labels['deny']}")
        return AdmissionResponse.allow()

    def names(self, *, dry_run: bool) -> list[str]:
        return [r.name for r in self.seen if r.dry_run == dry_run]


async def served_certificate(port: int, material: TLSMaterial) -> bytes:
    """The certificate a new connection to the server is shown, verified against ``material``'s CA."""
    context = ssl.create_default_context(cadata=material.ca_bundle.decode())
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    assert isinstance(cert, bytes)
    return cert


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


@pytest.mark.timeout(600)
async def test_the_hub_calls_the_admission_server_over_tls(hub: ClusterHandle) -> None:
    api = hub.api_client()
    call = asyncio.to_thread
    await call(kube.ensure_namespace, api, NS)
    secrets = KubeSecretAPI(api)
    manager = CertificateManager(secrets, NS, SECRET, ("localhost",), ("127.0.0.1",))
    material = await manager.ensure()
    secret = await secrets.get(NS, SECRET)
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert await manager.ensure() == material  # a second replica (or round) reuses it

    handler = DenyLabelled()
    tls = ReloadableTLS(material)
    # A short keep-alive: after the reload below, the API server's idle connection is closed and
    # its next call makes a new TLS handshake with the new certificate.
    server = AdmissionServer(handler, tls=tls, host="127.0.0.1", port=0, keepalive_timeout=1.0)
    await server.start()

    def configuration(material: TLSMaterial) -> dict[str, Any]:
        return webhook_configuration(
            CONFIG,
            client_config={"url": server.url},
            rules=rules_for([("v1", "ConfigMap")], lambda av, kind: kube.resolve(api, av, kind)[0]),
            ca_bundle=material.ca_bundle,
            failure_policy="Fail",
            timeout_seconds=5,
            namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": NS}},
            object_selector={"matchLabels": SELECTED},
        )

    async def apply(obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await call(kube.apply, api, obj, dry_run=dry_run)
        return result

    async def denied(obj: dict[str, Any], dry_run: bool = False) -> ApiException:
        with pytest.raises(ApiException) as info:
            await apply(obj, dry_run=dry_run)
        return info.value

    try:
        stored = await call(apply_webhook_configuration, api, configuration(material))
        (webhook,) = stored["webhooks"]
        assert webhook["clientConfig"]["url"] == server.url
        assert webhook["sideEffects"] == "NoneOnDryRun"
        assert webhook["rules"][0]["resources"] == ["configmaps"]

        # The API server may still be caching an empty webhook list: probe until it calls us.
        for _ in range(150):
            try:
                await apply(configmap("probe", deny="probe"), dry_run=True)
            except ApiException as exc:
                if exc.status == 403:
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the API server never called the admission server")

        # A denial reaches the client as a 403 with the handler's message; nothing is stored.
        exc = await denied(configmap("bad", deny="yes"))
        assert exc.status == 403
        assert "ConfigMap admission-server-e2e/bad: deny=yes" in str(exc.body)
        assert await call(kube.get, api, "v1", "ConfigMap", "bad", NS) is None

        # An allowed object is stored; the handler saw it as a real (not dry-run) request.
        assert (await apply(configmap("good")))["metadata"]["name"] == "good"
        assert "good" in handler.names(dry_run=False)

        # Dry-run requests arrive with dry_run=True (and are still checked).
        await apply(configmap("trial"), dry_run=True)
        exc = await denied(configmap("trial-bad", deny="dry"), dry_run=True)
        assert exc.status == 403
        assert {"trial", "trial-bad"} <= set(handler.names(dry_run=True))
        assert await call(kube.get, api, "v1", "ConfigMap", "trial", NS) is None

        # Force a reissue (another name to cover), apply the configuration, reload: no restart.
        wider = CertificateManager(secrets, NS, SECRET, ("localhost", "webhook.localhost"), ("127.0.0.1",))

        async def on_change(new: TLSMaterial) -> None:
            await call(apply_webhook_configuration, api, configuration(new))

        assert await refresh(wider, tls, on_change)
        reissued = tls.material
        assert reissued is not None and reissued.cert != material.cert
        assert reissued.ca_bundle == material.ca_bundle  # same CA: no client needs a new bundle
        assert certs.subject_alt_names(reissued.cert).covers(["webhook.localhost"], ["127.0.0.1"])
        assert await served_certificate(server.port, reissued) == der(reissued.cert)
        await asyncio.sleep(2.0)  # past the keep-alive: the API server must connect again

        before = len(handler.seen)
        exc = await denied(configmap("bad-after-reload", deny="still"))
        assert exc.status == 403 and "deny=still" in str(exc.body)
        assert (await apply(configmap("good-after-reload")))["metadata"]["name"] == "good-after-reload"
        assert len(handler.seen) == before + 2
        # The Secret holds what is served; a replica starting now would load the same.
        assert await manager.ensure() == reissued  # fewer names: covered, nothing reissued
        assert await wider.ensure() == reissued
    finally:
        await server.stop()
        await call(
            kube.delete,
            api,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": CONFIG},
            },
        )
        await call(kube.delete, api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
