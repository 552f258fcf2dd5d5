"""The member health state machine: thresholds, hysteresis, no transition storm when flapping."""

from __future__ import annotations

import itertools

import pytest

from flotilla.inventory.health import Health, HealthTracker, ProbeResult, Reason

OK = ProbeResult.success()
DOWN = ProbeResult.failure(Reason.UNREACHABLE, "connection refused")
NOT_READY = ProbeResult.failure(Reason.API_SERVER_NOT_READY, "[-]etcd failed")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(initial: Health = Health.READY, failures: int = 3, successes: int = 2) -> HealthTracker:
    return HealthTracker(failures, successes, clock=Clock(), initial=initial)


def feed(t: HealthTracker, *results: ProbeResult) -> list[tuple[Health, bool]]:
    return [((s := t.observe(r)).state, s.transitioned) for r in results]


def test_not_ready_after_the_failure_threshold_only() -> None:
    t = tracker()
    assert feed(t, DOWN, DOWN) == [(Health.READY, False), (Health.READY, False)]
    assert (t.reason, t.message) == (Reason.READY, "")  # below the threshold nothing shows
    assert feed(t, DOWN) == [(Health.NOT_READY, True)]
    assert (t.reason, t.message) == (Reason.UNREACHABLE, "connection refused")
    assert feed(t, DOWN, DOWN) == [(Health.NOT_READY, False)] * 2


def test_ready_again_after_the_success_threshold_only() -> None:
    t = tracker(Health.NOT_READY)
    assert feed(t, OK) == [(Health.NOT_READY, False)]
    assert feed(t, OK) == [(Health.READY, True)]
    assert (t.reason, t.message) == (Reason.READY, "")


def test_a_failure_resets_the_success_streak_and_vice_versa() -> None:
    t = tracker(Health.NOT_READY)
    assert feed(t, OK, DOWN, OK, DOWN, OK) == [(Health.NOT_READY, False)] * 5
    t = tracker(Health.READY)
    assert feed(t, DOWN, DOWN, OK, DOWN, DOWN, OK) == [(Health.READY, False)] * 6


def test_transition_time_moves_only_on_a_transition() -> None:
    clock = Clock()
    t = HealthTracker(2, 2, clock=clock, initial=Health.READY)
    born = t.since
    clock.now += 5
    t.observe(DOWN)
    assert t.since == born
    clock.now += 5
    assert t.observe(DOWN).since == born + 10
    clock.now += 5
    assert t.observe(NOT_READY).since == born + 10  # a new reason is no transition
    assert (t.reason, t.message) == (Reason.API_SERVER_NOT_READY, "[-]etcd failed")


def test_unknown_decides_on_the_first_success_or_the_failure_threshold() -> None:
    t = tracker(Health.UNKNOWN)
    assert t.reason == Reason.CONNECTING
    assert feed(t, OK) == [(Health.READY, True)]
    t = tracker(Health.UNKNOWN)
    assert feed(t, DOWN) == [(Health.UNKNOWN, False)]
    assert t.reason == Reason.UNREACHABLE  # a member never reached says why at once
    assert feed(t, DOWN, DOWN) == [(Health.UNKNOWN, False), (Health.NOT_READY, True)]


@pytest.mark.parametrize(("up", "down"), [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3)])
def test_flapping_causes_no_transition_storm(up: int, down: int) -> None:
    """Up ``up`` probes, down ``down`` probes, for 600 probes (20 minutes at 2 s)."""
    pattern = itertools.cycle([OK] * up + [DOWN] * down)
    t = tracker(Health.READY, failures=3, successes=2)
    states = [t.observe(next(pattern)).state for _ in range(600)]
    if down < 3:
        assert t.transitions == 0 and set(states) == {Health.READY}
    else:
        # Down long enough to count, never up long enough to recover: one transition, no storm.
        assert t.transitions == 1 and states[-1] is Health.NOT_READY


def test_a_flapping_member_once_not_ready_stays_not_ready() -> None:
    t = tracker(Health.READY, failures=3, successes=3)
    feed(t, DOWN, DOWN, DOWN)
    for _ in range(100):
        feed(t, OK, OK, DOWN)
    assert t.transitions == 1 and t.state is Health.NOT_READY
    feed(t, OK, OK, OK)
    assert t.transitions == 2 and t.state is Health.READY


def test_thresholds_below_one_mean_one() -> None:
    t = HealthTracker(0, 0, initial=Health.READY)
    assert feed(t, DOWN, OK) == [(Health.NOT_READY, True), (Health.READY, True)]
