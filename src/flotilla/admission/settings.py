"""The admission webhook's settings, from the environment the Helm chart sets (``FLOTILLA_WEBHOOK_*``)."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flotilla.admission.config import (
    FAILURE_POLICIES,
    MAX_TIMEOUT_SECONDS,
    hub_hold_configuration,
    webhook_configuration,
)
from flotilla.admission.tls import CertificateManager, CertificateSource, FileCertificateSource, SecretAPI
from flotilla.leader import default_namespace, env_bool

ENV_ENABLED = "FLOTILLA_WEBHOOK_ENABLED"
ENV_PORT = "FLOTILLA_WEBHOOK_PORT"
ENV_ADDR = "FLOTILLA_WEBHOOK_ADDR"
ENV_SERVICE_NAME = "FLOTILLA_WEBHOOK_SERVICE_NAME"
ENV_SERVICE_NAMESPACE = "FLOTILLA_WEBHOOK_SERVICE_NAMESPACE"
ENV_SERVICE_PORT = "FLOTILLA_WEBHOOK_SERVICE_PORT"
ENV_URL = "FLOTILLA_WEBHOOK_URL"
ENV_SECRET_NAME = "FLOTILLA_WEBHOOK_SECRET_NAME"
ENV_CERT_DIR = "FLOTILLA_WEBHOOK_CERT_DIR"
ENV_FAILURE_POLICY = "FLOTILLA_WEBHOOK_FAILURE_POLICY"
ENV_TIMEOUT_SECONDS = "FLOTILLA_WEBHOOK_TIMEOUT_SECONDS"
ENV_CONFIG_NAME = "FLOTILLA_WEBHOOK_CONFIG_NAME"
ENV_NAMESPACE_SELECTOR = "FLOTILLA_WEBHOOK_NAMESPACE_SELECTOR"
ENV_OBJECT_SELECTOR = "FLOTILLA_WEBHOOK_OBJECT_SELECTOR"
ENV_CERT_CHECK_INTERVAL = "FLOTILLA_WEBHOOK_CERT_CHECK_INTERVAL"
ENV_HUB_HOLD = "FLOTILLA_HUB_HOLD"

DEFAULT_PATH = "/validate"
MUTATE_PATH = "/mutate"


@dataclass(frozen=True)
class WebhookSettings:
    """Where the webhook listens, how the API server reaches it, where its certificates come from
    and how the ValidatingWebhookConfiguration is written."""

    enabled: bool = False
    port: int = 9443
    addr: str = "127.0.0.1"
    service_name: str = "flotilla-webhook"
    service_namespace: str = "default"
    service_port: int = 443
    url: str | None = None
    secret_name: str = "flotilla-webhook-cert"
    cert_dir: Path | None = None
    failure_policy: str = "Fail"
    timeout_seconds: int = 10
    config_name: str = "flotilla-admission"
    namespace_selector: dict[str, Any] | None = None
    object_selector: dict[str, Any] | None = None
    cert_check_interval: float = 300.0
    hub_hold: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """Read ``FLOTILLA_WEBHOOK_*``; ValueError names a variable whose value is unusable.

        * ``ENABLED`` (default false: a local ``kopf run`` registers no webhook; the chart sets it);
        * ``PORT`` (9443) and ``ADDR`` (127.0.0.1; the chart sets 0.0.0.0): where the server listens;
        * ``SERVICE_NAME`` (flotilla-webhook), ``SERVICE_NAMESPACE`` (the service account's
          namespace, else ``default``), ``SERVICE_PORT`` (443): the Service the API server calls;
        * ``URL``: call this ``https://`` URL instead of the Service (e.g. on the local rig);
        * ``SECRET_NAME`` (flotilla-webhook-cert, in the service namespace): where the CA and the
          serving certificate are kept, unless ``CERT_DIR`` names a directory with
          ``tls.crt``/``tls.key``/``ca.crt`` (cert-manager mode: the operator neither writes the
          certificate nor the caBundle);
        * ``FAILURE_POLICY`` (Fail | Ignore), ``TIMEOUT_SECONDS`` (10; 1..30), ``CONFIG_NAME``
          (flotilla-admission): the ValidatingWebhookConfiguration;
        * ``NAMESPACE_SELECTOR`` / ``OBJECT_SELECTOR``: label selectors as JSON; the namespace
          selector defaults to every namespace but kube-system and the service namespace;
        * ``CERT_CHECK_INTERVAL`` (300): seconds between certificate checks;
        * ``FLOTILLA_HUB_HOLD`` (default true): also serve the hub hold's mutating webhook at
          ``/mutate`` (MutatingWebhookConfiguration ``CONFIG_NAME``; see :mod:`flotilla.hubhold`)."""
        env = os.environ if environ is None else environ

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        namespace = text(ENV_SERVICE_NAMESPACE, "") or default_namespace()
        url = text(ENV_URL, "") or None
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError(f"{ENV_URL} must be an https:// URL with a host, not {url!r}")
        failure_policy = text(ENV_FAILURE_POLICY, "Fail")
        if failure_policy not in FAILURE_POLICIES:
            raise ValueError(f"{ENV_FAILURE_POLICY} must be Fail or Ignore, not {failure_policy!r}")
        timeout = _int(env, ENV_TIMEOUT_SECONDS, 10, 1, MAX_TIMEOUT_SECONDS)
        cert_dir = text(ENV_CERT_DIR, "")
        namespace_selector = _selector(env, ENV_NAMESPACE_SELECTOR)
        if namespace_selector is None:
            namespace_selector = {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": sorted({"kube-system", namespace}),
                    }
                ]
            }
        try:
            interval = float(text(ENV_CERT_CHECK_INTERVAL, "300"))
        except ValueError:
            interval = 0.0
        if not interval > 0:
            raise ValueError(f"{ENV_CERT_CHECK_INTERVAL} must be a positive number of seconds")
        return cls(
            enabled=env_bool(env.get(ENV_ENABLED), False),
            port=_int(env, ENV_PORT, 9443, 1, 65535),
            addr=text(ENV_ADDR, "127.0.0.1"),
            service_name=text(ENV_SERVICE_NAME, "flotilla-webhook"),
            service_namespace=namespace,
            service_port=_int(env, ENV_SERVICE_PORT, 443, 1, 65535),
            url=url,
            secret_name=text(ENV_SECRET_NAME, "flotilla-webhook-cert"),
            cert_dir=Path(cert_dir) if cert_dir else None,
            failure_policy=failure_policy,
            timeout_seconds=timeout,
            config_name=text(ENV_CONFIG_NAME, "flotilla-admission"),
            namespace_selector=namespace_selector,
            object_selector=_selector(env, ENV_OBJECT_SELECTOR),
            cert_check_interval=interval,
            hub_hold=env_bool(env.get(ENV_HUB_HOLD), True),
        )

    @property
    def path(self) -> str:
        """The HTTP path the server answers reviews on (the URL's path when a URL is set)."""
        if self.url:
            return urlsplit(self.url).path or DEFAULT_PATH
        return DEFAULT_PATH

    @property
    def hub_hold_active(self) -> bool:
        """Whether the hub hold's mutating webhook is served (it needs the webhook server)."""
        return self.enabled and self.hub_hold

    @property
    def manages_certificates(self) -> bool:
        """True when the operator keeps the certificates (in the Secret) and writes the caBundle;
        False in cert-manager mode (``cert_dir``)."""
        return self.cert_dir is None

    def client_config(self, path: str | None = None) -> dict[str, Any]:
        """How the API server reaches the webhook at ``path`` (default :attr:`path`): the URL
        (with that path) when set, else the Service."""
        path = path or self.path
        if self.url:
            return {"url": urlunsplit(urlsplit(self.url)._replace(path=path))}
        return {
            "service": {
                "namespace": self.service_namespace,
                "name": self.service_name,
                "port": self.service_port,
                "path": path,
            }
        }

    def dns_names(self) -> tuple[str, ...]:
        """Names the serving certificate must cover (the API server checks ``<svc>.<ns>.svc``)."""
        if self.url:
            host = urlsplit(self.url).hostname or ""
            return () if _is_ip(host) else (host,)
        svc, ns = self.service_name, self.service_namespace
        return (f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", f"{svc}.{ns}", svc)

    def ips(self) -> tuple[str, ...]:
        """IP addresses the serving certificate must cover (the URL's host when it is one)."""
        host = (urlsplit(self.url).hostname or "") if self.url else ""
        return (host,) if _is_ip(host) else ()

    def certificate_source(self, secret_api: SecretAPI | None) -> CertificateSource:
        """Files in ``cert_dir`` when set; otherwise a :class:`CertificateManager` on
        ``service_namespace/secret_name`` (``secret_api`` is then required)."""
        if self.cert_dir is not None:
            return FileCertificateSource(self.cert_dir)
        if secret_api is None:
            raise ValueError("managing the webhook certificates in a Secret needs a Secret API")
        return CertificateManager(
            secret_api, self.service_namespace, self.secret_name, self.dns_names(), self.ips()
        )

    def configuration(self, rules: list[dict[str, Any]], ca_bundle: bytes | None) -> dict[str, Any]:
        """The ValidatingWebhookConfiguration for ``rules``; ``ca_bundle`` is left out in
        cert-manager mode whatever is passed."""
        return webhook_configuration(
            self.config_name,
            client_config=self.client_config(),
            rules=rules,
            ca_bundle=ca_bundle if self.manages_certificates else None,
            failure_policy=self.failure_policy,
            timeout_seconds=self.timeout_seconds,
            namespace_selector=self.namespace_selector,
            object_selector=self.object_selector,
        )

    def hub_hold_configuration(
        self, workload_rules: list[dict[str, Any]], ca_bundle: bytes | None
    ) -> dict[str, Any]:
        """The hub hold's MutatingWebhookConfiguration (same name, failure policy, timeout and
        namespace selector as the validating one; the object selector is not applied: pods do not
        carry their workload's labels)."""
        return hub_hold_configuration(
            self.config_name,
            client_config=self.client_config(MUTATE_PATH),
            workload_rules=workload_rules,
            ca_bundle=ca_bundle if self.manages_certificates else None,
            failure_policy=self.failure_policy,
            timeout_seconds=self.timeout_seconds,
            namespace_selector=self.namespace_selector,
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be within {low}..{high}, not {value}")
    return value


def _selector(env: Mapping[str, str], name: str) -> dict[str, Any] | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(f"{name} must be a JSON label selector, not {raw!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object (a label selector)")
    return value
