"""The cdo_linear strategy against ansible's linear: the same events for every host, fewer workers.

Real ansible-playbook runs of one play (data/playbooks/conditions) on three local
hosts, through ansible-runner as the runner runs them, once with linear and once
with cdo_linear. Every event a callback sees (start, ok, skipped, failed,
include, stats) must be the same per host, in the same order, with the same
result; across hosts ansible promises no order, so none is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from cluster_discovery_operator.running import STRATEGY, STRATEGY_PLUGINS

from tests.kubeconfigs import inline_credentials_kubeconfig

PLAY = Path(__file__).resolve().parent / "data" / "playbooks" / "conditions"
# Tasks whose false condition the strategy decides; every other skip still takes a worker.
DECIDED = {
    "Runs where flag is yes",
    "Skipped under no_log",
    "Inside the block",
    "Two conditions, the second false",
    "A connection variable",
    "A fact not set",
    "A bare false",
}
# Tasks whose action declares it needs no worker (action_plugins/worker_free.py) and that the strategy runs itself.
WORKER_FREE = {
    "An action that needs no worker",
    "It fails where asked and the play goes on",
    "What it raises is a failure of the task",
    "Its result is hidden under no_log",
    "A Kubernetes request that does not wait needs no worker",  # kubernetes.core's, known to the strategy
}
# What differs between two runs of the same play whatever the strategy.
VOLATILE = {"uuid", "parent_uuid", "created", "pid", "start", "end", "duration", "counter", "start_line", "end_line"}


def _environment(strategy: str) -> dict[str, str]:
    return {
        "ANSIBLE_STRATEGY_PLUGINS": os.fspath(STRATEGY_PLUGINS),
        "ANSIBLE_STRATEGY": strategy,
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "False",
        # An API server address where nothing listens: kubernetes.core's modules fail at once, alike under both.
        "K8S_AUTH_KUBECONFIG": os.fspath(PLAY / "unreachable.kubeconfig"),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in VOLATILE and not key.endswith("_uuid")}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


def _events_per_host(tmp_path: Path, strategy: str) -> dict[str, list[tuple[str, str, Any]]]:
    private = tmp_path / strategy
    (private / "project").mkdir(parents=True)
    for name in ("play.yml", "included.yml", "action_plugins/worker_free.py"):
        (private / "project" / name).parent.mkdir(exist_ok=True)
        (private / "project" / name).write_text((PLAY / name).read_text())
    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> bool:
        events.append(event)
        return True

    result = ansible_runner.run(
        private_data_dir=os.fspath(private),
        playbook="play.yml",
        inventory=os.fspath(PLAY / "inventory.ini"),
        envvars=_environment(strategy),
        forks=4,
        quiet=True,
        event_handler=keep,
    )
    assert result.rc == 0, result.stdout.read()
    per_host: dict[str, list[tuple[str, str, Any]]] = defaultdict(list)
    for event in events:
        data = event.get("event_data", {})
        if event["event"] == "playbook_on_stats":
            per_host["stats"].append((event["event"], "", _stable({k: data[k] for k in ("ok", "failures", "skipped")})))
        elif data.get("host"):
            per_host[data["host"]].append((event["event"], data.get("task", ""), _stable(data.get("res"))))
    return dict(per_host)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("strategies")
    return _events_per_host(tmp_path, "linear"), _events_per_host(tmp_path, STRATEGY)


def test_every_host_sees_the_same_events_and_results_as_under_linear(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    linear, ours = both
    assert set(ours) == set(linear) == {"h1", "h2", "h3", "stats"}
    for host in linear:
        assert ours[host] == linear[host], host
    skipped = {
        (host, task) for host, events in linear.items() for event, task, _ in events if event == "runner_on_skipped"
    }
    # The play exercises what it claims: each decided task is skipped somewhere, false conditions and all.
    assert {task for _, task in skipped} >= DECIDED
    failed = [task for events in linear.values() for event, task, _ in events if event == "runner_on_failed"]
    assert sorted(failed) == sorted(
        ["An undefined variable fails as in linear"] * 3
        + ["It fails where asked and the play goes on"]
        + ["What it raises is a failure of the task"] * 3
        + ["A Kubernetes request that does not wait needs no worker"] * 3
        + ["A Kubernetes request that waits takes a worker"] * 3
    )
    # The worker-free action ran on every host, each with its own arguments, and what it raised was a task failure.
    ran = {host: {task: res for event, task, res in events if task in WORKER_FREE} for host, events in linear.items()}
    for host, number in (("h1", 1), ("h2", 2), ("h3", 3)):
        assert ran[host]["An action that needs no worker"]["msg"] == f"{host} has {number}"
        assert ran[host]["An action that needs no worker"]["changed"] is (number > 1)
        assert f"asked to raise: {host}" in ran[host]["What it raises is a failure of the task"]["msg"]
        assert "secret" not in str(ran[host]["Its result is hidden under no_log"])
        # kubernetes.core's module ran, in its own process, and found nobody at the API server's address.
        assert "Connection refused" in str(ran[host]["A Kubernetes request that does not wait needs no worker"])


def _workers_started(strategy: str) -> int:
    """ansible-playbook's own debug output says each time it starts a worker."""
    completed = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            os.fspath(PLAY / "inventory.ini"),
            "--forks",
            "4",
            os.fspath(PLAY / "play.yml"),
        ],
        env={**os.environ, **_environment(strategy), "ANSIBLE_DEBUG": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.count("worker is ")


def test_a_false_condition_it_can_decide_and_a_worker_free_action_take_no_worker(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    linear, _ = both
    spared = sum(
        1
        for host, events in linear.items()
        for event, task, _ in events
        if (event == "runner_on_skipped" and task in DECIDED) or (event == "runner_on_start" and task in WORKER_FREE)
    )
    assert spared == 18 + 5 * 3
    assert _workers_started(STRATEGY) == _workers_started("linear") - spared


def _imported_in_a_worker(tmp_path: Path, strategy: str) -> str:
    """Whether the Kubernetes client was imported in a worker before its task imported anything, as it says."""
    (tmp_path / "filter_plugins").mkdir(parents=True)
    (tmp_path / "filter_plugins" / "imported.py").write_text(
        "import sys\n\n\nclass FilterModule:\n"
        "    def filters(self):\n        return {'imported': lambda name: name in sys.modules}\n"
    )
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"{{ 'kubernetes.client' | imported }}\"\n"
    )
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "play.yml"],
        env={**os.environ, **_environment(strategy)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


def test_workers_start_with_the_kubernetes_client_imported(tmp_path: Path) -> None:
    # A worker that reads objects with query('kubernetes.core.k8s', ...) does not import the client again.
    assert '"msg": true' in _imported_in_a_worker(tmp_path / "cdo", STRATEGY)
    assert '"msg": false' in _imported_in_a_worker(tmp_path / "linear", "linear")


def _left_in_tmpdir(tmp_path: Path, strategy: str) -> list[str]:
    """What a play whose worker reads objects through kubernetes.core's lookup leaves in its TMPDIR, with a
    kubeconfig holding its CA, client certificate and key inline (an operator run out of its cluster)."""

    tmp_path.mkdir()
    kubeconfig = tmp_path / "inline.kubeconfig"
    kubeconfig.write_text(json.dumps(inline_credentials_kubeconfig()))
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ query('kubernetes.core.k8s', api_version='v1', kind='Namespace') }}\"\n"
        "      ignore_errors: true\n"
    )
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "play.yml"],
        env={
            **os.environ,
            **_environment(strategy),
            "K8S_AUTH_KUBECONFIG": os.fspath(kubeconfig),
            "TMPDIR": os.fspath(temporary),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ignoring" in completed.stdout  # the lookup ran, and found nobody at the API server's address
    return sorted(path.name for path in temporary.iterdir())


def test_a_worker_that_reads_the_kubeconfig_leaves_no_copy_of_its_key(tmp_path: Path) -> None:
    # Under linear each such worker leaves the CA, the certificate and the key (it ends without exit handlers).
    assert len(_left_in_tmpdir(tmp_path / "linear", "linear")) == 3
    assert _left_in_tmpdir(tmp_path / "cdo", STRATEGY) == []
