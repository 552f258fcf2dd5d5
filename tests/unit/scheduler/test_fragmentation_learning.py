"""GPUFragmentation learns its target distribution; memoised scores never outlive it."""

from __future__ import annotations

import random

import pytest
from sched_fixtures import DIVIDED_AGGREGATED, cluster, node

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    Component,
    Framework,
    Placement,
    Scheduler,
    SchedulerCache,
    Workload,
)
from flotilla.scheduler.core import ScheduleResult
from flotilla.scheduler.framework import CycleState
from flotilla.scheduler.plugins import fragmentation
from flotilla.scheduler.plugins.fragmentation import LearningSettings
from flotilla.scheduler.runtime import NODE_SCORE

PLACEMENT = Placement.from_dict(DIVIDED_AGGREGATED)


def job(key: str, cpu: int, gpus: int = 0, milli: int = 0, replicas: int = 1) -> Workload:
    req = {"cpu": cpu}
    if gpus:
        req[GPU_RESOURCE] = gpus
    if milli:
        req[GPU_MILLI_RESOURCE] = milli
    return Workload(key, (Component("main", replicas, req),), PLACEMENT)


def test_histogram_moves_to_what_it_sees_and_requantises_rarely() -> None:
    plugin = fragmentation.new(learning=LearningSettings(prior_weight=10, half_life=1000, interval=10))
    assert plugin.classes[0][:3] == (8000, 1, 0)  # the prior's heaviest class
    epochs = []
    for i in range(500):
        plugin.observe(job(f"ns/a{i}", 3000, milli=400))
        epochs.append(plugin.epoch)
    assert plugin.classes[0][:3] == (3000, 0, 400)
    assert plugin.classes[0][3] > 0.9
    assert plugin.observed == plugin.workloads == 500
    assert epochs[9] == 1 and epochs[8] == 0  # first compared after min(64, interval) workloads
    assert 1 <= plugin.epoch < 20  # not one epoch per arrival
    assert plugin.drift() <= plugin.learning.requantize


def test_first_comparison_after_64_workloads_then_every_interval() -> None:
    plugin = fragmentation.new(learning=LearningSettings(prior_weight=1, requantize=0.0, interval=100))
    bumps = []
    for i in range(300):
        before = plugin.epoch
        plugin.observe(job(f"ns/a{i}", 1000 + i % 7, gpus=1))
        if plugin.epoch != before:
            bumps.append(i + 1)
    assert bumps == [64, 164, 264]
    assert sum(w for *_, w in plugin.classes) == pytest.approx(1.0)


def test_a_workload_counts_once_per_shape_and_replicas_weigh_as_pods() -> None:
    plugin = fragmentation.new(learning=LearningSettings(prior_weight=1, requantize=0.0, interval=1))
    w = job("ns/gang", 16000, gpus=2, replicas=4)
    assert plugin.observe(w)
    assert not plugin.observe(w)  # a pending workload retried is not counted again
    assert plugin.observed == 4
    assert plugin.observe(job("ns/gang", 16000, gpus=4, replicas=4))  # its shape changed
    assert plugin.observed == 8


def test_old_observations_decay_by_half_life() -> None:
    plugin = fragmentation.new(
        learning=LearningSettings(prior_weight=1e-6, half_life=100, requantize=0.0, interval=1)
    )
    for i in range(100):
        plugin.observe(job(f"ns/a{i}", 1000, gpus=1))
    for i in range(100):
        plugin.observe(job(f"ns/b{i}", 2000, gpus=8))
    weights = {c[:3]: c[3] for c in plugin.classes}
    # The first 100 pods weigh half what the last 100 do, in total: 1/3 against 2/3.
    assert weights[(1000, 1, 0)] == pytest.approx(1 / 3, rel=0.02)
    assert weights[(2000, 8, 0)] == pytest.approx(2 / 3, rel=0.02)


def test_learning_off_keeps_the_prior_and_pre_filter_never_rejects() -> None:
    plugin = fragmentation.new(learning=LearningSettings(learn=False))
    before = plugin.classes
    status = plugin.pre_filter(CycleState(), job("ns/x", 1000, milli=100), None)  # type: ignore[arg-type]
    assert status.is_success
    assert plugin.classes == before
    assert plugin.epoch == 0
    assert plugin.observed == 0


def test_classes_are_bounded() -> None:
    plugin = fragmentation.new(learning=LearningSettings(max_classes=5, interval=1))
    for i in range(40):
        plugin.observe(job(f"ns/a{i}", 1000 + i, gpus=1))
    assert len(plugin._live) <= 5
    assert len(plugin.classes) <= 5


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("halfLife", {"half_life": 0}),
        ("priorWeight", {"prior_weight": -1}),
        ("maxClasses", {"max_classes": 0}),
        ("requantize", {"requantize": 1.5}),
        ("interval", {"interval": 0}),
    ],
)
def test_bad_settings_name_the_field(field: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=field):
        LearningSettings(**kwargs)  # type: ignore[arg-type]


def test_scores_after_the_histogram_moves_equal_a_fresh_plugins() -> None:
    """Decisions of the learning scheduler (memoised, shared node entries, incremental indexes,
    fleet views) equal those of a scheduler built fresh, after each decision, with a plugin that
    scores with the learned distribution: no score memoised under an old epoch is used."""
    rng = random.Random(7)
    cache = SchedulerCache()
    for c in range(3):
        nodes = []
        for n in range(6):
            gpus = rng.choice((2, 4, 8))
            shares = tuple(rng.choice((1000, 1000, 700, 500, 200)) for _ in range(gpus))
            nodes.append(node(f"n{c}-{n}", gpus, gpu_free=shares, cpu=rng.choice((32_000, 64_000, 96_000))))
        cache.update_cluster(cluster(f"c{c}", nodes))
    learned = fragmentation.new(learning=LearningSettings(prior_weight=5, half_life=50, interval=5))
    scheduler = Scheduler(Framework(instances={fragmentation.NAME: learned}))
    shapes = [(4000, 0, 500), (2000, 0, 250), (8000, 1, 0), (6000, 0, 300), (16000, 2, 0)]
    epochs = set()
    compared = 0
    for i in range(60):
        # The mix drifts: fractional pods first, whole GPUs later.
        cpu, gpus, milli = shapes[min(len(shapes) - 1, i // 15 + rng.randrange(2))]
        w = job(f"ns/w{i}", cpu, gpus, milli)
        snap = cache.snapshot()
        outcome = scheduler.schedule(snap, w)
        epochs.add(learned.epoch)
        fresh_plugin = fragmentation.new(learned.classes, LearningSettings(learn=False))
        fresh = Scheduler(Framework(instances={fragmentation.NAME: fresh_plugin})).schedule(snap, w)
        assert outcome.ok == fresh.ok
        if not isinstance(outcome, ScheduleResult):
            continue
        assert isinstance(fresh, ScheduleResult)
        assert [a.to_dict() for a in outcome.assignments] == [a.to_dict() for a in fresh.assignments]
        for name, entries in outcome.explanation.scores.items():
            assert entries[NODE_SCORE][0] == pytest.approx(fresh.explanation.scores[name][NODE_SCORE][0])
        compared += 1
        cache.assume(w.key, outcome.assignments, ttl=1e9)
    assert len(epochs) >= 3  # the distribution moved several times during the run
    assert compared >= 30
