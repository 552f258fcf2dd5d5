"""Lease leader election: races, takeover after expiry, release on a graceful stop, the kube client.

The electors share an in-memory Lease store that enforces resourceVersion conflicts like the API
server, and a manual clock: expiry and the renew deadline happen when a test advances the clock,
so the only real waiting is a few short retry periods.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiException

from flotilla import leader
from flotilla.leader import (
    ElectionSettings,
    LeaderElector,
    LeaseConflict,
    default_identity,
    kube_lease_client,
)

pytestmark = pytest.mark.timeout(30)

NS, NAME = "flotilla-system", "flotilla-operator"
RETRY = 0.02  # real seconds between polls; lease expiry and deadlines run on the manual clock


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLeases:
    """One API server's Leases: resourceVersion bumps on every write; stale writes get 409."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.writes: list[tuple[str, str]] = []  # (verb, holderIdentity)

    def _key(self, lease: dict[str, Any]) -> tuple[str, str]:
        return lease["metadata"]["namespace"], lease["metadata"]["name"]

    def _stored(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(lease)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[self._key(obj)] = obj
        return copy.deepcopy(obj)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)  # let racing electors interleave at every call
        obj = self.objects.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        if self._key(lease) in self.objects:
            raise LeaseConflict("already exists")
        assert "resourceVersion" not in lease["metadata"]
        self.writes.append(("create", lease["spec"]["holderIdentity"]))
        return self._stored(lease)

    async def update(self, lease: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        current = self.objects.get(self._key(lease))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        if lease["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise LeaseConflict("the object has been modified")
        self.writes.append(("update", lease["spec"]["holderIdentity"]))
        return self._stored(lease)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.objects[(NS, NAME)]["spec"]
        return spec


class Flaky:
    """One replica's view of the store: ``broken`` makes every call fail, ``hang`` never answer."""

    def __init__(self, store: FakeLeases) -> None:
        self.store = store
        self.broken = False
        self.hang = False

    async def _gate(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.broken:
            raise ConnectionRefusedError("connection refused")

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        await self._gate()
        return await self.store.get(namespace, name)

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        await self._gate()
        return await self.store.create(lease)

    async def update(self, lease: dict[str, Any]) -> dict[str, Any]:
        await self._gate()
        return await self.store.update(lease)


class Candidate:
    """An elector with its run task and a log of its callbacks."""

    def __init__(self, client: Any, identity: str, clock: Callable[[], float], **kwargs: float) -> None:
        self.client = client
        self.elector = LeaderElector(
            client, NS, NAME, identity, retry_period=kwargs.pop("retry_period", RETRY), clock=clock, **kwargs
        )
        self.events: list[str] = []
        self.task: asyncio.Task[None] | None = None
        self.holder_when_stopped: str | None = None

    async def _started(self) -> None:
        self.events.append("started")

    async def _stopped(self) -> None:
        self.events.append("stopped")
        if isinstance(self.client, FakeLeases) and (NS, NAME) in self.client.objects:
            # Work stops before the Lease is released: no standby starts while we still work.
            self.holder_when_stopped = self.client.spec()["holderIdentity"]

    def leading(self) -> bool:
        """Leader, and on_started_leading has run (it runs as a task just after is_leader flips)."""
        return self.elector.is_leader and self.events[-1:] == ["started"]

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(self._started, self._stopped))
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def hold(seconds: float, check: Callable[[], None]) -> None:
    """Keep checking an invariant for a while (real time, a few retry periods)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        check()
        await asyncio.sleep(0.003)
    check()


def leaders(candidates: list[Candidate]) -> list[str]:
    return [c.elector.identity for c in candidates if c.elector.is_leader]


# ------------------------------------------------------------------ races
@pytest.mark.parametrize("count", [2, 5])
async def test_racing_candidates_elect_exactly_one_leader(count: int) -> None:
    store, clock = FakeLeases(), ManualClock()
    candidates = [Candidate(store, f"replica-{i}", clock).start() for i in range(count)]
    try:
        await eventually(lambda: len(leaders(candidates)) == 1, what="a leader")

        def one_leader() -> None:
            assert len(leaders(candidates)) == 1

        await hold(10 * RETRY, one_leader)
        (winner,) = leaders(candidates)
        assert store.spec()["holderIdentity"] == winner
        assert sum(c.events.count("started") for c in candidates) == 1
        assert not any("stopped" in c.events for c in candidates)
        # The winner kept renewing; the others only read.
        holders = {holder for _verb, holder in store.writes}
        assert holders == {winner}
        assert store.writes[0][0] == "create"
        assert len(store.writes) >= 3
        assert store.spec()["leaseTransitions"] == 0
        follower = next(c for c in candidates if not c.elector.is_leader)
        assert follower.elector.holder == winner
        assert follower.elector.status().is_leader is False
    finally:
        for c in candidates:
            await c.stop()


async def test_an_existing_lease_is_taken_only_after_it_expires_on_our_own_clock() -> None:
    """The holder's timestamps are far in the past (clock skew, or a dead holder): ignored; the
    candidate waits a full lease duration from when it first saw the record."""
    store, clock = FakeLeases(), ManualClock()
    await store.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "holderIdentity": "ghost",
                "leaseDurationSeconds": 15,
                "acquireTime": "2001-01-01T00:00:00.000000Z",
                "renewTime": "2001-01-01T00:00:00.000000Z",
                "leaseTransitions": 4,
            },
        }
    )
    c = Candidate(store, "replica-a", clock).start()
    try:
        await eventually(lambda: c.elector.holder == "ghost", what="the first read")
        clock.advance(14.9)
        await hold(5 * RETRY, lambda: None)
        assert not c.elector.is_leader
        clock.advance(0.2)
        await eventually(lambda: c.elector.is_leader, what="the takeover")
        spec = store.spec()
        assert spec["holderIdentity"] == "replica-a"
        assert spec["leaseTransitions"] == 5
        assert spec["leaseDurationSeconds"] == 15
        assert spec["acquireTime"] > "2001-01-01T00:00:00.000000Z"
        assert spec["renewTime"] >= spec["acquireTime"]
        assert spec["renewTime"].endswith("Z") and len(spec["renewTime"]) == len(
            "2001-01-01T00:00:00.000000Z"
        )
    finally:
        await c.stop()


async def test_a_lease_held_by_our_identity_is_taken_at_once_keeping_its_acquire_time() -> None:
    """A restarted container with the same POD_NAME carries on without waiting or a transition."""
    store, clock = FakeLeases(), ManualClock()
    await store.create(
        {
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "holderIdentity": "replica-a",
                "leaseDurationSeconds": 15,
                "acquireTime": "2001-01-01T00:00:00.000000Z",
                "renewTime": "2001-01-01T00:00:00.000000Z",
                "leaseTransitions": 2,
            },
        }
    )
    c = Candidate(store, "replica-a", clock).start()
    try:
        await eventually(lambda: c.elector.is_leader, what="leadership")
        spec = store.spec()
        assert spec["leaseTransitions"] == 2
        assert spec["acquireTime"] == "2001-01-01T00:00:00.000000Z"
        assert spec["renewTime"] != "2001-01-01T00:00:00.000000Z"
    finally:
        await c.stop()


# ------------------------------------------------------------------ takeover
async def test_a_leader_that_cannot_renew_steps_down_and_a_peer_takes_over_after_expiry() -> None:
    store, clock = FakeLeases(), ManualClock()
    a = Candidate(Flaky(store), "replica-a", clock).start()
    await eventually(lambda: a.leading(), what="a to lead")
    b = Candidate(Flaky(store), "replica-b", clock).start()
    try:
        await eventually(lambda: b.elector.holder == "replica-a", what="b to see a")
        await hold(5 * RETRY, lambda: None)  # b keeps observing a's renewals
        assert a.elector.is_leader and not b.elector.is_leader

        a.client.broken = True  # a's API calls fail from now on; the record stops changing
        await hold(5 * RETRY, lambda: None)
        assert a.elector.is_leader, "still within the renew deadline"
        assert a.elector.status().failed_attempts > 0

        clock.advance(10.5)  # past a's renew deadline (10 s), not yet past the lease (15 s)
        await eventually(lambda: "stopped" in a.events, what="a to step down")
        assert a.events == ["started", "stopped"]
        assert not a.elector.is_leader
        await hold(5 * RETRY, lambda: None)
        assert not b.elector.is_leader, "the lease has not expired on b's clock yet"

        clock.advance(5.0)  # past 15 s since b last saw the record change
        await eventually(lambda: b.leading(), what="b to take over")
        assert b.events == ["started"]
        assert store.spec()["holderIdentity"] == "replica-b"
        assert store.spec()["leaseTransitions"] == 1

        a.client.broken = False  # a is back: it sees b's valid lease and stays a follower
        await eventually(lambda: a.elector.holder == "replica-b", what="a to see b")
        await hold(5 * RETRY, lambda: None)
        assert leaders([a, b]) == ["replica-b"]
        assert a.events == ["started", "stopped"]
    finally:
        await a.stop()
        await b.stop()


async def test_a_leader_steps_down_at_once_when_another_holder_appears() -> None:
    store, clock = FakeLeases(), ManualClock()
    a = Candidate(store, "replica-a", clock).start()
    try:
        await eventually(lambda: a.leading(), what="a to lead")
        obj = copy.deepcopy(store.objects[(NS, NAME)])
        obj["spec"]["holderIdentity"] = "intruder"
        await store.update(obj)  # a's next renewal is based on a stale resourceVersion
        await eventually(lambda: "stopped" in a.events, what="a to step down")
        assert a.events == ["started", "stopped"]
        assert not a.elector.is_leader
        assert a.elector.holder == "intruder"
        assert store.spec()["holderIdentity"] == "intruder"
    finally:
        await a.stop()
    assert a.events == ["started", "stopped"], "not leading when cancelled: no second callback"
    assert store.spec()["holderIdentity"] == "intruder", "a does not release a lease it does not hold"


async def test_a_hung_api_call_is_bounded_by_the_renew_deadline() -> None:
    """Real clock, short periods: a leader whose calls never answer steps down in about a deadline."""
    store = FakeLeases()
    a = Candidate(
        Flaky(store), "replica-a", time.monotonic, lease_seconds=1.0, renew_deadline=0.3, retry_period=0.05
    ).start()
    try:
        await eventually(lambda: a.leading(), what="a to lead")
        a.client.hang = True
        await eventually(lambda: "stopped" in a.events, timeout=5.0, what="a to step down")
        assert a.events == ["started", "stopped"]
        assert not a.elector.is_leader
    finally:
        a.client.hang = False
        await a.stop()


# ------------------------------------------------------------------ graceful stop
async def test_cancel_releases_the_lease_and_a_peer_acquires_on_its_next_poll() -> None:
    store, clock = FakeLeases(), ManualClock()
    a = Candidate(store, "replica-a", clock).start()
    await eventually(lambda: a.leading(), what="a to lead")
    b = Candidate(store, "replica-b", clock).start()
    try:
        await eventually(lambda: b.elector.holder == "replica-a", what="b to see a")
        await a.stop()
        assert a.events == ["started", "stopped"]
        assert a.holder_when_stopped == "replica-a"
        assert not a.elector.is_leader
        spec = store.spec()
        assert spec["holderIdentity"] == ""
        assert spec["leaseDurationSeconds"] == 1
        # The clock never moves, so only the release lets b in - within a retry period or so.
        loop = asyncio.get_running_loop()
        released_at = loop.time()
        await eventually(lambda: b.leading(), timeout=2.0, what="b to take over")
        assert loop.time() - released_at < 1.0
        assert store.spec()["holderIdentity"] == "replica-b"
        assert store.spec()["leaseTransitions"] == 1
        assert b.events == ["started"]
    finally:
        await b.stop()
    assert b.events == ["started", "stopped"]
    assert store.spec()["holderIdentity"] == ""


async def test_cancel_is_never_swallowed() -> None:
    """A cancellation landing as an API call completes must still end run() (asyncio.wait_for on
    Python 3.11 can swallow it; the elector must not use it)."""
    store, clock = FakeLeases(), ManualClock()
    for i in range(60):
        c = Candidate(store, f"replica-{i % 3}", clock).start()
        for _ in range(i % 7):
            await asyncio.sleep(0)
        assert c.task is not None
        c.task.cancel()
        async with asyncio.timeout(2):
            with pytest.raises(asyncio.CancelledError):
                await c.task


async def test_a_failing_stop_callback_still_releases_on_cancel() -> None:
    store, clock = FakeLeases(), ManualClock()

    async def stopped() -> None:
        raise RuntimeError("stop failed")

    async def started() -> None:
        pass

    elector = LeaderElector(store, NS, NAME, "replica-a", retry_period=RETRY, clock=clock)
    task = asyncio.create_task(elector.run(started, stopped))
    await eventually(lambda: elector.is_leader, what="leadership")
    task.cancel()
    with pytest.raises(RuntimeError, match="stop failed"):
        await task
    assert store.spec()["holderIdentity"] == ""


async def test_cancel_while_following_leaves_the_lease_alone() -> None:
    store, clock = FakeLeases(), ManualClock()
    a = Candidate(store, "replica-a", clock).start()
    await eventually(lambda: a.leading(), what="a to lead")
    b = Candidate(store, "replica-b", clock).start()
    try:
        await eventually(lambda: b.elector.holder == "replica-a", what="b to see a")
        await b.stop()
        assert b.events == []
        assert store.spec()["holderIdentity"] == "replica-a"
        assert a.elector.is_leader
    finally:
        await a.stop()


async def test_release_retries_once_on_a_fresh_read_after_a_conflict() -> None:
    """A renewal that landed unseen (its attempt was cancelled) leaves a stale resourceVersion."""
    store, clock = FakeLeases(), ManualClock()
    a = Candidate(store, "replica-a", clock).start()
    try:
        await eventually(lambda: a.leading(), what="a to lead")
        obj = copy.deepcopy(store.objects[(NS, NAME)])
        obj["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
        store._stored(obj)  # still ours, a newer resourceVersion; no await, so a cannot renew first
    finally:
        await a.stop()
    assert store.spec()["holderIdentity"] == ""
    assert store.spec()["leaseDurationSeconds"] == 1


async def test_a_failing_start_callback_releases_and_propagates() -> None:
    store, clock = FakeLeases(), ManualClock()
    stopped: list[bool] = []

    async def started() -> None:
        raise RuntimeError("boom")

    async def on_stopped() -> None:
        stopped.append(True)

    elector = LeaderElector(store, NS, NAME, "replica-a", retry_period=RETRY, clock=clock)
    with pytest.raises(RuntimeError, match="boom"):
        async with asyncio.timeout(5):
            await elector.run(started, on_stopped)
    assert stopped == [True]
    assert not elector.is_leader
    assert store.spec()["holderIdentity"] == ""


async def test_a_long_running_start_callback_does_not_stop_renewal() -> None:
    store, clock = FakeLeases(), ManualClock()
    cancelled = asyncio.Event()

    async def started() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def stopped() -> None:
        pass

    elector = LeaderElector(store, NS, NAME, "replica-a", retry_period=RETRY, clock=clock)
    task = asyncio.create_task(elector.run(started, stopped))
    await eventually(lambda: elector.is_leader, what="leadership")
    renewals = len(store.writes)
    await eventually(lambda: len(store.writes) >= renewals + 3, what="renewals")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# ------------------------------------------------------------------ construction, identity, settings
@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(15, 15, 2), (15, 10, 10), (15, 10, 0), (10, 15, 2), (15, 2, 10)]
)
def test_periods_must_nest(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_seconds"):
        LeaderElector(
            FakeLeases(), NS, NAME, "x", lease_seconds=lease, renew_deadline=renew, retry_period=retry
        )


def test_identity_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(FakeLeases(), NS, NAME, "")


async def test_fractional_lease_seconds_round_up_in_the_lease() -> None:
    store, clock = FakeLeases(), ManualClock()
    c = Candidate(store, "replica-a", clock, lease_seconds=2.5, renew_deadline=1.0)
    c.start()
    try:
        await eventually(lambda: c.elector.is_leader, what="leadership")
        assert store.spec()["leaseDurationSeconds"] == 3
    finally:
        await c.stop()


def test_default_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "flotilla-7d9c-abcde")
    assert default_identity() == "flotilla-7d9c-abcde"
    monkeypatch.delenv("POD_NAME")
    first, second = default_identity(), default_identity()
    host, _, suffix = first.rpartition("_")
    assert host == socket.gethostname()
    assert len(suffix) == 8 and int(suffix, 16) >= 0
    assert first != second


def test_settings_from_env() -> None:
    settings = ElectionSettings.from_env(
        {
            "FLOTILLA_LEADER_ELECT": "true",
            "FLOTILLA_LEADER_ELECTION_NAMESPACE": "ops",
            "FLOTILLA_LEADER_ELECTION_NAME": "fl-leader",
            "FLOTILLA_LEASE_DURATION": "20",
            "FLOTILLA_RENEW_DEADLINE": "12.5",
            "FLOTILLA_RETRY_PERIOD": "3",
            "POD_NAME": "fl-0",
        }
    )
    assert settings == ElectionSettings(True, "ops", "fl-leader", "fl-0", 20.0, 12.5, 3.0)
    elector = settings.elector(FakeLeases())
    assert (elector.namespace, elector.name, elector.identity) == ("ops", "fl-leader", "fl-0")
    assert (elector.lease_seconds, elector.renew_deadline, elector.retry_period) == (20.0, 12.5, 3.0)


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(leader, "_SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    settings = ElectionSettings.from_env({})
    assert settings.enabled is False
    assert (settings.namespace, settings.name) == ("default", "flotilla-operator")
    assert (settings.lease_seconds, settings.renew_deadline, settings.retry_period) == (15.0, 10.0, 2.0)
    assert settings.identity
    ns_file = tmp_path / "namespace"
    ns_file.write_text("flotilla-system\n")
    monkeypatch.setattr(leader, "_SERVICE_ACCOUNT_NAMESPACE", ns_file)
    assert ElectionSettings.from_env({"FLOTILLA_LEADER_ELECT": "false"}).namespace == "flotilla-system"
    assert ElectionSettings.from_env({"FLOTILLA_LEADER_ELECT": "False"}).enabled is False
    assert ElectionSettings.from_env({"FLOTILLA_LEADER_ELECT": "TRUE"}).enabled is True


# ------------------------------------------------------------------ the client over kube.request
class RecordingRequest:
    """Stands in for ``kube.request``; answers from a script keyed by method."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def answer(self, method: str) -> Any:
        result = self.answers[method]
        if isinstance(result, Exception):
            raise result
        return result


def _request_with_timeout(rec: RecordingRequest) -> Callable[..., Any]:
    def request(
        api: Any,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: Any = None,
        timeout: float = 60.0,
    ) -> Any:
        rec.calls.append(
            {"method": method, "path": path, "body": body, "ct": content_type, "timeout": timeout}
        )
        return rec.answer(method)

    return request


LEASE = {"metadata": {"name": NAME, "namespace": NS, "resourceVersion": "7"}, "spec": {}}


async def test_kube_lease_client_paths_errors_and_timeouts() -> None:
    rec = RecordingRequest({"GET": LEASE, "POST": LEASE, "PUT": LEASE})
    client = kube_lease_client(object(), timeout=3.0, request=_request_with_timeout(rec))
    path = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"

    assert await client.get(NS, NAME) == LEASE
    assert await client.create(LEASE) == LEASE
    assert await client.update(LEASE) == LEASE
    assert [(c["method"], c["path"]) for c in rec.calls] == [
        ("GET", f"{path}/{NAME}"),
        ("POST", path),
        ("PUT", f"{path}/{NAME}"),
    ]
    assert rec.calls[0]["body"] is None and rec.calls[0]["ct"] is None
    assert rec.calls[2]["body"] == LEASE and rec.calls[2]["ct"] == "application/json"
    assert {c["timeout"] for c in rec.calls} == {3.0}

    rec.answers = {
        "GET": ApiException(status=404, reason="Not Found"),
        "POST": ApiException(status=409, reason="AlreadyExists"),
        "PUT": ApiException(status=409, reason="Conflict"),
    }
    assert await client.get(NS, NAME) is None
    with pytest.raises(LeaseConflict):
        await client.create(LEASE)
    with pytest.raises(LeaseConflict):
        await client.update(LEASE)
    rec.answers = {"GET": ApiException(status=403, reason="Forbidden")}
    with pytest.raises(ApiException) as info:
        await client.get(NS, NAME)
    assert info.value.status == 403


async def test_kube_lease_client_gives_up_on_a_hung_request() -> None:
    release = threading.Event()

    def hung(
        api: Any,
        method: str,
        path: str,
        body: Any = None,
        ct: Any = None,
        query: Any = None,
        timeout: Any = None,
    ) -> Any:
        release.wait(timeout=10)

    client = kube_lease_client(object(), timeout=0.05, request=hung)
    try:
        with pytest.raises(TimeoutError):
            await client.get(NS, NAME)
    finally:
        release.set()


def test_the_real_kube_request_is_the_default() -> None:
    client = leader.KubeLeaseClient(object())
    assert client._request is leader.kube.request
