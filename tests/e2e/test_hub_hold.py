"""Hub hold on a hub that runs controllers: nothing Flotilla propagates is ever bound on the hub.

A rig of its own (``src/flotilla/rig/fleets/hub-with-controllers.yaml``): the hub runs every
kube-controller-manager controller, kube-scheduler, two KWOK GPU nodes and the Kubeflow training
operator; members a and b take the work. A Deployment, StatefulSet, Job, JobSet, PyTorchJob,
LeaderWorkerSet and InferenceService are applied under one PropagationPolicy and reach the
members. A watch on every pod of the hub runs from before the first apply to the end of the test
and records every binding it sees:

* Deployment, StatefulSet, PyTorchJob: the hub's controllers (and its training operator) create
  their pods; each carries the ``flotilla.dev/hub-hold`` scheduling gate and none is ever bound;
* Job, JobSet: ``spec.managedBy`` is set when they are created; the job controller creates no pod
  (no JobSet controller runs on the hub: the field is checked, not its effect);
* LeaderWorkerSet, InferenceService: no controller of theirs runs on the hub, so no pods exist.

A Deployment in a namespace no policy covers is the control: its pod is bound on the hub, so the
watch does see bindings when they happen.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BACKEND, shared_dir
from kubernetes import watch
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException
from operator_support import GROUP_VERSION, binding, fleet_operator, gpu_deployment
from prometheus_client import REGISTRY

from flotilla import kube
from flotilla.interpreter.keys import HUB_HOLD_GATE, HUB_MANAGER
from flotilla.rig.binaries import repo_root
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.fleet import load_fleet
from flotilla.rig.runner import Rig

pytestmark = pytest.mark.skipif(
    BACKEND == "kind", reason="starts a rig of its own (hub with controllers); local rig only"
)

WAIT = 240.0  # generous: the machine may be busy; tests never assert wall-clock times
FLEET = repo_root() / "src" / "flotilla" / "rig" / "fleets" / "hub-with-controllers.yaml"


class PodWatch(threading.Thread):
    """Every pod event on the hub, from a list and then a watch that resumes where it left off."""

    def __init__(self, hub: ClusterHandle) -> None:
        super().__init__(name="hub-pod-watch", daemon=True)
        self.api = CoreV1Api(hub.api_client())
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.bound: dict[tuple[str, str], str] = {}  # (namespace, name) -> node, once ever bound
        self.gated: set[tuple[str, str]] = set()
        self.events = 0
        self.error: BaseException | None = None

    def _see(self, pod: Any) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        self.events += 1
        if pod.spec.node_name:
            self.bound.setdefault(key, pod.spec.node_name)
        if any(g.name == HUB_HOLD_GATE for g in pod.spec.scheduling_gates or ()):
            self.gated.add(key)

    def run(self) -> None:
        try:
            version = None
            while not self.stopping.is_set():
                if version is None:
                    listed = self.api.list_pod_for_all_namespaces(_request_timeout=30)
                    for pod in listed.items:
                        self._see(pod)
                    version = listed.metadata.resource_version
                    self.ready.set()
                stream = watch.Watch()
                try:
                    for event in stream.stream(
                        self.api.list_pod_for_all_namespaces,
                        resource_version=version,
                        timeout_seconds=5,
                        _request_timeout=15,
                    ):
                        if event["type"] == "ERROR":
                            version = None
                            break
                        self._see(event["object"])
                        version = event["object"].metadata.resource_version
                        if self.stopping.is_set():
                            break
                except ApiException as exc:
                    if exc.status != 410:
                        raise
                    version = None  # expired: list again (every pod's current state is seen)
        except BaseException as exc:
            self.error = exc
            self.ready.set()


@pytest.fixture(scope="module")
def hold_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = Rig(fleet=load_fleet(FLEET), workdir=tmp_path_factory.mktemp("hub-hold-rig"))
    rig.up(shared_dir=shared_dir())
    try:
        yield rig
    finally:
        rig.down()


def _meta(name: str, ns: str) -> dict[str, Any]:
    return {"name": name, "namespace": ns}


def _pod_spec(gpus: int = 1, restart: str = "Always") -> dict[str, Any]:
    return {
        "restartPolicy": restart,
        "containers": [
            {
                "name": "main",
                "image": "ghcr.io/example/gpu:1.0",
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": str(gpus)},
                    "limits": {"nvidia.com/gpu": str(gpus)},
                },
            }
        ],
    }


def workloads(ns: str) -> list[dict[str, Any]]:
    """One small workload of each kind, each asking for GPUs the members have."""
    labels = {"app": "db"}
    return [
        gpu_deployment(ns, "web", replicas=2),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("db", ns),
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": _pod_spec()},
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _meta("train", ns),
            "spec": {"template": {"spec": _pod_spec(restart="Never")}},
        },
        {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "metadata": _meta("sweep", ns),
            "spec": {
                "replicatedJobs": [
                    {
                        "name": "w",
                        "replicas": 1,
                        "template": {"spec": {"template": {"spec": _pod_spec(restart="Never")}}},
                    }
                ]
            },
        },
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "metadata": _meta("pretrain", ns),
            "spec": {
                "pytorchReplicaSpecs": {
                    role: {
                        "replicas": 1,
                        "restartPolicy": "OnFailure",
                        "template": {
                            "spec": {
                                **_pod_spec(),
                                "containers": [{**_pod_spec()["containers"][0], "name": "pytorch"}],
                            }
                        },
                    }
                    for role in ("Master", "Worker")
                }
            },
        },
        {
            "apiVersion": "leaderworkerset.x-k8s.io/v1",
            "kind": "LeaderWorkerSet",
            "metadata": _meta("llm", ns),
            "spec": {
                "replicas": 1,
                "leaderWorkerTemplate": {"size": 2, "workerTemplate": {"spec": _pod_spec()}},
            },
        },
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                **_meta("chat", ns),
                "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
            },
            "spec": {
                "predictor": {
                    "minReplicas": 1,
                    "model": {
                        "modelFormat": {"name": "huggingface"},
                        "storageUri": "hf://example/chat",
                        "resources": {
                            "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
                            "limits": {"nvidia.com/gpu": "1"},
                        },
                    },
                }
            },
        },
    ]


def member_copy(members: dict[str, ClusterHandle], doc: dict[str, Any]) -> str | None:
    """The first member holding a copy of ``doc``."""
    for name, member in members.items():
        try:
            found = kube.get(
                member.api_client(),
                doc["apiVersion"],
                doc["kind"],
                doc["metadata"]["name"],
                doc["metadata"]["namespace"],
            )
        except LookupError:  # the member does not serve the kind
            continue
        if found is not None:
            return name
    return None


def hub_pods(hub: ClusterHandle, ns: str) -> list[dict[str, Any]]:
    return kube.list_objects(hub.api_client(), "v1", "Pod", ns)


def owner_kinds(pods: list[dict[str, Any]]) -> set[str]:
    return {r["kind"] for p in pods for r in p["metadata"].get("ownerReferences") or ()}


def test_nothing_propagated_is_ever_bound_on_a_hub_with_controllers(hold_rig: Rig) -> None:
    assert hold_rig.hub is not None
    hub, members = hold_rig.hub, dict(hold_rig.members)
    api = hub.api_client()
    pods = PodWatch(hub)
    pods.start()
    assert pods.ready.wait(60) and pods.error is None, pods.error
    gated_before = (
        REGISTRY.get_sample_value("flotilla_hub_hold_total", {"kind": "Deployment", "action": "gated"}) or 0
    )
    with fleet_operator(hub, members):
        ns = f"hold-{uuid.uuid4().hex[:5]}"
        control_ns = f"local-{uuid.uuid4().hex[:5]}"
        for name in (ns, control_ns):
            kube.ensure_namespace(api, name)
        docs = workloads(ns)
        kube.apply(
            api,
            {
                "apiVersion": GROUP_VERSION,
                "kind": "PropagationPolicy",
                "metadata": _meta("everything", ns),
                "spec": {
                    "resourceSelectors": [{"apiVersion": d["apiVersion"], "kind": d["kind"]} for d in docs],
                    "placement": {"clusterAffinity": {"clusterNames": ["a", "b"]}},
                },
            },
        )
        for doc in docs:
            kube.apply(api, doc)
        kube.apply(api, gpu_deployment(control_ns, "local", replicas=1))

        # Every kind reaches a member.
        placed = {}
        for doc in docs:
            placed[doc["kind"]] = kube.wait_for(
                lambda doc=doc: member_copy(members, doc), timeout=WAIT, what=f"{doc['kind']} on a member"
            )
        assert placed["InferenceService"] == "b" and placed["LeaderWorkerSet"] == "a", placed

        # The control: an unpropagated Deployment's pod does bind on the hub.
        kube.wait_for(
            lambda: any(k[0] == control_ns for k in pods.bound),
            timeout=WAIT,
            what="the control pod bound on the hub",
        )

        # Pods the hub's controllers create for propagated workloads exist, gated.
        def all_gated() -> list[dict[str, Any]] | None:
            found = hub_pods(hub, ns)
            kinds = owner_kinds(found)
            return found if {"ReplicaSet", "StatefulSet", "PyTorchJob"} <= kinds and len(found) >= 6 else None

        held = kube.wait_for(
            all_gated, timeout=WAIT, what="gated pods of the Deployment, StatefulSet and PyTorchJob"
        )
        for pod in held:
            assert {"name": HUB_HOLD_GATE} in pod["spec"]["schedulingGates"], pod["metadata"]["name"]
            assert not pod["spec"].get("nodeName")
            reasons = [
                c.get("reason") for c in pod["status"].get("conditions") or () if c["type"] == "PodScheduled"
            ]
            assert reasons in ([], ["SchedulingGated"]), reasons

        # Job and JobSet: claimed by managedBy, so the hub's job controller never made a pod.
        for kind, api_version, name in (
            ("Job", "batch/v1", "train"),
            ("JobSet", "jobset.x-k8s.io/v1alpha2", "sweep"),
        ):
            obj = kube.get(api, api_version, kind, name, ns) or {}
            assert obj["spec"].get("managedBy") == HUB_MANAGER, kind
            copy = kube.get(members[placed[kind]].api_client(), api_version, kind, name, ns) or {}
            assert "managedBy" not in copy["spec"], f"{kind} copy on {placed[kind]} kept the hub's managedBy"
        assert "Job" not in owner_kinds(hub_pods(hub, ns))

        # The Job ran on its member and its status came back to the hub's Job.
        kube.wait_for(
            lambda: ((kube.get(api, "batch/v1", "Job", "train", ns) or {}).get("status") or {}).get(
                "succeeded"
            ),
            timeout=WAIT,
            what="the Job's success reflected on the hub",
        )
        for doc in docs:
            rb = binding(hub, ns, f"{doc['metadata']['name']}-{doc['kind'].lower()}")
            assert rb is not None, doc["kind"]

        gated_after = (
            REGISTRY.get_sample_value("flotilla_hub_hold_total", {"kind": "Deployment", "action": "gated"})
            or 0
        )
        assert gated_after >= gated_before + 2
        events = kube.list_objects(api, "v1", "Event", ns)
        assert any(e.get("reason") == "HeldOnHub" and e["involvedObject"]["name"] == "web" for e in events)

    pods.stopping.set()
    pods.join(30)
    assert pods.error is None, pods.error
    leaked = {k: node for k, node in pods.bound.items() if k[0] == ns}
    assert leaked == {}, f"pods of propagated workloads bound on the hub: {leaked}"
    assert {k for k in pods.gated if k[0] == ns} >= {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in held
    }
