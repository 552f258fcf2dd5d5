"""A de-duplicating, rate-limited work queue for asyncio controllers (client-go's workqueue).

* **De-duplication**: a key added while it waits is queued once; an event storm on one object
  costs one reconcile, not one per event.
* **Per-key serialisation**: a key is handled by at most one worker at a time; a key added
  while it is being handled is handled once more afterwards (it is "dirty"), so the last change
  is never missed.
* **Priority**: a queue given ``yield_to`` lets another queue's work go first under load (the
  status queue yields to scheduling and propagation), for at most ``max_yield`` seconds a key.
* **Rate-limited retries**: a handler that raises is retried after an exponential backoff per
  key (``base_delay`` doubling up to ``max_delay``), without any timer of its own; success
  forgets the key's failures. A handler may also return a delay to be called again after it
  (e.g. a grace period that ends).

Workers only run between :meth:`WorkQueue.start` and :meth:`WorkQueue.stop`: keys added before
(e.g. while this replica is not the leader) wait, de-duplicated, until the queue starts.
Everything runs on one event loop; :meth:`add` is not thread-safe (use
``loop.call_soon_threadsafe(queue.add, key)`` from threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from flotilla import metrics

log = logging.getLogger("flotilla")

K = TypeVar("K", bound=Hashable)
Handler = Callable[[K], Awaitable[float | None]]


def describe(exc: BaseException) -> str:
    """One line for a failure: an API error's status and the server's message, not its headers."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return f"{getattr(exc, 'status', '')} {json.loads(body).get('message', '')}"[:500]
        except (ValueError, AttributeError):
            pass
    status = getattr(exc, "status", None)
    if status is not None:
        return f"{status} {getattr(exc, 'reason', '')}"[:500]
    return str(exc).replace("\n", " ")[:500]


class WorkQueue(Generic[K]):
    def __init__(
        self,
        name: str,
        handler: Handler[K],
        *,
        workers: int = 4,
        base_delay: float = 0.05,
        max_delay: float = 60.0,
        yield_to: Callable[[], bool] | None = None,
        max_yield: float = 1.0,
    ) -> None:
        self.name = name
        self._handler = handler
        self._workers = workers
        self._yield_to = yield_to
        self.max_yield = max_yield
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()  # waiting to be handled (queued, or re-queued when done)
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._delayed: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._depth = metrics.WORKQUEUE_DEPTH.labels(name=name)
        self._adds = metrics.WORKQUEUE_ADDS.labels(name=name)
        self._retries = metrics.WORKQUEUE_RETRIES.labels(name=name)
        self._duration = metrics.WORKQUEUE_WORK_DURATION.labels(name=name)

    # ------------------------------------------------------------------ adding
    def add(self, key: K) -> None:
        """Queue ``key`` (a no-op when it is already waiting)."""
        self._adds.inc()
        timer = self._delayed.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._idle.clear()
        if key in self._processing:
            return  # handled again when its current run ends
        self._queue.put_nowait(key)
        self._depth.set(self._queue.qsize())

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (the earlier of this and a pending delay wins)."""
        if delay <= 0:
            self.add(key)
            return
        if key in self._dirty:
            return
        loop = asyncio.get_running_loop()
        pending = self._delayed.get(key)
        if pending is not None:
            if pending.when() <= loop.time() + delay:
                return
            pending.cancel()
        self._idle.clear()
        self._delayed[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its exponential backoff; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = float(min(self.base_delay * (2.0**failures), self.max_delay))
        self._retries.inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Clear the key's failure count (its next failure backs off from the start)."""
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        return len(self._dirty) + len(self._delayed)

    # ----------------------------------------------------------------- running
    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for timer in self._delayed.values():
            timer.cancel()
        self._delayed.clear()

    async def wait_idle(self, timeout: float | None = None, horizon: float | None = None) -> bool:
        """For tests and shutdown: wait until nothing is queued, delayed or being handled.

        With ``horizon``, keys delayed by more than that many seconds (e.g. a grace period that
        ends much later) do not count as work."""
        if horizon is None:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                return False
            return True
        loop = asyncio.get_running_loop()
        give_up = None if timeout is None else loop.time() + timeout
        while True:
            near = any(h.when() <= loop.time() + horizon for h in self._delayed.values())
            if not (self._processing or self._dirty or near):
                return True
            if give_up is not None and loop.time() > give_up:
                return False
            await asyncio.sleep(0.01)

    async def _worker(self) -> None:
        while True:
            if self._yield_to is not None:
                # A lower-priority queue waits (up to max_yield) while higher-priority work is
                # queued; its own keys meanwhile gather, de-duplicated.
                waited = 0.0
                while waited < self.max_yield and self._yield_to():
                    await asyncio.sleep(0.05)
                    waited += 0.05
            key = await self._queue.get()
            self._depth.set(self._queue.qsize())
            self._dirty.discard(key)
            self._processing.add(key)
            started = time.perf_counter()
            try:
                again = await self._handler(key)
            except asyncio.CancelledError:
                self._processing.discard(key)
                raise
            except Exception as exc:
                delay = self.add_rate_limited(key)
                failures = self._failures[key]
                # One line per failure, a traceback only at debug level: a member that is down must
                # not fill the log with a traceback per workload.
                log.warning(
                    "%s: %s failed (%s: %s); retry %d in %.2fs",
                    self.name,
                    key,
                    type(exc).__name__,
                    describe(exc),
                    failures,
                    delay,
                )
                log.debug("%s: %s traceback", self.name, key, exc_info=exc)
            else:
                self.forget(key)
                if again is not None:
                    self.add_after(key, again)
            finally:
                self._duration.observe(time.perf_counter() - started)
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.put_nowait(key)
                self._depth.set(self._queue.qsize())
            if not self._dirty and not self._processing and not self._delayed:
                self._idle.set()
