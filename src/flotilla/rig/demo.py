"""The embedded default: a local hub + GPU members, Flotilla running against them, examples applied.

Used by ``flotilla demo`` and by the e2e tests (registering members, installing CRDs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flotilla import API_GROUP, kube
from flotilla.api import GROUP_VERSION
from flotilla.api.conditions import is_true
from flotilla.rig.binaries import repo_root
from flotilla.rig.cluster import ClusterHandle, inline_kubeconfig
from flotilla.rig.runner import free_port

SYSTEM_NS = "flotilla-system"
# Examples the demo does not apply: member registration is done for the rig's own members.
SKIPPED_EXAMPLES = ("member-cluster.yaml",)


def flotilla_crds() -> list[Path]:
    return sorted((repo_root() / "crds").glob("*.yaml"))


def thirdparty_dir() -> Path:
    return Path(os.environ.get("FLOTILLA_SHARED_DIR", repo_root().parent / "shared")) / "thirdparty-crds"


def thirdparty_crds_for(docs: Iterable[dict[str, Any]], directory: Path | None = None) -> list[Path]:
    """The upstream CRD files (shared/thirdparty-crds/<group>_<plural>.yaml) that ``docs`` need."""
    root: Path = directory or thirdparty_dir()
    index: dict[tuple[str, str], Path] = {}
    for path in sorted(root.glob("*.yaml")):
        group = path.name.split("_", 1)[0]
        with path.open() as handle:
            for line in (handle.readline() for _ in range(60)):
                stripped = line.strip()
                if stripped.startswith("kind:") and "CustomResourceDefinition" not in stripped:
                    index[(group, stripped.split(":", 1)[1].strip())] = path
                    break
    needed: list[Path] = []
    for doc in docs:
        found = index.get((doc["apiVersion"].rpartition("/")[0], doc["kind"]))
        if found is not None and found not in needed:
            needed.append(found)
    return needed


def register_member(hub: ClusterHandle, member: ClusterHandle) -> None:
    """A kubeconfig Secret and a MemberCluster on the hub for a rig member (its fleet labels, and
    region/zone/provider from them)."""
    api = hub.api_client()
    kube.ensure_namespace(api, SYSTEM_NS)
    secret_name = f"{member.name}-kubeconfig"
    kube.apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": SYSTEM_NS},
            "stringData": {"kubeconfig": inline_kubeconfig(member)},
        },
    )
    kube.apply(
        api,
        {
            "apiVersion": GROUP_VERSION,
            "kind": "MemberCluster",
            "metadata": {"name": member.name, "labels": dict(member.labels)},
            "spec": {
                "secretRef": {"namespace": SYSTEM_NS, "name": secret_name},
                **{k: member.labels[k] for k in ("provider", "region", "zone") if k in member.labels},
            },
        },
    )


def member_ready(hub: ClusterHandle, name: str) -> dict[str, Any] | None:
    """The MemberCluster when its Ready condition is True, else None (for ``kube.wait_for``)."""
    mc = kube.get(hub.api_client(), GROUP_VERSION, "MemberCluster", name)
    return mc if is_true(((mc or {}).get("status") or {}).get("conditions"), "Ready") else None


WEBHOOK_CONFIG = "flotilla-admission"
"""The ValidatingWebhookConfiguration the operator registers on the rig's hub."""


def webhook_env(hub: ClusterHandle, port: int | None = None) -> dict[str, str]:
    """Settings for the operator's quota webhook on the rig: the hub API server calls it on
    127.0.0.1; its CA and certificate live in a Secret in flotilla-system, as in a cluster.

    ``FLOTILLA_E2E_WEBHOOK_HOST`` names another address of this machine the hub can reach (a kind
    hub runs in a container: ``hack/kind-e2e.sh`` sets the kind network's gateway)."""
    kube.ensure_namespace(hub.api_client(), SYSTEM_NS)
    port = port or free_port()
    host = os.environ.get("FLOTILLA_E2E_WEBHOOK_HOST") or "127.0.0.1"
    return {
        "FLOTILLA_WEBHOOK_ENABLED": "true",
        "FLOTILLA_WEBHOOK_ADDR": host,
        "FLOTILLA_WEBHOOK_PORT": str(port),
        "FLOTILLA_WEBHOOK_URL": f"https://{host}:{port}/validate",
        "FLOTILLA_WEBHOOK_SERVICE_NAMESPACE": SYSTEM_NS,
        "FLOTILLA_WEBHOOK_CONFIG_NAME": WEBHOOK_CONFIG,
    }


def remove_webhook(hub: ClusterHandle) -> None:
    """Unregister the quota webhook and the hub hold's (their failure policy is Fail: applies, and
    on a hub with controllers the pods they create, need them while registered)."""
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        kube.delete(
            hub.api_client(),
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": WEBHOOK_CONFIG},
            },
        )


def start_operator(hub: ClusterHandle, log: Path) -> subprocess.Popen[bytes]:
    """``python -m flotilla`` against the hub, as a child process logging to ``log``, serving the
    quota webhook the hub calls."""
    env = {
        **os.environ,
        "KUBECONFIG": str(hub.kubeconfig),
        "FLOTILLA_METRICS_PORT": os.environ.get("FLOTILLA_METRICS_PORT", "0"),
        **webhook_env(hub),
    }
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "flotilla"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def example_documents(directory: Path | None = None) -> list[tuple[Path, list[dict[str, Any]]]]:
    folder = directory or repo_root() / "examples"
    return [
        (path, kube.load_manifests(path))
        for path in sorted(folder.glob("*.yaml"))
        if path.name not in SKIPPED_EXAMPLES
    ]


def apply_examples(hub: ClusterHandle, say: Any = print) -> list[dict[str, Any]]:
    """Apply every example to the hub; returns the applied objects."""
    api = hub.api_client()
    examples = example_documents()
    needed = thirdparty_crds_for(d for _, docs in examples for d in docs)
    if needed:
        kube.install_crds(api, needed, timeout=120)
    applied = []
    for path, docs in examples:
        # Namespaces first, then policies and customizations, then workloads (no re-match needed).
        for doc in sorted(docs, key=_apply_order):
            kube.apply(api, doc, field_manager="flotilla-demo")
            applied.append(doc)
        say(f"  applied {path.relative_to(repo_root())} ({len(docs)} objects)")
    return applied


def _apply_order(doc: dict[str, Any]) -> int:
    if doc["kind"] == "Namespace":
        return 0
    return 1 if doc["apiVersion"].startswith(API_GROUP) else 2


def placement_report(hub: ClusterHandle, expected: int, timeout: float = 60.0) -> list[tuple[str, str, str]]:
    """(workload, placement, detail) per ResourceBinding, once ``expected`` of them have a decision."""
    api = hub.api_client()
    deadline = time.monotonic() + timeout
    settle_until = deadline
    while True:
        bindings = kube.list_objects(api, GROUP_VERSION, "ResourceBinding")
        decided = [
            b
            for b in bindings
            if any(c["type"] == "Scheduled" for c in (b.get("status") or {}).get("conditions") or [])
        ]
        placed = [b for b in decided if (b.get("status") or {}).get("clustersSummary")]
        # Once everything has a decision, give waiting workloads a little longer: capacity held by
        # reservations is released as members report the pods they run.
        settle = len(decided) >= expected and (len(placed) == len(decided) or time.monotonic() > settle_until)
        if settle or time.monotonic() > deadline:
            break
        if len(decided) < expected:
            settle_until = time.monotonic() + 20
        time.sleep(1)
    rows = []
    for b in sorted(bindings, key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"])):
        r = b["spec"]["resource"]
        status = b.get("status") or {}
        cond = next((c for c in status.get("conditions") or [] if c["type"] == "Scheduled"), None)
        where = status.get("clustersSummary") or "-"
        detail = cond["message"] if cond else "not decided yet"
        rows.append((f"{r['namespace']}/{r['kind']}/{r['name']}", where, detail))
    return rows
