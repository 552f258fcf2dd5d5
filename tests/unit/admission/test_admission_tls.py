"""Certificates in a Secret (issue, reuse, reissue, races, CA rotation), files, and the reloadable context.

Time is a manual clock: certificates are made with explicit dates, so rotation happens when a
test moves the clock, not after real waiting.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from admission_support import FakeSecrets, ManualClock, der, handshake, make_material
from kubernetes.client import ApiException

from flotilla import certs
from flotilla.admission import tls as tls_module
from flotilla.admission.tls import (
    CertificateManager,
    FileCertificateSource,
    KubeSecretAPI,
    ReloadableTLS,
    SecretConflict,
    TLSMaterial,
    refresh,
    run_rotation,
)

pytestmark = pytest.mark.timeout(30)

NS, NAME = "flotilla-system", "flotilla-webhook-cert"
DAY = dt.timedelta(days=1)
DNS = ("flotilla-webhook.flotilla-system.svc",)


def manager(
    secrets: FakeSecrets, clock: ManualClock, dns: tuple[str, ...] = DNS, **kwargs: Any
) -> CertificateManager:
    options: dict[str, Any] = {
        "cert_validity": 10 * DAY,
        "rotate_before": 3 * DAY,
        "ca_validity": 60 * DAY,
        "ca_rotate_before": 20 * DAY,
        "clock": clock,
    }
    return CertificateManager(secrets, NS, NAME, dns, ("127.0.0.1",), **{**options, **kwargs})


def stored(secrets: FakeSecrets, key: str) -> bytes:
    return base64.b64decode(secrets.objects[NS, NAME]["data"][key])


def bundle(secrets: FakeSecrets) -> list[bytes]:
    return certs.split_pem(stored(secrets, "ca.crt"))


# ------------------------------------------------------------------ issue and reuse
async def test_first_ensure_creates_a_tls_secret(secrets: FakeSecrets, clock: ManualClock) -> None:
    material = await manager(secrets, clock).ensure()
    secret = secrets.objects[NS, NAME]
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert material == TLSMaterial(
        stored(secrets, "ca.crt"), stored(secrets, "tls.crt"), stored(secrets, "tls.key"), material.not_after
    )
    (ca,) = bundle(secrets)
    assert certs.key_matches(ca, stored(secrets, "ca.key"))
    assert certs.issued_by(material.cert, ca)
    assert certs.subject_alt_names(material.cert).covers(DNS, ["127.0.0.1"])
    assert material.not_after == clock.now + 10 * DAY
    assert certs.not_after(ca) == clock.now + 60 * DAY
    assert secrets.writes == ["create"]


async def test_a_valid_secret_is_reused_without_writes(secrets: FakeSecrets, clock: ManualClock) -> None:
    first = await manager(secrets, clock).ensure()
    clock.advance(6 * DAY)  # 4 days left > rotate_before
    assert await manager(secrets, clock).ensure() == first
    assert secrets.writes == ["create"]


async def test_a_certificate_close_to_expiry_is_reissued_by_the_same_ca(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    first = await manager(secrets, clock).ensure()
    clock.advance(7 * DAY + dt.timedelta(seconds=1))  # under 3 days left
    second = await manager(secrets, clock).ensure()
    assert second.cert != first.cert and second.key != first.key
    assert second.ca_bundle == first.ca_bundle
    assert second.not_after == clock.now + 10 * DAY
    assert certs.issued_by(second.cert, first.ca_bundle)
    assert secrets.writes == ["create", "replace"]
    assert secrets.objects[NS, NAME]["metadata"]["resourceVersion"] == "2"


async def test_new_names_reissue_the_certificate(secrets: FakeSecrets, clock: ManualClock) -> None:
    first = await manager(secrets, clock).ensure()
    wider = (*DNS, "flotilla-webhook.flotilla-system.svc.cluster.local")
    second = await manager(secrets, clock, dns=wider).ensure()
    assert second.cert != first.cert and second.ca_bundle == first.ca_bundle
    assert certs.subject_alt_names(second.cert).covers(wider, ["127.0.0.1"])
    # Fewer names than the certificate covers need no new certificate.
    assert await manager(secrets, clock).ensure() == second


async def test_a_foreign_or_broken_secret_is_repaired_keeping_its_type_and_other_keys(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    await secrets.create(
        NS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": NAME, "namespace": NS, "labels": {"team": "platform"}},
            "type": "Opaque",
            "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "!!", "note": "aGk="},
        },
    )
    material = await manager(secrets, clock).ensure()
    secret = secrets.objects[NS, NAME]
    assert secret["type"] == "Opaque" and secret["data"]["note"] == "aGk="
    assert secret["metadata"]["labels"] == {"team": "platform"}
    assert certs.issued_by(material.cert, material.ca_bundle)


async def test_a_serving_certificate_from_another_ca_is_replaced(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    await manager(secrets, clock).ensure()
    other = make_material(dns=DNS)
    secret = secrets.objects[NS, NAME]
    secret["data"]["tls.crt"] = base64.b64encode(other.cert).decode()
    secret["data"]["tls.key"] = base64.b64encode(other.key).decode()
    material = await manager(secrets, clock).ensure()
    assert material.cert != other.cert
    assert certs.issued_by(material.cert, bundle(secrets)[0])


# ------------------------------------------------------------------ races between replicas
async def test_two_managers_racing_on_create_end_with_the_same_material(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    a, b = await asyncio.gather(manager(secrets, clock).ensure(), manager(secrets, clock).ensure())
    assert a == b
    assert secrets.writes == ["create"]
    assert a.cert == stored(secrets, "tls.crt")


async def test_two_managers_racing_on_a_reissue_end_with_the_same_material(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    first = await manager(secrets, clock).ensure()
    clock.advance(8 * DAY)
    a, b = await asyncio.gather(manager(secrets, clock).ensure(), manager(secrets, clock).ensure())
    assert a == b != first
    assert secrets.writes == ["create", "replace"]


async def test_ensure_gives_up_after_losing_every_race(clock: ManualClock) -> None:
    class AlwaysConflict(FakeSecrets):
        async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
            raise SecretConflict("exists")

    with pytest.raises(SecretConflict, match="lost 3 races"):
        await manager(AlwaysConflict(), clock, attempts=3).ensure()


# ------------------------------------------------------------------ CA rotation
async def test_ca_rotation_keeps_the_old_ca_in_the_bundle_until_it_expires(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    clock.now -= 56 * DAY  # so that real TLS handshakes (which use the real time) accept t=41..60
    start = clock.now
    m = manager(secrets, clock, cert_validity=30 * DAY, rotate_before=5 * DAY)
    first = await m.ensure()
    (old_ca,) = bundle(secrets)
    old_only = ssl.create_default_context(cadata=old_ca.decode())

    clock.advance(24 * DAY)  # the leaf has 6 days (> 5), the CA 36 days (> 20): nothing to do
    assert await m.ensure() == first
    clock.advance(17 * DAY)  # t=41: CA has 19 days left (< 20), the leaf would be due as well
    second = await m.ensure()
    new_ca, kept = bundle(secrets)
    assert kept == old_ca
    assert certs.key_matches(new_ca, stored(secrets, "ca.key"))
    # The leaf due in this round is still signed by the old CA, so clients that trust only the
    # old CA (a caBundle not updated yet) keep accepting it, and it ends with the old CA.
    assert certs.issued_by(second.cert, old_ca)
    assert second.not_after == start + 60 * DAY
    tls = ReloadableTLS(second)
    assert handshake(tls.context, old_only) == der(second.cert)

    clock.advance(15 * DAY)  # t=56: the leaf has 4 days left: signed by the new CA now
    third = await m.ensure()
    assert certs.issued_by(third.cert, new_ca)
    assert bundle(secrets) == [new_ca, old_ca]
    tls.reload(third)
    both = ssl.create_default_context(cadata=third.ca_bundle.decode())
    assert handshake(tls.context, both) == der(third.cert)

    clock.advance(4 * DAY + dt.timedelta(seconds=1))  # t=60: the old CA expired: out of the bundle
    fourth = await m.ensure()
    assert bundle(secrets) == [new_ca]
    assert fourth.cert == third.cert
    assert secrets.writes == ["create", "replace", "replace", "replace"]


async def test_without_a_due_leaf_the_ca_rotates_alone(secrets: FakeSecrets, clock: ManualClock) -> None:
    m = manager(secrets, clock, cert_validity=50 * DAY)
    await m.ensure()
    clock.advance(41 * DAY)  # leaf: 9 days left; CA: 19 days left
    material = await m.ensure()
    old_ca = bundle(secrets)[1]
    assert certs.issued_by(material.cert, old_ca)
    assert len(bundle(secrets)) == 2


async def test_an_old_ca_too_close_to_expiry_does_not_sign_the_new_leaf(
    secrets: FakeSecrets, clock: ManualClock
) -> None:
    """The operator was down for most of the CA's life: the leaf comes from the new CA at once,
    rather than from a CA that expires before the next check."""
    m = manager(secrets, clock)
    await m.ensure()
    clock.advance(58 * DAY)  # CA: 2 days left (< rotate_before)
    material = await m.ensure()
    new_ca, _old_ca = bundle(secrets)
    assert certs.issued_by(material.cert, new_ca)
    assert material.not_after == clock.now + 10 * DAY


async def test_everything_expired_starts_over(secrets: FakeSecrets, clock: ManualClock) -> None:
    m = manager(secrets, clock)
    first = await m.ensure()
    clock.advance(100 * DAY)
    material = await m.ensure()
    (ca,) = bundle(secrets)
    assert ca not in certs.split_pem(first.ca_bundle)
    assert certs.issued_by(material.cert, ca)


def test_validity_settings_must_nest(secrets: FakeSecrets) -> None:
    with pytest.raises(ValueError, match="shorter than cert_validity"):
        CertificateManager(secrets, NS, NAME, DNS, cert_validity=DAY, rotate_before=DAY)
    with pytest.raises(ValueError, match="ca_rotate_before"):
        CertificateManager(secrets, NS, NAME, DNS, ca_validity=30 * DAY)  # a third: 10 < 30 days
    with pytest.raises(ValueError, match="at least one"):
        CertificateManager(secrets, NS, NAME, (), ())
    CertificateManager(secrets, NS, NAME, DNS)  # the defaults nest


# ------------------------------------------------------------------ the Secret API over kube.request
async def test_kube_secret_api_maps_404_and_409() -> None:
    calls: list[tuple[str, str, Any]] = []
    answers: list[Any] = [
        ApiException(status=404, reason="Not Found"),
        {"metadata": {"name": NAME}},
        ApiException(status=409, reason="Conflict"),
        ApiException(status=409, reason="Conflict"),
        ApiException(status=500, reason="boom"),
    ]

    def request(api: Any, method: str, path: str, body: Any, content_type: Any, query: Any, **_: Any) -> Any:
        calls.append((method, path, body))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    api = KubeSecretAPI(object(), request=request)
    assert await api.get(NS, NAME) is None
    assert await api.get(NS, NAME) == {"metadata": {"name": NAME}}
    with pytest.raises(SecretConflict):
        await api.create(NS, {"metadata": {"name": NAME}})
    with pytest.raises(SecretConflict):
        await api.replace(NS, NAME, {"metadata": {"name": NAME}})
    with pytest.raises(ApiException):
        await api.get(NS, NAME)
    base = f"/api/v1/namespaces/{NS}/secrets"
    assert [(m, p) for m, p, _ in calls] == [
        ("GET", f"{base}/{NAME}"),
        ("GET", f"{base}/{NAME}"),
        ("POST", base),
        ("PUT", f"{base}/{NAME}"),
        ("GET", f"{base}/{NAME}"),
    ]


# ------------------------------------------------------------------ files (cert-manager)
def _write(directory: Path, material: TLSMaterial, *, ca: bool = True) -> None:
    (directory / "tls.crt").write_bytes(material.cert)
    (directory / "tls.key").write_bytes(material.key)
    if ca:
        (directory / "ca.crt").write_bytes(material.ca_bundle)


async def test_files_are_read_on_every_ensure(tmp_path: Path) -> None:
    source = FileCertificateSource(tmp_path, retry_delay=0)
    first = make_material()
    _write(tmp_path, first)
    assert await source.ensure() == first
    second = make_material()
    _write(tmp_path, second, ca=False)
    (tmp_path / "ca.crt").unlink()
    assert await source.ensure() == TLSMaterial(b"", second.cert, second.key, second.not_after)


async def test_a_key_that_does_not_match_is_an_error_after_retries(tmp_path: Path) -> None:
    a, b = make_material(), make_material()
    (tmp_path / "tls.crt").write_bytes(a.cert)
    (tmp_path / "tls.key").write_bytes(b.key)
    with pytest.raises(ValueError, match="does not belong"):
        await FileCertificateSource(tmp_path, retry_delay=0).ensure()


# ------------------------------------------------------------------ the reloadable context
def test_reload_swaps_the_certificate_of_new_handshakes(tmp_path: Path) -> None:
    a = make_material()
    tls = ReloadableTLS(a, tmpdir=str(tmp_path))
    assert handshake(tls.context, ssl.create_default_context(cadata=a.ca_bundle.decode())) == der(a.cert)
    b = make_material()
    context = tls.context
    tls.reload(b)
    assert tls.context is context and tls.material == b
    assert handshake(tls.context, ssl.create_default_context(cadata=b.ca_bundle.decode())) == der(b.cert)
    assert list(tmp_path.iterdir()) == []  # the key files are gone once loaded


def test_material_that_does_not_load_leaves_the_served_certificate(tmp_path: Path) -> None:
    a, b = make_material(), make_material()
    tls = ReloadableTLS(a, tmpdir=str(tmp_path))
    with pytest.raises(ValueError, match="do not load"):
        tls.reload(TLSMaterial(b.ca_bundle, b.cert, a.key, b.not_after))
    assert tls.material == a
    assert handshake(tls.context, ssl.create_default_context(cadata=a.ca_bundle.decode())) == der(a.cert)


def test_key_files_are_private(tmp_path: Path) -> None:
    tls_module._write_private(tmp_path / "k", b"secret")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


class ListSource:
    def __init__(self, *items: TLSMaterial | Exception) -> None:
        self.items = list(items)

    async def ensure(self) -> TLSMaterial:
        item = self.items.pop(0) if len(self.items) > 1 else self.items[0]
        if isinstance(item, Exception):
            raise item
        return item


async def test_refresh_calls_on_change_before_it_reloads() -> None:
    a, b = make_material(), make_material()
    tls = ReloadableTLS(a)
    seen: list[tuple[TLSMaterial, TLSMaterial | None]] = []

    async def on_change(material: TLSMaterial) -> None:
        seen.append((material, tls.material))

    assert await refresh(ListSource(a), tls, on_change) is False
    assert seen == []
    assert await refresh(ListSource(b), tls, on_change) is True
    assert seen == [(b, a)] and tls.material == b


async def test_refresh_does_not_reload_when_on_change_fails() -> None:
    a, b = make_material(), make_material()
    tls = ReloadableTLS(a)

    async def on_change(material: TLSMaterial) -> None:
        raise RuntimeError("the API server is down")

    with pytest.raises(RuntimeError):
        await refresh(ListSource(b), tls, on_change)
    assert tls.material == a


async def test_run_rotation_keeps_going_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_material(), make_material()
    tls = ReloadableTLS(a)
    source = ListSource(RuntimeError("no Secret API"), b)
    caplog.set_level(logging.INFO, logger="flotilla.admission")
    task = asyncio.create_task(run_rotation(source, tls, interval=0.01, retry=0.01))
    try:
        for _ in range(500):
            if tls.material == b:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert tls.material == b
    messages = [r.getMessage() for r in caplog.records]
    assert any("certificate refresh failed (RuntimeError: no Secret API)" in m for m in messages)
    assert any("serving certificate reloaded" in m for m in messages)


async def test_long_service_names_fit_in_a_certificate(secrets: FakeSecrets, clock: ManualClock) -> None:
    svc, ns = "s" * 63, "n" * 63
    long_names = (f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local")
    material = await manager(secrets, clock, dns=long_names).ensure()
    assert certs.subject_alt_names(material.cert).covers(long_names, ["127.0.0.1"])
