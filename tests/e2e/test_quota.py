"""FederatedResourceQuota on the rig: the hub API server calls the operator's webhook over TLS.

Applies come from separate ``kubectl`` processes, as users make them; the quota's status is
read back from the hub.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from operator_support import (
    GROUP_VERSION,
    REPO,
    WAIT,
    binding,
    condition_of,
    fleet_operator,
    gpu_deployment,
    new_namespace,
)

from flotilla import kube
from flotilla.rig.binaries import locate
from flotilla.rig.cluster import ClusterHandle

GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def operator(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> Iterator[KopfRunner]:
    with fleet_operator(hub, members) as runner:
        yield runner


def _quota(ns: str, gpus: int, static: dict[str, int] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"overall": {GPU: gpus}}
    if static:
        spec["staticAssignments"] = [{"clusterName": c, "hard": {GPU: n}} for c, n in static.items()]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FederatedResourceQuota",
        "metadata": {"name": "gpus", "namespace": ns},
        "spec": spec,
    }


def _kubectl(hub: ClusterHandle, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(locate().kubectl), "--kubeconfig", str(hub.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _apply_concurrently(hub: ClusterHandle, docs: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """``kubectl apply`` each document from its own process, all started at once."""
    procs = [
        subprocess.Popen(
            [str(locate().kubectl), "--kubeconfig", str(hub.kubeconfig), "apply", "-f", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in docs
    ]
    results = []
    for proc, doc in zip(procs, docs, strict=True):
        out, err = proc.communicate(json.dumps(doc), timeout=120)
        results.append((proc.returncode, out + err))
    return results


def _status(hub: ClusterHandle, ns: str) -> dict[str, Any]:
    obj = kube.get(hub.api_client(), GROUP_VERSION, "FederatedResourceQuota", "gpus", ns) or {}
    return dict(obj.get("status") or {})


def _used(hub: ClusterHandle, ns: str) -> str | None:
    return (_status(hub, ns).get("overallUsed") or {}).get(GPU)


def _wait_quota_seen(hub: ClusterHandle, ns: str) -> None:
    kube.wait_for(
        lambda: _status(hub, ns).get("observedGeneration") is not None,
        timeout=WAIT,
        what="the quota controller to compute the quota's status",
    )


def _fill_from_50_processes(hub: ClusterHandle, ns: str) -> None:
    kube.apply(hub.api_client(), _quota(ns, 64))
    _wait_quota_seen(hub, ns)
    results = _apply_concurrently(hub, [_gpus8(ns, f"d{i:02d}", 1) for i in range(50)])
    admitted = [out for code, out in results if code == 0]
    rejected = [out for code, out in results if code != 0]
    assert len(admitted) == 8, results
    assert len(rejected) == 42
    message = f"FederatedResourceQuota {ns}/gpus: requested nvidia.com/gpu=8, used 64 of 64, 0 left"
    other = [out for out in rejected if message not in out]
    assert not other, other[:3]
    assert _used(hub, ns) == "64"
    kube.wait_for(
        lambda: not _status(hub, ns).get("charges") and _used(hub, ns) == "64",
        timeout=WAIT,
        what="the charges to be released once the Deployments are seen, usage still 64",
    )


def test_fifty_concurrent_applies_fill_the_quota_exactly(operator: KopfRunner, hub: ClusterHandle) -> None:
    _fill_from_50_processes(hub, new_namespace(hub, "quota-conc"))


def _pytorchjob(ns: str, name: str, workers: int) -> dict[str, Any]:
    def role(replicas: int) -> dict[str, Any]:
        return {
            "replicas": replicas,
            "restartPolicy": "OnFailure",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "x",
                            "resources": {"requests": {GPU: "8"}, "limits": {GPU: "8"}},
                        }
                    ]
                }
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pytorchReplicaSpecs": {"Master": role(1), "Worker": role(workers)}},
    }


def test_every_role_is_charged_and_customized_kinds_too(operator: KopfRunner, hub: ClusterHandle) -> None:
    ns = new_namespace(hub, "quota-roles")
    api = hub.api_client()
    kube.apply(api, _quota(ns, 40))
    _wait_quota_seen(hub, ns)
    # 1 master + 3 workers x 8 GPUs: 32 of 40.
    done = _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_pytorchjob(ns, "train", 3)))
    assert done.returncode == 0, done.stderr
    kube.wait_for(lambda: _used(hub, ns) == "32", timeout=WAIT, what="the PyTorchJob charged for both roles")
    # A second job's master alone would fit (8 left), its worker does not: the whole job is refused.
    refused = _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_pytorchjob(ns, "more", 1)))
    assert refused.returncode != 0
    assert (
        f"FederatedResourceQuota {ns}/gpus: requested nvidia.com/gpu=16, used 32 of 40, 8 left"
        in refused.stderr
    )

    # RayCluster is known only through an InterpreterCustomization (examples/); once applied,
    # the webhook covers the kind and charges its head and workers.
    customization = next(
        d for d in _example("raycluster-customization.yaml") if d.get("kind") == "InterpreterCustomization"
    )
    kube.apply(api, customization)

    def raycluster(name: str, workers: int) -> dict[str, Any]:
        pod = {
            "containers": [
                {"name": "ray", "image": "x", "resources": {"requests": {GPU: "4"}, "limits": {GPU: "4"}}}
            ]
        }
        return {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "h", "image": "x"}]}},
                },
                "workerGroupSpecs": [
                    {"groupName": "g", "replicas": workers, "rayStartParams": {}, "template": {"spec": pod}}
                ],
            },
        }

    def covered() -> bool:
        attempt = _kubectl(
            hub, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(raycluster("probe", 3))
        )
        return attempt.returncode != 0 and "FederatedResourceQuota" in attempt.stderr

    kube.wait_for(covered, timeout=WAIT, what="the webhook to cover RayCluster (12 GPUs asked, 8 left)")
    fits = _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(raycluster("small", 2)))
    assert fits.returncode == 0, fits.stderr
    kube.wait_for(lambda: _used(hub, ns) == "40", timeout=WAIT, what="the RayCluster's workers charged")


def _example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REPO / "examples" / name).read_text()) if d]


def test_scale_up_past_quota_is_refused_scale_down_frees_quota(
    operator: KopfRunner, hub: ClusterHandle
) -> None:
    ns = new_namespace(hub, "quota-scale")
    api = hub.api_client()
    kube.apply(api, _quota(ns, 16))
    _wait_quota_seen(hub, ns)
    assert _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_gpus8(ns, "web", 1))).returncode == 0
    up = _kubectl(hub, "-n", ns, "scale", "deployment/web", "--replicas=3")  # the scale subresource
    assert up.returncode != 0 and "requested nvidia.com/gpu=16, used 8 of 16, 8 left" in up.stderr, up.stderr
    bigger = _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_gpus8(ns, "web", 3)))  # a new spec
    assert bigger.returncode != 0 and "requested nvidia.com/gpu=16" in bigger.stderr
    assert _kubectl(hub, "-n", ns, "scale", "deployment/web", "--replicas=2").returncode == 0
    kube.wait_for(lambda: _used(hub, ns) == "16", timeout=WAIT, what="16 of 16 used")
    refused = _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_gpus8(ns, "next", 1)))
    assert refused.returncode != 0
    down = _kubectl(hub, "-n", ns, "scale", "deployment/web", "--replicas=1")
    assert down.returncode == 0, down.stderr
    kube.wait_for(lambda: _used(hub, ns) == "8", timeout=WAIT, what="the scale-down to free 8 GPUs")
    admitted = _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_gpus8(ns, "next", 1)))
    assert admitted.returncode == 0, admitted.stderr
    kube.wait_for(lambda: _used(hub, ns) == "16", timeout=WAIT, what="16 of 16 used again")
    shown = subprocess.run(
        [
            str(Path(sys.executable).with_name("kubectl-flotilla")),
            *("quota", "-n", ns, "-o", "json", "--kubeconfig", str(hub.kubeconfig)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    row = next(r for r in json.loads(shown.stdout) if r["cluster"] == "*")
    assert (row["resource"], row["hard"], row["used"], row["left"]) == (GPU, "16", "16", "0")


def test_dry_run_is_checked_and_reserves_nothing(operator: KopfRunner, hub: ClusterHandle) -> None:
    ns = new_namespace(hub, "quota-dry")
    kube.apply(hub.api_client(), _quota(ns, 8))
    _wait_quota_seen(hub, ns)
    too_big = _kubectl(hub, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(_gpus8(ns, "w", 2)))
    assert too_big.returncode != 0 and "requested nvidia.com/gpu=16, used 0 of 8, 8 left" in too_big.stderr
    for _ in range(3):  # checked each time, charged never
        fits = _kubectl(hub, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(_gpus8(ns, "w", 1)))
        assert fits.returncode == 0, fits.stderr
    status = _status(hub, ns)
    assert status.get("overallUsed") == {GPU: "0"} and not status.get("charges")
    assert _kubectl(hub, "apply", "-f", "-", stdin=json.dumps(_gpus8(ns, "w", 1))).returncode == 0


def _replicas_on(members: dict[str, ClusterHandle], ns: str, name: str) -> dict[str, int]:
    out = {}
    for cluster, member in members.items():
        obj = kube.get(member.api_client(), "apps/v1", "Deployment", name, ns)
        if obj is not None:
            out[cluster] = int(obj["spec"]["replicas"])
    return out


def test_static_assignments_bound_each_cluster_and_exist_on_members(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    ns = new_namespace(hub, "quota-static")
    api = hub.api_client()
    kube.apply(api, _quota(ns, 64, static={"a": 8}))
    policy = {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": "spread", "namespace": ns},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "placement": {
                "clusterAffinity": {"clusterNames": ["a"]},
                "replicaScheduling": {"replicaSchedulingType": "Divided"},
            },
        },
    }
    kube.apply(api, policy)
    # a has 5 nodes x 8 H100s, the namespace a share of 8 GPUs there: 2 replicas x 4 fit ...
    kube.apply(api, _gpus8(ns, "train", 2, gpus=4))
    kube.wait_for(lambda: _replicas_on(members, ns, "train") == {"a": 2}, timeout=WAIT, what="train on a")
    placed = {"a": 2}
    # ... a third replica's worth does not, though a has room: it waits, and says why.
    kube.apply(api, _gpus8(ns, "extra", 1, gpus=4))

    def waiting() -> bool:
        cond = condition_of(binding(hub, ns, "extra-deployment"), "Scheduled") or {}
        return cond.get("status") == "False" and "quota share" in str(cond.get("message"))

    kube.wait_for(waiting, timeout=WAIT, what="extra unschedulable for the quota share")
    assert _replicas_on(members, ns, "extra") == {}
    rq = kube.get(members["a"].api_client(), "v1", "ResourceQuota", "flotilla-gpus", ns)
    assert rq is not None and rq["spec"]["hard"] == {"requests.nvidia.com/gpu": "8"}
    assert kube.get(members["b"].api_client(), "v1", "ResourceQuota", "flotilla-gpus", ns) is None

    def a_entry() -> dict[str, Any]:
        entries = _status(hub, ns).get("aggregatedStatus") or []
        return next((e for e in entries if e["clusterName"] == "a"), {})

    kube.wait_for(
        lambda: a_entry().get("used", {}).get(GPU, "0") == str(placed.get("a", 0) * 4),
        timeout=WAIT,
        what="usage on a in the quota's status",
    )
    assert a_entry()["hard"] == {GPU: "8"}
    # Raising the share lets the waiting workload in, and the member's ResourceQuota follows.
    kube.apply(api, _quota(ns, 64, static={"a": 12}))
    kube.wait_for(lambda: _replicas_on(members, ns, "extra") == {"a": 1}, timeout=WAIT, what="extra placed")
    kube.wait_for(
        lambda: (
            (
                (kube.get(members["a"].api_client(), "v1", "ResourceQuota", "flotilla-gpus", ns) or {}).get(
                    "spec"
                )
                or {}
            ).get("hard")
            == {"requests.nvidia.com/gpu": "12"}
        ),
        timeout=WAIT,
        what="the member ResourceQuota raised to 12",
    )


def _gpus8(ns: str, name: str, replicas: int, gpus: int = 8) -> dict[str, Any]:
    return gpu_deployment(ns, name, replicas, gpus)
