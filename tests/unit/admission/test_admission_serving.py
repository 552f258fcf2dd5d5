"""The admission server over real TLS on 127.0.0.1, with an aiohttp client that trusts the CA."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from admission_support import der, make_material

from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.admission.server import AdmissionServer
from flotilla.admission.tls import ReloadableTLS, TLSMaterial

pytestmark = pytest.mark.timeout(30)


def review(uid: str = "u1", labels: dict[str, str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "namespace": "default",
            "name": "cm",
            "operation": "CREATE",
            "object": {"metadata": {"name": "cm", "labels": labels or {}}},
            "dryRun": dry_run,
        },
    }


class Recorder:
    def __init__(self) -> None:
        self.requests: list[AdmissionRequest] = []

    async def __call__(self, request: AdmissionRequest) -> AdmissionResponse:
        self.requests.append(request)
        labels = ((request.object or {}).get("metadata") or {}).get("labels") or {}
        if "boom" in labels:
            raise RuntimeError(f"cannot check {request.name}")
        if "deny" in labels:
            return AdmissionResponse.deny(f"label deny={labels['deny']} is not allowed")
        return AdmissionResponse.allow(warnings=("checked",))


@pytest.fixture
async def running() -> AsyncIterator[tuple[AdmissionServer, Recorder, TLSMaterial]]:
    material = make_material()
    recorder = Recorder()
    server = AdmissionServer(recorder, tls=ReloadableTLS(material), host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server, recorder, material
    finally:
        await server.stop()


def client_context(material: TLSMaterial) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=material.ca_bundle.decode())


async def post(server: AdmissionServer, material: TLSMaterial, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url, json=body, ssl=client_context(material)) as resp,
    ):
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def served_certificate(server: AdmissionServer, material: TLSMaterial) -> bytes:
    """The certificate a new connection is shown (verified against the material's CA)."""
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_context(material))
    try:
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    assert isinstance(cert, bytes)
    return cert


async def test_allowed_and_denied_answers(running: tuple[AdmissionServer, Recorder, TLSMaterial]) -> None:
    server, recorder, material = running
    assert server.port > 0 and server.url == f"https://127.0.0.1:{server.port}/validate"
    status, body = await post(server, material, review("u1"))
    assert status == 200
    assert body == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u1", "allowed": True, "warnings": ["checked"]},
    }
    status, body = await post(server, material, review("u2", {"deny": "yes"}, dry_run=True))
    assert status == 200
    assert body["response"] == {
        "uid": "u2",
        "allowed": False,
        "status": {"code": 403, "message": "label deny=yes is not allowed", "reason": "Forbidden"},
    }
    assert [r.dry_run for r in recorder.requests] == [False, True]


async def test_a_handler_exception_is_a_denial_logged_once(
    running: tuple[AdmissionServer, Recorder, TLSMaterial], caplog: pytest.LogCaptureFixture
) -> None:
    server, _, material = running
    caplog.set_level(logging.INFO)
    status, body = await post(server, material, review("u3", {"boom": "1"}))
    assert status == 200
    assert body["response"] == {
        "uid": "u3",
        "allowed": False,
        "status": {"code": 500, "message": "cannot check cm", "reason": "InternalError"},
    }
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert "handler failed on CREATE ConfigMap default/cm (uid u3)" in failures[0].getMessage()
    assert failures[0].exc_info is not None


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}']
)
async def test_a_malformed_review_is_a_400(
    running: tuple[AdmissionServer, Recorder, TLSMaterial], body: bytes
) -> None:
    server, recorder, material = running
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url, data=body, ssl=client_context(material)) as resp,
    ):
        assert resp.status == 400
        assert "malformed AdmissionReview" in await resp.text()
    assert recorder.requests == []


async def test_healthz(running: tuple[AdmissionServer, Recorder, TLSMaterial]) -> None:
    server, _, material = running
    url = f"https://127.0.0.1:{server.port}/healthz"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=client_context(material)) as resp:
            assert (resp.status, await resp.text()) == (200, "ok\n")
        # A certificate past its notAfter makes the pod unready.
        server.tls._material = TLSMaterial(
            material.ca_bundle, material.cert, material.key, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
        async with session.get(url, ssl=client_context(material)) as resp:
            assert resp.status == 503


async def test_reload_swaps_the_served_certificate_without_a_restart(
    running: tuple[AdmissionServer, Recorder, TLSMaterial],
) -> None:
    server, _, first = running
    assert await served_certificate(server, first) == der(first.cert)
    second = make_material()
    server.tls.reload(second)
    assert await served_certificate(server, second) == der(second.cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        await served_certificate(server, first)  # a client trusting only the old CA refuses it now
    status, body = await post(server, second, review("u4"))
    assert status == 200 and body["response"]["allowed"] is True


async def test_a_server_without_a_certificate_does_not_start() -> None:
    server = AdmissionServer(Recorder(), tls=ReloadableTLS(), host="127.0.0.1", port=0)
    with pytest.raises(RuntimeError, match="needs a certificate"):
        await server.start()
    await server.stop()  # stopping a server that never started is fine
