"""Inventory memory and event cost (DESIGN.md section 7: operator memory under 1 GiB).

Fleet: 5 members x 1,000 GPU nodes and 20,000 bound, running pods in total (defaults), as
synthetic Node/Pod dicts shaped like what the API server returns (labels from GPU Feature
Discovery, conditions, images, managedFields, pod specs with env, volumes and probes). They
go through the same path as the live watches - :class:`flotilla.inventory.MemberInventory`
converting them and updating one shared :class:`~flotilla.scheduler.SchedulerCache` under the
lock - without an API server. Objects are generated one at a time, as a watch delivers them.

Prints: RSS growth and total process RSS after loading (VmRSS from /proc/self/status, peak
from getrusage), then the time per node list item, per pod ADDED/DELETED event, per node
MODIFIED event, per resourceSummary and per scheduler snapshot.

    .venv/bin/python benchmarks/bench_inventory_memory.py            # 5 x 1,000 nodes, 20,000 pods
    .venv/bin/python benchmarks/bench_inventory_memory.py --quick    # 2 x 100 nodes, 1,000 pods
"""

from __future__ import annotations

import argparse
import gc
import itertools
import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

from flotilla.inventory import MemberInventory
from flotilla.scheduler import SchedulerCache

MODELS = (
    ("NVIDIA-H100-80GB-HBM3", "81559", 8),
    ("NVIDIA-A100-SXM4-40GB", "40960", 4),
    ("NVIDIA-L4", "23034", 1),
)


def rss_mib() -> float:
    """Current resident set size (VmRSS) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_node(member: int, i: int, rv: int) -> dict[str, Any]:
    product, memory, gpus = MODELS[i % len(MODELS)]
    name = f"m{member}-gpu-node-{i:05d}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": f"p5.{gpus * 6}xlarge",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": f"eu-west-1{'abc'[i % 3]}",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": memory,
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.family": "hopper",
        "nvidia.com/gpu.machine": "p5.48xlarge",
        "nvidia.com/cuda.driver.major": "550",
        "nvidia.com/cuda.driver.minor": "54",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/gfd.timestamp": str(1700000000 + i),
        "feature.node.kubernetes.io/pci-10de.present": "true",
        "node-pool": f"pool-{i % 10}",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"node-uid-{member}-{i}",
            "resourceVersion": str(rv),
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "managedFields": [
                {"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {"f:conditions": {}}}}
            ],
        },
        "spec": {
            "podCIDR": f"10.{member}.{i % 256}.0/24",
            "providerID": f"aws:///eu-west-1a/i-{i:017x}",
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        },
        "status": {
            "capacity": {
                "cpu": "192",
                "memory": "2Ti",
                "pods": "110",
                "ephemeral-storage": "3Ti",
                "nvidia.com/gpu": str(gpus),
            },
            "allocatable": {
                "cpu": "191450m",
                "memory": "2047Gi",
                "pods": "110",
                "ephemeral-storage": "2900Gi",
                "nvidia.com/gpu": str(gpus),
            },
            "conditions": [
                {
                    "type": t,
                    "status": "False",
                    "reason": f"Kubelet{t}",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
            ]
            + [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": f"10.{member}.{i % 256}.{i // 256}"}],
            "images": [
                {"names": [f"registry.example/img-{j}@sha256:{j:064x}"], "sizeBytes": 10**9}
                for j in range(20)
            ],
            "nodeInfo": {"kubeletVersion": "v1.34.4", "containerRuntimeVersion": "containerd://2.0.0"},
        },
    }


def make_pod(member: int, i: int, node: str, gpus: int) -> dict[str, Any]:
    name = f"train-{member}-{i:06d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": f"team-{i % 20}",
            "uid": f"pod-uid-{member}-{i:08d}",
            "resourceVersion": str(10**6 + i),
            "labels": {
                "app": "train",
                "job-name": f"job-{i // 4}",
                "batch.kubernetes.io/job-completion-index": str(i % 4),
            },
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": f"job-{i // 4}", "uid": f"j-{i // 4}"}
            ],
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "initContainers": [
                {
                    "name": "fetch",
                    "image": "registry.example/fetch:1",
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                }
            ],
            "containers": [
                {
                    "name": "train",
                    "image": "registry.example/train:latest",
                    "env": [{"name": f"VAR_{k}", "value": str(k)} for k in range(10)],
                    "resources": {
                        "requests": {
                            "cpu": "8",
                            "memory": "64Gi",
                            **({"nvidia.com/gpu": str(gpus)} if gpus else {}),
                        },
                        "limits": {"nvidia.com/gpu": str(gpus)} if gpus else {},
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                },
                {
                    "name": "sidecar",
                    "image": "registry.example/log:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                },
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"data-{i}"}}],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.{member}.{i % 256}.{i // 256 % 256}",
            "conditions": [
                {"type": t, "status": "True"}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {"name": "train", "ready": True, "restartCount": 0, "state": {"running": {}}}
            ],
        },
    }


def pods_for(member: int, count: int, nodes: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        node_index = i % nodes
        gpus = MODELS[node_index % len(MODELS)][2]
        yield make_pod(member, i, f"m{member}-gpu-node-{node_index:05d}", gpus // 4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1000, help="nodes per member")
    parser.add_argument("--pods", type=int, default=20000, help="pods in total, spread over the members")
    parser.add_argument("--quick", action="store_true", help="2 members x 100 nodes, 1,000 pods")
    args = parser.parse_args()
    if args.quick:
        args.members, args.nodes, args.pods = 2, 100, 1000
    pods_per_member = args.pods // args.members

    gc.collect()
    base = rss_mib()
    cache = SchedulerCache()
    lock = threading.RLock()
    inventories = [MemberInventory(f"member-{m}", cache, lock) for m in range(args.members)]

    t0 = time.perf_counter()
    for m, inv in enumerate(inventories):
        inv.publish()
        inv.set_cluster(
            ready=True, api_enablements=frozenset({"v1/Pod", "apps/v1/Deployment", "batch/v1/Job"})
        )
        inv.replace_nodes(make_node(m, i, i + 1) for i in range(args.nodes))
    t_nodes = time.perf_counter() - t0

    t_pods = 0.0
    for m, inv in enumerate(inventories):
        pods = pods_for(m, pods_per_member, args.nodes)
        while chunk := list(itertools.islice(pods, 1000)):  # generation is not timed
            t0 = time.perf_counter()
            for obj in chunk:
                inv.apply_pod("ADDED", obj)
            t_pods += time.perf_counter() - t0
    with lock:
        snap = cache.snapshot()
    gc.collect()
    loaded = rss_mib()

    total_nodes = args.members * args.nodes
    total_pods = args.members * pods_per_member
    print(f"fleet: {args.members} members x {args.nodes} nodes = {total_nodes} nodes, {total_pods} pods")
    print(f"RSS before loading           : {base:8.1f} MiB")
    print(f"RSS after loading            : {loaded:8.1f} MiB  (growth {loaded - base:.1f} MiB)")
    print(f"peak RSS (getrusage)         : {peak_rss_mib():8.1f} MiB  (target: operator < 1024 MiB)")

    # Steady-state event costs on the loaded fleet.
    inv, m = inventories[0], 0
    n_events = min(2000, pods_per_member)
    extra = list(pods_for(m, pods_per_member + n_events, args.nodes))[pods_per_member:]
    for j, obj in enumerate(extra):
        obj["metadata"]["uid"] = f"extra-{j}"
    t0 = time.perf_counter()
    for obj in extra:
        inv.apply_pod("ADDED", obj)
    t_add = (time.perf_counter() - t0) / len(extra)
    t0 = time.perf_counter()
    for obj in extra:
        inv.apply_pod("DELETED", obj)
    t_del = (time.perf_counter() - t0) / len(extra)
    running = next(pods_for(m, 1, args.nodes))
    t0 = time.perf_counter()
    for _ in extra:
        inv.apply_pod("MODIFIED", running)  # status churn: requests unchanged, cache untouched
    t_mod = (time.perf_counter() - t0) / len(extra)
    changed = [make_node(m, i % args.nodes, 10**7 + i) for i in range(min(500, args.nodes))]
    for i, obj in enumerate(changed):
        obj["metadata"]["labels"]["nvidia.com/gfd.timestamp"] = f"changed-{i}"
    t0 = time.perf_counter()
    for obj in changed:
        inv.apply_node("MODIFIED", obj)
    t_node = (time.perf_counter() - t0) / len(changed)
    t0 = time.perf_counter()
    summary, _ = inv.summaries()
    t_summary = time.perf_counter() - t0
    t0 = time.perf_counter()
    with lock:
        inv.apply_pod("ADDED", extra[0])
        snap = cache.snapshot()
    t_snap = time.perf_counter() - t0

    print(f"initial node list            : {t_nodes / total_nodes * 1e6:8.1f} us/node")
    print(f"initial pods (ADDED events)  : {t_pods / total_pods * 1e6:8.1f} us/pod")
    print(f"pod ADDED event (loaded)     : {t_add * 1e6:8.1f} us")
    print(f"pod DELETED event (loaded)   : {t_del * 1e6:8.1f} us")
    print(f"pod MODIFIED, status only    : {t_mod * 1e6:8.1f} us")
    print(f"node MODIFIED (labels)       : {t_node * 1e6:8.1f} us")
    print(f"resourceSummary of a member  : {t_summary * 1e3:8.2f} ms")
    print(f"cache.snapshot() after change: {t_snap * 1e3:8.2f} ms  ({len(snap.clusters)} clusters)")
    gpus = summary["free"].get("nvidia.com/gpu"), summary["allocatable"].get("nvidia.com/gpu")
    print(f"member-0 free GPUs           : {gpus[0]} of {gpus[1]}")


if __name__ == "__main__":
    main()
