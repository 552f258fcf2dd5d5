"""Automatic member taints and cordon: merged into the user's taints, never clobbering them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flotilla.api.taints import (
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    automatic_taints,
    cordon,
    is_cordoned,
    no_execute_due,
    same_taints,
    taint_string,
    uncordon,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
USER = [
    {"key": "team.example.com/dedicated", "value": "research", "effect": "NoSchedule"},
    {"key": "example.com/maintenance", "effect": "PreferNoSchedule"},
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def auto(taints: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(t["key"], t["effect"], t["timeAdded"]) for t in taints if t["key"].startswith("cluster.")]


def not_ready(
    taints: Any, now: float, unreachable: bool = False, grace: float | None = 30
) -> list[dict[str, Any]]:
    return automatic_taints(
        taints, "NotReady", unreachable=unreachable, since=T0, now=at(now), no_execute_after=grace
    )


def test_no_schedule_at_once_no_execute_after_the_grace_period() -> None:
    first = not_ready(USER, 1, unreachable=True)
    assert first[:2] == USER  # the user's taints, untouched and first
    assert auto(first) == [(UNREACHABLE, "NoSchedule", stamp(0))]  # timeAdded: when it turned NotReady
    assert not_ready(first, 29.9, unreachable=True) == first
    later = not_ready(first, 31, unreachable=True)
    assert auto(later) == [(UNREACHABLE, "NoSchedule", stamp(0)), (UNREACHABLE, "NoExecute", stamp(31))]
    assert not_ready(later, 500, unreachable=True) == later  # stable: nothing to write


def test_switching_between_unreachable_and_not_ready_keeps_the_clock() -> None:
    down = not_ready(USER, 40, unreachable=True)
    assert auto(down) == [(UNREACHABLE, "NoSchedule", stamp(0)), (UNREACHABLE, "NoExecute", stamp(40))]
    answering = not_ready(down, 45, unreachable=False)
    assert auto(answering) == [(NOT_READY, "NoSchedule", stamp(0)), (NOT_READY, "NoExecute", stamp(40))]
    assert answering[:2] == USER


def test_ready_removes_only_the_automatic_taints() -> None:
    tainted = [*not_ready(USER, 40), {"key": UNSCHEDULABLE, "effect": "NoSchedule"}]
    cleared = automatic_taints(tainted, "Ready", since=at(50), now=at(50), no_execute_after=30)
    assert cleared == [*USER, {"key": UNSCHEDULABLE, "effect": "NoSchedule"}]


def test_unknown_leaves_everything_as_it_is() -> None:
    tainted = not_ready(USER, 40)
    assert automatic_taints(tainted, "Unknown", since=at(99), now=at(99), no_execute_after=30) == tainted
    assert automatic_taints(USER, "Unknown", since=at(99), now=at(99), no_execute_after=30) == USER


def test_times_from_before_a_restart_are_kept() -> None:
    """The operator restarted: its tracker says NotReady since 100 s, the API since 0 s."""
    before = not_ready(USER, 10)
    resumed = automatic_taints(before, "NotReady", since=at(100), now=at(101), no_execute_after=30)
    assert auto(resumed) == [(NOT_READY, "NoSchedule", stamp(0)), (NOT_READY, "NoExecute", stamp(101))]


def test_disabled_adds_nothing_but_still_cleans_up() -> None:
    assert (
        automatic_taints(USER, "NotReady", since=T0, now=at(100), no_execute_after=30, enabled=False) == USER
    )
    leftover = not_ready(USER, 40)
    assert automatic_taints(
        leftover, "NotReady", since=T0, now=at(100), no_execute_after=30, enabled=False
    ) == (leftover)
    assert (
        automatic_taints(leftover, "Ready", since=T0, now=at(100), no_execute_after=30, enabled=False) == USER
    )


def test_no_execute_can_be_switched_off() -> None:
    assert auto(not_ready(USER, 10_000, grace=None)) == [(NOT_READY, "NoSchedule", stamp(0))]
    assert auto(not_ready(USER, 10_000, grace=-1)) == [(NOT_READY, "NoSchedule", stamp(0))]
    assert auto(not_ready(USER, 0, grace=0)) == [
        (NOT_READY, "NoSchedule", stamp(0)),
        (NOT_READY, "NoExecute", stamp(0)),
    ]


def test_no_execute_due() -> None:
    tainted = not_ready(USER, 5)
    assert no_execute_due(tainted, since=T0, now=at(5), no_execute_after=30) == 25
    assert no_execute_due(USER, since=T0, now=at(40), no_execute_after=30) == 0
    assert no_execute_due(not_ready(USER, 40), since=T0, now=at(41), no_execute_after=30) is None
    assert no_execute_due(tainted, since=T0, now=at(5), no_execute_after=None) is None


def test_a_hand_made_automatic_taint_is_adopted_and_normalised() -> None:
    hand = [*USER, {"key": NOT_READY, "effect": "NoSchedule"}]  # no timeAdded
    assert auto(not_ready(hand, 5)) == [(NOT_READY, "NoSchedule", stamp(5))]
    assert automatic_taints(hand, "Ready", since=T0, now=at(5), no_execute_after=30) == USER


def test_cordon_and_uncordon() -> None:
    cordoned = cordon(USER, T0)
    assert cordoned == [*USER, {"key": UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": stamp(0)}]
    assert is_cordoned(cordoned) and not is_cordoned(USER) and not is_cordoned(None)
    assert cordon(cordoned, at(60)) == cordoned  # idempotent: the first time is kept
    assert uncordon(cordoned) == USER
    assert uncordon(USER) == USER
    assert cordon(None, T0) == [{"key": UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": stamp(0)}]
    tainted = not_ready(cordoned, 40)
    assert uncordon(tainted) == [t for t in tainted if t["key"] != UNSCHEDULABLE]  # automatic ones stay


def test_same_taints_and_strings() -> None:
    assert same_taints(
        [{"key": "k", "effect": "NoSchedule"}], [{"key": "k", "value": "", "effect": "NoSchedule"}]
    )
    assert not same_taints(USER, list(reversed(USER)))
    assert not same_taints(not_ready(USER, 1), not_ready(USER, 40))
    assert [taint_string(t) for t in USER] == [
        "team.example.com/dedicated=research:NoSchedule",
        "example.com/maintenance:PreferNoSchedule",
    ]
