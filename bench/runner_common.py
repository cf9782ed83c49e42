"""Shared pieces of the runner benchmarks: a control plane, the widget CRD and role, the two ways to reconcile.

The workload is the integration tests' ``widget`` role (tests/integration/runner/data):
per object it writes a ConfigMap owned by the object (kubernetes.core.k8s), sets a
status field and condition (k8s_status) and a labelled gauge (osdk_metric), and
skips its other tasks; the result of a reconcile is that ConfigMap plus the
Successful condition.

"The operator-sdk way" is reproduced as operator-sdk's reconciler does it, one
object after the other: mark Running, run ansible-runner for that one object
with the extravars of makeParameters and the playbook operator-sdk generates,
mark Successful. It uses the same ansible-runner call, environment and role as
our runner's one-object path (and the Python API rather than operator-sdk's
``ansible-runner`` subprocess, which only makes the baseline faster).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cluster_discovery_operator.kube import KubeClient, Resource
from cluster_discovery_operator.running import AnsibleRunner, RunItem, make_parameters
from cluster_discovery_operator.settings import KubeSettings, RunningSettings
from cluster_discovery_operator.status import done_conditions, now_rfc3339, running_conditions, status_patch
from cluster_discovery_operator.watches import GroupVersionKind, Watch

from testbed import binaries
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
        kubectl(
            cp, "wait", "--for=condition=Established", "crd/widgets.test.cluster-discovery.example.com", "--timeout=60s"
        )
        yield cp


def kubectl(cp: ControlPlane, *args: str, input: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    result = subprocess.run(
        [os.fspath(binaries.kubernetes("kubectl")), f"--kubeconfig={cp.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result.stdout


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
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"not done after {timeout:.0f}s")
        time.sleep(interval)
    return time.monotonic() - began


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


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


class OperatorSdkWay:
    """operator-sdk's reconcile of one object: Running, one ansible-runner run, Successful. In sequence."""

    def __init__(self, cp: ControlPlane, work: Path) -> None:
        self.kube = KubeClient(KubeSettings(kubeconfig=os.fspath(cp.kubeconfig)))
        self.resource: Resource = self.kube.discover(GROUP, "v1alpha1", "Widget")
        self.runner = AnsibleRunner(
            RunningSettings(artifacts_dir=work), KubeSettings(kubeconfig=os.fspath(cp.kubeconfig))
        )
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

    def reconcile(self, namespace_: str, name: str) -> float:
        began = time.monotonic()
        obj = self._status(namespace_, name, lambda c: running_conditions(c, now=now_rfc3339()))
        item = RunItem(
            obj=obj,
            parameters=make_parameters(obj, watch=WATCH, finalizer_run=False),
            finalizer_run=False,
            verbosity=2,
            max_artifacts=20,
            private_dir=self.work / namespace_ / name,
            reconcile_id=f"{name}-{time.time_ns()}",
        )
        outcome = self.runner.run(WATCH, [item], batch_dir=self.work / "unused", cancel=threading.Event())
        result = outcome.hosts["localhost"]
        self._status(
            namespace_,
            name,
            lambda c: done_conditions(
                c, succeeded=not result.failed, ansible_result=None, failure_message=result.message, now=now_rfc3339()
            ),
        )
        return time.monotonic() - began


def describe(samples: list[float], unit: str = "s", scale: float = 1.0) -> str:
    values = sorted(v * scale for v in samples)
    return f"median {statistics.median(values):.3f} {unit}, min {values[0]:.3f}, max {values[-1]:.3f} (n={len(values)})"


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
