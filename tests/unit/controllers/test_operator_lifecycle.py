"""A start that does not finish is released: Kopf runs no cleanup handler after it, and an
operator restarted in the same process (the e2e tests run it in a thread) must not inherit its
watches, which deliver to an event loop that has ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flotilla import operator


class _Watch:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class _Members:
    def __init__(self) -> None:
        self.stopped = False

    def stop_all(self) -> None:
        self.stopped = True


class _Runtime:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> operator._State:
    fresh = operator._State()
    fresh.hub_watches = {}
    monkeypatch.setattr(operator, "STATE", fresh)
    return fresh


def _leave_a_start(state: operator._State, loop: asyncio.AbstractEventLoop) -> tuple[_Watch, _Members, Any]:
    watch, members, runtime = _Watch(), _Members(), _Runtime(loop)
    state.hub_watches[("apps/v1", "Deployment")] = watch  # type: ignore[assignment]
    state.members = members  # type: ignore[assignment]
    state.runtime = runtime  # type: ignore[assignment]
    return watch, members, runtime


def test_a_start_that_fails_or_is_cancelled_releases_what_it_started(
    state: operator._State, monkeypatch: pytest.MonkeyPatch
) -> None:
    left: dict[str, Any] = {}

    async def cancelled_start(settings: Any, logger: Any) -> None:
        left["parts"] = _leave_a_start(state, asyncio.get_running_loop())
        raise asyncio.CancelledError  # the operator was stopped while starting

    monkeypatch.setattr(operator, "_start", cancelled_start)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(operator.startup(settings=None, logger=operator.log))  # type: ignore[arg-type]
    watch, members, runtime = left["parts"]
    assert watch.stopped and members.stopped and runtime.stopped
    assert state.hub_watches == {} and state.runtime is None and state.members is None


def test_the_next_start_releases_what_an_unfinished_one_left(
    state: operator._State, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended = asyncio.new_event_loop()
    ended.close()
    watch, members, runtime = _leave_a_start(state, ended)  # its cleanup never ran
    started: list[bool] = []

    async def start(settings: Any, logger: Any) -> None:
        # The watches of this start are its own: none of the earlier one is left to reuse.
        started.append(not state.hub_watches and state.runtime is None)

    monkeypatch.setattr(operator, "_start", start)
    asyncio.run(operator.startup(settings=None, logger=operator.log))  # type: ignore[arg-type]
    assert started == [True]
    assert watch.stopped and members.stopped
    assert not runtime.stopped  # bound to the loop that ended: dropped, not awaited
