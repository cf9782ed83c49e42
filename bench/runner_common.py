"""Shared pieces of the runner benchmarks: a control plane, the widget CRD and role, the two ways to reconcile.

The workload is the integration tests' ``widget`` role (tests/integration/runner/data):
per object it writes a ConfigMap owned by the object (kubernetes.core.k8s), sets a
status field and condition (k8s_status) and a labelled gauge (osdk_metric), and
skips its other tasks; the result of a reconcile is that ConfigMap plus the
Successful condition.

"The operator-sdk way" is reproduced as operator-sdk's reconciler does it, one
object after the other: mark Running, run the ``ansible-runner`` command for that
one object with the extravars of makeParameters, read its events, mark
Successful (see :class:`OperatorSdkWay`).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cluster_discovery_operator.kube import KubeClient, Resource
from cluster_discovery_operator.running import AnsibleRunner, make_parameters
from cluster_discovery_operator.settings import KubeSettings, RunningSettings
from cluster_discovery_operator.status import done_conditions, now_rfc3339, running_conditions, status_patch
from cluster_discovery_operator.watches import GroupVersionKind, Watch

from bench.figures import measure
from testbed.collection import activate
from testbed.controlplane import ControlPlane, control_plane_running
from tests.integration.runner.operator_process import DATA, OperatorProcess

GROUP = "test.cluster-discovery.example.com"
API_VERSION = f"{GROUP}/v1alpha1"
ROLE = DATA / "roles" / "widget"
WATCH = Watch(gvk=GroupVersionKind(GROUP, "v1alpha1", "Widget"), role=str(ROLE), max_runner_artifacts=20)


@contextmanager
def bench_cluster(base_dir: Path) -> Iterator[ControlPlane]:
    """A fresh test-bed control plane with the widget CRD; stopped by PID at the end."""
    activate()
    with control_plane_running("bench", base_dir) as cp:
        kubectl(cp, "apply", "-f", os.fspath(DATA / "crd.yaml"))
        cp.wait_established("widgets.test.cluster-discovery.example.com")
        yield cp


def kubectl(cp: ControlPlane, *args: str, input: str | None = None) -> str:
    return cp.kubectl(*args, input=input, timeout=600).stdout


def namespace(cp: ControlPlane, name: str) -> str:
    kubectl(cp, "create", "namespace", name)
    return name


def widget(name: str, namespace_: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace_},
        "spec": {"message": f"hello {name}", "sizeCount": 1, "gauge": 1, **spec},
    }


def create_widgets(cp: ControlPlane, namespace_: str, count: int) -> float:
    """Create ``count`` widgets with one kubectl call; return the seconds it took."""
    began = time.monotonic()
    body = {"apiVersion": "v1", "kind": "List", "items": [widget(f"w{i:03d}", namespace_) for i in range(count)]}
    kubectl(cp, "create", "-f", "-", input=json.dumps(body))
    return time.monotonic() - began


def widgets(cp: ControlPlane, namespace_: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(kubectl(cp, "get", "widgets", "-n", namespace_, "-o", "json"))["items"]
    return items


def successful(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    by_type = {c.get("type"): c for c in status.get("conditions", [])}
    return by_type.get("Successful", {}).get("status") == "True" and status.get("observedGeneration") == 1


def verify(cp: ControlPlane, namespace_: str, count: int) -> str:
    """Check the result: every widget Successful and its ConfigMap carrying its message."""
    items = widgets(cp, namespace_)
    ok = sum(1 for obj in items if successful(obj))
    maps = json.loads(kubectl(cp, "get", "configmaps", "-n", namespace_, "-o", "json"))["items"]
    by_name = {m["metadata"]["name"]: m for m in maps}
    right = sum(
        1
        for obj in items
        if by_name.get(f"{obj['metadata']['name']}-data", {}).get("data", {}).get("message")
        == f"hello {obj['metadata']['name']}"
    )
    return f"{ok}/{count} Successful, {right}/{count} ConfigMaps with the right data"


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 1.0) -> float:
    return measure(condition, timeout=timeout, interval=interval)


def start_operator(cp: ControlPlane, namespace_: str, work: Path, *args: str) -> OperatorProcess:
    process = OperatorProcess(
        kubeconfig=Path(cp.kubeconfig),
        watches=DATA / "watches.yaml",
        namespace=namespace_,
        artifacts=work / "artifacts",
        log_path=work / "operator.log",
        extra_args=("--metrics-secure=false", *args),
    )
    process.start()
    wait_until(lambda: process.readyz()[0] == 200, timeout=120, interval=0.2)
    return process


class OperatorSdkWay:
    """operator-sdk's reconcile of one object, in sequence: Running, one ``ansible-runner`` run, Successful.

    As operator-sdk's runner does (``internal/ansible/runner``): an input folder
    per object with ``env/extravars`` (makeParameters) and the inventory, then
    the ``ansible-runner run <dir> --rotate-artifacts 20 --role <name>
    --roles-path <dir> --hosts localhost -i <ident> -vv`` subprocess, with
    ``--role-skip-facts`` (the playbook operator-sdk generates gathers no
    facts). The ansible environment is the one our runner passes
    (pipelining, collections path, kubeconfig), so only the architecture
    differs. The result is read from the run's events.
    """

    def __init__(self, cp: ControlPlane, work: Path) -> None:
        self.kube = KubeClient(KubeSettings(kubeconfig=os.fspath(cp.kubeconfig)))
        self.resource: Resource = self.kube.discover(GROUP, "v1alpha1", "Widget")
        kube = KubeSettings(kubeconfig=os.fspath(cp.kubeconfig))
        plain = RunningSettings(artifacts_dir=work, module_zygote=False)  # the baseline starts Python per module
        self.env = {**os.environ, **AnsibleRunner(plain, kube)._envvars}
        self.env.pop("KUBECONFIG", None)
        self.env.update({"K8S_AUTH_KUBECONFIG": os.fspath(cp.kubeconfig), "KUBECONFIG": os.fspath(cp.kubeconfig)})
        self.cli = os.fspath(Path(sys.executable).parent / "ansible-runner")
        self.work = work

    def _status(self, namespace_: str, name: str, compute: Callable[[list[Any]], list[Any]]) -> dict[str, Any]:
        obj = self.kube.get(self.resource, namespace=namespace_, name=name)
        status = obj.get("status") or {}
        conditions = compute(list(status.get("conditions") or []))
        patch = status_patch(status, conditions, observed_generation=obj["metadata"]["generation"])
        if patch is None:
            return obj
        body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": patch}
        return self.kube.patch(self.resource, namespace=namespace_, name=name, body=body, subresource="status")

    def run_once(self, obj: dict[str, Any], ident: str) -> tuple[bool, str]:
        """One ansible-runner CLI run for ``obj``; (succeeded, message)."""
        folder = self.work / obj["metadata"]["namespace"] / obj["metadata"]["name"]
        (folder / "env").mkdir(parents=True, exist_ok=True)
        (folder / "inventory").mkdir(parents=True, exist_ok=True)
        parameters = make_parameters(obj, watch=WATCH, finalizer_run=False)
        (folder / "env" / "extravars").write_text(json.dumps(parameters))
        (folder / "inventory" / "hosts").write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        subprocess.run(
            [
                self.cli,
                "run",
                os.fspath(folder),
                "--rotate-artifacts",
                "20",
                "--role",
                ROLE.name,
                "--roles-path",
                os.fspath(ROLE.parent),
                "--hosts",
                "localhost",
                "-i",
                ident,
                "-vv",
                "--role-skip-facts",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
        failures = []
        stats_seen = False
        for path in (folder / "artifacts" / ident / "job_events").glob("*.json"):
            event = json.loads(path.read_text())
            if event.get("event") == "playbook_on_stats":
                stats_seen = True
            if event.get("event") == "runner_on_failed" and not event["event_data"].get("ignore_errors"):
                failures.append(str((event["event_data"].get("res") or {}).get("msg") or "unknown playbook failure"))
        if not stats_seen:
            return False, "did not receive playbook_on_stats event"
        return not failures, "\n".join(failures)

    def reconcile(self, namespace_: str, name: str) -> float:
        began = time.monotonic()
        obj = self._status(namespace_, name, lambda c: running_conditions(c, now=now_rfc3339()))
        succeeded, message = self.run_once(obj, f"{name}-{time.time_ns()}")
        self._status(
            namespace_,
            name,
            lambda c: done_conditions(
                c, succeeded=succeeded, ansible_result=None, failure_message=message, now=now_rfc3339()
            ),
        )
        return time.monotonic() - began


def describe(samples: list[float], unit: str = "s", scale: float = 1.0) -> str:
    values = sorted(v * scale for v in samples)
    return f"median {statistics.median(values):.3f} {unit}, min {values[0]:.3f}, max {values[-1]:.3f} (n={len(values)})"


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
