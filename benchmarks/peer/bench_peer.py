"""Flotilla beside real Karmada v1.18 on the same member clusters, in one run.

    .venv/bin/python benchmarks/peer/bench_peer.py                      # 200 and 2,000, then placement
    .venv/bin/python benchmarks/peer/bench_peer.py --sizes 200 --skip-placement
    .venv/bin/python benchmarks/peer/bench_peer.py --placement-only

Part 1 (default fleet: a, b, c): the rig starts, Flotilla's operator runs against the hub as it ships
(``python -m flotilla``, quota webhook in the path, as ``benchmarks/bench_propagation.py`` runs it) and
the Karmada peer (``flotilla.rig.peer``: karmada-apiserver, its etcd and kube-controller-manager,
karmada-webhook, -aggregated-apiserver, -controller-manager and -scheduler) joins the same members.
For each size, the same N Deployments (``bench_propagation.deployment``) and the same policy
(Divided/Aggregated over a, b, c; Karmada's apiVersion on Karmada) go to each control plane in turn,
into a fresh namespace that exists on the members beforehand; then that namespace is deleted
and its copies are waited away before the other system's turn. Measured for each:

* hub apply -> copy on the member: (first watch event of the copy on its member) - (time the control
  plane answered the apply), p50/p90/p99/max;
* scheduling throughput: bindings whose ``spec.clusters`` is set (each system's own ResourceBinding,
  seen by a watch), divided by the seconds from the first apply to the last decision;
* CPU seconds (utime + stime from /proc/<pid>/stat) and RSS (VmRSS, VmHWM from /proc/<pid>/status) of
  each control plane's processes: its controllers alone (Flotilla: the operator; Karmada: its four
  binaries) and the whole control plane (plus API server, etcd and kube-controller-manager), from the
  first apply until the processes are quiet again (under 5 % of a core for 5 s).

Part 2 (benchmarks/peer/fragmented-fleet.yaml): member ``scattered`` has 40 free H100s, one per node (7
of each node's 8 GPUs are held by running pods); member ``whole`` has 32, as 4 whole free nodes. A 4 x
8-GPU PyTorchJob (one cluster: spreadConstraints cluster maxGroups 1) and a 4 x 8-GPU Deployment
(Divided/Aggregated) go to each control plane in turn, one workload at a time: where each puts
them, and whether their pods then run (bound and Running) or stay Pending on the member. Karmada
runs twice: as shipped (its default Cluster resource models grade nodes by cpu and memory only),
then with resource models that grade GPUs too (``flotilla.rig.peer.gpu_resource_models``), as
an operator would configure it for GPU workloads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_propagation

import bench_propagation as bp
from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.cli import default_fleet_path
from flotilla.inventory.client import MemberClient
from flotilla.rig import demo
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.fleet import load_fleet
from flotilla.rig.peer import POLICY_API, WORK_API, KarmadaPeer, gpu_resource_models
from flotilla.rig.runner import Rig

HERE = Path(__file__).resolve().parent
FRAGMENTED_FLEET = HERE / "fragmented-fleet.yaml"
CLK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes
def proc_cpu(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def proc_mem(pids: Iterable[int]) -> tuple[float, float]:
    """(sum of VmRSS, sum of VmHWM) in MiB."""
    rss = hwm = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields["VmRSS"].split()[0])
        hwm += int(fields["VmHWM"].split()[0])
    return rss / 1024, hwm / 1024


def wait_quiet(pids: list[int], below: float = 0.05, hold: float = 5.0, timeout: float = 300.0) -> float:
    """Seconds until ``pids`` together use less than ``below`` of a core for ``hold`` seconds."""
    start = time.monotonic()
    quiet_since: float | None = None
    last = proc_cpu(pids)
    while time.monotonic() - start < timeout:
        time.sleep(1.0)
        now = proc_cpu(pids)
        rate, last = now - last, now
        if rate < below:
            quiet_since = quiet_since or time.monotonic() - 1.0
            if time.monotonic() - quiet_since >= hold:
                return quiet_since - start
        else:
            quiet_since = None
    return timeout


# --------------------------------------------------------------------------- systems
@dataclass
class System:
    """One control plane as the benchmark drives it."""

    name: str
    hub: ClusterHandle
    policy_api: str
    binding_api: str
    controllers: dict[str, int]  # process name -> pid
    plane: dict[str, int] = field(default_factory=dict)  # API server, etcd, KCM

    @property
    def all_pids(self) -> list[int]:
        return [*self.controllers.values(), *self.plane.values()]


def flotilla_system(rig: Rig, workdir: Path) -> tuple[System, Any]:
    assert rig.hub is not None
    hub = rig.hub
    kube.install_crds(hub.api_client(), demo.flotilla_crds())
    for member in rig.members.values():
        demo.register_member(hub, member)
    os.environ["FLOTILLA_METRICS_PORT"] = str(bp.free_port())
    operator = demo.start_operator(hub, workdir / "operator.log")
    for name in rig.members:
        kube.wait_for(partial(demo.member_ready, hub, name), timeout=180, what=f"member {name} Ready")
    plane = {k: v for k, v in hub.pids.items() if k in ("etcd", "kube-apiserver", "kube-controller-manager")}
    return System(
        "flotilla", hub, GROUP_VERSION, "flotilla.dev/v1alpha1", {"operator": operator.pid}, plane
    ), operator


def karmada_system(peer: KarmadaPeer) -> System:
    pids = peer.pids()
    controllers = {k: v for k, v in pids.items() if k.startswith("karmada-")}
    plane = {k: v for k, v in pids.items() if not k.startswith("karmada-")}
    return System("karmada", peer.api, POLICY_API, WORK_API, controllers, plane)


def hub_crds(rig: Rig) -> list[Path]:
    """The third-party CRDs the rig's hub serves, for the karmada-apiserver too."""
    return [demo.thirdparty_dir() / f for f in rig.fleet.hub.third_party_crds]


# --------------------------------------------------------------------------- watches
def watch_first(
    handle: ClusterHandle,
    path: str,
    seen: dict[str, float],
    stop: threading.Event,
    accept: Callable[[dict[str, Any]], bool],
    key: Callable[[dict[str, Any]], str],
) -> None:
    """Record the first time each object under ``path`` is seen satisfying ``accept``, by ``key``."""
    client = MemberClient(handle.api_client().configuration)
    version = client.get(path)["metadata"]["resourceVersion"]
    while not stop.is_set():
        try:
            for event in client.watch(
                path, [("resourceVersion", version), ("timeoutSeconds", "30")], timeout=40
            ):
                obj = event["object"]
                version = obj["metadata"].get("resourceVersion", version)
                if event.get("type") != "DELETED" and accept(obj):
                    seen.setdefault(key(obj), time.monotonic())
        except Exception:
            if stop.is_set():
                return
            time.sleep(0.2)


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    q = statistics.quantiles(values, n=100) if len(values) >= 2 else values * 99
    return {
        "p50": round(q[49], 3),
        "p90": round(q[89], 3),
        "p99": round(q[98], 3),
        "max": round(max(values), 3),
    }


def is_scheduled(binding: dict[str, Any]) -> bool:
    return bool((binding.get("spec") or {}).get("clusters"))


def template_name(binding: dict[str, Any]) -> str:
    return str(binding["spec"]["resource"]["name"])


def binding_path(system: System, ns: str) -> str:
    return f"/apis/{system.binding_api}/namespaces/{ns}/resourcebindings"


def run_size(system: System, members: dict[str, ClusterHandle], n: int, timeout: float) -> dict[str, Any]:
    """N Deployments at once through ``system``; returns its figures, then deletes them again."""
    ns = f"peer-{system.name}-{n}"
    api = system.hub.api_client()
    kube.ensure_namespace(api, ns)
    for member in members.values():
        kube.ensure_namespace(member.api_client(), ns)
    kube.apply(api, bp.policy(ns, system.policy_api))
    arrived: dict[str, float] = {}
    scheduled: dict[str, float] = {}
    stop = threading.Event()
    threads = [
        threading.Thread(target=bp.watch_arrivals, args=(m, arrived, stop, ns), daemon=True)
        for m in members.values()
    ]
    threads.append(
        threading.Thread(
            target=watch_first,
            args=(
                system.hub,
                binding_path(system, ns),
                scheduled,
                stop,
                is_scheduled,
                template_name,
            ),
            daemon=True,
        )
    )
    for t in threads:
        t.start()
    time.sleep(2)
    wait_quiet(system.all_pids, timeout=60)
    cpu0_ctl, cpu0_all = proc_cpu(system.controllers.values()), proc_cpu(system.all_pids)
    applied: dict[str, float] = {}
    lock = threading.Lock()

    def apply_one(i: int) -> None:
        obj = bp.deployment(i, ns)
        kube.apply(api, obj)
        with lock:
            applied[obj["metadata"]["name"]] = time.monotonic()

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(apply_one, range(n)))
    apply_seconds = time.monotonic() - start
    deadline = time.monotonic() + timeout
    while sum(1 for k in applied if k in arrived) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    all_arrived = time.monotonic() - start
    cpu_arrived_ctl = proc_cpu(system.controllers.values()) - cpu0_ctl
    # Both systems keep writing status after the copies arrive: count CPU until they are quiet.
    quiet = wait_quiet(system.all_pids, timeout=timeout)
    cpu_ctl = proc_cpu(system.controllers.values()) - cpu0_ctl
    cpu_all = proc_cpu(system.all_pids) - cpu0_all
    rss_ctl, hwm_ctl = proc_mem(system.controllers.values())
    rss_all, hwm_all = proc_mem(system.all_pids)
    idle0 = proc_cpu(system.all_pids)
    time.sleep(10)
    idle = (proc_cpu(system.all_pids) - idle0) / 10
    stop.set()
    latencies = sorted(arrived[k] - applied[k] for k in applied if k in arrived)
    sched_times = sorted(scheduled[k] for k in scheduled if k in applied)
    span = (sched_times[-1] - start) if sched_times else None
    result = {
        "system": system.name,
        "workloads": n,
        "arrived": len(latencies),
        "apply_all_seconds": round(apply_seconds, 2),
        "all_arrived_seconds": round(all_arrived, 2),
        **{f"{k}_seconds": v for k, v in quantiles(latencies).items()},
        "scheduled": len(sched_times),
        "scheduled_per_second": round(len(sched_times) / span, 1) if span else None,
        "cpu_seconds_controllers_until_arrived": round(cpu_arrived_ctl, 1),
        "cpu_seconds_controllers": round(cpu_ctl, 1),
        "cpu_seconds_control_plane": round(cpu_all, 1),
        "quiet_after_seconds": round(quiet, 1),
        "rss_mib_controllers": round(rss_ctl),
        "peak_rss_mib_controllers": round(hwm_ctl),
        "rss_mib_control_plane": round(rss_all),
        "peak_rss_mib_control_plane": round(hwm_all),
        "idle_cpu_percent_control_plane": round(idle * 100, 1),
    }
    print(f"  {system.name:8s} {n:5d}: {json.dumps(result)}", flush=True)
    cleanup(system, members, ns, timeout)
    return result


def cleanup(system: System, members: dict[str, ClusterHandle], ns: str, timeout: float) -> None:
    """Delete the run's namespace on the control plane and wait until its copies left the members."""
    kube.delete(system.hub.api_client(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def copies_gone() -> bool:
        return all(
            not kube.list_objects(m.api_client(), "apps/v1", "Deployment", ns) for m in members.values()
        )

    kube.wait_for(copies_gone, timeout=timeout, interval=2.0, what=f"{system.name}: copies in {ns} removed")
    for member in members.values():
        kube.delete(member.api_client(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


# --------------------------------------------------------------------------- report
ROWS = [
    ("arrived", "copies arrived", "{}"),
    ("apply_all_seconds", "all applied (s)", "{:.2f}"),
    ("all_arrived_seconds", "all arrived (s)", "{:.2f}"),
    ("p50_seconds", "apply -> member p50 (s)", "{:.3f}"),
    ("p90_seconds", "apply -> member p90 (s)", "{:.3f}"),
    ("p99_seconds", "apply -> member p99 (s)", "{:.3f}"),
    ("max_seconds", "apply -> member max (s)", "{:.3f}"),
    ("scheduled_per_second", "scheduling throughput (/s)", "{:.1f}"),
    ("cpu_seconds_controllers", "CPU s, controllers", "{:.1f}"),
    ("cpu_seconds_control_plane", "CPU s, whole control plane", "{:.1f}"),
    ("peak_rss_mib_controllers", "peak RSS MiB, controllers", "{}"),
    ("peak_rss_mib_control_plane", "peak RSS MiB, whole plane", "{}"),
    ("idle_cpu_percent_control_plane", "idle CPU %, whole plane", "{:.1f}"),
]


def _cell(fmt: str, value: Any) -> str:
    return "-" if value is None else fmt.format(value)


def print_table(results: list[dict[str, Any]]) -> None:
    sizes = sorted({r["workloads"] for r in results})
    for n in sizes:
        runs = {r["system"]: r for r in results if r["workloads"] == n}
        f, k = runs.get("flotilla", {}), runs.get("karmada", {})
        print(f"\n{n} Deployments applied at once (16 client threads), same members a, b, c")
        print(f"  {'':30s} {'Flotilla':>10s} {'Karmada':>10s} {'Flotilla/Karmada':>17s}")
        for key, label, fmt in ROWS:
            fv, kv = f.get(key), k.get(key)
            ratio = (
                f"{fv / kv:.2f}"
                if isinstance(fv, (int, float)) and isinstance(kv, (int, float)) and kv
                else "-"
            )
            print(f"  {label:30s} {_cell(fmt, fv):>10s} {_cell(fmt, kv):>10s} {ratio:>17s}")


# --------------------------------------------------------------------------- part 1
def propagation(sizes: list[int], timeout: float, order: str, qps: float | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rig = Rig(fleet=load_fleet(default_fleet_path()), workdir=workdir / "rig", verbose=False).up()
        operator = None
        peer = None
        try:
            flotilla, operator = flotilla_system(rig, workdir)
            peer = KarmadaPeer(
                workdir=workdir / "rig" / "peer",
                members=dict(rig.members),
                verbose=False,
                extra_crds=hub_crds(rig),
                client_qps=qps,
            ).up()
            karmada = karmada_system(peer)
            limits = f"{qps:g} QPS (tuned)" if qps else "40 QPS, burst 60 (as shipped)"
            print(f"Karmada client limits: {limits}; order: {order}", flush=True)
            systems = [flotilla, karmada] if order == "flotilla-first" else [karmada, flotilla]
            for n in sizes:
                for system in systems:
                    results.append(run_size(system, rig.members, n, timeout))
            print_table(results)
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(30)
            if peer is not None:
                peer.down()
            rig.down()
    return results


# --------------------------------------------------------------------------- part 2
def filler_pod(node: str, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"busy-{node}", "namespace": "default", "labels": {"bench": "filler"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {
                        "requests": {"nvidia.com/gpu": str(gpus)},
                        "limits": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
    }


def fragment(rig: Rig) -> None:
    """Hold 7 of the 8 GPUs of every node of ``scattered`` and all 8 of 2 nodes of ``whole``."""
    for member, per_node, nodes in (("scattered", 7, None), ("whole", 8, 2)):
        api = rig.members[member].api_client()
        names = sorted(n["metadata"]["name"] for n in kube.list_objects(api, "v1", "Node"))
        for node in names[:nodes] if nodes else names:
            kube.apply(api, filler_pod(node, per_node))

    def running() -> bool:
        for member in ("scattered", "whole"):
            pods = kube.list_objects(rig.members[member].api_client(), "v1", "Pod", "default", "bench=filler")
            if not pods or any((p.get("status") or {}).get("phase") != "Running" for p in pods):
                return False
        return True

    kube.wait_for(running, timeout=120, what="filler pods Running")


def gpu_template(role: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"job": "train-4x8"}},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "containers": [
                {
                    "name": "pytorch",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "resources": {
                        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "8"},
                        "limits": {"nvidia.com/gpu": "8"},
                    },
                }
            ],
        },
    }


def training_workloads(ns: str, policy_api: str) -> list[dict[str, Any]]:
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train-4x8", "namespace": ns},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": gpu_template("master")},
                "Worker": {"replicas": 3, "restartPolicy": "OnFailure", "template": gpu_template("worker")},
            },
        },
    }
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "serve-4x8", "namespace": ns},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "serve-4x8"}},
            "template": {**gpu_template("serve"), "metadata": {"labels": {"app": "serve-4x8"}}},
        },
    }
    members = {"clusterNames": ["scattered", "whole"]}
    one_cluster = [{"spreadByField": "cluster", "maxGroups": 1, "minGroups": 1}]
    policies = [
        {
            "apiVersion": policy_api,
            "kind": "PropagationPolicy",
            "metadata": {"name": "train-4x8", "namespace": ns},
            "spec": {
                "resourceSelectors": [
                    {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "train-4x8"}
                ],
                "placement": {"clusterAffinity": members, "spreadConstraints": one_cluster},
            },
        },
        {
            "apiVersion": policy_api,
            "kind": "PropagationPolicy",
            "metadata": {"name": "serve-4x8", "namespace": ns},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "serve-4x8"}],
                "placement": {
                    "clusterAffinity": members,
                    "replicaScheduling": {
                        "replicaSchedulingType": "Divided",
                        "replicaDivisionPreference": "Aggregated",
                    },
                },
            },
        },
    ]
    return [*policies, job, deploy]


def pod_states(members: dict[str, ClusterHandle], ns: str, selector: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, member in members.items():
        counts: dict[str, int] = {}
        for pod in kube.list_objects(member.api_client(), "v1", "Pod", ns, selector):
            phase = (pod.get("status") or {}).get("phase", "Unknown")
            counts[phase] = counts.get(phase, 0) + 1
        if counts:
            out[name] = counts
    return out


def binding_of(system: System, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    for b in kube.list_objects(system.hub.api_client(), system.binding_api, "ResourceBinding", ns):
        res = b["spec"].get("resource") or {}
        if res.get("kind") == kind and res.get("name") == name:
            return b
    return None


def decision(binding: dict[str, Any] | None) -> tuple[str, str]:
    """(clusters, the Scheduled condition's message when no cluster was chosen)."""
    if binding is None:
        return "(no binding)", ""
    clusters = binding["spec"].get("clusters") or []
    placed = ",".join(f"{c['name']}:{c.get('replicas', 0)}" for c in clusters)
    conds = (binding.get("status") or {}).get("conditions") or []
    why = next(
        (c.get("message", "") for c in conds if c["type"] == "Scheduled" and c["status"] != "True"), ""
    )
    return placed or "(none)", why


def place_one(
    system: System,
    members: dict[str, ClusterHandle],
    doc: dict[str, Any],
    policy: dict[str, Any],
    settle: float,
) -> dict[str, Any]:
    """Apply one workload and its policy alone, wait for its pods to run (or ``settle`` s), then remove it."""
    ns = doc["metadata"]["namespace"]
    api = system.hub.api_client()
    selector = "job=train-4x8" if doc["kind"] == "PyTorchJob" else "app=serve-4x8"
    name = doc["metadata"]["name"]
    kube.apply(api, policy)
    kube.apply(api, doc)
    deadline = time.monotonic() + settle
    out: dict[str, Any] = {}
    while time.monotonic() < deadline:
        time.sleep(5)
        placed, why = decision(binding_of(system, ns, doc["kind"], name))
        pods = pod_states(members, ns, selector)
        out = {"placed": placed, "unschedulable": why, "pods": pods}
        if sum(c.get("Running", 0) for c in pods.values()) == 4:
            break
    out["running"] = f"{sum(c.get('Running', 0) for c in out['pods'].values())}/4"
    kube.delete(api, doc)
    kube.delete(api, policy)
    kube.wait_for(
        lambda: not pod_states(members, ns, selector) and binding_of(system, ns, doc["kind"], name) is None,
        timeout=180,
        interval=2.0,
        what=f"{system.name}: {doc['kind']} {name}, its binding and its pods removed",
    )
    return out


def place(system: System, members: dict[str, ClusterHandle], settle: float) -> dict[str, Any]:
    ns = f"frag-{system.name}"
    api = system.hub.api_client()
    kube.ensure_namespace(api, ns)
    for member in members.values():
        kube.ensure_namespace(member.api_client(), ns)
    train_policy, serve_policy, job, deploy = training_workloads(ns, system.policy_api)
    return {
        "PyTorchJob/train-4x8": place_one(system, members, job, train_policy, settle),
        "Deployment/serve-4x8": place_one(system, members, deploy, serve_policy, settle),
    }


def placement(settle: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rig = Rig(fleet=load_fleet(FRAGMENTED_FLEET), workdir=workdir / "rig", verbose=False).up()
        operator = None
        peer = None
        try:
            fragment(rig)
            flotilla, operator = flotilla_system(rig, workdir)
            peer = KarmadaPeer(
                workdir=workdir / "rig" / "peer",
                members=dict(rig.members),
                verbose=False,
                extra_crds=hub_crds(rig),
            ).up()
            karmada = karmada_system(peer)
            results["karmada"] = place(karmada, rig.members, settle)
            # Then Karmada as an operator tunes it for GPUs: resource models with GPU grades.
            for name in rig.members:
                peer.set_resource_models(name, gpu_resource_models())
            time.sleep(15)  # a full cluster-status period (10 s) with the new grades
            results["karmada+gpu-models"] = place(karmada, rig.members, settle)
            results["flotilla"] = place(flotilla, rig.members, settle)
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(30)
            if peer is not None:
                peer.down()
            rig.down()
    print("\nFragmented fleet: scattered = 40 free H100s one per node, whole = 4 whole free 8-GPU nodes")
    print(
        f"  {'workload (4 pods x 8 GPUs)':28s} {'system':18s} {'placed on':22s} {'pods Running':13s}"
        " pods by phase"
    )
    for name in ("PyTorchJob/train-4x8", "Deployment/serve-4x8"):
        for system in ("karmada", "karmada+gpu-models", "flotilla"):
            wl = results[system][name]
            pods = json.dumps(wl["pods"], sort_keys=True)
            print(f"  {name:28s} {system:18s} {wl['placed']:22s} {wl['running']:13s} {pods}")
            if wl["unschedulable"]:
                print(f"  {'':28s} {'':18s} unschedulable: {wl['unschedulable'][:150]}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="200,2000", help="comma-separated workload counts (default 200,2000)"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--order", choices=("flotilla-first", "karmada-first"), default="karmada-first")
    parser.add_argument(
        "--karmada-qps",
        type=float,
        help="Karmada's client QPS to its API server and members (default: as shipped, 40, burst 60)",
    )
    parser.add_argument("--skip-placement", action="store_true")
    parser.add_argument("--placement-only", action="store_true")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to wait for placed pods to run")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if not args.placement_only:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        out["propagation"] = propagation(sizes, args.timeout, args.order, args.karmada_qps)
    if not args.skip_placement:
        out["placement"] = placement(args.settle)
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
