"""The operator's admission webhooks: certificates, the TLS server, and the webhook registration.

Every replica serves the webhooks (the Service spreads reviews over them; charges are exact
across replicas, see :mod:`flotilla.quota.admission`) and applies the same configurations with
server-side apply. The quota's ValidatingWebhookConfiguration has rules for every workload kind the
interpreters know, and their ``scale`` subresources (``kubectl scale``); they are applied again
when an InterpreterCustomization adds a kind, and with a new caBundle when the certificates rotate.
With ``hold`` (the hub hold, :mod:`flotilla.hubhold`), the same server answers its mutating
reviews at ``/mutate`` and a MutatingWebhookConfiguration of the same name is applied beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client import ApiClient

from flotilla import kube
from flotilla.admission.config import apply_webhook_configuration, rules_for
from flotilla.admission.server import AdmissionServer
from flotilla.admission.settings import MUTATE_PATH, WebhookSettings
from flotilla.admission.tls import KubeSecretAPI, ReloadableTLS, TLSMaterial, run_rotation
from flotilla.controllers.client import KubeClient
from flotilla.hubhold import HubHold
from flotilla.interpreter import InterpreterRegistry
from flotilla.interpreter.prepare import MANAGED_BY_KINDS
from flotilla.quota.admission import Observed, QuotaAdmission

log = logging.getLogger("flotilla.quota")

CHARGE_TTL = float(os.environ.get("FLOTILLA_QUOTA_CHARGE_TTL", "30"))
"""Seconds an admission charge counts before the quota controller has seen its workload."""


class QuotaWebhook:
    def __init__(
        self,
        settings: WebhookSettings,
        hub: ApiClient,
        registry: InterpreterRegistry,
        kinds: Callable[[], Iterable[tuple[str, str]]],
        observed: Observed,
        hold: HubHold | None = None,
    ) -> None:
        self.settings, self.hub, self.kinds, self.hold = settings, hub, kinds, hold
        self._plurals: dict[tuple[str, str, str], str] = {}
        self.admission = QuotaAdmission(
            KubeClient(hub),
            registry,
            charge_ttl=CHARGE_TTL,
            deadline=max(settings.timeout_seconds - 2.0, 1.0),
            observed=observed,
            kind_of=lambda g, v, r: self._plurals.get((g, v, r)),
        )
        self.source = settings.certificate_source(
            KubeSecretAPI(hub) if settings.manages_certificates else None
        )
        self.tls = ReloadableTLS()
        self.server: AdmissionServer | None = None
        self._rotation: asyncio.Task[None] | None = None
        self._register_lock = asyncio.Lock()

    async def start(self) -> None:
        material = await self.source.ensure()
        self.tls.reload(material)
        self.server = AdmissionServer(
            self.admission.review,
            tls=self.tls,
            host=self.settings.addr,
            port=self.settings.port,
            path=self.settings.path,
            routes={MUTATE_PATH: self.hold.review} if self.hold is not None else None,
        )
        await self.server.start()
        await self.register(material)
        self._rotation = asyncio.create_task(
            run_rotation(
                self.source, self.tls, interval=self.settings.cert_check_interval, on_change=self.register
            )
        )

    async def register(self, material: TLSMaterial | None = None) -> None:
        """Apply the ValidatingWebhookConfiguration for the kinds known now (and a new caBundle)."""
        material = material or self.tls.material
        if material is None:
            return
        async with self._register_lock:
            rules = await asyncio.to_thread(self._rules)
            doc = self.settings.configuration(rules, material.ca_bundle)
            await asyncio.to_thread(apply_webhook_configuration, self.hub, doc)
            if self.hold is not None:
                hold_rules = await asyncio.to_thread(self._hold_rules)
                hold_doc = self.settings.hub_hold_configuration(hold_rules, material.ca_bundle)
                await asyncio.to_thread(apply_webhook_configuration, self.hub, hold_doc)
        log.info(
            "admission: webhook %s covers %d resource(s)",
            self.settings.config_name,
            sum(len(r["resources"]) for r in rules),
        )

    def _rules(self) -> list[dict[str, Any]]:
        def resolve(api_version: str, kind: str) -> str:
            plural, _namespaced = kube.resolve(self.hub, api_version, kind)
            group, _, version = api_version.rpartition("/")
            self._plurals[(group, version, plural)] = kind
            return plural

        return rules_for(sorted(set(self.kinds())), resolve, subresources=("scale",))

    def _hold_rules(self) -> list[dict[str, Any]]:
        """CREATE of the watched kinds that have a ``spec.managedBy`` Flotilla may claim."""
        kinds = [
            (v, k) for v, k in sorted(set(self.kinds())) if (v.rpartition("/")[0], k) in MANAGED_BY_KINDS
        ]
        return rules_for(kinds, lambda v, k: kube.resolve(self.hub, v, k)[0], operations=("CREATE",))

    async def stop(self) -> None:
        if self._rotation is not None:
            self._rotation.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rotation
        if self.server is not None:
            await self.server.stop()
