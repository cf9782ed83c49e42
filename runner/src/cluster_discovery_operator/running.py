"""Running roles and playbooks through ansible-runner, and reading what happened.

**The contract** (operator-sdk's ``runner.makeParameters``), built by
:func:`make_parameters`::

    {
      <spec keys, snake_cased unless snakeCaseParameters is false>,
      "ansible_operator_meta": {"name": <name>, "namespace": <namespace>},
      "_<group>_<kind>": <the whole object, as is>,        # "." and "-" become "_"
      "_<group>_<kind>_spec": <its spec, as is>,
      <the watch's vars>,
      <the finalizer's vars, on finalizer runs only>
    }

passed as extra vars (the highest precedence, so a role's defaults and vars/
never override the CR). For a role, the runner writes the playbook operator-sdk
generates: ``hosts: localhost``, ``gather_facts: false``, the role; a playbook
entry runs its own file. Each object has a private_data_dir of its own under the
artifacts root (``<group>/<version>/<kind>/<namespace>/<name>``, as operator-sdk
lays it out), rotated to maxRunnerArtifacts (or the max-runner-artifacts
annotation), outside the repository. localhost uses the runner's own Python, and
ANSIBLE_COLLECTIONS_PATH and the kubeconfig pass through. A run's TMPDIR is the
``tmp`` folder of its private_data_dir, removed when the run ends: what the
modules of a cancelled run were killed before removing goes with it.

**Sharing a process** (the fast path). Starting ansible-playbook costs about a
second of CPU before the first task, which dominates a reconcile. When several
objects of one kind need the same role at once (a burst of new objects, a
restart), :meth:`AnsibleRunner.run` runs them in one ansible-playbook process:
one inventory host per object (named ``<namespace>/<name>``, connection local,
the runner's Python), one play over those hosts, ``--max-forks`` (4) of them
at a time. The
extra vars keep the contract exactly: each contract key is an extra var whose
value is ``{{ __cdo_batch[key] }}``, and ``__cdo_batch`` is a host variable
holding that host's object's parameters only, so each host sees its own
object's values, at extra-var precedence, with native types. (One extra var
holding every object's parameters cost each host's lookups more as the batch
grew: about 10 % of a burst's CPU at 40 objects per process.) Only objects
with the same set of
contract keys, the same finalizer-ness and the same verbosity share a process.
Results stay exact per object because every ansible event names its host:
failures, ``playbook_on_stats`` counts, requeue_after and osdk_metric are read
per host. What a role sees differently in a shared process:
``inventory_hostname`` is the object's key instead of ``localhost`` and
``ansible_play_hosts`` lists the batch; a role that relies on ``run_once`` or
``hostvars['localhost']`` must run with ``--max-batch-size 1``.

**Skipping without a worker.** ansible's linear strategy forks a worker for
every task and host, skipped or not, and operator-sdk roles guard most tasks by
``when``. Unless ``--skip-in-strategy=false`` or ANSIBLE_STRATEGY is set, runs
use ``cdo_linear`` (``ansible_plugins/strategy/``): linear, except that a false
``when`` it can evaluate exactly as the worker would is reported skipped from
the strategy process, with the worker's result and events, and a task whose
action plugin sets ``RUNS_WITHOUT_WORKER`` runs there too, as does a
kubernetes.core ``k8s`` or ``k8s_info`` task that does not wait. ansible-core prints
a deprecation warning for any strategy outside ansible.builtin into each run's
stdout; the runner pins the ansible-core it is tested with, and on internals it
does not recognise the strategy is plain linear.

**Reading results.** ansible-runner's event stream (``event_handler``) is read
as operator-sdk's reconciler reads its event API: ``runner_on_failed`` events
that are not ``ignore_errors`` give the failure messages (``res.msg``), and
``playbook_on_stats`` gives ok/changed/skipped/failures for ``ansibleResult``
and decides failure (so a failure rescued by a block does not count). Two module
results are directives for the runner: ``requeue_after`` (its ``period``) and
``osdk_metric`` (its ``metric``), recognised by action name, short or FQCN
(``peerdiscovery.cluster_discovery.*`` or ``operator_sdk.util.*``). Objects
returned by kubernetes.core modules that carry an owner reference to the
reconciled object are reported, so the controller can watch their kind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from .ansible_plugins.module_payloads import STORE_VARIABLE as PAYLOAD_STORE_VARIABLE
from .bodies import KubeObject, metadata, name_of, namespace_of, owner_references_of, spec_of, uid_of
from .durations import DurationError, parse_duration
from .logs import fields
from .paramconv import map_to_snake
from .settings import KubeSettings, RunningSettings
from .watches import Watch
from .zygote import SOCKET_VARIABLE, Zygote

log = logging.getLogger(__name__)

BATCH_VARIABLE = "__cdo_batch"
STRATEGY = "cdo_linear"
STRATEGY_PLUGINS = Path(__file__).resolve().parent / "ansible_plugins" / "strategy"
DEFAULT_FAILURE_MESSAGE = "unknown playbook failure"
OWNER_ANNOTATION = "operator-sdk/primary-resource"
OWNER_TYPE_ANNOTATION = "operator-sdk/primary-resource-type"
_DIRECTIVE_PREFIXES = ("", "peerdiscovery.cluster_discovery.", "operator_sdk.util.")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def escape_ansible_key(key: str) -> str:
    """operator-sdk's escapeAnsibleKey: ``.`` and ``-`` cannot appear in a variable name."""
    return key.replace(".", "_").replace("-", "_")


def object_variable(watch: Watch) -> str:
    return escape_ansible_key(f"_{watch.gvk.group}_{watch.gvk.kind.lower()}")


def mark_unsafe(value: Any) -> Any:
    """Wrap every string so Ansible never templates it (operator-sdk's markUnsafe)."""
    if isinstance(value, list):
        return [mark_unsafe(item) for item in value]
    if isinstance(value, Mapping):
        return {key: mark_unsafe(item) for key, item in value.items()}
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    return value


def make_parameters(obj: Mapping[str, Any], *, watch: Watch, finalizer_run: bool) -> dict[str, Any]:
    """The extra vars of one object's run (see the module docstring)."""
    spec = spec_of(obj)
    whole = dict(obj)
    if not isinstance(obj.get("spec"), Mapping):
        # operator-sdk gives spec-less objects an empty spec, so roles can always read it.
        whole["spec"] = spec
    parameters: dict[str, Any] = map_to_snake(spec) if watch.snake_case_parameters else dict(spec)
    if watch.mark_unsafe:
        parameters = {key: mark_unsafe(value) for key, value in parameters.items()}
    parameters["ansible_operator_meta"] = {"namespace": namespace_of(obj), "name": name_of(obj)}
    key = object_variable(watch)
    parameters[key] = mark_unsafe(whole) if watch.mark_unsafe else whole
    parameters[f"{key}_spec"] = mark_unsafe(spec) if watch.mark_unsafe else spec
    parameters.update(watch.vars)
    if finalizer_run and watch.finalizer is not None:
        parameters.update(watch.finalizer.vars)
    return parameters


def role_play(role: str, hosts: str) -> list[dict[str, Any]]:
    """The playbook operator-sdk generates for a role."""
    return [{"hosts": hosts, "gather_facts": False, "roles": [{"role": role}]}]


@dataclass(frozen=True)
class ProducedObject:
    """An object a kubernetes.core module returned during a run."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    owner_uids: frozenset[str]
    owner_annotation: str
    owner_type_annotation: str


@dataclass
class HostOutcome:
    """What one object's run produced."""

    failure_messages: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    requeue_after: float | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    produced: dict[str, ProducedObject] = field(default_factory=dict)
    directive_errors: list[str] = field(default_factory=list)
    failed: bool = False
    message: str = ""


@dataclass
class RunOutcome:
    ident: str
    status: str
    rc: int | None
    stats_received: bool
    completion: str
    artifacts_dir: Path
    duration: float
    hosts: dict[str, HostOutcome]
    """Each host's outcome, by inventory name (localhost, or the object's namespace/name in a shared run)."""
    by_reconcile_id: dict[str, HostOutcome] = field(default_factory=dict)
    """The same outcomes by the reconcile id of their object: how the controller finds its own."""


@dataclass(frozen=True)
class RunItem:
    """One object to run, with everything the run needs."""

    obj: KubeObject
    parameters: dict[str, Any]
    finalizer_run: bool
    verbosity: int
    max_artifacts: int
    private_dir: Path
    reconcile_id: str


def _directive(action: str, name: str) -> bool:
    return any(action == prefix + name for prefix in _DIRECTIVE_PREFIXES)


def _walk_results(res: Any) -> list[Mapping[str, Any]]:
    """Objects in a kubernetes.core result: ``result`` (one object or ``{results: [...]}``) or loop ``results``."""
    found: list[Mapping[str, Any]] = []
    if not isinstance(res, Mapping):
        return found
    result = res.get("result")
    if isinstance(result, Mapping):
        if isinstance(result.get("metadata"), Mapping):
            found.append(result)
        for item in result.get("results") or []:
            if isinstance(item, Mapping):
                if isinstance(item.get("metadata"), Mapping):
                    found.append(item)
                found.extend(_walk_results(item))
    elif isinstance(result, list):
        found.extend(item for item in result if isinstance(item, Mapping) and isinstance(item.get("metadata"), Mapping))
    for item in res.get("results") or []:
        found.extend(_walk_results(item))
    return found


def _produced(obj: Mapping[str, Any]) -> ProducedObject | None:
    uid = uid_of(obj)
    if not uid:
        return None
    meta = metadata(obj)
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    return ProducedObject(
        api_version=str(obj.get("apiVersion") or ""),
        kind=str(obj.get("kind") or ""),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=uid,
        resource_version=str(meta.get("resourceVersion") or ""),
        owner_uids=frozenset(str(ref.get("uid")) for ref in owner_references_of(obj) if ref.get("uid")),
        owner_annotation=str(annotations.get(OWNER_ANNOTATION) or ""),
        owner_type_annotation=str(annotations.get(OWNER_TYPE_ANNOTATION) or ""),
    )


def _failure_message(data: Mapping[str, Any]) -> str:
    res = data.get("res")
    if isinstance(res, Mapping):
        message = res.get("msg")
        if isinstance(message, str) and message:
            return message
    return DEFAULT_FAILURE_MESSAGE


class _EventReader:
    """Consumes ansible-runner events of one run (called on the run's thread)."""

    def __init__(self, hosts: dict[str, HostOutcome]) -> None:
        self.hosts = hosts
        self.stats: dict[str, dict[str, int]] = {}
        self.stats_received = False
        self.completion = ""

    def host(self, data: Mapping[str, Any]) -> HostOutcome | None:
        return self.hosts.get(str(data.get("host") or ""))

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("event")
        data = event.get("event_data")
        if not isinstance(data, Mapping):
            return True
        if kind == "playbook_on_stats":
            self.stats_received = True
            self.completion = str(event.get("created") or "")
            for counter in ("ok", "changed", "skipped", "failures", "dark", "ignored", "rescued"):
                values = data.get(counter)
                if isinstance(values, Mapping):
                    for host, count in values.items():
                        self.stats.setdefault(str(host), {})[counter] = int(count)
            return True
        outcome = self.host(data)
        if outcome is None:
            return True
        if (kind == "runner_on_failed" and not data.get("ignore_errors")) or kind == "runner_on_unreachable":
            outcome.failure_messages.append(_failure_message(data))
        elif kind in ("runner_on_ok", "runner_item_on_ok"):
            self._read_ok(kind, data, outcome)
        return True

    def _read_ok(self, kind: str, data: Mapping[str, Any], outcome: HostOutcome) -> None:
        action = str(data.get("resolved_action") or data.get("task_action") or "")
        task_action = str(data.get("task_action") or "")
        res = data.get("res")
        if not isinstance(res, Mapping):
            return
        if kind == "runner_on_ok" and (_directive(action, "requeue_after") or _directive(task_action, "requeue_after")):
            period = res.get("period")
            try:
                outcome.requeue_after = parse_duration(str(period))
            except DurationError as exc:
                outcome.directive_errors.append(f"requeue_after: {exc}")
        # A looped osdk_metric reports each request in its item events; the loop's own
        # runner_on_ok then only holds them again under ``results``, without ``metric``.
        if _directive(action, "osdk_metric") or _directive(task_action, "osdk_metric"):
            metric = res.get("metric")
            if isinstance(metric, Mapping):
                outcome.metrics.append(dict(metric))
        for obj in _walk_results(res):
            produced = _produced(obj)
            if produced is not None:
                outcome.produced[produced.uid] = produced


# Every process of a run inherits this variable (value ``<operator pid>/<run ident>``).
# ansible-runner stops a cancelled or timed-out run by killing ansible-playbook's
# process group, but ansible's workers call setsid() and survive it; the marker
# is how they are found afterwards, even once reparented.
RUN_MARKER = "CLUSTER_DISCOVERY_OPERATOR_RUN"

# What ansible-runner writes under ``env/`` from its arguments. It writes each only when the file is not there
# yet; otherwise the file of an earlier run stands: its environment wins over the new one (so this run's marker
# would be lost), and the new extra vars go on the command line as one argument, which Linux caps at 128 KiB
# (a batch of large objects then fails to start, again at every retry).
_RUN_INPUT_FILES = ("extravars", "envvars", "cmdline")


# The run's temporary folder (its TMPDIR), under its private_data_dir. ansible unpacks each module into a
# folder of the system's temporary folder and removes it when the module ends; a cancelled or timed-out run's
# modules are killed and leave theirs (one per killed module, about 130 KiB) in the operator's /tmp for good.
RUN_TMP = "tmp"


def _fresh_folder(folder: Path) -> Path:
    """``folder``, empty and private (what a run killed with the operator left is removed first)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    return folder


def _forget_previous_inputs(private_dir: Path) -> None:
    """Remove what an earlier run in ``private_dir`` left under ``env/``, so ansible-runner writes this run's."""
    for name in _RUN_INPUT_FILES:
        with contextlib.suppress(FileNotFoundError):
            (private_dir / "env" / name).unlink()


def marked_processes(marker: str, proc: str = "/proc") -> list[int]:
    """Live processes whose environment carries ``RUN_MARKER=marker`` (none without procfs)."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found: list[int] = []
    try:
        entries = [entry for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            with open(os.path.join(entry.path, "environ"), "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in environ:
            found.append(int(entry.name))
    return found


def kill_marked_processes(marker: str, *, within: float = 5.0) -> list[int]:
    """SIGKILL every process of a run until none is left (a worker may fork meanwhile); their PIDs."""
    killed: list[int] = []
    deadline = time.monotonic() + within
    while True:
        alive = marked_processes(marker)  # a killed process has no environment left once it is dead
        if not alive or time.monotonic() > deadline:
            return killed
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                if pid not in killed:
                    killed.append(pid)
        time.sleep(0.05)


def _stdout_tail(runner: Any, lines: int = 15) -> str:
    try:
        text = runner.stdout.read()
    except (OSError, AttributeError, ValueError):
        return ""
    text = _ANSI.sub("", str(text))
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


class AnsibleRunner:
    """Runs batches of objects of one watch; thread-safe (each call owns its private_data_dir)."""

    def __init__(self, settings: RunningSettings, kube: KubeSettings) -> None:
        self.settings = settings
        self.kube = kube
        self.python = settings.python_interpreter or sys.executable
        # The ansible-playbook next to our interpreter is the one of our virtualenv or image (None: there is none).
        playbook = os.path.join(os.path.dirname(self.python), "ansible-playbook")
        self._playbook = playbook if os.path.exists(playbook) else None
        self._envvars = self._build_envvars()
        self._zygote: Zygote | None = None
        self._playbook_zygote: Zygote | None = None
        self._payloads: Path | None = None
        self.interpreter = self.python
        if settings.module_zygote:
            self._zygote = Zygote(settings.artifacts_dir, python=self.python).start()
            self.interpreter = os.fspath(self._zygote.client_path)
            self._envvars[SOCKET_VARIABLE] = os.fspath(self._zygote.socket_path)
        if settings.playbook_zygote and self._playbook is not None:
            try:
                self._playbook_zygote = Zygote(
                    settings.artifacts_dir,
                    python=self.python,
                    playbook=self._playbook,
                    release_after=settings.playbook_zygote_release_after,
                ).start()
            except RuntimeError:
                self.close()
                raise
            # ansible-runner starts the first ansible-playbook on PATH: the zygote's client, which takes itself
            # off PATH again for what it starts.
            path = self._envvars.get("PATH", os.environ.get("PATH", ""))
            self._envvars["PATH"] = os.fspath(self._playbook_zygote.client_path.parent) + os.pathsep + path
        # Module payloads kept from run to run by the strategy (ansible_plugins/module_payloads.py), in a folder
        # of our own: made 0700 under an unpredictable name, since modules run what it holds.
        if self._envvars.get("ANSIBLE_STRATEGY") == STRATEGY:
            settings.artifacts_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._payloads = Path(tempfile.mkdtemp(prefix="payloads-", dir=settings.artifacts_dir))
            self._envvars[PAYLOAD_STORE_VARIABLE] = os.fspath(self._payloads)

    @property
    def zygote_pid(self) -> int | None:
        """The module zygote's process id while it runs."""
        return _running_pid(self._zygote)

    @property
    def playbook_zygote_pid(self) -> int | None:
        """The playbook zygote's process id while it runs."""
        return _running_pid(self._playbook_zygote)

    def close(self) -> None:
        """Stop what the runner started for its runs (the zygotes, the payload store); runs must be over."""
        for zygote in (self._zygote, self._playbook_zygote):
            if zygote is not None:
                zygote.stop()
        self._zygote = self._playbook_zygote = None
        if self._payloads is not None:
            shutil.rmtree(self._payloads, ignore_errors=True)
            self._payloads = None

    def _build_envvars(self) -> dict[str, str]:
        env: dict[str, str] = {
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            # Every host is local: piping the module into the interpreter saves the temporary-folder
            # round trips (four subprocesses per task) without changing what any module does.
            "ANSIBLE_PIPELINING": os.environ.get("ANSIBLE_PIPELINING", "True"),
        }
        if self._playbook is not None:
            env["PATH"] = os.path.dirname(self._playbook) + os.pathsep + os.environ.get("PATH", "")
        if self.settings.skip_in_strategy and not os.environ.get("ANSIBLE_STRATEGY"):
            env["ANSIBLE_STRATEGY_PLUGINS"] = os.fspath(STRATEGY_PLUGINS)
            env["ANSIBLE_STRATEGY"] = STRATEGY
        for name in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_ROLES_PATH"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        if self.kube.kubeconfig:
            env["K8S_AUTH_KUBECONFIG"] = self.kube.kubeconfig
            env["KUBECONFIG"] = self.kube.kubeconfig
        if self.kube.context:
            env["K8S_AUTH_CONTEXT"] = self.kube.context
        return env

    def run(
        self,
        watch: Watch,
        items: list[RunItem],
        *,
        batch_dir: Path,
        cancel: threading.Event,
    ) -> RunOutcome:
        """Run ``items`` (one or several objects of ``watch``) in one ansible-playbook process."""
        if not items:
            raise ValueError("nothing to run")
        shape = (set(items[0].parameters), items[0].finalizer_run, items[0].verbosity)
        if any((set(item.parameters), item.finalizer_run, item.verbosity) != shape for item in items[1:]):
            raise ValueError("objects sharing a process need the same contract keys, finalizer-ness and verbosity")
        finalizer_run = items[0].finalizer_run
        role, playbook = watch.finalizer_target if finalizer_run else (watch.role, watch.playbook)
        single = len(items) == 1
        ident = items[0].reconcile_id if single else f"batch-{secrets.token_hex(6)}"
        private_dir = items[0].private_dir if single else batch_dir
        private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if single:
            hosts = {"localhost": items[0]}
            extravars = items[0].parameters
        else:
            hosts = {f"{namespace_of(item.obj)}/{name_of(item.obj)}".lstrip("/"): item for item in items}
            keys = list(items[0].parameters)
            extravars = {key: f"{{{{ {BATCH_VARIABLE}[{json.dumps(key)}] }}}}" for key in keys}
        inventory = {
            "all": {
                "hosts": {
                    host: {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": self.interpreter,
                        **({} if single else {BATCH_VARIABLE: item.parameters}),
                    }
                    for host, item in hosts.items()
                }
            }
        }
        if playbook:
            play: Any = playbook
        else:
            play = role_play(role, "localhost" if single else "all")
        outcomes = {host: HostOutcome() for host in hosts}
        reader = _EventReader(outcomes)
        max_artifacts = items[0].max_artifacts if single else watch.max_runner_artifacts
        cmdline = " ".join(self.settings.ansible_args) or None
        marker = f"{os.getpid()}/{ident}"
        _forget_previous_inputs(private_dir)
        run_tmp = _fresh_folder(private_dir / RUN_TMP)
        began = time.monotonic()
        runner = ansible_runner.run(
            private_data_dir=str(private_dir),
            ident=ident,
            playbook=play,
            inventory=inventory,
            extravars=extravars,
            envvars={**self._envvars, RUN_MARKER: marker, "TMPDIR": os.fspath(run_tmp)},
            rotate_artifacts=max_artifacts,
            quiet=True,
            verbosity=items[0].verbosity or None,
            forks=max(min(len(items), self.settings.max_forks), 1),
            cmdline=cmdline,
            timeout=self.settings.run_timeout or None,
            event_handler=reader,
            cancel_callback=cancel.is_set,
        )
        duration = time.monotonic() - began
        artifacts_dir = private_dir / "artifacts" / ident
        status = str(getattr(runner, "status", "unknown"))
        rc = getattr(runner, "rc", None)
        if status in ("canceled", "timeout"):
            stray = kill_marked_processes(marker)
            if stray:
                log.info("killed what a stopped run left behind", extra=fields(run=ident, pids=stray))
        shutil.rmtree(run_tmp, ignore_errors=True)
        tail = "" if reader.stats_received else _stdout_tail(runner)
        for host, outcome in outcomes.items():
            self._link_latest(hosts[host].private_dir, artifacts_dir)
            counts = reader.stats.get(host, {})
            outcome.counts = counts
            if not reader.stats_received:
                outcome.failed = True
                detail = f": {tail}" if tail else ""
                outcome.message = f"ansible-runner ended without a playbook result (status {status}, rc {rc}){detail}"
                if status in ("canceled", "timeout"):
                    outcome.message = f"ansible run {status} after {duration:.0f}s"
                continue
            failed = counts.get("failures", 0) > 0 or counts.get("dark", 0) > 0
            outcome.failed = failed
            if failed:
                outcome.message = "\n".join(outcome.failure_messages) or DEFAULT_FAILURE_MESSAGE
        return RunOutcome(
            ident=ident,
            status=status,
            rc=rc if isinstance(rc, int) else None,
            stats_received=reader.stats_received,
            completion=reader.completion,
            artifacts_dir=artifacts_dir,
            duration=duration,
            hosts={host: outcomes[host] for host in hosts},
            by_reconcile_id={item.reconcile_id: outcomes[host] for host, item in hosts.items()},
        )

    @staticmethod
    def _link_latest(object_dir: Path, artifacts_dir: Path) -> None:
        """``<object dir>/latest`` points at the object's last run (shared or not).

        operator-sdk keeps this link inside ``artifacts/``; ansible-runner's
        rotation would then try to delete it as a run folder, so it lives beside.
        """
        link = object_dir / "latest"
        try:
            link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(artifacts_dir, target_is_directory=True)
        except OSError as exc:
            log.debug("could not link the latest artifacts", extra=fields(path=str(link), error=str(exc)))


def _running_pid(zygote: Zygote | None) -> int | None:
    process = zygote.process if zygote is not None else None
    return process.pid if process is not None and process.poll() is None else None


def group_items(items: list[RunItem], signature: Callable[[RunItem], Any]) -> list[list[RunItem]]:
    """Split items into groups that may share a process (same signature), keeping order."""
    groups: dict[Any, list[RunItem]] = {}
    for item in items:
        groups.setdefault(signature(item), []).append(item)
    return list(groups.values())
