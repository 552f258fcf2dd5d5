"""Scheduler core throughput and latency (DESIGN.md section 7).

Fleet: N clusters x 100 heterogeneous GPU nodes (8x H100, 8x A100, 4x L4, 2x T4), partly used.
Queue: a fixed-seed mix of AI workloads (1-GPU replicas, fractional GPUs, 8-GPU pods, GPU-model
constrained pods, PyTorchJob gangs of 4 x 8 GPUs, CPU-only pods). Each decision is taken on a
fresh cache snapshot and its pods are reserved (``assume``), so later decisions see it.

Prints, per fleet size: decisions/s (wall and process CPU time), p50/p99 wall latency of one
decision (schedule + assume), mean and p99 CPU time of one decision, the time to clear the queue
and how many workloads were placed, the memory the fleet takes in the scheduler cache (RSS
growth while building it) and what the scheduler's indexes add while the queue runs. The first
decisions on a fresh fleet evaluate each shape once per node resource state and build each
cluster's per-shape index (clusters with no room for the shape are answered from their
summary instead); later ones revisit only the clusters and nodes that changed. Then the growth
from 100 to 1,000 clusters: CPU per decision against the 10x more clusters. Per fleet size also
the explanation the operator writes into each binding (``status.explanation``, at most
``FLOTILLA_EXPLANATION_CLUSTERS`` clusters), from every tenth decision: CPU and JSON size,
bounded and with every cluster.

    .venv/bin/python benchmarks/bench_scheduler.py            # 10, 100, 1000, 5000 clusters
    .venv/bin/python benchmarks/bench_scheduler.py --quick    # seconds, for CI
    .venv/bin/python benchmarks/bench_scheduler.py --clusters 5000 --decisions 1000

The process runs with the operator's garbage-collector thresholds (``FLOTILLA_GC_THRESHOLD``,
set at start; ``FLOTILLA_GC_THRESHOLD=python`` measures with the interpreter's own).

Each decision is instrumented as the operator ships it (``flotilla.metrics.SchedulerObserver``:
the algorithm timed, every plugin call timed on one attempt in ten); ``--bare`` leaves the
metrics out, to measure what they cost.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time

from bench_inventory_memory import rss_mib
from flotilla.controllers.profile import default_scheduler
from flotilla.controllers.scheduling import explanation_clusters
from flotilla.gcsettings import apply_threshold
from flotilla.metrics import SchedulerObserver
from flotilla.scheduler import (
    GPU_MEMORY_LABEL,
    GPU_MILLI_RESOURCE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterInfo,
    Component,
    GangSpec,
    NodeInfo,
    Placement,
    SchedulerCache,
    Workload,
)
from flotilla.scheduler.core import ScheduleOutcome
from flotilla.scheduler.plugins.fragmentation import LearningSettings

GiB = 1 << 30
NODE_TYPES = (  # (model, GPUs, memory MiB per GPU, cpu millicores, memory bytes, weight)
    ("NVIDIA-H100-80GB-HBM3", 8, 81559, 192_000, 2048 * GiB, 3),
    ("NVIDIA-A100-SXM4-80GB", 8, 81920, 128_000, 1024 * GiB, 4),
    ("NVIDIA-L4", 4, 23034, 48_000, 192 * GiB, 2),
    ("Tesla-T4", 2, 15360, 32_000, 128 * GiB, 1),
)
DIVIDED = {
    "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}
}
APIS = frozenset({"apps/v1/Deployment", "batch/v1/Job", "kubeflow.org/v1/PyTorchJob"})


def make_node(rng: random.Random, name: str) -> NodeInfo:
    model, gpus, gpu_mem, cpu, mem, _ = rng.choices(NODE_TYPES, weights=[t[-1] for t in NODE_TYPES])[0]
    used_gpus = rng.choice([0, 0, 0, gpus // 2, gpus - 1, gpus])
    devices = [0] * used_gpus + [1000] * (gpus - used_gpus)
    if used_gpus < gpus and rng.random() < 0.3:
        devices[used_gpus] = rng.choice([200, 500, 750])
    return NodeInfo(
        name=name,
        allocatable={"cpu": cpu, "memory": mem, "pods": 110, GPU_RESOURCE: gpus},
        used={
            "cpu": cpu * used_gpus // (gpus * 2),
            "memory": mem * used_gpus // (gpus * 2),
            "pods": used_gpus,
        },
        labels={GPU_PRODUCT_LABEL: model, GPU_MEMORY_LABEL: str(gpu_mem), "kubernetes.io/hostname": name},
        gpu_free=tuple(devices),
    )


def make_fleet(clusters: int, nodes: int, seed: int = 7) -> SchedulerCache:
    rng = random.Random(seed)
    cache = SchedulerCache()
    for c in range(clusters):
        name = f"member-{c:04d}"
        node_map = {f"{name}-n{n:03d}": make_node(rng, f"{name}-n{n:03d}") for n in range(nodes)}
        cache.update_cluster(
            ClusterInfo(name, node_map, labels={"tier": "gpu"}, api_enablements=APIS, region=f"r{c % 4}")
        )
    return cache


def make_workloads(count: int, seed: int = 11) -> list[Workload]:
    rng = random.Random(seed)
    divided = Placement.from_dict(DIVIDED)
    out: list[Workload] = []
    for i in range(count):
        kind = rng.random()
        key = f"ns/w{i:05d}"
        if kind < 0.35:
            comp = Component("main", rng.randint(1, 4), {"cpu": 8000, "memory": 64 * GiB, GPU_RESOURCE: 1})
        elif kind < 0.55:
            milli = rng.choice([250, 500])
            comp = Component(
                "main", rng.randint(1, 2), {"cpu": 2000, "memory": 16 * GiB, GPU_MILLI_RESOURCE: milli}
            )
        elif kind < 0.70:
            comp = Component("main", rng.randint(1, 2), {"cpu": 64000, "memory": 512 * GiB, GPU_RESOURCE: 8})
        elif kind < 0.80:
            comp = Component(
                "main",
                rng.randint(1, 2),
                {"cpu": 8000, "memory": 32 * GiB, GPU_RESOURCE: 2},
                node_selector={GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"},
            )
        elif kind < 0.90:
            req = {"cpu": 64000, "memory": 512 * GiB, GPU_RESOURCE: 8}
            out.append(
                Workload(
                    key,
                    (Component("master", 1, req), Component("worker", 3, req)),
                    gang=GangSpec(min_member=4),
                    gvk="kubeflow.org/v1/PyTorchJob",
                )
            )
            continue
        else:
            comp = Component("main", 2, {"cpu": 4000, "memory": 8 * GiB})
        out.append(Workload(key, (comp,), divided, gvk="apps/v1/Deployment"))
    return out


def run(clusters: int, nodes: int, count: int, bare: bool = False, learn: bool = True) -> dict[str, float]:
    workloads = make_workloads(count)
    gc.collect()
    rss0 = rss_mib()
    build = time.perf_counter()
    cache = make_fleet(clusters, nodes)
    build = time.perf_counter() - build
    gc.collect()
    rss1 = rss_mib()
    # The operator's profile: GPUFragmentation learns the workload it sees (``--no-learning``: the
    # prior only, not shipped).
    scheduler = default_scheduler(None if learn else LearningSettings(learn=False))
    observer = SchedulerObserver(profile="bench")
    latencies: list[float] = []
    placed = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    cpu_times: list[float] = []
    bounds = (explanation_clusters(), None)  # every tenth decision's explanation, bounded and not
    explained = {bound: [0.0, 0.0] for bound in bounds}  # CPU ms, JSON KiB (sums)
    aside_wall = aside_cpu = 0.0
    for w in workloads:
        t0 = time.perf_counter()
        c0 = time.process_time()
        if bare:
            outcome = scheduler.schedule(cache.snapshot(), w)
        else:
            outcome = observer.timed(scheduler.framework, lambda w=w: scheduler.schedule(cache.snapshot(), w))
        if outcome.ok:
            cache.assume(w.key, outcome.assignments)
            placed += 1
        latencies.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        if len(latencies) % 10 == 0:  # (not counted in the figures above)
            w0, e0 = time.perf_counter(), time.process_time()
            for bound in bounds:
                ms, kib = explanation_cost(outcome, bound)
                explained[bound][0] += ms
                explained[bound][1] += kib
            aside_wall += time.perf_counter() - w0
            aside_cpu += time.process_time() - e0
    total = time.perf_counter() - start - aside_wall
    cpu = time.process_time() - cpu_start - aside_cpu
    sampled = max(count // 10, 1)
    gc.collect()
    rss2 = rss_mib()
    latencies.sort()
    cpu_times.sort()
    return {
        "clusters": clusters,
        "nodes": clusters * nodes,
        "decisions": count,
        "placed": placed,
        "build_s": build,
        "total_s": total,
        "rate": count / total,
        "cpu_rate": count / cpu,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "cpu_ms": 1000 * cpu / count,
        "cpu_p99_ms": 1000 * cpu_times[min(len(cpu_times) - 1, int(0.99 * len(cpu_times)))],
        "cache_mib": rss1 - rss0,
        "sched_mib": rss2 - rss1,
        "expl_ms": explained[bounds[0]][0] / sampled,
        "expl_kib": explained[bounds[0]][1] / sampled,
        "expl_full_ms": explained[None][0] / sampled,
        "expl_full_kib": explained[None][1] / sampled,
    }


def explanation_cost(outcome: ScheduleOutcome, bound: int | None) -> tuple[float, float]:
    """CPU ms and JSON KiB of the explanation the operator writes into the binding (at most
    ``bound`` clusters; None: every cluster)."""
    c0 = time.process_time()
    size = len(json.dumps(outcome.explanation.to_dict(bound)))
    return 1000 * (time.process_time() - c0), size / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (CI)")
    parser.add_argument("--nodes", type=int, default=100, help="GPU nodes per cluster")
    parser.add_argument("--bare", action="store_true", help="no metrics (the cost of instrumentation)")
    parser.add_argument(
        "--no-learning", action="store_true", help="GPUFragmentation scores with its prior only (not shipped)"
    )
    parser.add_argument("--clusters", type=int, help="one fleet of this many clusters instead of the plan")
    parser.add_argument("--decisions", type=int, default=1000, help="queue length with --clusters")
    args = parser.parse_args()
    # As the operator does at start: its garbage-collector thresholds (FLOTILLA_GC_THRESHOLD).
    threshold = apply_threshold()
    if args.clusters:
        plan = [(args.clusters, args.decisions)]
    elif args.quick:
        plan = [(10, 1000), (100, 2000)]
    else:
        plan = [(10, 10_000), (100, 10_000), (1000, 1000), (5000, 1000)]
    print(
        f"{'clusters':>8} {'nodes':>7} {'decisions':>9} {'placed':>7} {'dec/s':>8} {'cpu dec/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7} {'cpu p99':>7} "
        f"{'queue s':>8} {'build s':>7} {'cache MiB':>9} {'index MiB':>9}"
    )
    cpu_ms: dict[int, float] = {}
    for clusters, count in plan:
        r = run(clusters, args.nodes, count, bare=args.bare, learn=not args.no_learning)
        cpu_ms[clusters] = r["cpu_ms"]
        print(
            f"{r['clusters']:>8} {r['nodes']:>7} {r['decisions']:>9} {r['placed']:>7} "
            f"{r['rate']:>8.0f} {r['cpu_rate']:>9.0f} "
            f"{r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['cpu_ms']:>7.3f} {r['cpu_p99_ms']:>7.3f} "
            f"{r['total_s']:>8.2f} {r['build_s']:>7.2f} {r['cache_mib']:>9.0f} {r['sched_mib']:>9.0f}"
        )
        print(
            f"{'':>8} explanation per decision as the operator writes it (at most "
            f"{explanation_clusters()} clusters): {r['expl_ms']:.2f} ms CPU, {r['expl_kib']:.1f} KiB; "
            f"every cluster: {r['expl_full_ms']:.2f} ms, {r['expl_full_kib']:.1f} KiB"
        )
    if 100 in cpu_ms and 1000 in cpu_ms:
        print(
            f"100 -> 1,000 clusters: CPU per decision x{cpu_ms[1000] / cpu_ms[100]:.1f} "
            "for x10 clusters (linear: x10)"
        )
    print("queue s = wall time to schedule and reserve every queued workload in order (one process);")
    print("cpu dec/s, cpu ms, cpu p99 = per this process's CPU time (robust on a shared machine);")
    print("p50/p99 ms = wall time of one decision (schedule + assume).")
    print(
        "cache MiB = RSS growth while the fleet is loaded into the SchedulerCache; "
        "index MiB = RSS growth while the queue runs (indexes, views, reservations)."
    )
    print(
        f"garbage-collector thresholds {','.join(map(str, threshold))}, as the operator sets them "
        "(FLOTILLA_GC_THRESHOLD; 'python' keeps the interpreter's 700,10,10)"
    )
    print(
        "bare: no metrics"
        if args.bare
        else "instrumented as shipped (algorithm timed; plugins timed 1 in 10)"
    )
    if args.no_learning:
        print("no learning: GPUFragmentation scores with its prior only (the shipped default learns)")


if __name__ == "__main__":
    main()
