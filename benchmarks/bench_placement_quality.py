"""Placement quality on the Alibaba GPU trace v2023 ("openb"), FGD-paper method, 4 member clusters.

Fleet: ``openb_node_list_gpu_node.csv`` (1,213 nodes, 6,212 GPUs) split round-robin into 4
members. Tasks: ``openb_pod_list_<trace>.csv`` (``--trace default|multigpu50|gpushare100``)
shuffled per seed (42, 43, ...), padded by sampling with replacement / trimmed at random to
130 % of GPU capacity, scheduled one at a time, nothing departs. Metric: % of GPUs unallocated
when arrivals reach 100 % of capacity, and false fits.

Every placement of every policy goes through one STRICT re-check, written here and sharing no
code with the scheduler: a per-node ledger of free CPU, memory and per-device GPU share checks
that the node exists and belongs to the member the decision chose, the GPU model (when the
task names one), CPU and memory, the device count (whole GPUs: exactly that many; a GPU share:
exactly one device; CPU-only: none), that no device is listed twice, that each device exists
and has the share free (milli-GPU never above 1000 per device), and that the share a decision
says it takes is the task's. A placement failing any of these is a FALSE FIT (not allocated).

Policies (rows):

* ``flotilla``: the SHIPPED DEFAULT profile, built exactly as the operator builds it
  (``Framework()``: FGD-style fragmentation score whose task distribution is LEARNED online
  from the arrivals so far, starting from the documented prior; GPUAllocation tie-break);
  it picks member AND node;
* ``flotilla-told``: the same, but handed the trace's shape counts and not learning: the
  "upper bound (told the trace's distribution)", for reference only;
* ``random-feasible``: a member chosen uniformly at random among those where some node fits;
  the member places best-fit;
* ``cluster-sum-bestfit``: Karmada-like: the member with the most replicas by SUMMED free CPU,
  memory and GPU; the member places best-fit (a member that then has no node for the task
  leaves it unplaced: counted in ``member misses``);
* ``cluster-sum-fgd``: the same member choice, FGD inside the member;
* ``fgd-node``: single-cluster FGD over the union of the nodes (the FGD paper's baseline).
  The FGD baselines are told the trace's distribution, as in the paper (a stronger baseline
  than learning it).

Ties: FGD breaks exact ties at random (seeded), as kube-scheduler does; best-fit by node name;
Flotilla by its own rules (cluster then node name, no randomness). Output: per policy mean, max
and min over seeds, false fits, member misses, CPU seconds per seed; then every seed.

    .venv/bin/python benchmarks/bench_placement_quality.py --trace default --seeds 10
    .venv/bin/python benchmarks/bench_placement_quality.py --trace all --seeds 10
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterInfo,
    Component,
    Framework,
    NodeInfo,
    Placement,
    Scheduler,
    SchedulerCache,
    Workload,
)
from flotilla.scheduler.core import ScheduleResult
from flotilla.scheduler.framework import Plugin
from flotilla.scheduler.plugins import fragmentation, gpu_allocation
from flotilla.scheduler.plugins.fragmentation import LearningSettings, TaskClass

MiB = 1 << 20
MEMBERS = 4
MILLI = 1000
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "alibaba-gpu-v2023"
TRACES = ("default", "multigpu50", "gpushare100")
POLICIES = (
    "flotilla",
    "flotilla-told",
    "flotilla-mostalloc",
    "random-feasible",
    "cluster-sum-bestfit",
    "cluster-sum-fgd",
    "fgd-node",
)
DEFAULT_POLICIES = tuple(p for p in POLICIES if p != "flotilla-mostalloc")
LABELS = {
    "flotilla": "flotilla (shipped default, learned online)",
    "flotilla-told": "upper bound (told the trace's distribution)",
    "flotilla-mostalloc": "flotilla, MostAllocated tie-break (learned)",
    "random-feasible": "random member (feasible) + best-fit",
    "cluster-sum-bestfit": "Karmada-like cluster-sum + best-fit",
    "cluster-sum-fgd": "Karmada-like cluster-sum + FGD",
    "fgd-node": "node-level FGD (single cluster)",
}
PLACEMENT = Placement.from_dict(
    {"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}}
)


@dataclass(frozen=True, slots=True)
class Task:
    cpu: int
    mem: int
    gpus: int  # devices (a GPU share takes one)
    milli: int  # share per device (1000 for whole GPUs)
    model: str = ""

    @property
    def demand(self) -> int:
        return self.gpus * self.milli

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(cpu, whole GPUs, milli share)``: the fragmentation plugin's class of the task."""
        if self.milli >= MILLI:
            return (self.cpu, self.gpus, 0)
        return (self.cpu, 0, self.milli if self.gpus else 0)


@dataclass(slots=True)
class Node:
    name: str
    cluster: str
    cpu: int
    mem: int
    devices: list[int]
    model: str

    def copy(self) -> Node:
        return Node(self.name, self.cluster, self.cpu, self.mem, list(self.devices), self.model)


def load_nodes(data: Path) -> list[Node]:
    nodes = []
    with (data / "openb_node_list_gpu_node.csv").open() as f:
        for i, row in enumerate(csv.DictReader(f)):
            nodes.append(
                Node(
                    name=row["sn"],
                    cluster=f"member-{i % MEMBERS}",
                    cpu=int(row["cpu_milli"]),
                    mem=int(row["memory_mib"]) * MiB,
                    devices=[MILLI] * int(row["gpu"]),
                    model=row["model"],
                )
            )
    return nodes


def parse_tasks(rows: Sequence[dict[str, str]]) -> list[Task]:
    tasks = []
    for r in rows:
        gpus, milli = int(r["num_gpu"]), int(r["gpu_milli"])
        if gpus == 0:
            milli = 0
        tasks.append(
            Task(int(r["cpu_milli"]), int(r["memory_mib"]) * MiB, gpus, milli, r.get("gpu_spec") or "")
        )
    return tasks


def load_tasks(data: Path, trace: str) -> list[Task]:
    with (data / f"openb_pod_list_{trace}.csv").open() as f:
        return parse_tasks(list(csv.DictReader(f)))


def arrivals(tasks: list[Task], capacity_milli: int, seed: int) -> list[Task]:
    """Shuffle, then pad (sampling with replacement) or trim (at random) to 130 % of GPU capacity."""
    rng = random.Random(seed)
    order = list(tasks)
    rng.shuffle(order)
    target = capacity_milli * 13 // 10
    total = sum(t.demand for t in order)
    while total < target:
        t = rng.choice(tasks)
        order.append(t)
        total += t.demand
    while total > target:
        i = rng.randrange(len(order))
        total -= order[i].demand
        del order[i]
    return order


def told_distribution(tasks: Sequence[Task]) -> list[TaskClass]:
    """The trace's own shape popularity (pod counts per class), as FGD is given it."""
    shapes = Counter(t.shape for t in tasks)
    return [(cpu, whole, milli, float(n)) for (cpu, whole, milli), n in sorted(shapes.items())]


# -- the strict, scheduler-independent re-check ------------------------------------------------
class Ledger:
    """Free CPU, memory and per-device GPU share of every node, kept by the benchmark alone."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = {n.name: n.copy() for n in nodes}
        self.allocated = 0
        self.false_fits = 0

    def violation(
        self, cluster: str, node_name: str, task: Task, devices: Sequence[int], milli: int
    ) -> str | None:
        node = self.nodes.get(node_name)
        if node is None:
            return "unknown node"
        if node.cluster != cluster:
            return "node is not in the chosen member"
        if task.model and node.model != task.model:
            return "GPU model"
        if node.cpu < task.cpu:
            return "cpu"
        if node.mem < task.mem:
            return "memory"
        if task.gpus == 0:
            return "devices given to a CPU-only task" if devices else None
        if len(devices) != task.gpus:
            return "device count"
        if len(set(devices)) != len(devices):
            return "a device listed twice"
        if milli != task.milli:
            return "share per device"
        for d in devices:
            if not 0 <= d < len(node.devices):
                return "no such device"
            if node.devices[d] < task.milli:
                return "device share"
        return None

    def bind(self, cluster: str, node_name: str, task: Task, devices: Sequence[int], milli: int) -> bool:
        """Check, then take the resources; False (a false fit, nothing taken) when it does not fit."""
        if self.violation(cluster, node_name, task, devices, milli) is not None:
            self.false_fits += 1
            return False
        node = self.nodes[node_name]
        node.cpu -= task.cpu
        node.mem -= task.mem
        for d in devices:
            node.devices[d] -= task.milli
            assert 0 <= node.devices[d] <= MILLI
        self.allocated += task.demand
        return True


# -- baselines: their own node-level placement -------------------------------------------------
def fits(node: Node, task: Task) -> bool:
    if node.cpu < task.cpu or node.mem < task.mem:
        return False
    if task.model and node.model != task.model:
        return False
    if task.gpus == 0:
        return True
    return sum(1 for d in node.devices if d >= task.milli) >= task.gpus


def best_fit_devices(node: Node, task: Task) -> list[int]:
    """Fullest devices that hold the share (whole GPUs: free ones), lowest index on ties."""
    if task.gpus == 0:
        return []
    candidates = sorted(
        (i for i, d in enumerate(node.devices) if d >= task.milli), key=lambda i: (node.devices[i], i)
    )
    return candidates[: task.gpus]


def best_fit(nodes: Sequence[Node], task: Task) -> tuple[Node, list[int]] | None:
    """Least GPU (then CPU) left over, ties by node name."""
    best: tuple[int, int, str] | None = None
    chosen = None
    for node in nodes:
        if fits(node, task):
            key = (sum(node.devices) - task.demand, node.cpu - task.cpu, node.name)
            if best is None or key < best:
                best, chosen = key, node
    return None if chosen is None else (chosen, best_fit_devices(chosen, task))


class FGD:
    """Node-level FGD (Weng et al.): the node (and device) whose fragmentation grows least.

    Exact ties are broken at random (``Random(seed)``), as kube-scheduler - on which the FGD
    paper's simulator is built - picks among its best-scored nodes.
    """

    def __init__(self, distribution: Sequence[TaskClass], seed: int) -> None:
        self.plugin = fragmentation.new(distribution, LearningSettings(learn=False))
        self.rng = random.Random(seed)
        self.memo: dict[tuple[int, tuple[int, ...], int, int, int], tuple[float, list[int]]] = {}

    def delta(self, node: Node, task: Task) -> tuple[float, list[int]]:
        """Fragmentation growth of placing ``task`` on ``node`` (which fits it), and the devices."""
        key = (node.cpu, tuple(node.devices), task.cpu, task.gpus, task.milli)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        frag = self.plugin.fragmentation
        before = frag(node.cpu, node.devices)
        after_cpu = node.cpu - task.cpu
        if task.gpus == 0:
            devices: list[int] = []
            after = frag(after_cpu, node.devices)
        elif task.milli < MILLI:
            after, devices = float("inf"), []
            trial = list(node.devices)
            for i, d in enumerate(node.devices):
                if d >= task.milli:
                    trial[i] = d - task.milli
                    f = frag(after_cpu, trial)
                    trial[i] = d
                    if f < after:
                        after, devices = f, [i]
        else:
            devices = [i for i, d in enumerate(node.devices) if d >= MILLI][: task.gpus]
            trial = list(node.devices)
            for i in devices:
                trial[i] = 0
            after = frag(after_cpu, trial)
        if len(self.memo) > 1 << 20:
            self.memo.clear()
        hit = self.memo[key] = (after - before, devices)
        return hit

    def place(self, nodes: Sequence[Node], task: Task) -> tuple[Node, list[int]] | None:
        best = float("inf")
        chosen: list[tuple[Node, list[int]]] = []
        for node in nodes:
            if not fits(node, task):
                continue
            growth, devices = self.delta(node, task)
            if growth < best:
                best, chosen = growth, [(node, devices)]
            elif growth == best:
                chosen.append((node, devices))
        if not chosen:
            return None
        node, devices = chosen[0] if len(chosen) == 1 else self.rng.choice(chosen)
        return node, list(devices)


def cluster_sum_choice(members: dict[str, list[Node]], task: Task) -> str:
    """Karmada-like: most replicas by summed free resources (blind to per-node fragmentation)."""

    def replicas(nodes: list[Node]) -> int:
        cpu, mem, gpu = (
            sum(n.cpu for n in nodes),
            sum(n.mem for n in nodes),
            sum(sum(n.devices) for n in nodes),
        )
        counts = [cpu // task.cpu if task.cpu else 1 << 30, mem // task.mem if task.mem else 1 << 30]
        if task.demand:
            counts.append(gpu // task.demand)
        return min(counts)

    return min(members, key=lambda c: (-replicas(members[c]), c))


@dataclass(slots=True)
class Outcome:
    unallocated_pct: float
    false_fits: int
    member_misses: int
    seconds: float


def run_baseline(
    policy: str, nodes: list[Node], order: list[Task], capacity: int, seed: int, told: Sequence[TaskClass]
) -> Outcome:
    started = time.process_time()
    ledger = Ledger(nodes)
    members: dict[str, list[Node]] = {}
    for n in ledger.nodes.values():
        members.setdefault(n.cluster, []).append(n)
    union = sorted(ledger.nodes.values(), key=lambda n: n.name)
    rng = random.Random(seed)
    fgd = FGD(told, seed) if policy in ("cluster-sum-fgd", "fgd-node") else None
    inside: Callable[[Sequence[Node], Task], tuple[Node, list[int]] | None] = (
        fgd.place if fgd is not None else best_fit
    )
    arrived = misses = 0
    for task in order:
        if arrived >= capacity:
            break
        arrived += task.demand
        if policy == "fgd-node":
            choice = inside(union, task)
            cluster = choice[0].cluster if choice else ""
        elif policy == "random-feasible":
            feasible = [c for c in sorted(members) if any(fits(n, task) for n in members[c])]
            if not feasible:
                continue
            cluster = rng.choice(feasible)
            choice = inside(members[cluster], task)
        else:
            cluster = cluster_sum_choice(members, task)
            choice = inside(members[cluster], task)
            if choice is None:
                misses += 1
        if choice is not None:
            node, devices = choice
            ledger.bind(cluster, node.name, task, devices, task.milli if devices else 0)
    return Outcome(
        100.0 * (capacity - ledger.allocated) / capacity,
        ledger.false_fits,
        misses,
        time.process_time() - started,
    )


# -- Flotilla ----------------------------------------------------------------------------------
def task_component(task: Task) -> Component:
    req = {"cpu": task.cpu, "memory": task.mem}
    if task.gpus and task.milli >= MILLI:
        req[GPU_RESOURCE] = task.gpus
    elif task.gpus:
        req[GPU_MILLI_RESOURCE] = task.milli
    selector = {GPU_PRODUCT_LABEL: task.model} if task.model else {}
    return Component("main", 1, req, node_selector=selector)


def flotilla_framework(policy: str, told: Sequence[TaskClass]) -> Framework:
    """``flotilla``: exactly the operator's default profile (``Framework()``, nothing handed in)."""
    if policy == "flotilla":
        return Framework()
    instances: dict[str, Plugin] = {}
    if policy == "flotilla-told":
        instances[fragmentation.NAME] = fragmentation.new(told, LearningSettings(learn=False))
    elif policy == "flotilla-mostalloc":
        instances[gpu_allocation.NAME] = gpu_allocation.new(gpu_allocation.MOST_ALLOCATED)
    return Framework(instances=instances)


def run_flotilla(
    policy: str, nodes: list[Node], order: list[Task], capacity: int, told: Sequence[TaskClass]
) -> Outcome:
    started = time.process_time()
    scheduler = Scheduler(flotilla_framework(policy, told))
    cache = SchedulerCache()
    ledger = Ledger(nodes)
    by_cluster: dict[str, dict[str, NodeInfo]] = {}
    for n in nodes:
        by_cluster.setdefault(n.cluster, {})[n.name] = NodeInfo(
            n.name,
            {"cpu": n.cpu, "memory": n.mem, GPU_RESOURCE: len(n.devices)},
            labels={GPU_PRODUCT_LABEL: n.model},
        )
    for name, node_map in sorted(by_cluster.items()):
        cache.update_cluster(ClusterInfo(name, node_map))
    arrived = 0
    for i, task in enumerate(order):
        if arrived >= capacity:
            break
        arrived += task.demand
        workload = Workload(f"t{i}", (task_component(task),), PLACEMENT)
        outcome = scheduler.schedule(cache.snapshot(), workload)
        if not isinstance(outcome, ScheduleResult):
            continue
        targets = [(t.name, t.replicas) for t in outcome.targets]
        if len(outcome.assignments) != 1 or len(targets) != 1 or targets[0][1] != 1:
            ledger.false_fits += 1
            continue
        (pod,) = outcome.assignments
        # The member checked is the one the decision targets, not the pod's own say.
        if not ledger.bind(
            targets[0][0], pod.node, task, pod.gpu_devices, pod.gpu_milli if pod.gpu_devices else 0
        ):
            continue
        cache.assume(workload.key, outcome.assignments, ttl=1e12)
    return Outcome(
        100.0 * (capacity - ledger.allocated) / capacity, ledger.false_fits, 0, time.process_time() - started
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trace", choices=(*TRACES, "all"), default="default")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 42, 43, ... (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 seeds")
    parser.add_argument(
        "--policies", default=",".join(DEFAULT_POLICIES), help=f"comma-separated, of: {', '.join(POLICIES)}"
    )
    args = parser.parse_args()
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = set(policies) - set(POLICIES)
    if unknown:
        parser.error(f"--policies: unknown {', '.join(sorted(unknown))}")
    nodes = load_nodes(args.data)
    gpu_capacity = sum(len(n.devices) for n in nodes) * MILLI
    capacity = gpu_capacity
    seeds = list(range(42, 42 + (2 if args.quick else args.seeds)))
    for trace in TRACES if args.trace == "all" else (args.trace,):
        run_trace(args.data, trace, nodes, gpu_capacity, capacity, seeds, policies)


def run_trace(
    data: Path,
    trace: str,
    nodes: list[Node],
    gpu_capacity: int,
    capacity: int,
    seeds: list[int],
    policies: list[str],
) -> None:
    tasks = load_tasks(data, trace)
    told = told_distribution(tasks)
    results: dict[str, list[Outcome]] = {p: [] for p in policies}
    for seed in seeds:
        order = arrivals(tasks, gpu_capacity, seed)
        for policy in policies:
            if policy.startswith("flotilla"):
                results[policy].append(run_flotilla(policy, nodes, order, capacity, told))
            else:
                results[policy].append(run_baseline(policy, nodes, order, capacity, seed, told))
    print(
        f"\nopenb {trace} trace ({len(tasks)} tasks), {len(nodes)} nodes / {gpu_capacity // MILLI} GPUs in "
        f"{MEMBERS} members, unallocated GPU % at 100% arrived, seeds {seeds[0]}..{seeds[-1]}"
    )
    head = f"{'mean':>6} {'max':>6} {'min':>6} {'false fits':>10} {'member misses':>13} {'cpu s/seed':>10}"
    print(f"{'policy':<46} {head}")
    for policy, rows in results.items():
        pct = [r.unallocated_pct for r in rows]
        print(
            f"{LABELS[policy]:<46} {statistics.mean(pct):>6.2f} {max(pct):>6.2f} {min(pct):>6.2f} "
            f"{sum(r.false_fits for r in rows):>10} {sum(r.member_misses for r in rows):>13} "
            f"{statistics.mean(r.seconds for r in rows):>10.1f}"
        )
    if "flotilla" in results and "fgd-node" in results:
        ours = statistics.mean(r.unallocated_pct for r in results["flotilla"])
        fgd = statistics.mean(r.unallocated_pct for r in results["fgd-node"])
        verdict = "at or below" if ours <= fgd else "ABOVE"
        print(f"flotilla {ours:.2f} % vs node-level FGD {fgd:.2f} %: {verdict} FGD ({trace})")
    print("per seed (unallocated GPU % / false fits):")
    print(f"{'seed':>6} " + " ".join(f"{p:>20}" for p in results))
    for i, seed in enumerate(seeds):
        cells = " ".join(
            f"{results[p][i].unallocated_pct:>13.2f} / {results[p][i].false_fits:>4}" for p in results
        )
        print(f"{seed:>6} {cells}")


if __name__ == "__main__":
    main()
