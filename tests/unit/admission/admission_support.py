"""Helpers for the admission webhook tests: an in-memory Secret store, a manual clock, TLS material,
an in-memory TLS handshake."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import ssl
from typing import Any

from flotilla import certs
from flotilla.admission.tls import SecretConflict, TLSMaterial


class FakeSecrets:
    """One API server's Secrets: resourceVersion bumps on every write; stale writes get 409."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.writes: list[str] = []  # "create" | "replace"

    def _stored(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[obj["metadata"]["namespace"], obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)  # let racing managers interleave at every call
        obj = self.objects.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        assert body["metadata"]["namespace"] == namespace
        if (namespace, body["metadata"]["name"]) in self.objects:
            raise SecretConflict("already exists")
        assert "resourceVersion" not in body["metadata"]
        self.writes.append("create")
        return self._stored(body)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        current = self.objects.get((namespace, name))
        if current is None:
            raise AssertionError("replace of a missing Secret")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise SecretConflict("the object has been modified")
        assert body.get("type", "") == current.get("type", "")  # type is immutable
        self.writes.append("replace")
        return self._stored(body)


class ManualClock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)  # X.509 times have whole seconds

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


def make_material(
    *, ips: tuple[str, ...] = ("127.0.0.1",), dns: tuple[str, ...] = ("localhost",)
) -> TLSMaterial:
    """A fresh CA and a serving certificate for 127.0.0.1/localhost."""
    ca, ca_key = certs.make_ca_pem("test-ca", validity=dt.timedelta(days=30))
    cert, key = certs.make_leaf_pem(
        "server", ca_cert=ca, ca_key=ca_key, ips=ips, dns=dns, validity=dt.timedelta(days=7)
    )
    return TLSMaterial(ca, cert, key, certs.not_after(cert))


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> bytes:
    """A TLS handshake in memory; returns the certificate (DER) the server presented.
    Raises ssl.SSLError when the client does not accept it."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    client_side = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            cert = client_side.getpeercert(binary_form=True)
            assert cert is not None
            return cert
    raise AssertionError("the handshake did not finish")


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())
