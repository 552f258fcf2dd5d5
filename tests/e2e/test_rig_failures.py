"""The rig fails clearly and leaves no stray processes."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest

from flotilla.rig import binaries
from flotilla.rig.fleet import parse_fleet
from flotilla.rig.runner import Rig, RigError

ONE_MEMBER = {"hub": {"name": "h"}, "members": []}


def _children() -> set[int]:
    me = os.getpid()
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def test_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        fleet = parse_fleet({"hub": {"name": "h", "port": port}})
        before = _children()
        with pytest.raises(RigError, match=f"port 127.0.0.1:{port} is already in use"):
            Rig(fleet=fleet, workdir=tmp_path, verbose=False).up()
        assert _children() == before


def test_missing_binary(tmp_path: Path) -> None:
    fake = dataclasses.replace(binaries.locate(), kube_apiserver=tmp_path / "nope" / "kube-apiserver")
    before = _children()
    with pytest.raises(RigError, match=r"missing rig binaries: .*nope/kube-apiserver"):
        Rig(fleet=parse_fleet(ONE_MEMBER), workdir=tmp_path / "w", binaries=fake, verbose=False).up()
    assert _children() == before


def test_cluster_that_never_becomes_ready(tmp_path: Path) -> None:
    stuck = tmp_path / "kube-apiserver"
    stuck.write_text("#!/bin/sh\nexec sleep 600\n")
    stuck.chmod(0o755)
    fake = dataclasses.replace(binaries.locate(), kube_apiserver=stuck)
    before = _children()
    with pytest.raises(RigError, match="did not become ready within 3s"):
        Rig(fleet=parse_fleet(ONE_MEMBER), workdir=tmp_path / "w", binaries=fake, verbose=False).up(timeout=3)
    assert _children() == before
