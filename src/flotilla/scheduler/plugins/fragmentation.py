"""GPUFragmentation: an FGD-style fragmentation-gradient node score (Weng et al., ATC '23).

The fragmentation of a node with respect to a *target workload distribution* (task classes
with popularity ``p``) is ``F(node) = sum_t p_t * F_t(node)`` where, in GPU milli-units:

* if task ``t`` cannot run on the node at all (too little CPU, or not enough devices with
  its per-GPU share free), every free GPU share on the node is fragment for it;
* otherwise the free share of devices that hold less than ``t``'s per-GPU share is fragment;
* a task that needs no GPU cannot use any GPU, so every free share counts for it.

The score of placing a pod is ``-(F(after) - F(before)) / 10``: creating one GPU's worth of
fragmentation costs 100 points, and placements that *reduce* fragmentation score positive.
A fractional pod goes to the device that leaves the least fragmentation (``pick_device``).
``F`` is memoised per node state ``(free cpu, sorted device shares)``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from flotilla.scheduler.snapshot import MILLI_PER_GPU, NodeInfo
from flotilla.scheduler.workload import PodShape

NAME = "GPUFragmentation"

TaskClass = tuple[int, int, int, float]
"""``(cpu_milli, whole_gpus, gpu_milli_share, weight)`` of one task class."""

DEFAULT_DISTRIBUTION: tuple[TaskClass, ...] = (
    (4000, 0, 0, 0.10),
    (2000, 0, 250, 0.08),
    (4000, 0, 500, 0.12),
    (8000, 1, 0, 0.35),
    (16000, 2, 0, 0.10),
    (32000, 4, 0, 0.10),
    (64000, 8, 0, 0.15),
)
_MEMO_LIMIT = 1 << 20


class GPUFragmentationPlugin:
    name = NAME
    node_resources_only = True
    """The score reads only the node's resources (see ``NodeScorePlugin``)."""

    def __init__(self, distribution: Sequence[TaskClass] | None = None) -> None:
        dist = tuple(distribution or DEFAULT_DISTRIBUTION)
        total = sum(w for *_, w in dist)
        if total <= 0:
            raise ValueError("the task distribution needs a positive total weight")
        grouped: dict[tuple[int, int], list[tuple[int, float]]] = {}
        for cpu, whole, milli, weight in dist:
            if whole:
                key = (whole, MILLI_PER_GPU)
            elif milli:
                key = (1, milli)
            else:
                key = (0, 0)
            grouped.setdefault(key, []).append((cpu, weight / total))
        self._classes: list[tuple[int, int, list[int], list[float], float]] = []
        self._cpu_only = 0.0
        for (count, threshold), entries in sorted(grouped.items()):
            if count == 0:
                self._cpu_only = sum(w for _, w in entries)
                continue
            entries.sort()
            cpus = [c for c, _ in entries]
            prefix = [0.0]
            for _, w in entries:
                prefix.append(prefix[-1] + w)
            self._classes.append((count, threshold, cpus, prefix, prefix[-1]))
        self._memo: dict[tuple[int, tuple[int, ...]], float] = {}

    def fragmentation(self, cpu_free: int, devices: Sequence[int]) -> float:
        """Expected fragmented GPU share (milli) of a node in this state."""
        key = (cpu_free, tuple(sorted(devices)))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        total = sum(devices)
        frag = 0.0
        if total:
            frag = self._cpu_only * total
            for count, threshold, cpus, prefix, p_total in self._classes:
                usable = 0
                for d in devices:
                    if d >= threshold:
                        usable += 1
                if usable < count:
                    frag += p_total * total
                    continue
                p_ok = prefix[bisect.bisect_right(cpus, cpu_free)]
                stranded = 0
                for d in devices:
                    if d < threshold:
                        stranded += d
                frag += p_ok * stranded + (p_total - p_ok) * total
        if len(self._memo) > _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = frag
        return frag

    def _fractional(self, cpu_after: int, devices: Sequence[int], milli: int) -> tuple[float, int | None]:
        """Best (lowest) post-placement fragmentation over the devices a fractional pod could use."""
        best: tuple[float, int | None] = (0.0, None)
        seen: set[int] = set()
        after = list(devices)
        for i, d in enumerate(devices):
            if d < milli or d in seen:
                continue
            seen.add(d)
            after[i] = d - milli
            frag = self.fragmentation(cpu_after, after)
            after[i] = d
            if best[1] is None or frag < best[0]:
                best = (frag, i)
        return best

    def pick_device(
        self, shape: PodShape, node: NodeInfo, free: Mapping[str, int], devices: Sequence[int]
    ) -> int | None:
        """Device for a fractional pod: the one leaving the least fragmentation (lowest index on ties)."""
        if not shape.gpu_milli:
            return None
        return self._fractional(free.get("cpu", 0) - _cpu(shape), devices, shape.gpu_milli)[1]

    def node_score(
        self, shape: PodShape, node: NodeInfo, free: Mapping[str, int], devices: Sequence[int]
    ) -> float:
        if not devices:
            return 0.0
        cpu_free = free.get("cpu", 0)
        cpu_after = cpu_free - _cpu(shape)
        before = self.fragmentation(cpu_free, devices)
        if shape.gpu_milli:
            after_f, index = self._fractional(cpu_after, devices, shape.gpu_milli)
            if index is None:
                after_f = before
        else:
            after = list(devices)
            taken = 0
            for i, d in enumerate(after):
                if taken == shape.gpu_whole:
                    break
                if d >= MILLI_PER_GPU:
                    after[i] = 0
                    taken += 1
            after_f = self.fragmentation(cpu_after, after)
        return (before - after_f) / 10.0


def _cpu(shape: PodShape) -> int:
    for name, amount in shape.other:
        if name == "cpu":
            return amount
    return 0


def new(distribution: Sequence[TaskClass] | None = None) -> GPUFragmentationPlugin:
    return GPUFragmentationPlugin(distribution)
