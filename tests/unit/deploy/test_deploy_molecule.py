"""molecule/: every file loads, and the scenarios hang together.

Covered: each YAML file parses; each playbook is a list of localhost plays
with named tasks; the kind scenario reuses default's prepare and verify and
imports its converge; every playbook molecule runs exists; verify finds one
test file per CRD; every sample and variable the tests use exists. Lint
(ansible-lint, yamllint) runs separately; the playbooks' behaviour against a
real API server is in tests/integration/deploy/test_deploy_install.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.deploy_support import REPO_ROOT, SAMPLES_DIR

MOLECULE_DIR = REPO_ROOT / "molecule"
FILES = sorted(MOLECULE_DIR.rglob("*.yml"))
SCENARIOS = {path.parent.name: yaml.safe_load(path.read_text()) for path in MOLECULE_DIR.glob("*/molecule.yml")}
PLAYBOOK_STEPS = ("create", "prepare", "converge", "verify", "destroy")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _is_tasks_file(path: Path) -> bool:
    return path.parent.name == "tasks"


def _tasks(path: Path) -> list[dict[str, Any]]:
    """Every task of a playbook or tasks file, blocks and rescues flattened."""
    doc = _load(path)
    found: list[dict[str, Any]] = []

    def walk(tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            found.append(task)
            for key in ("block", "rescue", "always"):
                walk(task.get(key, []))

    if _is_tasks_file(path):
        walk(doc)
    else:
        for play in doc:
            walk(play.get("tasks", []))
    return found


def test_the_three_scenarios_exist() -> None:
    assert set(SCENARIOS) == {"default", "kind", "testbed"}
    assert len(FILES) >= 12


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(MOLECULE_DIR)))
def test_every_molecule_file_loads(path: Path) -> None:
    doc = _load(path)
    if path.name == "molecule.yml":
        assert isinstance(doc, dict)
    elif _is_tasks_file(path):
        assert isinstance(doc, list) and all(isinstance(task, dict) for task in doc)
    else:
        assert isinstance(doc, list)
        for play in doc:
            if "ansible.builtin.import_playbook" in play:
                continue
            assert play["hosts"] == "localhost" and play["connection"] == "local"
            assert play["gather_facts"] is False


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "molecule.yml"], ids=lambda p: p.name)
def test_every_task_is_named_and_uses_fully_qualified_modules(path: Path) -> None:
    for task in _tasks(path):
        assert task.get("name"), f"unnamed task in {path}: {task}"
        modules = [k for k in task if "." in k and k.split(".")[0] in {"ansible", "kubernetes"}]
        if not {"block", "rescue"} & set(task):
            assert modules, f"{path}: task {task['name']!r} does not use a fully qualified module"


@pytest.mark.parametrize("scenario", ["default", "kind"])
def test_each_scenario_uses_the_delegated_driver_and_finds_its_playbooks(scenario: str) -> None:
    config = SCENARIOS[scenario]
    assert config["driver"]["name"] == "default", "molecule's delegated driver is named 'default'"
    playbooks = config.get("ansible", {}).get("playbooks", {})
    for step in PLAYBOOK_STEPS:
        path = (MOLECULE_DIR / scenario / playbooks.get(step, f"{step}.yml")).resolve()
        assert path.is_file(), f"{scenario}: no {step} playbook at {path}"


def test_the_kind_scenario_reuses_default_prepare_verify_and_converge() -> None:
    assert SCENARIOS["kind"]["ansible"]["playbooks"] == {
        "prepare": "../default/prepare.yml",
        "verify": "../default/verify.yml",
    }
    converge = _load(MOLECULE_DIR / "kind" / "converge.yml")
    assert converge[-1] == {"name": "Deploy the operator", "ansible.builtin.import_playbook": "../default/converge.yml"}


def test_the_kind_scenario_loads_the_image_it_builds_and_never_pulls_it() -> None:
    host_vars = SCENARIOS["kind"]["provisioner"]["inventory"]["host_vars"]["localhost"]
    assert host_vars["operator_pull_policy"] == "Never"
    commands = [
        task["ansible.builtin.command"]["argv"]
        for task in _tasks(MOLECULE_DIR / "kind" / "converge.yml")
        if "ansible.builtin.command" in task
    ]
    assert commands[0][1:4] == ["build", "--tag", "{{ operator_image }}"]
    assert commands[1][:3] == ["kind", "load", "docker-image"]
    assert commands[1][-1] == "{{ operator_image }}"
    kubeconfig = "${MOLECULE_EPHEMERAL_DIRECTORY}/kubeconfig"
    assert SCENARIOS["kind"]["ansible"]["env"]["KUBECONFIG"] == kubeconfig
    assert host_vars["kubeconfig"] == kubeconfig


def test_verify_runs_one_test_file_per_kind() -> None:
    tests = sorted(p.name for p in (MOLECULE_DIR / "default" / "tasks").glob("*_test.yml"))
    assert tests == ["identity_test.yml", "peer_test.yml", "swarmpool_test.yml"]
    verify = (MOLECULE_DIR / "default" / "verify.yml").read_text()
    assert "playbook_dir ~ '/tasks/*_test.yml'" in verify


def test_verify_dumps_resources_and_the_manager_log_then_fails_again() -> None:
    (play,) = _load(MOLECULE_DIR / "default" / "verify.yml")
    (block,) = play["tasks"]
    rescue_modules = [next(k for k in task if k.startswith(("ansible.", "kubernetes."))) for task in block["rescue"]]
    assert "kubernetes.core.k8s_info" in rescue_modules
    assert "kubernetes.core.k8s_log" in rescue_modules
    assert rescue_modules[-1] == "ansible.builtin.fail"
    kinds = [item["kind"] for item in block["rescue"][0]["loop"]]
    assert {"SwarmPool", "Identity", "Peer", "Pod"} <= set(kinds)


def test_every_sample_the_tests_load_exists() -> None:
    named = set()
    for path in (MOLECULE_DIR / "default" / "tasks").glob("*.yml"):
        named.update(re.findall(r"'/(peerdiscovery_v1alpha1_[a-z_]+\.yaml)'", path.read_text()))
    assert named, "the tests load no sample"
    for name in named:
        assert (SAMPLES_DIR / name).is_file(), name


def test_every_variable_the_playbooks_use_is_defined_by_both_scenarios() -> None:
    used = set()
    for path in (MOLECULE_DIR / "default").rglob("*.yml"):
        used.update(
            re.findall(
                r"\b(operator_[a-z_]+|[a-z]+_dir|kustomize_binary|ipfs_version|fake_load_balancer)\b", path.read_text()
            )
        )
    used.discard("playbook_dir")
    for scenario, config in SCENARIOS.items():
        inventory = config["provisioner"]["inventory"]
        defined = set(inventory["group_vars"]["all"]) | set(inventory["host_vars"]["localhost"])
        assert used - {"operator_resources"} <= defined, (scenario, sorted(used - defined))
