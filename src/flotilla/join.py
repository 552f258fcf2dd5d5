"""``kubectl flotilla join|unjoin``: register a member cluster under a least-privilege ServiceAccount.

``join NAME`` does what ``karmadactl join`` does, with narrower rights. On the member (reached
with the admin kubeconfig the user passes): a namespace (``flotilla-system``), a ServiceAccount
``flotilla-NAME``, a ClusterRole and ClusterRoleBinding ``flotilla:member:NAME`` granting exactly
what the operator does on a member (:func:`member_rules`), and a long-lived token Secret
(``kubernetes.io/service-account-token``) the member's token controller fills. On the hub: a
Secret ``NAME-kubeconfig`` holding a kubeconfig built from the member's server, its CA and that
token, and the MemberCluster naming it. Every object is server-side applied, so running ``join``
again updates them (new rules, labels, location or server).

``unjoin NAME`` deletes the MemberCluster and the Secret it names on the hub, then the member
side objects when the member's admin kubeconfig is given and the member answers; what it could
not remove is listed.

The rules are derived from the code paths that use a member's credentials:

* ``flotilla.inventory.member``: ``/version``, API discovery, ``/readyz`` probes, list+watch of
  nodes and of pods (all namespaces);
* ``flotilla.controllers.member_copies`` / ``hub_watch.ListWatch``: list+watch of every
  propagated kind, all namespaces, with a label selector;
* ``flotilla.controllers.propagation``: server-side apply (create + patch) of namespaces, of the
  copies and of the ConfigMaps and Secrets they reference; delete of copies;
* ``flotilla.controllers.quota``: server-side apply, list (label selector) and delete of
  ResourceQuotas for static assignments.

Nothing is read with ``get``: copies are known from the watches, and apply returns what it stored.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla import API_GROUP, yamlout
from flotilla.api import GROUP_VERSION
from flotilla.cli import EXIT_ERROR, CliError, on_cluster

__all__ = [
    "BUILTIN_RESOURCES",
    "CORE_RULES",
    "MEMBER_NAMESPACE",
    "MemberEndpoint",
    "MemberNames",
    "Rule",
    "build_kubeconfig",
    "endpoint_from_configuration",
    "member_rules",
    "rules_markdown",
    "validate_name",
]

FIELD_MANAGER = "kubectl-flotilla"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY = {MANAGED_BY_KEY: FIELD_MANAGER}
MEMBER_LABEL = f"{API_GROUP}/member-cluster"
"""On every object ``join`` makes: the MemberCluster name it was made for."""
ANNOTATION_SERVICE_ACCOUNT = f"{API_GROUP}/member-service-account"
"""On the MemberCluster: ``namespace/name`` of the ServiceAccount on the member (for ``unjoin``)."""
MEMBER_NAMESPACE = "flotilla-system"
HUB_NAMESPACE = "flotilla-system"
TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
RBAC = "rbac.authorization.k8s.io/v1"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate_name(name: str) -> str | None:
    """Why ``name`` cannot be a joined MemberCluster's name (a DNS label: it also names objects
    and is a label value on the member), or None."""
    if not _NAME.match(name) or len(name) > 63:
        return (
            f"invalid cluster name {name!r}: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


# -- RBAC --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One PolicyRule of the member ClusterRole, and why the operator needs it."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    non_resource_urls: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.non_resource_urls:
            return {"nonResourceURLs": list(self.non_resource_urls), "verbs": list(self.verbs)}
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


WORKLOAD_VERBS = ("list", "watch", "create", "patch", "delete")
"""Propagated kinds: watched (status, drift, orphans), server-side applied, deleted."""
WORKLOAD_WHY = "propagated kinds: watched by label (status, drift, orphans), applied, deleted"

BUILTIN_RESOURCES: dict[tuple[str, str], str] = {
    ("apps", "Deployment"): "deployments",
    ("apps", "StatefulSet"): "statefulsets",
    ("batch", "Job"): "jobs",
    ("jobset.x-k8s.io", "JobSet"): "jobsets",
    ("kubeflow.org", "PyTorchJob"): "pytorchjobs",
    ("serving.kserve.io", "InferenceService"): "inferenceservices",
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): "leaderworkersets",
    ("ray.io", "RayJob"): "rayjobs",
}
"""Resource names of the kinds with a built-in interpreter (a unit test checks it against
``flotilla.interpreter.registry.BUILTIN_INTERPRETERS``)."""

CORE_RULES: tuple[Rule, ...] = (
    Rule(
        (),
        (),
        ("get",),
        "connect and probe: /version, API discovery (aggregated or per group), /readyz every 2 s",
        non_resource_urls=("/api", "/api/*", "/apis", "/apis/*", "/version", "/readyz"),
    ),
    Rule(("",), ("nodes",), ("list", "watch"), "inventory: GPU capacity, node readiness and cordons"),
    Rule(("",), ("pods",), ("list", "watch"), "inventory: requests of the pods that are not finished"),
    Rule(
        ("",),
        ("namespaces",),
        ("create", "patch"),
        "server-side apply of a copy's namespace (and a quota's) before the copy",
    ),
    Rule(
        ("",),
        ("configmaps", "secrets"),
        ("create", "patch"),
        "server-side apply of the ConfigMaps and Secrets a copy's pods reference (never read)",
    ),
    Rule(
        ("",),
        ("resourcequotas",),
        ("list", "create", "patch", "delete"),
        "FederatedResourceQuota staticAssignments: applied, listed by label, stale ones deleted",
    ),
)


def member_rules(extra: Iterable[tuple[str, str]] = ()) -> list[Rule]:
    """The member ClusterRole's rules: :data:`CORE_RULES`, then one rule per API group of
    propagated kinds (the built-ins plus ``extra`` ``(group, resource)`` pairs, e.g. the targets
    of InterpreterCustomizations) with :data:`WORKLOAD_VERBS`."""
    by_group: dict[str, set[str]] = {}
    for (group, _kind), resource in BUILTIN_RESOURCES.items():
        by_group.setdefault(group, set()).add(resource)
    for group, resource in extra:
        by_group.setdefault(group, set()).add(resource)
    workload_rules = [
        Rule((group,), tuple(sorted(resources)), WORKLOAD_VERBS, WORKLOAD_WHY)
        for group, resources in sorted(by_group.items())
    ]
    return [*CORE_RULES, *workload_rules]


def rules_markdown(rules: Iterable[Rule] | None = None) -> str:
    """The rules as the Markdown table ``docs/cli.md`` shows (a test keeps them the same)."""
    lines = ["| API group | resources / URLs | verbs | why |", "|---|---|---|---|"]
    for r in rules if rules is not None else member_rules():
        if r.non_resource_urls:
            group, what = "(non-resource)", ", ".join(f"`{u}`" for u in r.non_resource_urls)
        else:
            group = ", ".join(f"`{g}`" if g else "core" for g in r.api_groups)
            what = ", ".join(r.resources)
        lines.append(f"| {group} | {what} | {', '.join(r.verbs)} | {r.why} |")
    return "\n".join(lines) + "\n"


# -- object names and manifests ------------------------------------------------------------------


@dataclass(frozen=True)
class MemberNames:
    """What ``join NAME`` creates, on the member and on the hub."""

    cluster: str
    member_namespace: str = MEMBER_NAMESPACE
    hub_namespace: str = HUB_NAMESPACE

    @property
    def service_account(self) -> str:
        return f"flotilla-{self.cluster}"

    @property
    def token_secret(self) -> str:
        return f"flotilla-{self.cluster}-token"

    @property
    def cluster_role(self) -> str:
        return f"flotilla:member:{self.cluster}"

    @property
    def hub_secret(self) -> str:
        return f"{self.cluster}-kubeconfig"

    def labels(self) -> dict[str, str]:
        return {**MANAGED_BY, MEMBER_LABEL: self.cluster}

    def member_objects(self, rules: Iterable[Rule]) -> list[dict[str, Any]]:
        """ServiceAccount, ClusterRole, ClusterRoleBinding and token Secret (in apply order)."""
        labels = self.labels()
        ns = self.member_namespace
        return [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": self.service_account, "namespace": ns, "labels": labels},
            },
            {
                "apiVersion": RBAC,
                "kind": "ClusterRole",
                "metadata": {"name": self.cluster_role, "labels": labels},
                "rules": [r.to_dict() for r in rules],
            },
            {
                "apiVersion": RBAC,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": self.cluster_role, "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.cluster_role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": self.service_account, "namespace": ns}],
            },
            self.token_secret_object(),
        ]

    def token_secret_object(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": TOKEN_TYPE,
            "metadata": {
                "name": self.token_secret,
                "namespace": self.member_namespace,
                "labels": self.labels(),
                "annotations": {SA_NAME_ANNOTATION: self.service_account},
            },
        }

    def hub_secret_object(self, kubeconfig: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": self.hub_secret, "namespace": self.hub_namespace, "labels": self.labels()},
            "data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()},
        }

    def member_cluster(self, labels: Mapping[str, str], location: Mapping[str, str | None]) -> dict[str, Any]:
        spec: dict[str, Any] = {"secretRef": {"namespace": self.hub_namespace, "name": self.hub_secret}}
        spec.update({k: v for k, v in location.items() if v})
        return {
            "apiVersion": GROUP_VERSION,
            "kind": "MemberCluster",
            "metadata": {
                "name": self.cluster,
                "labels": dict(labels),
                "annotations": {
                    ANNOTATION_SERVICE_ACCOUNT: f"{self.member_namespace}/{self.service_account}"
                },
            },
            "spec": spec,
        }


# -- the kubeconfig the hub keeps ------------------------------------------------------------------


@dataclass(frozen=True)
class MemberEndpoint:
    """How the operator reaches the member's API server (from the user's kubeconfig)."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None


def endpoint_from_configuration(cfg: Any, server: str | None = None) -> MemberEndpoint:
    """The endpoint of a loaded ``kubernetes.client.Configuration``: its host (or ``server``), the
    CA it trusts (file or inline data in the kubeconfig: the loader leaves a file either way),
    whether it skips TLS verification, its TLS server name and proxy."""
    ca_file = getattr(cfg, "ssl_ca_cert", None)
    ca = Path(ca_file).read_bytes() if ca_file else None
    return MemberEndpoint(
        server=(server or str(cfg.host)).rstrip("/"),
        ca_data=ca,
        insecure=not bool(cfg.verify_ssl),
        tls_server_name=getattr(cfg, "tls_server_name", None) or None,
        proxy_url=getattr(cfg, "proxy", None) or None,
    )


def build_kubeconfig(cluster: str, endpoint: MemberEndpoint, token: str) -> str:
    """A kubeconfig for the member with one context, the CA inline and the ServiceAccount's token."""
    entry: dict[str, Any] = {"server": endpoint.server}
    if endpoint.ca_data:
        entry["certificate-authority-data"] = base64.b64encode(endpoint.ca_data).decode()
    if endpoint.insecure:
        entry["insecure-skip-tls-verify"] = True
    if endpoint.tls_server_name:
        entry["tls-server-name"] = endpoint.tls_server_name
    if endpoint.proxy_url:
        entry["proxy-url"] = endpoint.proxy_url
    user = f"flotilla-{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    return yamlout.dump(doc)


# -- talking to the clusters -----------------------------------------------------------------------

Say = Callable[[str], None]


def _ref(obj: Mapping[str, Any]) -> str:
    """``kind.group/name`` as kubectl prints it (``serviceaccount/x``, ``clusterrole.rbac...``)."""
    api_version = str(obj["apiVersion"])
    group = api_version.rpartition("/")[0]
    kind = str(obj["kind"]).lower()
    return f"{kind}.{group}/{obj['metadata']['name']}" if group else f"{kind}/{obj['metadata']['name']}"


def _where(obj: Mapping[str, Any]) -> str:
    ns = (obj.get("metadata") or {}).get("namespace")
    return f" (namespace {ns})" if ns else ""


def apply_reporting(api: Any, obj: dict[str, Any], say: Say, prefix: str) -> dict[str, Any]:
    """Server-side apply ``obj``, saying ``created``, ``configured`` or ``unchanged``."""
    from flotilla import kube

    meta = obj["metadata"]
    before = kube.get(api, obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
    stored = kube.apply(api, obj, field_manager=FIELD_MANAGER)
    if before is None:
        verb = "created"
    elif (before.get("metadata") or {}).get("resourceVersion") == stored["metadata"].get("resourceVersion"):
        verb = "unchanged"
    else:
        verb = "configured"
    say(f"{prefix}{_ref(obj)} {verb}{_where(obj)}")
    return stored


def ensure_namespace(api: Any, name: str, labels: Mapping[str, str], say: Say, prefix: str) -> None:
    """Create the namespace (with ``labels``) unless it exists; an existing one is left as it is."""
    from kubernetes.client import ApiException

    from flotilla import kube

    if kube.get(api, "v1", "Namespace", name) is not None:
        say(f"{prefix}namespace/{name} unchanged")
        return
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}}
    try:
        kube.request(
            api, "POST", "/api/v1/namespaces", body, "application/json", [("fieldManager", FIELD_MANAGER)]
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    say(f"{prefix}namespace/{name} created")


def wait_for_token(
    api: Any, names: MemberNames, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> str:
    """The token the member's token controller put in the Secret (re-applied if it was removed:
    the controller deletes a token Secret whose ServiceAccount was re-created)."""
    from flotilla import kube

    deadline = time.monotonic() + timeout
    while True:
        secret = kube.get(api, "v1", "Secret", names.token_secret, names.member_namespace)
        if secret is None:
            kube.apply(api, names.token_secret_object(), field_manager=FIELD_MANAGER)
        else:
            token = (secret.get("data") or {}).get("token")
            if token:
                return base64.b64decode(token).decode()
        if time.monotonic() > deadline:
            raise CliError(
                f"the member did not issue a token in Secret {names.member_namespace}/{names.token_secret} "
                f"within {timeout:.0f}s (the member's kube-controller-manager fills {TOKEN_TYPE} "
                "Secrets: is it running?)"
            )
        sleep(0.5)


def customization_targets(hub: Any) -> list[tuple[str, str, str]]:
    """``(apiVersion, kind, customization)`` of the hub's InterpreterCustomizations for kinds
    without a built-in interpreter (those have their rules already)."""
    from flotilla import kube

    try:
        items = kube.list_objects(hub, GROUP_VERSION, "InterpreterCustomization")
    except LookupError:
        return []
    out = []
    for item in items:
        target = (item.get("spec") or {}).get("target") or {}
        api_version, kind = str(target.get("apiVersion") or ""), str(target.get("kind") or "")
        if kind and (api_version.rpartition("/")[0], kind) not in BUILTIN_RESOURCES:
            out.append((api_version, kind, str(item["metadata"]["name"])))
    return sorted(out)


def served_resources(
    member: Any, targets: Iterable[tuple[str, str, str]], say: Say, prefix: str
) -> list[tuple[str, str]]:
    """``(group, resource)`` of the ``targets`` the member serves; the others are named."""
    from flotilla import kube

    out: set[tuple[str, str]] = set()
    for api_version, kind, customization in targets:
        try:
            plural, _namespaced = kube.resolve(member, api_version, kind)
        except LookupError:
            say(
                f"{prefix}note: {kind} ({api_version}, InterpreterCustomization {customization}) is "
                "not served here: no rule for it; run join again after installing its CRD"
            )
            continue
        out.add((api_version.rpartition("/")[0], plural))
    return sorted(out)


@dataclass
class Member:
    """The member as the user reaches it (admin kubeconfig), for join and unjoin."""

    api: Any
    endpoint: MemberEndpoint
    description: str
    """For messages: ``member cluster https://... (context c)``."""


def section(say: Say, header: str) -> Say:
    """``say`` that prints ``header`` before its first line (nothing when nothing is said)."""
    started = False

    def line(text: str) -> None:
        nonlocal started
        if not started:
            started = True
            say(header)
        say(text)

    return line


def run_join(
    hub: Any,
    member: Member,
    names: MemberNames,
    labels: Mapping[str, str],
    location: Mapping[str, str | None],
    say: Say,
    timeout: float = 60.0,
) -> None:
    """Member side first (RBAC, token), then the hub (Secret, MemberCluster). Server-side apply
    throughout, so running it again updates everything."""
    from flotilla import kube

    hub_target, member_target = "the hub", member.description
    on_cluster(hub_target, lambda: kube.resolve(hub, GROUP_VERSION, "MemberCluster"))  # CRDs first
    targets = on_cluster(hub_target, lambda: customization_targets(hub))
    pad = "  "

    def member_side() -> str:
        out = section(say, f"On {member.description}:")
        ensure_namespace(member.api, names.member_namespace, names.labels(), out, pad)
        rules = member_rules(served_resources(member.api, targets, out, pad))
        for obj in names.member_objects(rules):
            apply_reporting(member.api, obj, out, pad)
        token = wait_for_token(member.api, names, timeout)
        out(f"{pad}token issued for serviceaccount/{names.service_account}")
        return token

    token = on_cluster(member_target, member_side)
    kubeconfig = build_kubeconfig(names.cluster, member.endpoint, token)

    def hub_side() -> None:
        out = section(say, "On the hub:")
        ensure_namespace(hub, names.hub_namespace, names.labels(), out, pad)
        apply_reporting(hub, names.hub_secret_object(kubeconfig), out, pad)
        apply_reporting(hub, names.member_cluster(labels, location), out, pad)

    on_cluster(hub_target, hub_side)
    say(
        f"Cluster {names.cluster} joined: the operator reaches {member.endpoint.server} as "
        f"{names.member_namespace}/{names.service_account} "
        f"(see 'kubectl flotilla get clusters')"
    )


def _delete_reporting(api: Any, obj: dict[str, Any], say: Say, prefix: str) -> bool:
    """Delete ``obj``, saying ``deleted`` or ``not found``; whether it was there."""
    from kubernetes.client import ApiException

    from flotilla import kube

    try:
        kube.request(api, "DELETE", kube.object_path(api, obj), query=[("propagationPolicy", "Background")])
    except ApiException as exc:
        if exc.status != 404:
            raise
        say(f"{prefix}{_ref(obj)} not found{_where(obj)}")
        return False
    say(f"{prefix}{_ref(obj)} deleted{_where(obj)}")
    return True


def _stub(api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}


def member_leftovers(names: MemberNames) -> list[dict[str, Any]]:
    """The member-side objects ``unjoin`` removes, in deletion order (the namespace last)."""
    ns = names.member_namespace
    return [
        _stub(RBAC, "ClusterRoleBinding", names.cluster_role),
        _stub(RBAC, "ClusterRole", names.cluster_role),
        _stub("v1", "Secret", names.token_secret, ns),
        _stub("v1", "ServiceAccount", names.service_account, ns),
    ]


def _remove_member_side(api: Any, names: MemberNames, say: Say, prefix: str) -> bool:
    from flotilla import kube

    found = False
    for obj in member_leftovers(names):
        found = _delete_reporting(api, obj, say, prefix) or found
    ns = names.member_namespace
    namespace = kube.get(api, "v1", "Namespace", ns)
    if namespace is None:
        return found
    if ((namespace.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_KEY) != FIELD_MANAGER:
        say(f"{prefix}namespace/{ns} kept (join did not create it)")
        return found
    others = [
        sa["metadata"]["name"]
        for sa in kube.list_objects(api, "v1", "ServiceAccount", ns, f"{MANAGED_BY_KEY}={FIELD_MANAGER}")
        if sa["metadata"]["name"] != names.service_account
    ]
    if others:
        say(f"{prefix}namespace/{ns} kept (other joins use it: {', '.join(sorted(others))})")
        return found
    return _delete_reporting(api, _stub("v1", "Namespace", ns), say, prefix) or found


def run_unjoin(
    hub: Any,
    names: MemberNames,
    member: Member | None,
    say: Say,
    warn: Say,
) -> None:
    """Hub side first (the operator lets go of the member), then the member side when ``member``
    is given and answers; what is left on the member is listed. Raises CliError when nothing was
    found."""
    from flotilla import kube

    pad = "  "

    hub_lines: list[str] = []

    def hub_side() -> tuple[bool, MemberNames]:
        say = hub_lines.append  # said once it is known there is something to unjoin
        mc = kube.get(hub, GROUP_VERSION, "MemberCluster", names.cluster)
        found = mc is not None
        result = names
        if mc is not None:
            sa_ref = ((mc.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SERVICE_ACCOUNT, "")
            if "/" in sa_ref:
                result = MemberNames(names.cluster, sa_ref.split("/", 1)[0], names.hub_namespace)
            ref = (mc.get("spec") or {}).get("secretRef") or {}
            secret = (str(ref.get("namespace") or names.hub_namespace), str(ref.get("name") or ""))
            _delete_reporting(hub, _stub(GROUP_VERSION, "MemberCluster", names.cluster), say, pad)
            shared = [
                o["metadata"]["name"]
                for o in kube.list_objects(hub, GROUP_VERSION, "MemberCluster")
                if o["metadata"]["name"] != names.cluster
                and ((o.get("spec") or {}).get("secretRef") or {}).get("name") == secret[1]
                and ((o.get("spec") or {}).get("secretRef") or {}).get("namespace") == secret[0]
            ]
            if shared:
                say(f"{pad}secret/{secret[1]} kept (namespace {secret[0]}): {shared[0]} uses it too")
            elif secret[1]:
                _delete_reporting(hub, _stub("v1", "Secret", secret[1], secret[0]), say, pad)
        else:
            say(f"{pad}membercluster.{API_GROUP}/{names.cluster} not found")
            secret_obj = kube.get(hub, "v1", "Secret", names.hub_secret, names.hub_namespace)
            labels = ((secret_obj or {}).get("metadata") or {}).get("labels") or {}
            if secret_obj is not None and labels.get(MEMBER_LABEL) == names.cluster:
                found = _delete_reporting(
                    hub, _stub("v1", "Secret", names.hub_secret, names.hub_namespace), say, pad
                )
        return found, result

    try:
        found, names = on_cluster("the hub", hub_side)
    except CliError:
        for line in ["On the hub:", *hub_lines] if hub_lines else []:
            say(line)  # what was done before the failure
        raise
    if not found and member is None:
        raise CliError(f"membercluster {names.cluster!r} not found (nothing to unjoin)", EXIT_ERROR)
    for line in ["On the hub:", *hub_lines]:
        say(line)
    left = [f"{_ref(o)}{_where(o)}" for o in member_leftovers(names)]
    if member is None:
        why = "no member kubeconfig given (--cluster-kubeconfig/--cluster-context)"
    else:
        why = ""
        out = section(say, f"On {member.description}:")
        try:
            found = (
                on_cluster(member.description, lambda: _remove_member_side(member.api, names, out, pad))
                or found
            )
        except CliError as exc:
            why = str(exc)
    if why:
        warn(f"left on the member: {'; '.join(left)} ({why})")
        say("Left on the member (remove them with the member's admin credentials):")
        for line in left:
            say(f"{pad}{line}")
    if not found:
        raise CliError(f"membercluster {names.cluster!r} not found (nothing to unjoin)", EXIT_ERROR)
    say(f"Cluster {names.cluster} unjoined")
