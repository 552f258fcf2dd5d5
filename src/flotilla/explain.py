"""``kubectl flotilla explain -f manifest.yaml``: where a workload not yet applied would go, and why.

A what-if, run from the user's machine: the hub's MemberClusters (their labels, taints, Ready
condition and API enablements, as the operator published them) and, through each member's
kubeconfig Secret, the member's Nodes and Pods now make a snapshot the way the operator's
inventory does (:class:`~flotilla.inventory.store.MemberInventory`). Each workload in the manifest
is matched to a policy as the detector matches it (policies on the hub plus any in the manifest,
which win over a hub policy of the same name) and decided with the scheduler profile the operator
ships (:class:`~flotilla.scheduler.Scheduler` with its defaults). Per cluster: the filter that
rejected it (and the node-level reasons), or each score plugin's score and the replicas it would
get.

What the live operator knows and this does not: its reservations for decisions whose pods have
not reached the members yet, FederatedResourceQuota shares, and the target workload its
GPUFragmentation plugin learned (a what-if scores with the documented prior); the output says so. Nothing is
written anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.api.conditions import is_true
from flotilla.controllers.matching import PolicyRef, best_policy, policy_from_body
from flotilla.controllers.profile import default_scheduler
from flotilla.controllers.scheduling import SchedulingController, explanation_dict, summary_of
from flotilla.controllers.workloads import desired_binding, pod_group_name, scheduler_workload
from flotilla.interpreter import InterpreterRegistry
from flotilla.inventory.store import ClusterMeta, MemberInventory
from flotilla.scheduler import Scheduler, SchedulerCache
from flotilla.scheduler.core import ScheduleResult
from flotilla.scheduler.plugins.fragmentation import LearningSettings
from flotilla.scheduler.snapshot import Snapshot, Taint

__all__ = ["Explained", "MemberData", "explain", "live_members", "render", "snapshot_of"]

POLICY_KINDS = ("PropagationPolicy", "ClusterPropagationPolicy")
NOT_KNOWN = (
    "not counted: the operator's reservations for decisions not yet running on members, "
    "FederatedResourceQuota shares, and the pod shapes the operator's GPUFragmentation learned "
    "(this scores with its prior)"
)


@dataclass
class MemberData:
    """What the snapshot needs of one member: its MemberCluster and, when reachable, its objects."""

    member: Mapping[str, Any]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""


@dataclass
class Explained:
    """One workload of the manifest: its policy, the decision line and the per-cluster detail."""

    workload: str
    policy: str | None
    ok: bool
    message: str
    explanation: dict[str, Any] = field(default_factory=dict)


def _taints(spec: Mapping[str, Any]) -> tuple[Taint, ...]:
    return tuple(Taint.from_dict(t) for t in spec.get("taints") or () if t.get("key"))


def _api_enablements(status: Mapping[str, Any]) -> frozenset[str] | None:
    raw = status.get("apiEnablements")
    if raw is None:
        return None
    return frozenset(
        f"{gv['groupVersion']}/{r['kind']}" for gv in raw for r in gv.get("resources") or () if r.get("kind")
    )


def snapshot_of(members: Iterable[MemberData]) -> Snapshot:
    """The scheduler's snapshot of ``members``, built as the operator's inventory builds it."""
    cache, lock = SchedulerCache(), threading.RLock()
    for data in members:
        mc = data.member
        meta, spec, status = mc.get("metadata") or {}, mc.get("spec") or {}, mc.get("status") or {}
        labels = dict(meta.get("labels") or {})
        location = {k: str(spec.get(k) or labels.get(k) or "") for k in ("provider", "region", "zone")}
        inventory = MemberInventory(
            str(meta["name"]), cache, lock, ClusterMeta(labels, _taints(spec), **location)
        )
        inventory.publish()
        inventory.replace_nodes(data.nodes)
        inventory.replace_pods(data.pods)
        ready = is_true(status.get("conditions"), "Ready") and not data.problem
        inventory.set_cluster(ready=ready, api_enablements=_api_enablements(status))
    return cache.snapshot()


def live_members(hub: Any) -> list[MemberData]:
    """Every MemberCluster on the hub, with its Nodes and Pods read through its kubeconfig Secret
    (a member that cannot be read is kept, not Ready, with the reason in ``problem``)."""
    from kubernetes.client import ApiClient

    from flotilla.controllers.members import kubeconfig_from_secret
    from flotilla.inventory.client import load_kubeconfig

    out = []
    for mc in kube.list_objects(hub, GROUP_VERSION, "MemberCluster"):
        data = MemberData(mc)
        ref = (mc.get("spec") or {}).get("secretRef") or {}
        try:
            secret = kube.get(hub, "v1", "Secret", ref.get("name", ""), ref.get("namespace"))
            if secret is None:
                raise LookupError(f"Secret {ref.get('namespace')}/{ref.get('name')} does not exist")
            member = ApiClient(
                load_kubeconfig(kubeconfig_from_secret(secret, ref.get("key") or "kubeconfig"))
            )
            try:
                data.nodes = kube.list_objects(member, "v1", "Node")
                data.pods = kube.list_objects(member, "v1", "Pod")
            finally:
                member.close()
        except Exception as exc:  # the member is shown as not Ready, with why
            data.problem = " ".join(str(exc).split())[:200] or type(exc).__name__
        out.append(data)
    return out


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{doc.get('kind')}/{meta.get('name')}".lstrip("/")


def explain(
    docs: Iterable[Mapping[str, Any]],
    snapshot: Snapshot,
    hub_policies: Iterable[Mapping[str, Any]],
    *,
    namespace: str,
    pod_groups: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    registry: InterpreterRegistry | None = None,
    scheduler: Scheduler | None = None,
) -> list[Explained]:
    """Decide every workload in ``docs`` (policies in ``docs`` are used, not decided) against
    ``snapshot``. ``namespace`` is given to namespaced objects that name none. ValueError names a
    document that is not a Kubernetes object."""
    registry = registry or InterpreterRegistry()
    # A what-if learns nothing: its GPUFragmentation scores with the prior, not the manifest.
    scheduler = scheduler or default_scheduler(LearningSettings(learn=False))
    pod_groups = dict(pod_groups or {})
    manifest: list[dict[str, Any]] = []
    for i, raw in enumerate(docs):
        if not isinstance(raw, Mapping) or not raw.get("apiVersion") or not raw.get("kind"):
            raise ValueError(f"document {i + 1}: not a Kubernetes object (apiVersion and kind are required)")
        doc = dict(raw)
        meta = dict(doc.get("metadata") or {})
        if not meta.get("name"):
            raise ValueError(f"document {i + 1} ({doc['kind']}): metadata.name is required")
        if doc["kind"] != "ClusterPropagationPolicy" and not meta.get("namespace"):
            meta["namespace"] = namespace
        doc["metadata"] = meta
        manifest.append(doc)
    policies: dict[str, PolicyRef] = {}
    for body in list(hub_policies) + [d for d in manifest if d["kind"] in POLICY_KINDS]:
        ref = policy_from_body(body)
        policies[ref.key] = ref
    for doc in manifest:
        if doc["apiVersion"] == GROUP_VERSION and doc["kind"] == "PodGroup":
            pod_groups[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    out = []
    for doc in manifest:
        if doc["apiVersion"] == GROUP_VERSION:
            continue  # policies, PodGroups, quotas: inputs, not workloads
        interpreter = registry.get(doc["apiVersion"], doc["kind"])
        if interpreter is None:
            out.append(
                Explained(
                    _name(doc),
                    None,
                    False,
                    f"Flotilla has no interpreter for {doc['apiVersion']} {doc['kind']}",
                )
            )
            continue
        policy = best_policy(policies.values(), doc)
        if policy is None:
            message = "no PropagationPolicy or ClusterPropagationPolicy selects it: it would stay on the hub"
            out.append(Explained(_name(doc), None, False, message))
            continue
        components = interpreter.components(doc)
        group = pod_group_name(doc, components)
        pod_group = pod_groups.get((doc["metadata"]["namespace"], group)) if group else None
        try:
            binding = desired_binding(doc, policy, interpreter, pod_group)
        except ValueError as exc:
            out.append(Explained(_name(doc), policy.key, False, str(exc)))
            continue
        outcome = scheduler.schedule(snapshot, scheduler_workload(binding))
        if isinstance(outcome, ScheduleResult):
            # The operator's own summary of the targets it would write (replicas split exactly).
            targets = SchedulingController._targets(binding, outcome)
            message = f"would be scheduled to {summary_of(targets)}"
        else:
            message = outcome.message
        out.append(Explained(_name(doc), policy.key, outcome.ok, message, explanation_dict(outcome)))
    return out


def cluster_lines(explanation: Mapping[str, Any]) -> list[str]:
    """Per cluster, one line: the filter that rejected it, or its scores and replicas."""
    lines = []
    for c in explanation.get("clusters") or []:
        if not c.get("feasible"):
            f = c.get("filter") or {}
            nodes = ", ".join(f"{v} {k}" for k, v in (c.get("nodes") or {}).items())
            detail = f"rejected by {f.get('plugin')}: {'; '.join(f.get('reasons') or [])}"
            lines.append(f"  {c['cluster']:<12} {detail}" + (f" (nodes: {nodes})" if nodes else ""))
        else:
            scores = ", ".join(f"{p}={v['weighted']}" for p, v in (c.get("scores") or {}).items())
            chosen = f"selected, {c.get('replicas', 0)} replicas" if c.get("selected") else "feasible"
            lines.append(f"  {c['cluster']:<12} {chosen}; total {c.get('total', '-')} ({scores})")
    omitted = explanation.get("omitted")
    if omitted:
        feasible, rejected = omitted.get("feasible", 0), omitted.get("rejected", 0)
        lines.append(f"  ... and {feasible} more feasible, {rejected} more rejected cluster(s); rejections:")
        for r in explanation.get("rejections") or []:
            lines.append(f"    {r.get('clusters')} by {r.get('plugin')}: {r.get('reason')}")
    return lines


def profile_lines(explanation: Mapping[str, Any]) -> list[str]:
    """What the decision's profile had learned (``explanation.profile``, written by the operator):
    per plugin, its setting, epoch and heaviest pod shapes."""
    lines = []
    for plugin, state in sorted((explanation.get("profile") or {}).items()):
        if state.get("learn"):
            how = (
                f"learned (halfLife {state.get('halfLife')} pods, prior {state.get('priorWeight')} pods), "
                f"epoch {state.get('epoch')} at {state.get('observedPods')} pods seen"
            )
        else:
            how = "prior (learning off)"
        shapes = ", ".join(
            f"{100 * float(c.get('weight', 0)):.0f}% cpu={c.get('cpu')} gpus={c.get('gpus')} "
            f"gpuMilli={c.get('gpuMilli')}"
            for c in state.get("classes") or []
        )
        lines.append(f"  {plugin}: {how}; top shapes: {shapes or '-'}")
    return lines


def render(results: Iterable[Explained], members: Iterable[MemberData]) -> str:
    """The human-readable report: fleet notes, then per workload its policy, decision and clusters."""
    lines = []
    for data in members:
        if data.problem:
            lines.append(f"member {data.member['metadata']['name']}: not read ({data.problem})")
    for r in results:
        lines.append(f"Workload:   {r.workload}")
        lines.append(f"Policy:     {r.policy or '-'}")
        lines.append(f"Decision:   {r.message}")
        if r.explanation:
            lines.append(f"Mode:       {r.explanation.get('mode', '-')}")
            lines.append("Per cluster:")
            lines.extend(cluster_lines(r.explanation))
        lines.append("")
    lines.append(f"(what-if from the members' nodes and pods now; {NOT_KNOWN})")
    return "\n".join(lines)
