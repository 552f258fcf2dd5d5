"""The webhook's TLS: certificates kept in a Secret (or mounted files), and a reloadable SSLContext.

Two sources of :class:`TLSMaterial`, both with ``async ensure()``:

* :class:`CertificateManager` keeps a CA and a serving certificate in one Secret of type
  ``kubernetes.io/tls`` (``tls.crt``, ``tls.key``, ``ca.crt`` = the trust bundle, ``ca.key`` = the
  key of the CA that signs new serving certificates). Every replica calls ``ensure()``; writes carry
  the resourceVersion read, and a replica that loses a race (409) re-reads and uses what the winner
  wrote, so all replicas serve certificates from the same CA.
* :class:`FileCertificateSource` reads ``tls.crt``/``tls.key``/``ca.crt`` from a directory (a
  Secret written by cert-manager and mounted into the pod).

CA rotation: when the signing CA is within ``ca_rotate_before`` of its expiry, a new CA is made
and put first in the bundle; older CAs stay in the bundle until they expire. The serving
certificate is not reissued because of that: it is reissued when it comes within
``rotate_before`` of its own expiry (or names change), and then it is signed by the newest CA. A
serving certificate that must be reissued in the same round as the CA is made is still signed by
the previous CA when that one outlives ``rotate_before``, so the new CA has reached the webhook
configuration's caBundle (through the ``on_change`` callback of :func:`refresh`) before any client
is shown a certificate it signed. A serving certificate never outlives the CA that signed it.

:class:`ReloadableTLS` holds one :class:`ssl.SSLContext` for the server's whole life and loads new
material into it; connections opened afterwards get the new certificate.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import os
import random
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubernetes.client import ApiClient, ApiException

from flotilla import certs, kube

log = logging.getLogger("flotilla.admission")

DEFAULT_CERT_VALIDITY = dt.timedelta(days=90)
DEFAULT_ROTATE_BEFORE = dt.timedelta(days=30)
DEFAULT_CA_VALIDITY = dt.timedelta(days=3 * 365)
DEFAULT_REQUEST_TIMEOUT = 5.0

TLS_CERT, TLS_KEY, CA_CERT, CA_KEY = "tls.crt", "tls.key", "ca.crt", "ca.key"
SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class TLSMaterial:
    """What the server needs: the CA bundle clients should trust, the serving certificate and key
    (PEM), and when that certificate expires."""

    ca_bundle: bytes
    cert: bytes
    key: bytes
    not_after: dt.datetime


class CertificateSource(Protocol):
    async def ensure(self) -> TLSMaterial:
        """The current material (creating or renewing it where this source does that)."""
        ...


# ------------------------------------------------------------------ Secret access
class SecretConflict(Exception):
    """HTTP 409: the Secret already exists (create), or the resourceVersion sent is stale (replace)."""


class SecretAPI(Protocol):
    """The three Secret calls :class:`CertificateManager` makes, on Secrets as dicts."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or None when it does not exist."""
        ...

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create it; :class:`SecretConflict` when it exists."""
        ...

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace it (``metadata.resourceVersion`` is a precondition); :class:`SecretConflict` when stale."""
        ...


class KubeSecretAPI:
    """:class:`SecretAPI` over :func:`flotilla.kube.request`, each call in a thread and bounded by
    ``timeout`` (plus a second of slack on the awaiting side)."""

    def __init__(
        self,
        api: ApiClient,
        *,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        request: Callable[..., Any] | None = None,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self._request: Callable[..., Any] = request if request is not None else kube.request

    @staticmethod
    def _path(namespace: str, name: str | None = None) -> str:
        path = f"/api/v1/namespaces/{namespace}/secrets"
        return f"{path}/{name}" if name else path

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        content_type = "application/json" if body is not None else None
        call = asyncio.to_thread(
            self._request, self.api, method, path, body, content_type, None, timeout=self.timeout
        )
        try:
            async with asyncio.timeout(self.timeout + 1.0):
                return await call
        except ApiException as exc:
            if exc.status == 409:
                raise SecretConflict(f"{method} {path}: {exc.reason}") from exc
            raise

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._call("GET", self._path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", self._path(namespace), body)
        return result

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("PUT", self._path(namespace, name), body)
        return result


# ------------------------------------------------------------------ certificates in a Secret
@dataclass(frozen=True)
class _Stored:
    """The certificate fields of the Secret, decoded (b"" where absent or not base64)."""

    ca_bundle: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> _Stored:
        data = secret.get("data") or {}

        def field(key: str) -> bytes:
            try:
                return base64.b64decode(data.get(key) or "", validate=True)
            except (binascii.Error, ValueError):
                return b""

        return cls(field(CA_CERT), field(CA_KEY), field(TLS_CERT), field(TLS_KEY))

    def data(self) -> dict[str, str]:
        fields = {CA_CERT: self.ca_bundle, CA_KEY: self.ca_key, TLS_CERT: self.cert, TLS_KEY: self.key}
        return {k: base64.b64encode(v).decode() for k, v in fields.items()}

    def material(self) -> TLSMaterial:
        return TLSMaterial(self.ca_bundle, self.cert, self.key, certs.not_after(self.cert))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parses(pem: bytes) -> bool:
    try:
        certs.load_cert(pem)
    except ValueError:
        return False
    return True


class CertificateManager:
    """A CA and a serving certificate for ``dns_names``/``ips``, kept in the Secret
    ``namespace/secret_name`` (see the module docstring for the rules). ``clock`` gives the current
    time (UTC, timezone-aware); tests move it to make certificates due."""

    def __init__(
        self,
        secret_api: SecretAPI,
        namespace: str,
        secret_name: str,
        dns_names: Sequence[str],
        ips: Sequence[str] = (),
        *,
        cert_validity: dt.timedelta = DEFAULT_CERT_VALIDITY,
        ca_validity: dt.timedelta = DEFAULT_CA_VALIDITY,
        rotate_before: dt.timedelta = DEFAULT_ROTATE_BEFORE,
        ca_rotate_before: dt.timedelta | None = None,
        common_name: str = "flotilla-webhook",
        clock: Callable[[], dt.datetime] = _utcnow,
        attempts: int = 5,
    ) -> None:
        """``ca_rotate_before`` defaults to a third of ``ca_validity``. Required:
        ``rotate_before < cert_validity`` and ``rotate_before < ca_rotate_before < ca_validity``
        (otherwise a fresh certificate would be due at once)."""
        ca_rotate_before = ca_validity / 3 if ca_rotate_before is None else ca_rotate_before
        if not dns_names and not ips:
            raise ValueError("a serving certificate needs at least one DNS name or IP address")
        if not dt.timedelta(0) < rotate_before < cert_validity:
            raise ValueError("rotate_before must be positive and shorter than cert_validity")
        if not rotate_before < ca_rotate_before < ca_validity:
            raise ValueError("rotate_before < ca_rotate_before < ca_validity is required")
        self.secret_api = secret_api
        self.namespace = namespace
        self.secret_name = secret_name
        self.dns_names = tuple(dns_names)
        self.ips = tuple(ips)
        self.cert_validity = cert_validity
        self.ca_validity = ca_validity
        self.rotate_before = rotate_before
        self.ca_rotate_before = ca_rotate_before
        self.common_name = common_name
        self.clock = clock
        self.attempts = attempts

    @property
    def where(self) -> str:
        return f"Secret {self.namespace}/{self.secret_name}"

    async def ensure(self) -> TLSMaterial:
        """Read the Secret; create it, or renew what is due in it; return what it holds.

        Raises :class:`SecretConflict` when every one of ``attempts`` rounds lost a race, and what
        the Secret API raised otherwise."""
        for _ in range(self.attempts):
            secret = await self.secret_api.get(self.namespace, self.secret_name)
            if secret is None:
                stored, _reasons = self._plan(None)
                try:
                    await self.secret_api.create(self.namespace, self._body(None, stored))
                except SecretConflict:
                    log.debug("admission: %s was created by another replica; reading it", self.where)
                    continue
                log.info("admission: created %s with a new CA and serving certificate", self.where)
                return stored.material()
            current = _Stored.from_secret(secret)
            stored, reasons = self._plan(current)
            if not reasons:
                return stored.material()
            try:
                await self.secret_api.replace(self.namespace, self.secret_name, self._body(secret, stored))
            except SecretConflict:
                log.debug("admission: %s changed since it was read; reading it again", self.where)
                continue
            log.info("admission: updated %s: %s", self.where, "; ".join(reasons))
            return stored.material()
        raise SecretConflict(f"{self.where}: lost {self.attempts} races in a row")

    # -------------------------------------------------------------- the decision (no I/O)
    def _plan(self, current: _Stored | None) -> tuple[_Stored, list[str]]:
        """What the Secret should hold now, and why it differs from ``current`` (empty: it does not)."""
        now = self.clock()
        current = current or _Stored(b"", b"", b"", b"")
        reasons: list[str] = []
        bundle = [pem for pem in certs.split_pem(current.ca_bundle) if _parses(pem)]
        valid_cas = [pem for pem in bundle if certs.not_after(pem) > now]
        if len(valid_cas) < len(bundle):
            reasons.append(f"dropped {len(bundle) - len(valid_cas)} expired CA(s) from {CA_CERT}")

        signer = self._signer(valid_cas, current.ca_key)
        rotate_ca = signer is None or certs.not_after(signer[0]) - now <= self.ca_rotate_before
        if signer is None:
            reasons.append("no usable CA; made one")
        elif rotate_ca:
            reasons.append(f"CA expires {certs.not_after(signer[0]):%Y-%m-%d %H:%M}Z; added a new CA")
        new_ca = None
        if rotate_ca:
            # A distinct subject per CA: verifiers look issuers up by name.
            name = f"{self.common_name}-ca@{int(now.timestamp())}"
            new_ca = certs.make_ca_pem(name, validity=self.ca_validity, now=now)

        cert, key = current.cert, current.key
        problem = self._leaf_problem(cert, key, valid_cas, now)
        if problem:
            reasons.append(problem)
            leaf_signer = new_ca or signer
            if (
                new_ca is not None
                and signer is not None
                and certs.not_after(signer[0]) - now > self.rotate_before
            ):
                leaf_signer = signer  # the new CA is in no caBundle yet
            assert leaf_signer is not None
            cert, key = certs.make_leaf_pem(
                self.common_name,  # clients check the SANs; a CN is at most 64 characters
                ca_cert=leaf_signer[0],
                ca_key=leaf_signer[1],
                dns=self.dns_names,
                ips=self.ips,
                validity=self.cert_validity,
                now=now,
            )
        cas = ([new_ca[0]] if new_ca else []) + valid_cas
        ca_key = new_ca[1] if new_ca else current.ca_key
        stored = _Stored(b"".join(cas), ca_key, cert, key)
        if not reasons and stored.ca_bundle != current.ca_bundle:
            reasons.append(f"rewrote {CA_CERT}")
        return stored, reasons

    @staticmethod
    def _signer(cas: list[bytes], ca_key: bytes) -> tuple[bytes, bytes] | None:
        """The CA in ``cas`` whose key is ``ca_key``."""
        if not ca_key:
            return None
        for pem in cas:
            try:
                if certs.key_matches(pem, ca_key):
                    return pem, ca_key
            except (ValueError, TypeError):
                return None
        return None

    def _leaf_problem(self, cert: bytes, key: bytes, cas: list[bytes], now: dt.datetime) -> str:
        """Why the serving certificate must be reissued ("" when it need not)."""
        if not cert or not key:
            return "no serving certificate"
        try:
            if not certs.key_matches(cert, key):
                return f"{TLS_KEY} does not belong to {TLS_CERT}"
            expires = certs.not_after(cert)
            names = certs.subject_alt_names(cert)
        except (ValueError, TypeError):
            return "unreadable serving certificate"
        if expires - now <= self.rotate_before:
            return f"serving certificate expires {expires:%Y-%m-%d %H:%M}Z"
        if not names.covers(self.dns_names, self.ips):
            return "serving certificate does not cover " + ", ".join(self.dns_names + self.ips)
        if not any(certs.issued_by(cert, ca) for ca in cas):
            return f"serving certificate is not signed by a CA in {CA_CERT}"
        return ""

    def _body(self, base: dict[str, Any] | None, stored: _Stored) -> dict[str, Any]:
        if base is None:
            return {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": self.secret_name, "namespace": self.namespace},
                "type": SECRET_TYPE,
                "data": stored.data(),
            }
        body = dict(base)
        body["metadata"] = {k: v for k, v in (base.get("metadata") or {}).items() if k != "managedFields"}
        body["data"] = {**(base.get("data") or {}), **stored.data()}  # other keys are kept
        return body


# ------------------------------------------------------------------ certificates in files
class FileCertificateSource:
    """``tls.crt``, ``tls.key`` and (optional) ``ca.crt`` in ``directory``, read on every
    ``ensure()``. A key that does not match the certificate (read in the middle of an update of the
    mounted Secret) is read again after ``retry_delay``, up to ``attempts`` times."""

    def __init__(
        self,
        directory: Path | str,
        *,
        cert_file: str = TLS_CERT,
        key_file: str = TLS_KEY,
        ca_file: str = CA_CERT,
        attempts: int = 3,
        retry_delay: float = 0.5,
    ) -> None:
        self.directory = Path(directory)
        self.cert_file, self.key_file, self.ca_file = cert_file, key_file, ca_file
        self.attempts = attempts
        self.retry_delay = retry_delay

    async def ensure(self) -> TLSMaterial:
        for attempt in range(self.attempts):
            cert = (self.directory / self.cert_file).read_bytes()
            key = (self.directory / self.key_file).read_bytes()
            ca_path = self.directory / self.ca_file
            ca = ca_path.read_bytes() if ca_path.exists() else b""
            if certs.key_matches(cert, key):
                return TLSMaterial(ca, cert, key, certs.not_after(cert))
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.retry_delay)
        raise ValueError(f"{self.directory}: {self.key_file} does not belong to {self.cert_file}")


# ------------------------------------------------------------------ the server's SSLContext
def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class ReloadableTLS:
    """One server-side :class:`ssl.SSLContext`, reloaded in place by :meth:`reload`.

    ``load_cert_chain`` reads files, so :meth:`reload` writes the certificate and key (mode 0600)
    into a fresh private directory under ``tmpdir`` (default: :func:`tempfile.gettempdir`, i.e.
    ``$TMPDIR`` or ``/tmp``) and removes it once they are loaded. The material is first loaded into
    a scratch context: material that does not load raises ValueError and leaves the served
    certificate as it was."""

    def __init__(self, material: TLSMaterial | None = None, *, tmpdir: str | None = None) -> None:
        self.context = _server_context()
        self.tmpdir = tmpdir
        self._material: TLSMaterial | None = None
        if material is not None:
            self.reload(material)

    @property
    def material(self) -> TLSMaterial | None:
        """What the context serves (None before the first :meth:`reload`)."""
        return self._material

    def reload(self, material: TLSMaterial) -> None:
        with tempfile.TemporaryDirectory(prefix="flotilla-tls-", dir=self.tmpdir) as directory:
            cert_path, key_path = Path(directory, "tls.crt"), Path(directory, "tls.key")
            _write_private(cert_path, material.cert)
            _write_private(key_path, material.key)
            try:
                _server_context().load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                raise ValueError(f"the serving certificate and key do not load: {exc}") from exc
            self.context.load_cert_chain(cert_path, key_path)
        self._material = material


# ------------------------------------------------------------------ rotation
async def refresh(
    source: CertificateSource,
    tls: ReloadableTLS,
    on_change: Callable[[TLSMaterial], Awaitable[None]] | None = None,
) -> bool:
    """One round: ``source.ensure()``; when the material differs from what ``tls`` serves, await
    ``on_change(material)`` (e.g. apply the webhook configuration with the new caBundle) and then
    reload. Returns whether it reloaded. Errors propagate; if ``on_change`` raises, nothing is
    reloaded and the next round tries again."""
    material = await source.ensure()
    if material == tls.material:
        return False
    if on_change is not None:
        await on_change(material)
    tls.reload(material)
    return True


async def run_rotation(
    source: CertificateSource,
    tls: ReloadableTLS,
    *,
    interval: float,
    on_change: Callable[[TLSMaterial], Awaitable[None]] | None = None,
    retry: float = 30.0,
) -> None:
    """:func:`refresh` every ``interval`` seconds (±10 % jitter) until cancelled; after a failed
    round (logged as a warning) the next comes after ``min(retry, interval)`` seconds."""
    delay = interval
    while True:
        await asyncio.sleep(delay * random.uniform(0.9, 1.1))
        try:
            if await refresh(source, tls, on_change):
                assert tls.material is not None
                log.info(
                    "admission: serving certificate reloaded (expires %s)",
                    f"{tls.material.not_after:%Y-%m-%d %H:%M}Z",
                )
            delay = interval
        except Exception as exc:
            delay = min(retry, interval)
            log.warning(
                "admission: certificate refresh failed (%s: %s); retrying in %.0fs",
                type(exc).__name__,
                exc,
                delay,
            )
