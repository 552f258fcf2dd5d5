"""``kubectl flotilla quota``: hard, used and left per resource, fleet-wide and per cluster."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import cli


def frq(status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "gpus", "namespace": "team-a"},
        "spec": {"overall": {"nvidia.com/gpu": 64, "memory": "8Ti"}},
    }
    if status is not None:
        body["status"] = status
    return body


def test_rows_fleet_wide_then_per_cluster() -> None:
    rows = cli.quota_rows(
        [
            frq(
                {
                    "observedGeneration": 1,
                    "conditions": [{"type": "Exceeded", "status": "False"}],
                    "overallUsed": {"nvidia.com/gpu": "56", "memory": "1Ti"},
                    "aggregatedStatus": [
                        {
                            "clusterName": "a",
                            "hard": {"nvidia.com/gpu": "32"},
                            "used": {"nvidia.com/gpu": "24"},
                        },
                        {"clusterName": "b", "used": {"nvidia.com/gpu": "32"}},
                    ],
                }
            )
        ]
    )
    table = {(r["resource"], r["cluster"]): (r["hard"], r["used"], r["left"]) for r in rows}
    assert table[("nvidia.com/gpu", "*")] == ("64", "56", "8")
    assert table[("memory", "*")] == ("8Ti", "1Ti", "7Ti")
    assert table[("nvidia.com/gpu", "a")] == ("32", "24", "8")
    assert table[("nvidia.com/gpu", "b")] == ("-", "32", "-")
    assert rows[0]["status"] == "OK"


def test_not_yet_computed_and_exceeded() -> None:
    assert cli.quota_rows([frq(None)])[0]["status"] == "Pending"
    over = frq(
        {
            "observedGeneration": 1,
            "conditions": [{"type": "Exceeded", "status": "True"}],
            "overallUsed": {"nvidia.com/gpu": "72"},
        }
    )
    row = cli.quota_rows([over])[1]  # memory sorts first
    assert (row["resource"], row["used"], row["left"], row["status"]) == (
        "nvidia.com/gpu",
        "72",
        "0",
        "Exceeded",
    )


def test_quota_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["quota", "-n", "team-a", "-o", "json"])
    assert args.func is cli._cmd_quota and args.namespace == "team-a"
