"""A small synchronous REST client for one member: kubeconfig text in, JSON and watch streams out.

Built on ``kubernetes.client.ApiClient`` (v37: ``param_serialize`` + ``call_api``), but answers
stay plain JSON dicts: the inventory converts them straight into scheduler objects, with no
model deserialisation. Streams can be aborted from another thread (:meth:`MemberClient.abort`),
so watch threads stop promptly.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
import yaml
from kubernetes.client import ApiClient, ApiException, Configuration
from kubernetes.config.kube_config import KubeConfigLoader
from kubernetes.watch.watch import iter_resp_lines

from flotilla.inventory.discovery import (
    AGGREGATED_ACCEPT,
    ApiResourceEntry,
    is_aggregated,
    parse_aggregated,
    parse_resource_list,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "InventoryError",
    "MemberClient",
    "load_kubeconfig",
]

CONNECT_TIMEOUT = 5.0
"""Seconds to establish a TCP/TLS connection to a member."""


class InventoryError(Exception):
    """A member cannot be used as configured; ``reason`` is a CamelCase category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def load_kubeconfig(text: str) -> Configuration:
    """A client Configuration from kubeconfig text (current context).

    Raises :class:`InventoryError` (reason ``KubeconfigInvalid``) naming what is wrong: not YAML,
    not a kubeconfig, a missing key, a server that is not an http(s) URL, or certificate data
    that does not load.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError("KubeconfigInvalid", f"kubeconfig is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise InventoryError("KubeconfigInvalid", "kubeconfig has no clusters (not a kubeconfig?)")
    cfg = Configuration()
    try:
        KubeConfigLoader(config_dict=_with_data_in_files(doc)).load_and_set(cfg)
    except InventoryError:
        raise
    except Exception as exc:  # the loader raises ConfigException, KeyError, binascii.Error, ...
        raise InventoryError("KubeconfigInvalid", f"kubeconfig cannot be used: {exc}") from None
    host = str(getattr(cfg, "host", "") or "")
    if not host.startswith(("https://", "http://")):
        raise InventoryError("KubeconfigInvalid", f"kubeconfig server {host!r} is not an http(s) URL")
    try:  # undecodable certificate data only shows at the TLS handshake otherwise
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    except (ssl.SSLError, OSError) as exc:
        raise InventoryError(
            "KubeconfigInvalid", f"kubeconfig certificates cannot be loaded: {exc}"
        ) from None
    cfg.retries = 0  # fail fast; the inventory retries with its own backoff
    return cfg


# (section, key holding base64 data, key naming a file) of the kubeconfig fields that carry PEM.
_DATA_FIELDS = (
    ("clusters", "cluster", "certificate-authority-data", "certificate-authority"),
    ("users", "user", "client-certificate-data", "client-certificate"),
    ("users", "user", "client-key-data", "client-key"),
)
_pem_dir: str | None = None
_pem_lock = threading.Lock()


def _pem_file(data: bytes) -> str:
    """A file holding ``data``, content-addressed in a directory private to this process.

    The kubernetes client writes inline certificate data to temporary files itself, but it
    publishes each file in a process-wide cache before writing it: another thread loading a
    kubeconfig with the same data (members sharing a CA) can read it empty and fail with
    ``NO_CERTIFICATE_OR_CRL_FOUND``. Here a file is complete before anyone can see its name.
    """
    global _pem_dir
    with _pem_lock:
        if _pem_dir is None:
            try:
                _pem_dir = tempfile.mkdtemp(prefix="flotilla-kubeconfig-")
            except OSError as exc:
                raise InventoryError(
                    "KubeconfigInvalid", f"kubeconfig certificate data cannot be written: {exc}"
                ) from None
            atexit.register(shutil.rmtree, _pem_dir, True)
        path = os.path.join(_pem_dir, hashlib.sha256(data).hexdigest())
        if not os.path.exists(path):
            fd, partial = tempfile.mkstemp(dir=_pem_dir)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(partial, path)
        return path


def _with_data_in_files(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every inline certificate or key moved to a file (see :func:`_pem_file`)."""
    doc = dict(doc)
    for section, inner, data_key, file_key in _DATA_FIELDS:
        entries = doc.get(section)
        if not isinstance(entries, list):
            continue
        copied = []
        for entry in entries:
            body = entry.get(inner) if isinstance(entry, dict) else None
            if isinstance(body, dict) and body.get(data_key):
                try:
                    data = base64.standard_b64decode(str(body[data_key]))
                except (binascii.Error, ValueError) as exc:
                    raise InventoryError(
                        "KubeconfigInvalid", f"kubeconfig {inner} {data_key} is not base64: {exc}"
                    ) from None
                body = {k: v for k, v in body.items() if k != data_key} | {file_key: _pem_file(data)}
                entry = {**entry, inner: body}
            copied.append(entry)
        doc[section] = copied
    return doc


class MemberClient:
    """JSON GETs, watch streams and discovery against one member API server. Thread-safe."""

    def __init__(self, configuration: Configuration) -> None:
        self.host: str = configuration.host
        self._api = ApiClient(configuration)
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()
        self._closed = False

    # -- requests ------------------------------------------------------------------------------
    def _request(
        self,
        path: str,
        query: list[tuple[str, str]] | None,
        accept: str,
        read_timeout: float,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> Any:
        method, url, headers, body, _ = self._api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        rest = self._api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=(connect_timeout, read_timeout)
        )
        return rest.response  # urllib3 response, body not read yet

    def _register(self, resp: Any) -> None:
        with self._open_lock:
            if self._closed:
                resp.release_conn()
                raise InventoryError("Stopped", "the member connection was stopped")
            self._open.add(resp)

    def _unregister(self, resp: Any) -> None:
        with self._open_lock:
            self._open.discard(resp)
        resp.release_conn()

    def get(
        self,
        path: str,
        query: list[tuple[str, str]] | None = None,
        *,
        accept: str = "application/json",
        timeout: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> Any:
        """GET ``path`` and decode JSON (or return text); non-2xx raises ``ApiException``."""
        resp = self._request(path, query, accept, timeout, connect_timeout)
        self._register(resp)
        try:
            data = resp.data
            if not 200 <= resp.status <= 299:
                raise ApiException(status=resp.status, reason=resp.reason)
        finally:
            self._unregister(resp)
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
        try:
            return json.loads(text)
        except ValueError:
            return text

    def watch(self, path: str, query: list[tuple[str, str]], *, timeout: float) -> Iterator[dict[str, Any]]:
        """Stream watch events (``{"type", "object"}`` dicts) until the server closes the stream.

        ``timeout`` is the read timeout: the server's ``timeoutSeconds`` should be shorter.
        :meth:`abort` (from any thread) ends the iteration with an exception.
        """
        resp = self._request(path, [*query, ("watch", "true")], "application/json", timeout)
        self._register(resp)
        try:
            if not 200 <= resp.status <= 299:
                raise ApiException(status=resp.status, reason=f"{resp.reason}: {resp.data[:300]!r}")
            for line in iter_resp_lines(resp):
                if line:
                    yield json.loads(line)
        finally:
            resp.close()
            self._unregister(resp)

    def abort(self) -> None:
        """Close every open stream now (unblocks threads reading them) and refuse new requests."""
        with self._open_lock:
            self._closed = True
            open_responses = list(self._open)
        for resp in open_responses:
            sock = getattr(getattr(resp, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.abort()
        self._api.rest_client.pool_manager.clear()

    # -- higher level --------------------------------------------------------------------------
    def version(self) -> str:
        """The member's Kubernetes version (``gitVersion`` of ``/version``)."""
        return str(self.get("/version", timeout=10.0).get("gitVersion", ""))

    def readyz(self, timeout: float = 5.0) -> None:
        """Probe ``/readyz`` (connecting and reading each within ``timeout`` seconds); returns
        when it answers ``ok``, raises otherwise."""
        body = self.get(
            "/readyz",
            accept="text/plain, */*",
            timeout=timeout,
            connect_timeout=min(timeout, CONNECT_TIMEOUT),
        )
        if body != "ok":
            raise ApiException(status=503, reason=f"/readyz answered {str(body)[:200]!r}")

    def discover(self) -> list[ApiResourceEntry]:
        """Every served resource, via aggregated discovery or (older servers) the legacy walk.

        A group version that fails in the legacy walk (an unavailable aggregated API) is skipped.
        """
        entries: list[ApiResourceEntry] = []
        for root in ("/api", "/apis"):
            doc = self.get(root, accept=AGGREGATED_ACCEPT, timeout=30.0)
            if is_aggregated(doc):
                entries += parse_aggregated(doc)
                continue
            if root == "/api":
                versions = [f"/api/{v}" for v in doc.get("versions") or ()]
            else:
                versions = [
                    f"/apis/{v['groupVersion']}"
                    for g in doc.get("groups") or ()
                    for v in g.get("versions") or ()
                ]
            for path in versions:
                try:
                    entries += parse_resource_list(self.get(path, timeout=30.0))
                except ApiException:
                    continue
        return entries


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means "could not talk to the server" (rather than an HTTP answer)."""
    if isinstance(exc, ApiException):
        return not exc.status  # status 0: TLS failure inside the client
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError)
