"""The console script on bad input: one clear line and exit code 2, never a traceback.

Runs the installed ``cluster-discovery-operator`` as a subprocess (as a Pod
would), with inputs that must be refused before any cluster is contacted: a
malformed watches.yaml, a missing one, bad flags, an unusable kubeconfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_discovery_operator import cli
from cluster_discovery_operator.settings import Settings

SCRIPT = Path(sys.executable).parent / "cluster-discovery-operator"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "WATCH_NAMESPACE")}
    env["HOME"] = str(cwd)
    return subprocess.run(
        [str(SCRIPT), "--metrics-bind-address", "0", "--health-probe-bind-address", "0", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_malformed_watches_file_names_entry_and_field(tmp_path: Path) -> None:
    watches = tmp_path / "watches.yaml"
    watches.write_text("- {version: v1alpha1, kind: SwarmPool, role: r, reconcilePeriod: 5 minutes}\n")
    result = run("--watches-file", str(watches), cwd=tmp_path)
    assert result.returncode == 2
    line = error_line(result)
    assert line["msg"] == "invalid watches file"
    assert "entry 1 (kind SwarmPool): field 'reconcilePeriod'" in str(line["error"])


def test_a_missing_watches_file_is_reported(tmp_path: Path) -> None:
    result = run("--watches-file", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot be read" in str(error_line(result)["error"])


def test_an_unusable_kubeconfig_is_reported(tmp_path: Path) -> None:
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    watches = tmp_path / "watches.yaml"
    watches.write_text("- {version: v1, kind: Thing, role: r}\n")
    result = run("--watches-file", str(watches), "--kubeconfig", str(tmp_path / "absent-kubeconfig"), cwd=tmp_path)
    assert result.returncode == 2
    line = error_line(result)
    assert line["msg"] == "no Kubernetes configuration"
    assert "absent-kubeconfig" in str(line["error"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--max-concurrent-reconciles", "0"], "expected at least 1", id="zero-workers"),
        pytest.param(["--batch-window", "soon"], "invalid duration", id="bad-duration"),
        pytest.param(["--min-reconcile-period=-1s"], "is negative", id="negative-duration"),
        pytest.param(["--metrics-secure", "maybe"], "expected true or false", id="bad-bool"),
        pytest.param(["--health-probe-bind-address", "nowhere"], "expected host:port", id="bad-address"),
    ],
)
def test_bad_flags_are_refused_with_usage(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_a_renew_deadline_longer_than_the_lease_is_refused(tmp_path: Path) -> None:
    result = run("--leader-elect-lease-duration", "5s", "--leader-elect-renew-deadline", "10s", cwd=tmp_path)
    assert result.returncode == 2
    assert "renew-deadline must be shorter" in str(error_line(result)["error"])


def settings(*args: str) -> Settings:
    """The settings the operator's command line ``args`` give."""
    return cli.settings_from(cli.build_parser().parse_args(list(args)))


def test_the_shortest_annotated_period_is_a_minute_unless_the_admin_says_otherwise() -> None:
    assert settings().queueing.min_reconcile_period == 60.0
    assert settings("--min-reconcile-period=0").queueing.min_reconcile_period == 0.0
    assert settings("--min-reconcile-period=2m30s").queueing.min_reconcile_period == 150.0


def test_role_metrics_are_taken_between_runs_only_on_a_socket_the_admin_names() -> None:
    assert settings().metrics.role_metrics_socket is None
    chosen = settings("--role-metrics-socket=/tmp/role-metrics.sock")
    assert chosen.metrics.role_metrics_socket == Path("/tmp/role-metrics.sock")


def test_the_playbook_zygote_gives_its_imports_back_after_ten_seconds_without_a_run_unless_told_otherwise() -> None:
    assert settings().running.playbook_zygote_release_after == 10.0
    assert settings("--playbook-zygote-release-after=0").running.playbook_zygote_release_after == 0.0
    assert settings("--playbook-zygote-release-after=5m").running.playbook_zygote_release_after == 300.0
