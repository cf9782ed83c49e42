"""The alert rules users load into Prometheus: checked and unit-tested by the real promtool (issue 17).

promtool is built from the prometheus Go module by the test bed. Its unit tests
(tests/prometheus/prometheus-rules.test.yaml) feed series shaped as the
operator exposes them and assert which alerts fire when, with their rendered
summaries and descriptions.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import binaries

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "cluster-discovery"
RULES = CHART / "files" / "prometheus-rules.yaml"
RULE_TESTS = REPO / "tests" / "prometheus" / "prometheus-rules.test.yaml"
RUNBOOKS = REPO / "docs" / "runbooks.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.prometheus("promtool")), *args], capture_output=True, text=True, check=False, timeout=120
    )


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_finds_the_rules_file_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_the_alerts_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert {rule["alert"] for rule in alerts()} == firing


def test_every_alert_says_what_to_do_and_links_its_runbook() -> None:
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in alerts():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        url = annotations["runbook_url"]
        assert url.endswith("/docs/runbooks.md#" + rule["alert"].lower()), url
        assert rule["alert"].lower() in anchors, f"docs/runbooks.md has no section {rule['alert']}"


def test_the_chart_ships_the_same_rules_as_an_opt_in_prometheus_rule() -> None:
    helm = str(binaries.binary("helm", "helm"))

    def render(*values: str) -> list[dict[str, Any]]:
        argv = [helm, "template", "cluster-discovery", str(CHART), "--namespace", "cluster-discovery", *values]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    assert not [d for d in render() if d["kind"] in ("PrometheusRule", "ServiceMonitor")], "both are opt-in"
    docs = render(
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    )
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics-service")]
    assert all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    # The rules select the scrape job by name: the ServiceMonitor names it after the Service's part-of label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "cluster-discovery"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["scheme"]) == ("https", "https")
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]


def test_the_chart_ships_the_dashboard_for_grafanas_sidecar_when_asked() -> None:
    helm = str(binaries.binary("helm", "helm"))
    argv = [helm, "template", "cluster-discovery", str(CHART), "--set", "monitoring.grafanaDashboard.enabled=true"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    (config_map,) = [d for d in yaml.safe_load_all(out) if d and d["metadata"]["name"].endswith("-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["cluster-discovery.json"])
    assert dashboard == json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    targets = [target for panel in dashboard["panels"] for target in panel["targets"]]
    assert targets and all(target["expr"] and target["datasource"]["uid"] == "${datasource}" for target in targets)
