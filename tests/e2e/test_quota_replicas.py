"""Two operator replicas serve the quota webhook behind a round-robin balancer (as behind a
Service): 50 concurrent applies still fill a 64-GPU quota exactly."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from operator_support import REPO, WAIT, install_flotilla_crds, new_namespace
from test_quota import _fill_from_50_processes

from flotilla import kube
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.demo import WEBHOOK_CONFIG, remove_webhook, webhook_env
from flotilla.rig.runner import free_port

HOST = os.environ.get("FLOTILLA_E2E_WEBHOOK_HOST") or "127.0.0.1"  # see flotilla.rig.demo.webhook_env


class Balancer:
    """An HTTPS load balancer on 127.0.0.1 that sends each review to the next replica in turn
    (an L7 proxy, as a mesh would be: the API server keeps one connection open, so a per-connection
    balancer would pin it to one replica). It serves the operators' own certificate from their
    Secret and trusts their CA upstream."""

    def __init__(self, hub: ClusterHandle, backends: list[int]) -> None:
        self.hub, self.backends, self.port = hub, backends, free_port()
        self.calls = [0] * len(backends)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client_tls: ssl.SSLContext | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        i = sum(self.calls) % len(self.backends)
        self.calls[i] += 1
        assert self._session is not None
        body = await request.read()
        url = f"https://{HOST}:{self.backends[i]}{request.path}"
        async with self._session.post(
            url, data=body, headers={"Content-Type": "application/json"}, ssl=self._client_tls
        ) as upstream:
            return web.Response(
                body=await upstream.read(), status=upstream.status, content_type="application/json"
            )

    async def _start(self, tmp: Path) -> None:
        secret = kube.get(self.hub.api_client(), "v1", "Secret", "flotilla-webhook-cert", "flotilla-system")
        assert secret is not None
        files = {}
        for key in ("tls.crt", "tls.key", "ca.crt"):
            files[key] = tmp / key
            files[key].write_bytes(base64.b64decode(secret["data"][key]))
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(files["tls.crt"], files["tls.key"])
        self._client_tls = ssl.create_default_context(cafile=str(files["ca.crt"]))
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/validate", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port, ssl_context=server_tls).start()

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self, tmp: Path) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(tmp), self._loop).result(30)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def two_replicas(hub: ClusterHandle, tmp_path: Path) -> Iterator[Balancer]:
    install_flotilla_crds(hub)
    ports = [free_port(), free_port()]
    balancer = Balancer(hub, ports)
    lease = f"quota-{uuid.uuid4().hex[:5]}"
    procs: list[subprocess.Popen[bytes]] = []
    cfg = ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", WEBHOOK_CONFIG)
    try:
        for i, port in enumerate(ports):
            env = {
                **os.environ,
                "KUBECONFIG": str(hub.kubeconfig),
                "FLOTILLA_METRICS_PORT": "0",
                **webhook_env(hub, port),
                "FLOTILLA_WEBHOOK_URL": f"https://{HOST}:{balancer.port}/validate",
                "FLOTILLA_LEADER_ELECT": "true",
                "FLOTILLA_LEADER_ELECTION_NAMESPACE": "flotilla-system",
                "FLOTILLA_LEADER_ELECTION_NAME": lease,
            }
            with (tmp_path / f"replica-{i}.log").open("ab") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "flotilla"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        cwd=REPO,
                    )
                )
        # Both replicas registered the same webhook (the balancer's URL) from the same Secret.
        kube.wait_for(
            lambda: (kube.get(hub.api_client(), *cfg) or {}).get("webhooks"),
            timeout=WAIT,
            what="the replicas to register the webhook",
        )
        for port in ports:  # both replicas serve before any review is sent their way
            kube.wait_for(partial(_listening, port), timeout=WAIT, what=f"a replica serving on {port}")
        balancer.start(tmp_path)
        yield balancer
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        balancer.stop()
        remove_webhook(hub)
        for i in range(len(ports)):
            log_path = tmp_path / f"replica-{i}.log"
            if log_path.exists():
                print(f"--- replica {i} log (tail) ---\n" + log_path.read_text()[-3000:])


def test_two_replicas_fill_the_quota_exactly(hub: ClusterHandle, two_replicas: Balancer) -> None:
    _fill_from_50_processes(hub, new_namespace(hub, "quota-two"))
    assert all(two_replicas.calls), two_replicas.calls  # both replicas answered reviews
