"""The chart's Grafana dashboard and PrometheusRule: valid, and reading only series Flotilla exports.

* the dashboard JSON against a compact JSON schema of the Grafana fields it uses
  (grafana_dashboard.schema.json), plus what a schema cannot say (unique panel ids, panels within
  the 24-column grid, every ``$variable`` defined);
* the rendered PrometheusRule's groups loaded by ``promrules`` (tools/rig-bin/promrules: Prometheus'
  own rule-file parser and PromQL parser, as ``promtool check rules`` uses them), and each dashboard
  query too (as recording rules, Grafana's variables replaced by values);
* every metric name they select present in the operator's registry output.

Needs helm and promrules from the rig cache (``make binaries`` builds both); no cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import flotilla.operator  # noqa: F401  (every controller's series registered, as the operator serves them)
from flotilla.rig.binaries import cache_dir, helm_path, versions

CHART = Path(__file__).resolve().parents[2] / "charts" / "flotilla"
DASHBOARD = CHART / "dashboards" / "flotilla.json"
SCHEMA = Path(__file__).with_name("grafana_dashboard.schema.json")
ALERTS = {
    "FlotillaMemberNotReady",
    "FlotillaWorkloadsPendingTooLong",
    "FlotillaPropagationFailing",
    "FlotillaQuotaExhausted",
    "FlotillaSchedulerErrors",
}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def promrules() -> Path:
    path = cache_dir() / f"promrules-{versions()['PROMETHEUS_VERSION']}" / "promrules"
    if not path.exists():
        pytest.fail(f"{path} is missing: run tools/rig-bin/build.sh promrules (make binaries does)")
    return path


def render(*extra: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(helm_path()), "template", "fl", str(CHART), "--kube-version", "1.34.4", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def check_rules(tmp_path: Path, name: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    path = tmp_path / f"{name}.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([str(promrules()), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    return dict(report)


def exported_names() -> set[str]:
    """Every sample name the operator's /metrics can carry (a labelled series with no child yet
    still has its family in the output)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        names.add(family.name)
        names.update(family.name + s for s in SUFFIXES.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]


def test_the_dashboard_matches_the_schema_and_the_grid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dashboard, json.loads(SCHEMA.read_text()))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    defined = {v["name"] for v in dashboard["templating"]["list"]} | {"__rate_interval"}
    used = set(re.findall(r"\$\{?(\w+)", json.dumps(dashboard)))
    assert used <= defined, used - defined


def test_the_dashboard_ships_in_a_sidecar_configmap_only_when_asked() -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap"]
    (cm,) = [d for d in render("--set", "metrics.dashboard.enabled=true") if d["kind"] == "ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["flotilla.json"]) == json.loads(DASHBOARD.read_text())


def test_rules_and_dashboard_queries_load_and_read_only_exported_series(tmp_path: Path) -> None:
    assert not [d for d in render() if d["kind"] == "PrometheusRule"]
    (rule,) = [
        d for d in render("--set", "metrics.prometheusRule.enabled=true") if d["kind"] == "PrometheusRule"
    ]
    alerts = check_rules(tmp_path, "alerts", rule["spec"]["groups"])
    assert set(alerts["alerts"]) == ALERTS
    # Grafana's variables replaced by values a query can take, each query a recording rule.
    queries = [
        q.replace("$__rate_interval", "5m").replace("$cluster", ".*")
        for q in dashboard_queries(json.loads(DASHBOARD.read_text()))
    ]
    recorded = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
    panels = check_rules(tmp_path, "dashboard", [{"name": "dashboard", "rules": recorded}])
    used = set(alerts["metrics"]) | set(panels["metrics"])
    assert used, "no metric names found"
    missing = used - exported_names()
    assert not missing, f"not exported by the operator: {sorted(missing)}"


def test_the_rule_checker_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The checker can fail: an unparsable expression is an error."""
    path = tmp_path / "bad.rules.yaml"
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "g", "rules": [{"alert": "X", "expr": "sum(rate(x[5m])", "for": "1m"}]}]}
        )
    )
    result = subprocess.run([str(promrules()), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "unclosed left parenthesis" in result.stderr, result.stderr
