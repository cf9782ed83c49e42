"""Run the collection's modules for real: a playbook through ansible-runner, as the operator runs roles.

``run_tasks`` writes a localhost play, runs ``ansible-playbook`` of this
virtualenv at ``-vvv`` (check and diff mode on request) and returns each
named task's result, plus every byte the run printed or left in its artifact
folder (events, stdout, command line), so a test can assert that no key ever
appears anywhere. Modules run with this virtualenv's Python and the run with its
ansible-playbook, or both start from the ``zygotes`` given (the fixture of that
name: the operator's module and playbook zygotes).
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

_runs = itertools.count(1)


@dataclass(frozen=True)
class Zygotes:
    """What a run starts its processes from: modules' ``ansible_python_interpreter``, the environment it needs,
    and folders put first on PATH (where ansible-runner finds ``ansible-playbook``)."""

    interpreter: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()


@dataclass
class Run:
    status: str
    rc: int
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task name -> the module's result (``res`` of its ok/failed/skipped event)."""
    output: str = ""
    """Everything the run wrote: stdout at -vvv and every artifact file."""

    def __getitem__(self, task: str) -> dict[str, Any]:
        return self.results[task]

    def assert_never_shows(self, *values: str) -> None:
        for value in values:
            assert value not in self.output, "a secret value appears in the playbook run's output or artifacts"


def run_tasks(
    tasks: list[dict[str, Any]],
    *,
    base_dir: Path,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    extravars: dict[str, Any] | None = None,
    zygotes: Zygotes | None = None,
) -> Run:
    """Run ``tasks`` on localhost (no facts) with the collection and kubernetes.core; never raises on task failure."""
    private = base_dir / f"ansible-run-{next(_runs)}"
    (private / "project").mkdir(parents=True)
    play = [{"name": "Integration run", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    (private / "project" / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    zygotes = zygotes or Zygotes()
    cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": os.environ["ANSIBLE_COLLECTIONS_PATH"],
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        # This virtualenv's ansible-playbook, whatever the caller's PATH.
        "PATH": os.pathsep.join([*zygotes.path, os.fspath(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        **zygotes.env,
        **(env or {}),
    }
    runner = ansible_runner.run(
        private_data_dir=os.fspath(private),
        playbook="play.yml",
        inventory=f"localhost ansible_connection=local ansible_python_interpreter={zygotes.interpreter}",
        envvars=envvars,
        extravars=extravars or {},
        cmdline=cmdline or None,
        verbosity=3,
        quiet=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for event in runner.events:
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            data = event["event_data"]
            # The event's res lacks the `failed` key; its event type carries it.
            results[data.get("task", "")] = {**data.get("res", {}), "failed": event["event"] == "runner_on_failed"}
    output = [runner.stdout.read()]
    for path in sorted((private / "artifacts").rglob("*")):
        if path.is_file():
            output.append(path.read_text(errors="replace"))
    return Run(status=runner.status, rc=runner.rc, results=results, output="\n".join(output))
