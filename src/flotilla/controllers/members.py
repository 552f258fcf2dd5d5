"""MemberCluster controller: kubeconfig Secret -> live inventory connection -> status.

A broken or missing kubeconfig never raises out of a handler: it becomes ``Ready=False`` with a
reason (``SecretNotFound``, ``KubeconfigInvalid``, ``Unreachable``) and the operator keeps serving
the other members.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient, ApiException

from flotilla import kube, metrics
from flotilla.controllers.common import with_condition
from flotilla.inventory import InventoryManager
from flotilla.inventory.client import InventoryError, load_kubeconfig
from flotilla.scheduler import SchedulerCache


def kubeconfig_from_secret(secret: Mapping[str, Any], key: str) -> str:
    """The kubeconfig text stored under ``key`` of a Secret (``data`` base64, or ``stringData``)."""
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    data = (secret.get("data") or {}).get(key)
    if data is None:
        raise KeyError(
            f"Secret {secret['metadata'].get('namespace')}/{secret['metadata']['name']} has no key {key!r}"
        )
    return base64.b64decode(data).decode()


@dataclass
class MemberController:
    hub: ApiClient
    cache: SchedulerCache
    lock: threading.RLock
    on_change: Callable[[str], None] = lambda _name: None
    active: Callable[[], bool] = lambda: True
    """Whether this replica leads: a standby keeps its inventory warm but writes nothing."""
    inventory: InventoryManager = field(init=False)
    _clients: dict[str, tuple[str, ApiClient]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inventory = InventoryManager(self.cache, self.lock, on_change=self.on_change)

    def ready(self, name: str) -> bool:
        """Whether the member is connected and Ready (its figures are live)."""
        return name in self._clients and self.inventory.ready(name)

    def api(self, name: str) -> ApiClient | None:
        """An ApiClient for a connected member (None when it has no usable kubeconfig)."""
        entry = self._clients.get(name)
        return entry[1] if entry else None

    async def reconcile(self, name: str, body: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._reconcile_sync, name, dict(body))

    def _reconcile_sync(self, name: str, body: dict[str, Any]) -> None:
        spec = body.get("spec") or {}
        ref = spec.get("secretRef") or {}
        labels = dict((body.get("metadata") or {}).get("labels") or {})
        location = {k: str(spec.get(k) or labels.get(k) or "") for k in ("provider", "region", "zone")}
        taints = list(spec.get("taints") or [])
        text: str | None = None
        problem: tuple[str, str] | None = None
        try:
            secret = kube.get(self.hub, "v1", "Secret", ref.get("name", ""), ref.get("namespace"))
            if secret is None:
                problem = (
                    "SecretNotFound",
                    f"Secret {ref.get('namespace')}/{ref.get('name')} does not exist",
                )
            else:
                text = kubeconfig_from_secret(secret, ref.get("key") or "kubeconfig")
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            problem = ("KubeconfigInvalid", str(exc))
        except ApiException as exc:
            problem = ("SecretUnreadable", f"reading the Secret failed: {exc.status} {exc.reason}")
        if text is not None:
            digest = hashlib.sha256(text.encode()).hexdigest()
            if self._clients.get(name, ("",))[0] != digest:
                try:
                    client = ApiClient(load_kubeconfig(text))
                except InventoryError as exc:
                    self._clients.pop(name, None)
                    problem = (exc.reason, exc.message)
                else:
                    self._clients[name] = (digest, client)
            self.inventory.register(name, text, labels=labels, taints=taints, **location)
        else:
            self._clients.pop(name, None)
            self.inventory.unregister(name)
        if self.active():
            self._publish(name, body, problem)

    def _publish(self, name: str, body: dict[str, Any], problem: tuple[str, str] | None) -> None:
        previous = list((body.get("status") or {}).get("conditions") or [])
        generation = (body.get("metadata") or {}).get("generation")
        status: dict[str, Any] = {"observedGeneration": generation}
        if problem is not None:
            ready, reason, message = False, problem[0], problem[1]
        else:
            state = self.inventory.state(name)
            ready, reason, message = state.ready, state.reason, state.message
            status.update(state.status_fields())
            summary = status.get("resourceSummary")
            if summary and "gpuModelNames" not in summary:
                summary["gpuModelNames"] = ",".join(
                    sorted(m["model"] for m in summary.get("gpuModels") or ())
                )
        metrics.CLUSTER_READY.labels(cluster=name).set(1 if ready else 0)
        for model in (status.get("resourceSummary") or {}).get("gpuModels") or ():
            metrics.CLUSTER_GPUS.labels(cluster=name, gpu_model=model["model"]).set(model.get("total", 0))
            metrics.CLUSTER_GPUS_FREE.labels(cluster=name, gpu_model=model["model"]).set(model.get("free", 0))
        status["conditions"] = with_condition(previous, "Ready", ready, reason, message, generation)
        current = body.get("status") or {}
        if any(current.get(k) != v for k, v in status.items() if k != "conditions") or [
            (c["type"], c["status"], c["reason"], c["message"]) for c in current.get("conditions") or []
        ] != [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]]:
            kube.patch(self.hub, {**body, "apiVersion": body["apiVersion"]}, {"status": status}, "status")

    def unregister(self, name: str) -> None:
        self.inventory.unregister(name)
        self._clients.pop(name, None)

    def stop_all(self) -> None:
        self.inventory.stop_all()
        self._clients.clear()
