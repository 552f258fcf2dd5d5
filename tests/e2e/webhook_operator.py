"""A minimal Kopf operator whose validating webhook the hub API server calls (see test_webhook.py)."""

from __future__ import annotations

import os
from typing import Any

import kopf


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Read KUBECONFIG now: the kubernetes client froze its default path when it was imported.
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.admission.server = kopf.WebhookServer(
        addr="127.0.0.1",
        host="127.0.0.1",
        port=int(os.environ["RIGTEST_WEBHOOK_PORT"]),
        certfile=os.environ["RIGTEST_WEBHOOK_CERT"],
        pkeyfile=os.environ["RIGTEST_WEBHOOK_KEY"],
        cafile=os.environ["RIGTEST_WEBHOOK_CA"],
    )
    settings.admission.managed = "rigtest.flotilla.dev"
    settings.watching.server_timeout = 30


@kopf.on.validate("configmaps", id="no-forbidden-key", labels={"rigtest": "webhook"})
def no_forbidden_key(body: kopf.Body, **_: Any) -> None:
    if "forbidden" in (body.get("data") or {}):
        raise kopf.AdmissionError("data.forbidden is not allowed here", code=403)
