"""Fixtures for end-to-end tests against real API servers.

Backend, chosen by ``FLOTILLA_E2E_BACKEND``:

* ``local`` (default): the rig starts a hub and the default fleet's members as plain processes
  on 127.0.0.1 (binaries built from their Go modules and cached; see tools/rig-bin/build.sh).
* ``kind``: clusters already running (e.g. created by kind in CI); ``FLOTILLA_KUBECONFIGS`` lists
  them as ``hub=/path/hub.kubeconfig,a=/path/a.kubeconfig,...`` (see hack/kind-e2e.sh). The rig
  adopts them: it installs the fleet's third-party CRDs and adds the fleet's KWOK GPU nodes (KWOK
  runs on the test machine against each member), so the same tests run on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from flotilla.cli import default_fleet_path
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.fleet import load_fleet
from flotilla.rig.runner import Rig

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("FLOTILLA_SHARED_DIR", REPO.parent / "shared"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


BACKEND = os.environ.get("FLOTILLA_E2E_BACKEND", "local")
bare_hub_only = pytest.mark.skipif(
    BACKEND == "kind", reason="a kind hub runs workload controllers; this checks the bare (Karmada-style) hub"
)


loopback_webhook = pytest.mark.skipif(
    BACKEND == "kind", reason="serves a webhook on 127.0.0.1, which a kind hub (in a container) cannot call"
)


class Fleet:
    """What e2e tests see: a hub and members by name."""

    def __init__(self, hub: ClusterHandle, members: dict[str, ClusterHandle], rig: Rig | None) -> None:
        self.hub = hub
        self.members = members
        self.rig = rig


def _kind_fleet(workdir: Path) -> Fleet:
    """Clusters started elsewhere (kind): the rig adds the fleet's CRDs and KWOK GPU nodes."""
    spec = os.environ.get("FLOTILLA_KUBECONFIGS", "")
    entries = dict(item.split("=", 1) for item in spec.split(",") if item)
    if "hub" not in entries:
        raise pytest.UsageError("FLOTILLA_E2E_BACKEND=kind needs FLOTILLA_KUBECONFIGS=hub=...,a=...")
    handles = {}
    for name, path in entries.items():
        server = yaml.safe_load(Path(path).read_text())["clusters"][0]["cluster"]["server"]
        handles[name] = ClusterHandle(
            name=name, role="hub" if name == "hub" else "member", server=server, kubeconfig=Path(path)
        )
    hub = handles.pop("hub")
    rig = Rig(fleet=load_fleet(default_fleet_path()), workdir=workdir)
    rig.adopt(hub, handles, shared_dir=shared_dir())
    return Fleet(hub, handles, rig)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    backend = os.environ.get("FLOTILLA_E2E_BACKEND", "local")
    if backend == "kind":
        kind = _kind_fleet(tmp_path_factory.mktemp("kind"))
        try:
            yield kind
        finally:
            assert kind.rig is not None
            kind.rig.down()
        return
    if backend != "local":
        raise pytest.UsageError(f"FLOTILLA_E2E_BACKEND must be 'local' or 'kind', not {backend!r}")
    with local_rig(tmp_path_factory.mktemp("rig")) as started:
        yield started


@contextmanager
def local_rig(workdir: Path) -> Iterator[Fleet]:
    """The default fleet started as local processes in ``workdir``, stopped on exit."""
    rig = Rig(fleet=load_fleet(default_fleet_path()), workdir=workdir)
    rig.up(shared_dir=shared_dir())
    assert rig.hub is not None
    try:
        yield Fleet(rig.hub, dict(rig.members), rig)
    finally:
        rig.down()


@pytest.fixture(scope="session")
def hub(fleet: Fleet) -> ClusterHandle:
    return fleet.hub


@pytest.fixture(scope="session")
def members(fleet: Fleet) -> dict[str, ClusterHandle]:
    return fleet.members


@pytest.fixture(scope="session")
def compat_server(fleet: Fleet) -> ClusterHandle:
    """A second API server (member ``c``) for checks against upstream CRDs."""
    return fleet.members["c"]
