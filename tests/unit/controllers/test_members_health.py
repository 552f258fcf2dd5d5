"""MemberController: health verdict -> Ready condition and automatic taints on the MemberCluster."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_kube import FakeApiServer
from prometheus_client import REGISTRY

from flotilla.api import GROUP_VERSION
from flotilla.controllers import members as members_module
from flotilla.controllers.members import HealthSettings, MemberController
from flotilla.inventory import MemberState
from flotilla.inventory.health import Health, HealthStatus, Reason
from flotilla.scheduler import SchedulerCache

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
USER_TAINT = {"key": "team.example.com/dedicated", "value": "research", "effect": "NoSchedule"}
UNREACHABLE = "cluster.flotilla.dev/unreachable"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FakeInventory:
    """What MemberController reads from its InventoryManager, set by the test."""

    def __init__(self) -> None:
        self.set_ready()
        self.taints: dict[str, list[dict[str, Any]]] = {}

    def set_ready(self) -> None:
        self.status = HealthStatus(Health.READY, Reason.READY, "", at(0).timestamp())
        self.condition = (True, Reason.READY, "healthy", at(0))

    def set_down(self, since: float = 0) -> None:
        message = "cannot connect to the member API server: connection refused"
        self.status = HealthStatus(Health.NOT_READY, Reason.UNREACHABLE, message, at(since).timestamp())
        self.condition = (False, Reason.UNREACHABLE, message, at(since))

    def health(self, name: str) -> HealthStatus:
        return self.status

    def readiness(self, name: str) -> tuple[bool, str, str, datetime]:
        return self.condition

    def state(self, name: str) -> MemberState:
        ready, reason, message, when = self.condition
        return MemberState(name, ready, reason, message, last_transition_time=when)

    def set_taints(self, name: str, taints: Any) -> bool:
        self.taints[name] = [dict(t) for t in taints]
        return True

    def unregister(self, name: str) -> bool:
        return True


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeApiServer:
    fake = FakeApiServer()
    monkeypatch.setattr(members_module.kube, "get", lambda _api, *a, **kw: fake.get(*a, **kw))
    monkeypatch.setattr(
        members_module.kube, "patch", lambda _api, obj, body, sub=None: fake.patch(obj, body, sub)
    )
    fake.apply(
        {
            "apiVersion": GROUP_VERSION,
            "kind": "MemberCluster",
            "metadata": {"name": "a"},
            "spec": {"secretRef": {"namespace": "ns", "name": "a"}, "taints": [USER_TAINT]},
        },
        "test",
    )
    return fake


class Harness:
    def __init__(self, hub: FakeApiServer, **settings: Any) -> None:
        self.hub = hub
        self.leading = True
        self.ctl = MemberController(
            hub=None,  # type: ignore[arg-type]  # every call goes to the fake
            cache=SchedulerCache(),
            lock=threading.RLock(),
            active=lambda: self.leading,
            settings=HealthSettings(**{"no_execute_grace": 30.0, **settings}),
        )
        self.inventory = FakeInventory()
        self.ctl.inventory = self.inventory  # type: ignore[assignment]
        self.ctl._bodies["a"] = self.stored()

    def stored(self) -> dict[str, Any]:
        obj = self.hub.find(GROUP_VERSION, "MemberCluster", "a")
        assert obj is not None
        return obj

    def taints(self) -> list[tuple[str, str, str | None]]:
        return [(t["key"], t["effect"], t.get("timeAdded")) for t in self.stored()["spec"]["taints"]]

    def ready_condition(self) -> dict[str, Any]:
        (cond,) = self.stored()["status"]["conditions"]
        return dict(cond)


def added(key: str, effect: str) -> float:
    value = REGISTRY.get_sample_value(
        "flotilla_cluster_taints_added_total", {"cluster": "a", "key": key, "effect": effect}
    )
    return value or 0.0


def test_not_ready_taints_at_once_then_no_execute_then_clears(hub: FakeApiServer) -> None:
    h = Harness(hub)
    before = added(UNREACHABLE, "NoSchedule")
    h.inventory.set_down()
    wait = h.ctl.sync_health("a", now=at(1))
    assert wait == pytest.approx(29)
    assert h.taints() == [
        ("team.example.com/dedicated", "NoSchedule", None),
        (UNREACHABLE, "NoSchedule", "2026-03-01T12:00:00Z"),
    ]
    cond = h.ready_condition()
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == (
        "False",
        "Unreachable",
        "2026-03-01T12:00:00Z",
    )
    assert [t["key"] for t in h.inventory.taints["a"]] == ["team.example.com/dedicated", UNREACHABLE]
    assert added(UNREACHABLE, "NoSchedule") == before + 1

    writes = hub.total_writes()
    assert h.ctl.sync_health("a", now=at(10)) == pytest.approx(20)
    assert hub.total_writes() == writes  # nothing changed: nothing written

    assert h.ctl.sync_health("a", now=at(31)) is None
    assert h.taints()[-1] == (UNREACHABLE, "NoExecute", "2026-03-01T12:00:31Z")
    assert [(t["key"], t["effect"]) for t in h.inventory.taints["a"]][1:] == [
        (UNREACHABLE, "NoSchedule"),
        (UNREACHABLE, "NoExecute"),
    ]  # the scheduler has them at once (the runtime's failover queue is fed from there)

    h.inventory.set_ready()
    h.ctl.sync_health("a", now=at(60))
    assert h.taints() == [("team.example.com/dedicated", "NoSchedule", None)]
    assert h.ready_condition()["status"] == "True"
    assert [t["key"] for t in h.inventory.taints["a"]] == ["team.example.com/dedicated"]


def test_a_concurrent_edit_is_kept(hub: FakeApiServer) -> None:
    h = Harness(hub)
    stale = h.stored()
    other = {"key": "example.com/maintenance", "effect": "PreferNoSchedule"}
    hub.patch(stale, {"spec": {"taints": [USER_TAINT, other]}})  # a user's edit the cache missed
    h.inventory.set_down()
    h.ctl.sync_health("a", now=at(1))
    assert [k for k, _, _ in h.taints()] == [
        "team.example.com/dedicated",
        "example.com/maintenance",
        UNREACHABLE,
    ]
    assert hub.writes[("conflict", "MemberCluster")] == 1


def test_a_standby_writes_nothing(hub: FakeApiServer) -> None:
    h = Harness(hub)
    h.leading = False
    h.inventory.set_down()
    writes = hub.total_writes()
    assert h.ctl.sync_health("a", now=at(100)) is None
    assert hub.total_writes() == writes
    h.leading = True
    h.ctl.sync_health("a", now=at(100))  # took over: NotReady for 100 s, both taints at once
    assert [e for _, e, _ in h.taints()[1:]] == ["NoSchedule", "NoExecute"]


def test_auto_taints_off(hub: FakeApiServer) -> None:
    h = Harness(hub, auto_taints=False)
    h.inventory.set_down()
    assert h.ctl.sync_health("a", now=at(100)) is None
    assert h.taints() == [("team.example.com/dedicated", "NoSchedule", None)]
    assert h.ready_condition()["reason"] == "Unreachable"  # the condition is written all the same


def test_unknown_health_keeps_taints_from_before_a_restart(hub: FakeApiServer) -> None:
    h = Harness(hub)
    h.inventory.set_down()
    h.ctl.sync_health("a", now=at(40))
    tainted = h.taints()
    h.inventory.status = HealthStatus(Health.UNKNOWN, Reason.CONNECTING, "connecting", at(50).timestamp())
    h.ctl.sync_health("a", now=at(50))
    assert h.taints() == tainted


def test_settled_once_ready_or_failing_not_while_connecting(hub: FakeApiServer) -> None:
    h = Harness(hub)
    for reason, settled in (
        (Reason.CONNECTING, False),
        (Reason.SYNCING, False),
        (Reason.UNREACHABLE, True),
        (Reason.KUBECONFIG_INVALID, True),
    ):
        h.inventory.condition = (False, reason, "", at(0))
        assert h.ctl.settled("a") is settled, reason
    h.inventory.set_ready()
    assert h.ctl.settled("a")


def test_settled_when_its_secret_is_missing(hub: FakeApiServer) -> None:
    h = Harness(hub)
    h.inventory.condition = (False, Reason.CONNECTING, "", at(0))
    h.ctl._reconcile_sync("a", h.stored())  # the Secret ns/a does not exist
    assert h.ctl.settled("a")
    h.ctl.unregister("a")
    assert not h.ctl.settled("a")


def test_unregister_drops_the_members_series(hub: FakeApiServer) -> None:
    h = Harness(hub)
    h.inventory.set_down()
    h.ctl.sync_health("a", now=at(1))
    members_module.metrics.CLUSTER_PROBE_FAILURES.labels(cluster="a", reason="Unreachable").inc()
    assert REGISTRY.get_sample_value("flotilla_cluster_ready", {"cluster": "a"}) == 0
    h.ctl.unregister("a")
    for name, labels in (
        ("flotilla_cluster_ready", {"cluster": "a"}),
        ("flotilla_cluster_probe_failures_total", {"cluster": "a", "reason": "Unreachable"}),
        ("flotilla_cluster_taints_added_total", {"cluster": "a", "key": UNREACHABLE, "effect": "NoSchedule"}),
    ):
        assert REGISTRY.get_sample_value(name, labels) is None, name


def test_settings_from_env() -> None:
    assert HealthSettings.from_env({}) == HealthSettings()
    assert HealthSettings() == HealthSettings(2.0, 3.0, 3, 2, True, 30.0)
    env = {
        "FLOTILLA_MEMBER_PROBE_INTERVAL": "0.5",
        "FLOTILLA_MEMBER_PROBE_TIMEOUT": "1",
        "FLOTILLA_MEMBER_FAILURE_THRESHOLD": "2",
        "FLOTILLA_MEMBER_SUCCESS_THRESHOLD": "4",
        "FLOTILLA_AUTO_TAINTS": "false",
        "FLOTILLA_MEMBER_NOEXECUTE_GRACE": "-1",
    }
    assert HealthSettings.from_env(env) == HealthSettings(0.5, 1.0, 2, 4, False, None)
