"""The webhook configurations that send workload writes to the operator: build and apply.

The ValidatingWebhookConfiguration (quota) and the MutatingWebhookConfiguration of the hub hold
(:func:`hub_hold_configuration`: ``spec.managedBy`` on Jobs and JobSets, a scheduling gate on
pods; see :mod:`flotilla.hubhold`).

The rules follow the kinds the operator knows (:func:`rules_for`), so the document is rebuilt and
applied again (server-side apply, field manager ``flotilla``) when kinds are added at runtime.
Without a ``ca_bundle`` (cert-manager mode) the document carries no ``caBundle`` field, which then
stays owned by cert-manager's cainjector.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kubernetes.client import ApiClient

from flotilla import kube

log = logging.getLogger("flotilla.admission")

API_VERSION = "admissionregistration.k8s.io/v1"
KIND = "ValidatingWebhookConfiguration"
MUTATING_KIND = "MutatingWebhookConfiguration"
DEFAULT_WEBHOOK_NAME = "admission.flotilla.dev"
HOLD_WORKLOADS_WEBHOOK = "hub-hold-workloads.flotilla.dev"
HOLD_PODS_WEBHOOK = "hub-hold-pods.flotilla.dev"
OWNED_BY_A_CONTROLLER = (
    "has(object.metadata.ownerReferences) && "
    "object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)"
)
"""CEL ``matchConditions`` of the pod webhook: only pods a controller creates are sent to it."""
FAILURE_POLICIES = ("Fail", "Ignore")
MAX_TIMEOUT_SECONDS = 30  # the API server's limit


def webhook_configuration(
    name: str,
    *,
    client_config: dict[str, Any],
    rules: list[dict[str, Any]],
    ca_bundle: bytes | None,
    failure_policy: str,
    timeout_seconds: int,
    namespace_selector: dict[str, Any] | None,
    object_selector: dict[str, Any] | None,
    webhook_name: str = DEFAULT_WEBHOOK_NAME,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration ``name`` with one webhook ``webhook_name``.

    ``client_config`` is ``{"url": ...}`` or ``{"service": {namespace, name, port, path}}``;
    ``ca_bundle`` (PEM) is added to it base64-encoded, or left out when None. The webhook takes
    admission.k8s.io/v1 reviews only, has ``sideEffects: NoneOnDryRun`` (the handler may write, but
    not on dry-run requests) and ``matchPolicy: Equivalent``."""
    if failure_policy not in FAILURE_POLICIES:
        raise ValueError(f"failure_policy must be one of {FAILURE_POLICIES}, not {failure_policy!r}")
    if not 1 <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"timeout_seconds must be within 1..{MAX_TIMEOUT_SECONDS}, not {timeout_seconds}")
    if ("url" in client_config) == ("service" in client_config):
        raise ValueError("client_config needs exactly one of 'url' and 'service'")
    config = dict(client_config)
    if ca_bundle is not None:
        config["caBundle"] = base64.b64encode(ca_bundle).decode()
    webhook: dict[str, Any] = {
        "name": webhook_name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": config,
        "rules": rules,
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "NoneOnDryRun",
        "timeoutSeconds": timeout_seconds,
    }
    if namespace_selector is not None:
        webhook["namespaceSelector"] = namespace_selector
    if object_selector is not None:
        webhook["objectSelector"] = object_selector
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "webhooks": [webhook]}


def hub_hold_configuration(
    name: str,
    *,
    client_config: dict[str, Any],
    workload_rules: list[dict[str, Any]],
    ca_bundle: bytes | None,
    failure_policy: str,
    timeout_seconds: int,
    namespace_selector: dict[str, Any] | None,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration ``name`` of the hub hold: ``hub-hold-workloads`` for
    CREATE of the kinds in ``workload_rules`` (sets ``spec.managedBy``) and ``hub-hold-pods`` for
    CREATE of pods that have a controller owner (adds the scheduling gate). Both have
    ``sideEffects: None`` (the handler only reads) and ``reinvocationPolicy: Never``."""
    if failure_policy not in FAILURE_POLICIES:
        raise ValueError(f"failure_policy must be one of {FAILURE_POLICIES}, not {failure_policy!r}")
    if not 1 <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"timeout_seconds must be within 1..{MAX_TIMEOUT_SECONDS}, not {timeout_seconds}")
    config = dict(client_config)
    if ca_bundle is not None:
        config["caBundle"] = base64.b64encode(ca_bundle).decode()
    common: dict[str, Any] = {
        "admissionReviewVersions": ["v1"],
        "clientConfig": config,
        "failurePolicy": failure_policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": timeout_seconds,
        "reinvocationPolicy": "Never",
    }
    if namespace_selector is not None:
        common["namespaceSelector"] = namespace_selector
    webhooks = []
    if workload_rules:
        webhooks.append({"name": HOLD_WORKLOADS_WEBHOOK, **common, "rules": workload_rules})
    pod_rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
        "operations": ["CREATE"],
        "scope": "Namespaced",
    }
    webhooks.append(
        {
            "name": HOLD_PODS_WEBHOOK,
            **common,
            "rules": [pod_rule],
            "matchConditions": [{"name": "owned-by-a-controller", "expression": OWNED_BY_A_CONTROLLER}],
        }
    )
    return {
        "apiVersion": API_VERSION,
        "kind": MUTATING_KIND,
        "metadata": {"name": name},
        "webhooks": webhooks,
    }


def rules_for(
    kinds: Iterable[tuple[str, str]],
    resolve: Callable[[str, str], str],
    *,
    operations: Sequence[str] = ("CREATE", "UPDATE"),
    subresources: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Namespaced rules covering ``(apiVersion, kind)`` pairs: one rule per group and version,
    resources sorted. ``resolve(api_version, kind)`` gives the plural (e.g. via
    :func:`flotilla.kube.resolve`); a kind it raises LookupError for (not served) is left out and
    logged. ``subresources`` (e.g. ``("scale",)``) adds ``<plural>/<subresource>`` for every kind."""
    by_group: dict[tuple[str, str], set[str]] = {}
    for api_version, kind in kinds:
        group, _, version = api_version.rpartition("/")
        try:
            plural = resolve(api_version, kind)
        except LookupError as exc:
            log.info("admission: no webhook rule for %s %s: %s", api_version, kind, exc)
            continue
        resources = by_group.setdefault((group, version), set())
        resources.add(plural)
        resources.update(f"{plural}/{sub}" for sub in subresources)
    return [
        {
            "apiGroups": [group],
            "apiVersions": [version],
            "resources": sorted(resources),
            "operations": list(operations),
            "scope": "Namespaced",
        }
        for (group, version), resources in sorted(by_group.items())
    ]


def apply_webhook_configuration(
    api: ApiClient, doc: dict[str, Any], field_manager: str = "flotilla"
) -> dict[str, Any]:
    """Server-side apply ``doc`` (a Validating- or MutatingWebhookConfiguration; force: this manager
    takes the fields it sets); returns what the API server stored. Blocking: call it in a thread
    from async code."""
    mutating = doc["kind"] == MUTATING_KIND
    plural = "mutatingwebhookconfigurations" if mutating else "validatingwebhookconfigurations"
    path = f"/apis/{API_VERSION}/{plural}/{doc['metadata']['name']}"
    result: dict[str, Any] = kube.request(
        api,
        "PATCH",
        path,
        body=json.dumps(doc),
        content_type="application/apply-patch+yaml",
        query=[("fieldManager", field_manager), ("force", "true")],
    )
    return result
