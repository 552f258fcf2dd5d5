"""An HTTPS server (aiohttp) that answers the API server's admission calls with a handler.

``POST <path>`` takes an ``admission.k8s.io/v1`` AdmissionReview and answers with the handler's
:class:`AdmissionResponse` (one handler per path: the validating one at ``path``, others in
``routes``, e.g. the hub hold's mutating handler). A body that is not an AdmissionReview gets
HTTP 400. A handler that raises is answered with a denial (code 500, reason ``InternalError``,
the exception's message) and logged once with its traceback. ``GET /healthz`` answers 200, or
503 when the served certificate has expired. The TLS context is the :class:`ReloadableTLS` one,
so a reload changes the certificate of new connections without a restart; connections left idle
for ``keepalive_timeout`` seconds are closed by the server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.admission.tls import ReloadableTLS

log = logging.getLogger("flotilla.admission")

Handler = Callable[[AdmissionRequest], Awaitable[AdmissionResponse]]

MAX_BODY = 16 * 1024 * 1024
"""An AdmissionReview carries the object and, on UPDATE, its old version (each up to etcd's
1.5 MiB request limit, more once serialised as JSON)."""


class AdmissionServer:
    def __init__(
        self,
        handler: Handler,
        *,
        tls: ReloadableTLS,
        host: str,
        port: int,
        path: str = "/validate",
        keepalive_timeout: float = 75.0,
        routes: Mapping[str, Handler] | None = None,
    ) -> None:
        """``port`` 0 picks a free port (see :attr:`port` after :meth:`start`); ``routes`` adds
        handlers on further paths."""
        self.handler = handler
        self.routes = dict(routes or {})
        if path in self.routes:
            raise ValueError(f"path {path!r} is given twice")
        self.tls = tls
        self.host = host
        self.path = path
        self.keepalive_timeout = keepalive_timeout
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when 0 was asked, once started)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self._port}{self.path}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the admission server is already running")
        if self.tls.material is None:
            raise RuntimeError("the admission server needs a certificate: reload the TLS context first")
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path, self._review)
        for route, handler in self.routes.items():
            app.router.add_post(route, self._reviewer(handler))
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.keepalive_timeout)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, ssl_context=self.tls.context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        for address in runner.addresses:
            if isinstance(address, tuple):  # (host, port, ...) of an INET socket
                self._port = int(address[1])
                break
        self._runner = runner
        log.info("admission: serving %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        material = self.tls.material
        if material is None or material.not_after <= dt.datetime.now(dt.UTC):
            return web.Response(status=503, text="serving certificate expired\n")
        return web.Response(text="ok\n")

    def _reviewer(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def review(request: web.Request) -> web.Response:
            return await self._answer(request, handler)

        return review

    async def _review(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.handler)

    async def _answer(self, request: web.Request, handler: Handler) -> web.Response:
        try:
            review = json.loads(await request.read())
            admission = AdmissionRequest.from_review(review)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("admission: malformed AdmissionReview from %s: %s", request.remote, exc)
            return web.Response(status=400, text=f"malformed AdmissionReview: {exc}\n")
        try:
            response = await handler(admission)
        except Exception as exc:
            log.exception(
                "admission: handler failed on %s %s %s/%s (uid %s)",
                admission.operation,
                admission.kind.kind,
                admission.namespace,
                admission.name,
                admission.uid,
            )
            response = AdmissionResponse.deny(
                str(exc) or type(exc).__name__, code=500, reason="InternalError"
            )
        return web.json_response(response.to_review(admission.uid))
