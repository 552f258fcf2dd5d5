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

The target distribution is learned (FGD's "task distribution", here from what the fleet runs,
never from a file): the plugin is also a PreFilter that sees every workload the scheduler is
asked about - scheduled or left pending - once per ``(key, shapes)``, and adds each role's pods
to a decayed histogram of ``(cpu, whole GPUs, GPU milli-share)`` classes. The histogram starts
from :data:`DEFAULT_DISTRIBUTION` (the prior) at ``prior_weight`` pods, halves every
``half_life`` observed pods and keeps the ``max_classes`` heaviest classes. Scores use a
*quantised* copy, replaced only when the live histogram has moved more than ``requantize``
(total variation distance) away from it; each replacement bumps :attr:`epoch`, which the node
fit engine reads to drop the scores it shared across decisions (``node_resources_only``).
See :class:`LearningSettings` and docs/runtime.md (scheduler profile).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotilla.scheduler.framework import SUCCESS, CycleState, Status
from flotilla.scheduler.snapshot import MILLI_PER_GPU, NodeInfo, Snapshot
from flotilla.scheduler.workload import PodShape, Workload

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
"""The prior: the shapes the scheduler expects before it has seen any workload (popularity of
CPU-only, quarter- and half-GPU, 1-, 2-, 4- and 8-GPU pods in a mixed AI fleet)."""
_MEMO_LIMIT = 1 << 20
_FIRST_CHECK = 64
"""Workloads observed before the histogram is first compared with the distribution in use."""
_SEEN_LIMIT = 1 << 16
"""Workloads remembered as already counted (the oldest forgotten first)."""

ClassKey = tuple[int, int, int]
"""``(cpu_milli, whole_gpus, gpu_milli_share)``."""


@dataclass(frozen=True, slots=True)
class LearningSettings:
    """How the plugin learns its target distribution (the scheduler profile's setting).

    * ``learn`` - learn from observed workloads (False: score with the prior, or the
      distribution given, forever);
    * ``half_life`` - observed pods after which an observation weighs half;
    * ``prior_weight`` - the prior's weight in pods when learning starts;
    * ``max_classes`` - classes kept (the lightest dropped first);
    * ``requantize`` - total variation distance between the live histogram and the one scores
      use beyond which scores switch to the live one (a new :attr:`GPUFragmentationPlugin.epoch`);
    * ``interval`` - workloads between two such comparisons (the first comes after 64).
    """

    learn: bool = True
    half_life: float = 5000.0
    prior_weight: float = 10.0
    max_classes: int = 128
    requantize: float = 0.05
    interval: int = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.half_life) and self.half_life > 0):
            raise ValueError(f"halfLife must be a positive number of pods, got {self.half_life!r}")
        if not (math.isfinite(self.prior_weight) and self.prior_weight > 0):
            raise ValueError(f"priorWeight must be a positive number of pods, got {self.prior_weight!r}")
        if self.max_classes < 1:
            raise ValueError(f"maxClasses must be at least 1, got {self.max_classes!r}")
        if not 0 <= self.requantize < 1:
            raise ValueError(f"requantize must be in [0, 1), got {self.requantize!r}")
        if self.interval < 1:
            raise ValueError(f"interval must be at least 1 workload, got {self.interval!r}")

    def to_dict(self) -> dict[str, object]:
        return {
            "learn": self.learn,
            "halfLife": self.half_life,
            "priorWeight": self.prior_weight,
            "maxClasses": self.max_classes,
            "requantize": self.requantize,
            "interval": self.interval,
        }


class GPUFragmentationPlugin:
    name = NAME
    node_resources_only = True
    """The score reads only the node's resources (see ``NodeScorePlugin``)."""

    def __init__(
        self, distribution: Sequence[TaskClass] | None = None, learning: LearningSettings | None = None
    ) -> None:
        dist = tuple(distribution or DEFAULT_DISTRIBUTION)
        total = sum(w for *_, w in dist)
        if total <= 0 or any(w < 0 for *_, w in dist):
            raise ValueError("the task distribution needs non-negative weights and a positive total")
        self.learning = learning if learning is not None else LearningSettings()
        self.epoch = 0
        """Bumped whenever the distribution that scores use changes."""
        self.observed = 0
        """Pods observed since start (not decayed)."""
        self.workloads = 0
        """Workloads observed since start."""
        self._next_check = min(_FIRST_CHECK, self.learning.interval)
        self._growth = 2.0 ** (1.0 / self.learning.half_life)
        self._scale = 1.0
        self._live: dict[ClassKey, float] = {}
        for cpu, whole, milli, weight in dist:
            key = (cpu, whole, milli)
            self._live[key] = self._live.get(key, 0.0) + self.learning.prior_weight * weight / total
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._use(dist)

    def _use(self, dist: Sequence[TaskClass]) -> None:
        """Score with ``dist`` from now on (normalised here); empties the memo."""
        total = sum(w for *_, w in dist)
        self.classes: tuple[TaskClass, ...] = tuple(
            sorted(((c, g, m, w / total) for c, g, m, w in dist if w > 0), key=lambda t: (-t[3], t[:3]))
        )
        """The distribution scores use, heaviest class first (weights sum to 1)."""
        self.adopted_at = self.observed
        """Pods observed when scores started using :attr:`classes`."""
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

    # -- learning --------------------------------------------------------------------------
    def pre_filter(self, state: CycleState, workload: Workload, snapshot: Snapshot) -> Status:
        """Observe the workload (never rejects anything)."""
        if self.learning.learn:
            self.observe(workload)
        return SUCCESS

    def observe(self, workload: Workload) -> bool:
        """Count each role's pods once per ``(key, shapes)``; True when this one was new."""
        roles = tuple((_class_of(c.shape), c.replicas) for c in workload.components if c.replicas > 0)
        if not roles:
            return False
        seen = hash((workload.key, roles))  # an int: nothing more for the garbage collector to walk
        if seen in self._seen:
            self._seen.move_to_end(seen)
            return False
        self._seen[seen] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        live = self._live
        for key, pods in roles:
            # Decay by growing the weight of new observations (2^(pods/half_life)) instead of
            # shrinking every old one; rescaled to 1 before it could overflow.
            factor = self._growth ** min(pods, 100 * self.learning.half_life)
            if self._scale * factor > 1e100:
                live.update((k, w / self._scale) for k, w in live.items())
                self._scale = 1.0
            self._scale *= factor
            live[key] = live.get(key, 0.0) + pods * self._scale
            self.observed += pods
        if len(live) > self.learning.max_classes:
            for key, _ in sorted(live.items(), key=lambda kv: kv[1])[: len(live) - self.learning.max_classes]:
                del live[key]
        self.workloads += 1
        if self.workloads < self._next_check:
            return True
        # Compared after the first 64 workloads, then every ``interval``: a new epoch makes the
        # engine score every node state anew (as cold as the first decisions), so few are made.
        self._next_check = self.workloads + self.learning.interval
        if self.drift() > self.learning.requantize:
            self._use([(*k, w) for k, w in live.items()])
            self.epoch += 1
        return True

    def describe(self, top: int = 5) -> dict[str, Any]:
        """The setting, the epoch and the ``top`` heaviest classes scores use (for explanations,
        metrics and ``kubectl flotilla``); stable within an epoch."""
        return {
            **self.learning.to_dict(),
            "epoch": self.epoch,
            "observedPods": self.adopted_at,
            "classes": [
                {"cpu": f"{cpu}m", "gpus": whole, "gpuMilli": milli, "weight": round(weight, 4)}
                for cpu, whole, milli, weight in self.classes[:top]
            ],
        }

    def drift(self) -> float:
        """Total variation distance between the live histogram and the distribution in use."""
        total = sum(self._live.values())
        used = {(c, g, m): w for c, g, m, w in self.classes}
        distance = 0.0
        for key, w in self._live.items():
            distance += abs(w / total - used.pop(key, 0.0))
        return (distance + sum(used.values())) / 2.0

    def fragmentation(self, cpu_free: int, devices: Sequence[int]) -> float:
        """Expected fragmented GPU share (milli) of a node in this state."""
        key = (cpu_free, tuple(sorted(devices)))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        shares = key[1]
        below = [0]  # below[i]: free share on the i fullest devices (sorted ascending)
        for d in shares:
            below.append(below[-1] + d)
        total = below[-1]
        frag = 0.0
        if total:
            frag = self._cpu_only * total
            n = len(shares)
            for count, threshold, cpus, prefix, p_total in self._classes:
                short = bisect.bisect_left(shares, threshold)  # devices with less than threshold free
                if n - short < count:
                    frag += p_total * total
                    continue
                p_ok = prefix[bisect.bisect_right(cpus, cpu_free)]
                frag += p_ok * below[short] + (p_total - p_ok) * total
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


def _class_of(shape: PodShape) -> ClassKey:
    return (_cpu(shape), shape.gpu_whole, shape.gpu_milli)


def new(
    distribution: Sequence[TaskClass] | None = None, learning: LearningSettings | None = None
) -> GPUFragmentationPlugin:
    return GPUFragmentationPlugin(distribution, learning)
