"""Handles to running clusters: where they are and how to talk to them."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flotilla import yamlout


@dataclass
class ClusterHandle:
    """One API server started by the rig (or reached through a kubeconfig on kind)."""

    name: str
    role: str  # "hub" | "member"
    server: str
    kubeconfig: Path
    ca_file: Path | None = None
    token: str | None = None
    pids: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` with admin rights on this cluster."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        return client.ApiClient(cfg)

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        """GET an API path with the admin token (small helper for probes; raises URLError)."""
        request = urllib.request.Request(self.server + path)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        with urllib.request.urlopen(request, timeout=timeout, context=ctx) as resp:
            body = resp.read()
        try:
            return json.loads(body)
        except ValueError:
            return body.decode()

    def ready(self) -> bool:
        try:
            return bool(self.get_json("/readyz", timeout=3.0) == "ok")
        except (urllib.error.URLError, OSError, TimeoutError):
            return False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["kubeconfig"] = str(self.kubeconfig)
        d["ca_file"] = str(self.ca_file) if self.ca_file else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClusterHandle:
        return cls(
            name=d["name"],
            role=d["role"],
            server=d["server"],
            kubeconfig=Path(d["kubeconfig"]),
            ca_file=Path(d["ca_file"]) if d.get("ca_file") else None,
            token=d.get("token"),
            pids=dict(d.get("pids", {})),
            labels=dict(d.get("labels", {})),
        )


def kubeconfig_doc(name: str, server: str, ca_file: Path, token: str) -> dict[str, Any]:
    """A kubeconfig with one context named after the cluster, using a bearer token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, name: str, server: str, ca_file: Path, token: str) -> None:
    """Write :func:`kubeconfig_doc` to ``path`` (mode 0600), every string quoted (see :mod:`flotilla.yamlout`:
    a cluster named ``y``, ``no`` or ``0123`` stays a name for Go and Python readers alike)."""
    text = yamlout.dump(kubeconfig_doc(name, server, ca_file, token))
    # Created 0600 (it holds the admin token), never readable by others even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def inline_kubeconfig(handle: ClusterHandle) -> str:
    """The cluster's kubeconfig with the CA embedded, fit to store in a Secret."""
    import base64

    doc = yaml.safe_load(handle.kubeconfig.read_text())
    for c in doc["clusters"]:
        ca = c["cluster"].pop("certificate-authority", None)
        if ca:
            c["cluster"]["certificate-authority-data"] = base64.b64encode(Path(ca).read_bytes()).decode()
    return yamlout.dump(doc)
