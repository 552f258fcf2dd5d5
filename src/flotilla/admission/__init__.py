"""A validating admission webhook served by the operator (aiohttp, no Kopf), with its certificates.

* :mod:`.review`: AdmissionReview request/response;
* :mod:`.server`: :class:`AdmissionServer`, HTTPS on a reloadable TLS context;
* :mod:`.tls`: certificates kept in a Secret (:class:`CertificateManager`) or mounted files
  (:class:`FileCertificateSource`), :class:`ReloadableTLS`, :func:`refresh`/:func:`run_rotation`;
* :mod:`.config`: the ValidatingWebhookConfiguration (build, rules, server-side apply);
* :mod:`.settings`: :class:`WebhookSettings` from ``FLOTILLA_WEBHOOK_*``.
"""

from flotilla.admission.config import apply_webhook_configuration, rules_for, webhook_configuration
from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.admission.server import AdmissionServer
from flotilla.admission.settings import WebhookSettings
from flotilla.admission.tls import (
    CertificateManager,
    CertificateSource,
    FileCertificateSource,
    KubeSecretAPI,
    ReloadableTLS,
    SecretAPI,
    SecretConflict,
    TLSMaterial,
    refresh,
    run_rotation,
)

__all__ = [
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionServer",
    "CertificateManager",
    "CertificateSource",
    "FileCertificateSource",
    "KubeSecretAPI",
    "ReloadableTLS",
    "SecretAPI",
    "SecretConflict",
    "TLSMaterial",
    "WebhookSettings",
    "apply_webhook_configuration",
    "refresh",
    "rules_for",
    "run_rotation",
    "webhook_configuration",
]
