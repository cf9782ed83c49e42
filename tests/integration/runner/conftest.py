"""Fixtures for the runner's integration tests: a cluster, the test CRD, operator processes.

By default the cluster is the test bed's control plane (real etcd,
kube-apiserver and kube-controller-manager on loopback, ``control_plane``
fixture of testbed.pytest_plugin). With ``--real-cluster`` the tests marked
``real_cluster`` run against the cluster of ``$KUBECONFIG`` instead (the CRD is
installed and removed again, each test works in its own namespace); tests that
need the test bed's etcd (forcing compaction) are not marked and are skipped
in that mode, saying why. Run it as
``pytest tests/integration/runner --real-cluster`` (the option is declared in
this folder's conftest, so the folder must be on the command line).

Every operator process a test starts is stopped by PID when the test ends,
whatever happened.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testbed.controlplane import run_kubectl, wait_established
from testbed.kube import ObjectReader
from tests.integration.runner.operator_process import DATA, OperatorProcess, wait_for


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-cluster",
        action="store_true",
        default=False,
        help="run the tests marked real_cluster against the cluster of $KUBECONFIG instead of the test bed",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--real-cluster"):
        return
    skip = pytest.mark.skip(reason="needs the test bed (its etcd); not applicable with --real-cluster")
    for item in items:
        if "tests/integration/runner" in str(item.fspath) and "real_cluster" not in item.keywords:
            item.add_marker(skip)


@dataclass
class Cluster:
    """What the tests need of a cluster, whichever provides it."""

    name: str
    kubeconfig: Path
    kubectl_binary: str
    etcd_url: str | None
    """The test bed's etcd (for forced compaction); None on a real cluster."""
    _reader: ObjectReader | None = field(default=None, repr=False)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.kubeconfig, *args, binary=self.kubectl_binary, input=input, check=check)

    def wait_established(self, *names: str) -> None:
        wait_established(self.kubectl, *names)

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """``kubectl get KIND NAME -o json``, read in this process (the tests poll with it); None when absent."""
        if self._reader is None:
            self._reader = ObjectReader(self.kubeconfig)
        return self._reader.get(kind, name, namespace=namespace)

    def create_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.kubectl("create", "namespace", name)
        return name


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Cluster:
    if request.config.getoption("--real-cluster"):
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("--real-cluster needs $KUBECONFIG to name the cluster's kubeconfig")
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.fail("--real-cluster needs kubectl on PATH")
        return Cluster(name="real cluster", kubeconfig=Path(kubeconfig), kubectl_binary=kubectl, etcd_url=None)
    from testbed import binaries

    cp = request.getfixturevalue("control_plane")
    return Cluster(
        name=f"test bed {cp.name}",
        kubeconfig=Path(cp.kubeconfig),
        kubectl_binary=os.fspath(binaries.kubernetes("kubectl")),
        etcd_url=cp.etcd_url,
    )


CRD_NAME = "widgets.test.cluster-discovery.example.com"


@pytest.fixture(scope="session")
def widget_crd(cluster: Cluster) -> Iterator[str]:
    """The test CRD, registered and established (removed at the end on a real cluster)."""
    cluster.kubectl("apply", "-f", os.fspath(DATA / "crd.yaml"))
    cluster.wait_established(CRD_NAME)
    yield CRD_NAME
    if cluster.etcd_url is None:
        cluster.kubectl("delete", "crd", CRD_NAME, "--wait=false", check=False)


@pytest.fixture
def namespace(cluster: Cluster, widget_crd: str) -> Iterator[str]:
    name = cluster.create_namespace("runner")
    yield name
    # No operator runs any more to honour the test finalizer: drop it, or the namespace never goes.
    listed = cluster.kubectl("get", "widgets", "-n", name, "-o", "name", check=False).stdout.split()
    for widget in listed:
        cluster.kubectl(
            "patch", widget, "-n", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """``operator(namespace, *args, watches=...)`` starts the console script; all are stopped at test end."""
    started: list[OperatorProcess] = []

    def start(
        namespace: str, *args: str, watches: Path | None = None, name: str | None = None, wait_ready: bool = True
    ) -> OperatorProcess:
        label = name or f"operator-{len(started) + 1}"
        process = OperatorProcess(
            kubeconfig=cluster.kubeconfig,
            watches=watches or DATA / "watches.yaml",
            namespace=namespace,
            artifacts=tmp_path / label / "artifacts",
            log_path=tmp_path / label / "operator.log",
            extra_args=args,
        )
        started.append(process)
        process.start(wait_ports=wait_ready)
        if wait_ready:
            wait_for(lambda: process.readyz()[0] == 200, timeout=60, what=f"{label} to be ready", process=process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()
            print(f"--- {process.log_path} (last lines):\n{process.tail(40)}")
