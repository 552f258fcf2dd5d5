"""The hub hold's admission decisions (flotilla.hubhold) against an in-memory hub."""

from __future__ import annotations

import base64
import json
from typing import Any

from fake_kube import FakeApiServer
from kubernetes.client import ApiException
from prometheus_client import REGISTRY

from flotilla.admission.config import OWNED_BY_A_CONTROLLER
from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.admission.settings import WebhookSettings
from flotilla.api import GROUP_VERSION
from flotilla.controllers.hubstate import HubState
from flotilla.hubhold import HubHold, gate_patch
from flotilla.interpreter import InterpreterRegistry
from flotilla.interpreter.keys import HUB_HOLD_GATE, HUB_MANAGER
from flotilla.interpreter.prepare import prepare_for_member

NS = "team"


def policy(name: str, kind: str, api_version: str, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": api_version, "kind": kind}],
            "placement": {"clusterAffinity": {"clusterNames": ["a"]}},
        },
    }


def owned(api_version: str, kind: str, name: str, owner: tuple[str, str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": owner[0], "kind": owner[1], "name": owner[2], "uid": "u", "controller": True}
        ]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {}}


def review(
    obj: dict[str, Any], *, group: str, version: str, kind: str, dry_run: bool = False
) -> AdmissionRequest:
    return AdmissionRequest.from_review(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "r1",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
                "namespace": NS,
                "operation": "CREATE",
                "object": obj,
                "dryRun": dry_run,
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            },
        }
    )


def pod_review(owner: tuple[str, str, str] | None, **spec: Any) -> AdmissionRequest:
    pod = owned("v1", "Pod", "", owner)
    pod["metadata"].pop("name")
    pod["metadata"]["generateName"] = "p-"
    pod["spec"] = {"containers": [{"name": "c", "image": "x"}], **spec}
    return review(pod, group="", version="v1", kind="Pod")


class Hold:
    def __init__(self) -> None:
        self.hub = FakeApiServer()
        self.state = HubState()
        self.events: list[tuple[str, str, str]] = []
        self.hold = HubHold(
            self.hub,
            self.state,
            InterpreterRegistry(),
            lambda obj, type_, reason, message: self.events.append((obj["kind"], reason, message)),
        )

    def put(self, obj: dict[str, Any]) -> None:
        self.hub.apply(obj, "test")


def counted(kind: str, action: str) -> float:
    value = REGISTRY.get_sample_value("flotilla_hub_hold_total", {"kind": kind, "action": action})
    return float(value or 0.0)


async def test_a_selected_job_gets_managed_by_at_create() -> None:
    h = Hold()
    h.state.put_policy(policy("jobs", "Job", "batch/v1"))
    job = owned("batch/v1", "Job", "train", None)
    before = counted("Job", "managed_by")
    answer = await h.hold.review(review(job, group="batch", version="v1", kind="Job"))
    assert answer.allowed
    assert answer.patch == ({"op": "add", "path": "/spec/managedBy", "value": HUB_MANAGER},)
    assert counted("Job", "managed_by") == before + 1


async def test_a_policy_not_yet_in_the_cache_is_found_on_the_hub() -> None:
    h = Hold()
    h.put(policy("jobsets", "JobSet", "jobset.x-k8s.io/v1alpha2"))  # applied, not seen by the watch yet
    jobset = owned("jobset.x-k8s.io/v1alpha2", "JobSet", "sweep", None)
    answer = await h.hold.review(review(jobset, group="jobset.x-k8s.io", version="v1alpha2", kind="JobSet"))
    assert answer.patch == ({"op": "add", "path": "/spec/managedBy", "value": HUB_MANAGER},)


async def test_jobs_no_policy_selects_or_another_manager_claimed_are_left_alone() -> None:
    h = Hold()
    h.state.put_policy(policy("deployments", "Deployment", "apps/v1"))
    job = owned("batch/v1", "Job", "local", None)
    assert (await h.hold.review(review(job, group="batch", version="v1", kind="Job"))).patch == ()
    h.state.put_policy(policy("jobs", "Job", "batch/v1"))
    job["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    assert (await h.hold.review(review(job, group="batch", version="v1", kind="Job"))).patch == ()


async def test_a_pod_of_a_propagated_deployment_is_gated_and_says_so() -> None:
    h = Hold()
    h.state.put_policy(policy("serving", "Deployment", "apps/v1"))
    h.put(owned("apps/v1", "Deployment", "web", None))
    h.put(owned("apps/v1", "ReplicaSet", "web-5f7", ("apps/v1", "Deployment", "web")))
    answer = await h.hold.review(pod_review(("apps/v1", "ReplicaSet", "web-5f7")))
    assert answer.allowed
    assert answer.patch == (
        {"op": "add", "path": "/spec/schedulingGates", "value": [{"name": HUB_HOLD_GATE}]},
    )
    assert h.events == [
        (
            "Deployment",
            "HeldOnHub",
            f"pod of Deployment/web <- ReplicaSet/web-5f7 gated on the hub ({HUB_HOLD_GATE}): "
            "Flotilla runs this workload on member clusters only",
        )
    ]
    review_doc = answer.to_review("r1")["response"]
    assert review_doc["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(review_doc["patch"])) == list(answer.patch)


async def test_a_dry_run_is_gated_without_an_event() -> None:
    h = Hold()
    h.state.put_policy(policy("serving", "StatefulSet", "apps/v1"))
    h.put(owned("apps/v1", "StatefulSet", "db", None))
    request = pod_review(("apps/v1", "StatefulSet", "db"))
    request = review(request.object or {}, group="", version="v1", kind="Pod", dry_run=True)
    assert (await h.hold.review(request)).patch
    assert h.events == []


async def test_a_pod_of_a_deployment_no_policy_selects_runs_on_the_hub() -> None:
    h = Hold()
    h.put(owned("apps/v1", "Deployment", "local", None))
    h.put(owned("apps/v1", "ReplicaSet", "local-1", ("apps/v1", "Deployment", "local")))
    answer = await h.hold.review(pod_review(("apps/v1", "ReplicaSet", "local-1")))
    assert answer == AdmissionResponse.allow()


async def test_leaderworkerset_workers_are_followed_through_the_leader_pod() -> None:
    h = Hold()
    lws = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "llm")
    h.state.put_policy(policy("lws", lws[1], lws[0]))
    h.put(owned(*lws, None))
    h.put(owned("apps/v1", "StatefulSet", "llm", lws))
    h.put(owned("v1", "Pod", "llm-0", ("apps/v1", "StatefulSet", "llm")))
    h.put(owned("apps/v1", "StatefulSet", "llm-0", ("v1", "Pod", "llm-0")))
    answer = await h.hold.review(pod_review(("apps/v1", "StatefulSet", "llm-0")))
    assert answer.patch
    assert "LeaderWorkerSet/llm <- StatefulSet/llm <- Pod/llm-0 <- StatefulSet/llm-0" in h.events[0][2]


async def test_a_pytorchjob_pod_is_gated_and_existing_gates_are_kept() -> None:
    h = Hold()
    ptj = ("kubeflow.org/v1", "PyTorchJob", "pretrain")
    h.state.put_policy(policy("train", ptj[1], ptj[0]))
    h.put(owned(*ptj, None))
    answer = await h.hold.review(pod_review(ptj, schedulingGates=[{"name": "example.com/quota"}]))
    assert answer.patch == (
        {"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": HUB_HOLD_GATE}},
    )
    assert gate_patch({"spec": {"schedulingGates": [{"name": HUB_HOLD_GATE}]}}) == ()


async def test_a_pod_with_node_name_cannot_be_gated_and_is_refused() -> None:
    h = Hold()
    h.state.put_policy(policy("serving", "StatefulSet", "apps/v1"))
    h.put(owned("apps/v1", "StatefulSet", "pinned", None))
    answer = await h.hold.review(pod_review(("apps/v1", "StatefulSet", "pinned"), nodeName="hub-node-0"))
    assert not answer.allowed
    assert answer.message.startswith("spec.nodeName: a pod of StatefulSet/pinned cannot be bound on the hub")


async def test_flotilla_copies_missing_owners_and_lookup_errors_admit_the_pod_unchanged() -> None:
    h = Hold()
    h.state.put_policy(policy("serving", "Deployment", "apps/v1"))
    copy_ = owned("apps/v1", "Deployment", "copy", None)
    copy_["metadata"]["labels"] = {"flotilla.dev/managed-by": "flotilla"}
    h.put(copy_)
    h.put(owned("apps/v1", "ReplicaSet", "copy-1", ("apps/v1", "Deployment", "copy")))
    assert (await h.hold.review(pod_review(("apps/v1", "ReplicaSet", "copy-1")))).patch == ()
    assert (await h.hold.review(pod_review(("apps/v1", "ReplicaSet", "gone")))).patch == ()

    def forbidden(api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        raise ApiException(status=403, reason="Forbidden")

    h.hub.get = forbidden  # type: ignore[method-assign]
    before = counted("Pod", "error")
    answer = await h.hold.review(pod_review(("apps/v1", "ReplicaSet", "x")))
    assert answer == AdmissionResponse.allow()
    assert counted("Pod", "error") == before + 1


def test_member_copies_go_without_the_hub_manager() -> None:
    registry = InterpreterRegistry()
    job = owned("batch/v1", "Job", "train", None)
    job["spec"] = {"managedBy": HUB_MANAGER, "template": {"spec": {"containers": []}}}
    interpreter = registry.get("batch/v1", "Job")
    member = prepare_for_member(job, interpreter, None, "a", (NS, "train-job"))
    assert "managedBy" not in member["spec"]
    job["spec"]["managedBy"] = "example.com/other"
    assert prepare_for_member(job, interpreter, None, "a", (NS, "train-job"))["spec"]["managedBy"] == (
        "example.com/other"
    )


def test_the_mutating_configuration_sends_only_controller_owned_pods() -> None:
    settings = WebhookSettings.from_env(
        {
            "FLOTILLA_WEBHOOK_ENABLED": "true",
            "FLOTILLA_WEBHOOK_URL": "https://127.0.0.1:9443/validate",
            "FLOTILLA_WEBHOOK_SERVICE_NAMESPACE": "flotilla-system",
        }
    )
    assert settings.hub_hold_active
    rules = [{"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs"], "operations": ["CREATE"]}]
    doc = settings.hub_hold_configuration(rules, b"CA")
    assert doc["kind"] == "MutatingWebhookConfiguration"
    workloads, pods = doc["webhooks"]
    assert workloads["rules"] == rules
    assert workloads["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate"
    assert pods["rules"][0]["resources"] == ["pods"] and pods["rules"][0]["operations"] == ["CREATE"]
    assert pods["matchConditions"] == [{"name": "owned-by-a-controller", "expression": OWNED_BY_A_CONTROLLER}]
    assert {w["sideEffects"] for w in doc["webhooks"]} == {"None"}
    assert pods["namespaceSelector"]["matchExpressions"][0]["values"] == ["flotilla-system", "kube-system"]
    off = WebhookSettings.from_env({"FLOTILLA_WEBHOOK_ENABLED": "true", "FLOTILLA_HUB_HOLD": "false"})
    assert not off.hub_hold_active
