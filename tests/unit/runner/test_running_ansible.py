"""Real ansible-runner runs of a local role: one object per process, and several sharing one.

No network: the role only uses debug, fail, block/rescue and the collection's
requeue_after and osdk_metric modules, with connection local. Covered: the
extra vars reach the role with native types and beat a role's ``vars/`` and
``set_fact`` (extra-var precedence, as under operator-sdk), per-object failure
messages, rescued and ignored failures not counting, requeue_after and
osdk_metric read per object, ``ansibleResult`` counts, artifacts rotation and
the ``latest`` link, that a shared process gives every object exactly the
result it gets alone, and that each run hands ansible its own inputs in files
(a reused folder, a batch larger than one command-line argument).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_discovery_operator.running import RUN_MARKER, AnsibleRunner, RunItem, RunOutcome, marked_processes
from cluster_discovery_operator.settings import KubeSettings, RunningSettings
from cluster_discovery_operator.watches import GroupVersionKind, Watch

from tests.unit.runner.run_items import run_item

ROLE = Path(__file__).resolve().parent / "data" / "roles" / "echo"
WATCH = Watch(gvk=GroupVersionKind("test.example.com", "v1", "Echo"), role=str(ROLE), max_runner_artifacts=2)


def _obj(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.example.com/v1",
        "kind": "Echo",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": spec,
    }


def _item(tmp_path: Path, obj: dict[str, Any]) -> RunItem:
    return run_item(WATCH, tmp_path, obj)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnsibleRunner]:
    started = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path_factory.mktemp("runner")), KubeSettings())
    yield started
    started.close()


def _run(runner: AnsibleRunner, tmp_path: Path, objects: list[dict[str, Any]]) -> RunOutcome:
    return runner.run(
        WATCH, [_item(tmp_path, o) for o in objects], batch_dir=tmp_path / "batch", cancel=threading.Event()
    )


# A shared process needs the same contract keys for every object (the controller groups them so).
OBJECTS = [
    _obj("a", size=3, tagList=["x", "y"], failMessage="", requeue=""),
    _obj("b", size=5, tagList=[], failMessage="no room", requeue=""),
    _obj("c", size=0, tagList=[], failMessage="", requeue="45s"),
]


def _summary(outcome: RunOutcome, host: str) -> dict[str, Any]:
    result = outcome.hosts[host]
    return {
        "failed": result.failed,
        "message": result.message,
        "counts": result.counts,
        "requeue_after": result.requeue_after,
        "metrics": result.metrics,
    }


def test_one_object_per_process_keeps_operator_sdks_shape(runner: AnsibleRunner, tmp_path: Path) -> None:
    """A single object runs on localhost; extra vars beat vars/ and set_fact; the artifacts are linked."""
    outcome = _run(runner, tmp_path, [OBJECTS[0]])
    assert list(outcome.hosts) == ["localhost"]
    result = outcome.hosts["localhost"]
    assert not result.failed, result.message
    assert result.metrics == [
        {
            "name": "echo_size",
            "description": "Size each echo object asked for",
            "labels": {"name": "a"},
            "gauge": {"set": 3.0},
        }
    ]
    assert result.counts["ok"] >= 4 and result.counts.get("failures", 0) == 0
    assert result.counts.get("rescued") == 1 and result.counts.get("ignored") == 1
    latest = tmp_path / "objects" / "a" / "latest"
    assert latest.resolve() == outcome.artifacts_dir.resolve()
    stdout = (outcome.artifacts_dir / "stdout").read_text()
    assert "a size=3 type=int tags=['x', 'y']" in stdout


def test_a_shared_process_gives_each_object_its_own_exact_result(runner: AnsibleRunner, tmp_path: Path) -> None:
    """Three objects in one ansible-playbook process: same per-object results as three separate runs."""
    shared = _run(runner, tmp_path / "shared", OBJECTS)
    assert set(shared.hosts) == {"ns/a", "ns/b", "ns/c"}
    alone = {o["metadata"]["name"]: _run(runner, tmp_path / o["metadata"]["name"], [o]) for o in OBJECTS}
    for name, single in alone.items():
        assert _summary(shared, f"ns/{name}") == _summary(single, "localhost"), name
    assert shared.hosts["ns/b"].failed
    assert shared.hosts["ns/b"].message == "b refused: no room"
    assert shared.hosts["ns/c"].requeue_after == 45.0
    # The controller finds each object's outcome by its reconcile id, never by position or host name.
    assert shared.by_reconcile_id == {f"run-{name}": shared.hosts[f"ns/{name}"] for name in "abc"}
    stdout = (shared.artifacts_dir / "stdout").read_text()
    for expected in ("a size=3 type=int", "b size=5 type=int", "c size=0 type=int"):
        assert expected in stdout


def test_artifacts_are_rotated_to_max_runner_artifacts(runner: AnsibleRunner, tmp_path: Path) -> None:
    """maxRunnerArtifacts 2: after three runs of one object, two artifact folders remain."""
    for index in range(3):
        item = _item(tmp_path, OBJECTS[0])
        item = RunItem(**{**item.__dict__, "reconcile_id": f"run-{index}"})
        runner.run(WATCH, [item], batch_dir=tmp_path / "batch", cancel=threading.Event())
    kept = sorted(p.name for p in (tmp_path / "objects" / "a" / "artifacts").iterdir())
    assert kept == ["run-1", "run-2"]


def test_objects_with_different_contract_keys_cannot_share_a_process(runner: AnsibleRunner, tmp_path: Path) -> None:
    """A key missing for one object would silently take the role default: refused before starting ansible."""
    items = [_item(tmp_path, _obj("x", size=1)), _item(tmp_path, _obj("y", size=1, extra=True))]
    with pytest.raises(ValueError, match="same contract keys"):
        runner.run(WATCH, items, batch_dir=tmp_path / "batch", cancel=threading.Event())


def test_a_broken_role_reference_fails_every_object_with_ansibles_message(
    runner: AnsibleRunner, tmp_path: Path
) -> None:
    """No playbook_on_stats (ansible stops before any task): each object fails with the tail of ansible's output."""
    watch = Watch(gvk=WATCH.gvk, role=str(tmp_path / "no-such-role"))
    items = [_item(tmp_path, OBJECTS[0]), _item(tmp_path, OBJECTS[2])]
    outcome = runner.run(watch, items, batch_dir=tmp_path / "batch", cancel=threading.Event())
    assert not outcome.stats_received
    for result in outcome.hosts.values():
        assert result.failed
        assert "ended without a playbook result" in result.message
        assert "no-such-role" in result.message


def test_a_cancelled_run_leaves_no_process_and_no_temporary_file_behind(runner: AnsibleRunner, tmp_path: Path) -> None:
    """ansible's workers leave ansible-playbook's process group (setsid); cancelling must still end them.

    The killed module leaves the folder ansible unpacked it into: it must be in the run's own temporary
    folder, which goes with the run, not in the operator's /tmp, where each cancelled run would add one.
    """
    cancel = threading.Event()
    item = _item(tmp_path, _obj("slow", sleepSeconds=300))
    marker = f"{os.getpid()}/{item.reconcile_id}"
    seen_running: list[int] = []
    unpacked: list[Path] = []

    def cancel_once_sleeping() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (seen_running and unpacked):
            seen_running.extend(marked_processes(marker))
            unpacked.extend((item.private_dir / "tmp").glob("ansible_*_payload_*"))
            time.sleep(0.2)
        time.sleep(1)
        cancel.set()

    helper = threading.Thread(target=cancel_once_sleeping)
    helper.start()
    began = time.monotonic()
    outcome = runner.run(WATCH, [item], batch_dir=tmp_path / "batch", cancel=cancel)
    helper.join()
    assert seen_running, "the run's processes carry the marker"
    assert unpacked, "the sleeping module was unpacked in the run's temporary folder"
    assert outcome.status == "canceled"
    assert outcome.hosts["localhost"].failed
    assert time.monotonic() - began < 60
    assert marked_processes(marker) == []
    assert not (item.private_dir / "tmp").exists()


def _command(outcome: RunOutcome) -> list[str]:
    command: list[str] = json.loads((outcome.artifacts_dir / "command").read_text())["command"]
    return command


def test_each_run_hands_ansible_its_own_extra_vars_in_a_file(runner: AnsibleRunner, tmp_path: Path) -> None:
    """An object's folder is reused: its second run's extra vars are in env/extravars, not on the command line.

    ansible-runner writes ``env/extravars`` only when the file does not exist yet, and otherwise passes the
    extra vars inline as one argument, which the kernel limits to 128 KiB.
    """
    _run(runner, tmp_path, [_obj("a", size=3, tagList=[], failMessage="", requeue="")])
    item = _item(tmp_path, _obj("a", size=7, tagList=[], failMessage="", requeue=""))
    item = RunItem(**{**item.__dict__, "reconcile_id": "run-a-again"})
    second = runner.run(WATCH, [item], batch_dir=tmp_path / "batch", cancel=threading.Event())
    assert not second.hosts["localhost"].failed, second.hosts["localhost"].message
    assert "a size=7 type=int" in (second.artifacts_dir / "stdout").read_text()
    extravars = json.loads((tmp_path / "objects" / "a" / "env" / "extravars").read_text())
    assert extravars["size"] == 7
    assert not [arg for arg in _command(second) if arg.startswith("{")]
    # The environment is this run's too: its marker is how a cancelled run's processes are found.
    envvars = json.loads((tmp_path / "objects" / "a" / "env" / "envvars").read_text())
    assert envvars[RUN_MARKER] == f"{os.getpid()}/run-a-again"


def test_a_batch_larger_than_one_command_line_argument_runs_again(runner: AnsibleRunner, tmp_path: Path) -> None:
    """Three objects of 50 KiB each share a process twice in the same batch folder: both runs start."""
    note = "n" * 50 * 1024

    def batch(size: int) -> list[dict[str, Any]]:
        return [_obj(name, size=size, tagList=[], failMessage="", requeue="", note=note) for name in "xyz"]

    _run(runner, tmp_path, batch(1))
    second = _run(runner, tmp_path, batch(2))
    stdout = (second.artifacts_dir / "stdout").read_text()
    for name in "xyz":
        assert not second.hosts[f"ns/{name}"].failed, second.hosts[f"ns/{name}"].message
        assert f"{name} size=2 type=int" in stdout
