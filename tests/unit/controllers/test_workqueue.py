"""The controllers' work queue: de-duplication, per-key serialisation, retries with backoff."""

from __future__ import annotations

import asyncio
import itertools

from flotilla.controllers.workqueue import WorkQueue


async def test_storm_on_one_key_is_handled_once_per_wave() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def handler(key: str) -> None:
        seen.append(key)
        await gate.wait()

    q: WorkQueue[str] = WorkQueue("t-dedupe", handler, workers=4)
    for _ in range(1000):
        q.add("a")
    q.add("b")
    q.start()
    await asyncio.sleep(0.05)
    assert sorted(seen) == ["a", "b"]
    for _ in range(500):  # added while "a" is being handled: handled exactly once more, after it
        q.add("a")
    await asyncio.sleep(0.05)
    assert seen.count("a") == 1  # never two workers on one key
    gate.set()
    assert await q.wait_idle(5)
    assert seen.count("a") == 2 and seen.count("b") == 1
    await q.stop()


async def test_failures_back_off_and_success_forgets() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def handler(key: str) -> None:
        calls.append(loop.time())
        if len(calls) < 4:
            raise RuntimeError("member unreachable")

    q: WorkQueue[str] = WorkQueue("t-backoff", handler, workers=1, base_delay=0.02, max_delay=1.0)
    q.add("k")
    q.start()
    assert await q.wait_idle(5)
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.075  # 0.02, 0.04, 0.08
    assert q.failures("k") == 0
    await q.stop()


async def test_keys_wait_until_started_and_handler_may_ask_to_run_again() -> None:
    runs: list[str] = []

    async def handler(key: str) -> float | None:
        runs.append(key)
        return 0.01 if len(runs) == 1 else None

    q: WorkQueue[str] = WorkQueue("t-start", handler)
    q.add("x")
    await asyncio.sleep(0.02)
    assert runs == []  # not leading yet: nothing runs, the key waits
    q.start()
    assert await q.wait_idle(5)
    assert runs == ["x", "x"]
    await q.stop()
