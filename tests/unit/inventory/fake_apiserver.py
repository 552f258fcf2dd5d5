"""A tiny in-process Kubernetes API server: version, readyz, legacy discovery, list+watch of nodes/pods.

Enough of the real protocol for the inventory's threads: bearer-token auth, lists with a
resourceVersion, chunked watch streams that deliver events newer than the requested
resourceVersion, ``410 Gone`` on demand, and a switchable ``/readyz``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

RESOURCES = {"/api/v1/nodes": "nodes", "/api/v1/pods": "pods"}
DISCOVERY: dict[str, Any] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/apis": {
        "kind": "APIGroupList",
        "groups": [{"name": "kubeflow.org", "versions": [{"groupVersion": "kubeflow.org/v1"}]}],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "kind": "Pod"},
            {"name": "pods/status", "kind": "Pod"},
            {"name": "nodes", "kind": "Node"},
        ],
    },
    "/apis/kubeflow.org/v1": {
        "kind": "APIResourceList",
        "groupVersion": "kubeflow.org/v1",
        "resources": [{"name": "pytorchjobs", "kind": "PyTorchJob"}],
    },
}


class FakeApiServer:
    """Start with ``start()``; mutate with :meth:`put` / :meth:`delete`; ``stop()`` when done."""

    def __init__(self, token: str = "secret") -> None:
        self.token = token
        self.cond = threading.Condition()
        self.rv = 1
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"nodes": {}, "pods": {}}
        self.events: dict[str, list[tuple[int, str, dict[str, Any]]]] = {"nodes": [], "pods": []}
        self.readyz_status = 200
        self.gone_once: set[str] = set()
        self.generation = 0  # bump to end every open watch
        self.lists: Counter[str] = Counter()
        self.watches: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, token: str | None = None) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "u", "user": {"token": token or self.token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "fake",
            }
        )

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # -- state ---------------------------------------------------------------------------------
    def _key(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return str(meta.get("uid") or meta["name"])

    def put(self, resource: str, obj: dict[str, Any], *, silent: bool = False) -> None:
        """Add or replace an object (a watch event unless ``silent``: a missed event)."""
        with self.cond:
            self.rv += 1
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
            key = self._key(obj)
            kind = "MODIFIED" if key in self.objects[resource] else "ADDED"
            self.objects[resource][key] = obj
            if not silent:
                self.events[resource].append((self.rv, kind, obj))
            self.cond.notify_all()

    def delete(self, resource: str, obj: dict[str, Any], *, silent: bool = False) -> None:
        with self.cond:
            self.rv += 1
            old = self.objects[resource].pop(self._key(obj))
            if not silent:
                self.events[resource].append((self.rv, "DELETED", old))
            self.cond.notify_all()

    def expire_watches(self, resource: str) -> None:
        """End open watches; the next watch of ``resource`` gets ``410 Gone``."""
        with self.cond:
            self.gone_once.add(resource)
            self.generation += 1
            self.cond.notify_all()

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, event: dict[str, Any]) -> None:
                data = (json.dumps(event) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                    return
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/version":
                    self._send(200, {"gitVersion": "v1.34.0-fake"})
                elif url.path == "/readyz":
                    self._send(fake.readyz_status, "ok" if fake.readyz_status == 200 else "[-]etcd failed")
                elif url.path in DISCOVERY:
                    self._send(200, DISCOVERY[url.path])
                elif url.path in RESOURCES and query.get("watch") == "true":
                    self._watch(RESOURCES[url.path], int(query.get("resourceVersion") or 0))
                elif url.path in RESOURCES:
                    resource = RESOURCES[url.path]
                    with fake.cond:
                        fake.lists[resource] += 1
                        items = list(fake.objects[resource].values())
                        rv = fake.rv
                    self._send(
                        200, {"kind": "List", "metadata": {"resourceVersion": str(rv)}, "items": items}
                    )
                else:
                    self._send(404, {"kind": "Status", "code": 404})

            def _watch(self, resource: str, since: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                with fake.cond:
                    fake.watches[resource] += 1
                    generation = fake.generation
                    if resource in fake.gone_once:
                        fake.gone_once.discard(resource)
                        pending = [
                            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
                        ]
                        generation = -1
                    else:
                        pending = []
                try:
                    while True:
                        for event in pending:
                            self._chunk(event)
                        with fake.cond:
                            if fake.generation != generation:
                                break
                            pending = [
                                {"type": t, "object": o} for rv, t, o in fake.events[resource] if rv > since
                            ]
                            if pending:
                                since = max(rv for rv, _, _ in fake.events[resource])
                            else:
                                fake.cond.wait(0.5)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        return Handler
