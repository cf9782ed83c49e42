"""The Helm chart charts/cluster-discovery, read offline.

Covered: its copies of the CRDs and of watches.yaml are identical to the
originals, its versions move with the collection's and the runner's, its
values validate against values.schema.json (and typos or malformed RBAC rules
do not), the default Identity rules are read-only, the metrics-reader
ClusterRole is opt-in, and the operator's rules equal config/rbac/role.yaml.
`helm lint`, `helm template` and applying the result to a real API server are
in tests/integration/deploy/test_deploy_install.py.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.deploy.deploy_support import (
    CHART_DIR,
    CONFIG_DIR,
    CRD_DIR,
    REPO_ROOT,
    crd_files,
    load_yaml_documents,
    rbac_triples,
)

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def test_the_chart_crds_are_byte_identical_to_config_crd_bases() -> None:
    chart_crds = sorted(p.name for p in (CHART_DIR / "crds").iterdir())
    assert chart_crds == [p.name for p in crd_files()], "run `make chart-sync`"
    for name in chart_crds:
        assert (CHART_DIR / "crds" / name).read_bytes() == (CRD_DIR / name).read_bytes(), (
            f"{name}: run `make chart-sync`"
        )


def test_the_chart_watches_file_is_byte_identical_to_the_repository_watches_yaml() -> None:
    assert (REPO_ROOT / "watches.yaml").is_file(), "the operator's watches.yaml is missing"
    assert (CHART_DIR / "files" / "watches.yaml").read_bytes() == (REPO_ROOT / "watches.yaml").read_bytes(), (
        "run `make chart-sync`"
    )


def test_the_chart_version_moves_with_the_collection_and_the_runner() -> None:
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    runner = tomllib.loads((REPO_ROOT / "runner" / "pyproject.toml").read_text())
    assert CHART["apiVersion"] == "v2"
    assert CHART["name"] == "cluster-discovery"
    assert CHART["version"] == CHART["appVersion"] == galaxy["version"] == runner["project"]["version"]


def test_the_default_values_validate_against_the_schema() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


def test_the_default_identity_rules_only_read_pods_services_and_configmaps() -> None:
    assert VALUES["rbac"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": ["get", "list", "watch"]}
    ]


def test_the_values_mirror_the_manager_flags() -> None:
    assert VALUES["healthProbe"]["port"] == 8081
    assert VALUES["metrics"]["port"] == VALUES["metrics"]["service"]["port"] == 8443
    assert VALUES["metrics"]["secure"] is True
    assert VALUES["leaderElection"]["enabled"] is True
    assert VALUES["metrics"]["reader"]["name"] == "metrics-reader"
    assert VALUES["image"]["repository"] == "ghcr.io/irt-saintexupery/cluster-discovery-operator"


def test_the_metrics_reader_cluster_role_is_opt_in() -> None:
    """The original manual creates ClusterRole metrics-reader itself: a release owning that name would collide."""
    assert VALUES["metrics"]["reader"]["create"] is False
    template = (CHART_DIR / "templates" / "metrics-rbac.yaml").read_text()
    assert "{{- if and .Values.metrics.enabled .Values.metrics.reader.create }}" in template


def _with(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(values: dict[str, Any]) -> None:
        node: Any = values
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_with(["rbac", "rules", 0, "verbs"], []), id="rule-without-verbs"),
        pytest.param(_with(["rbac", "rules", 0, "nonResourceURLs"], ["/metrics"]), id="rule-for-a-non-resource-url"),
        pytest.param(_with(["rbac", "rule"], []), id="typo-in-rbac"),
        pytest.param(
            _with(["defaultNetwork", "bootstrapNodeAddresses"], ["1.2.3.4:4001"]), id="address-not-a-multiaddr"
        ),
        pytest.param(_with(["defaultNetwork", "swarmKey", "generate"], "yes"), id="generate-not-a-boolean"),
        pytest.param(_with(["image", "pullPolicy"], "Sometimes"), id="unknown-pull-policy"),
        pytest.param(_with(["metrics", "port"], 70000), id="port-out-of-range"),
    ],
)
def test_the_schema_rejects_malformed_values(change: Callable[[dict[str, Any]], None]) -> None:
    values = copy.deepcopy(VALUES)
    change(values)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(values)


def _static_rules(template: str) -> list[dict[str, Any]]:
    """The rules of the first document of a template whose rules hold no template directives."""
    uncommented = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", template, flags=re.DOTALL)
    first = uncommented.split("\n---\n")[0]
    plain = "\n".join(line for line in first.splitlines() if "{{" not in line and "}}" not in line)
    rules: list[dict[str, Any]] = yaml.safe_load(plain)["rules"]
    return rules


def test_the_chart_gives_the_operator_the_rules_of_config_rbac() -> None:
    chart_rules = _static_rules((CHART_DIR / "templates" / "manager-rbac.yaml").read_text())
    (config_role,) = load_yaml_documents(CONFIG_DIR / "rbac" / "role.yaml")
    assert rbac_triples(chart_rules) == rbac_triples(config_role["rules"])


def test_no_template_grants_escalate_or_bind() -> None:
    for template in (CHART_DIR / "templates").glob("*.yaml"):
        assert not re.search(r'"(escalate|bind|impersonate|\*)"', template.read_text()), template.name


def test_the_watches_configmap_is_mounted_over_the_image_watches_file() -> None:
    deployment = (CHART_DIR / "templates" / "deployment.yaml").read_text()
    assert "mountPath: /opt/ansible/watches.yaml" in deployment
    assert "subPath: watches.yaml" in deployment
    assert "--watches-file=/opt/ansible/watches.yaml" in deployment
