"""Whole clusters of the product on this machine: the walkthrough's building block.

A :class:`Cluster` is a real control plane (etcd, kube-apiserver,
kube-controller-manager) with the Helm chart installed, the kubelet stand-in
that runs the kubo pods of its StatefulSets, and the product's operator and
discovery agent, run one of two ways:

- ``runtime="container"``: as users run them. ``helm install`` of the chart
  with the operator image built here (testbed.images); the kubelet stand-in
  runs the manager Deployment's pod in podman, with the chart's ServiceAccount
  token at the in-cluster path, its security context and probes, and the kubo
  pods in podman from the kubo image built here.
- ``runtime="process"`` (the default, the quick mode: nothing to build when a
  role changes): the chart installs everything but the manager pod, and the
  two run as host processes with a token of the chart's ServiceAccount, from
  this checkout's watches.yaml and collection; kubo runs as host processes with
  its image emulated.

Only the network, storage and load balancer stand in (see testbed/README.md).

The demo (``python -m demo``), the end-to-end test and the benchmark use it::

    with Federation(base_dir) as federation:
        a = federation.add_cluster("a")
        a.apply(manifest)
        a.wait_for(lambda: a.get("swarmpool", "pool", namespace="ns"), "the SwarmPool exists")
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from cluster_discovery_operator.zygote import MAX_SOCKET_PATH

from testbed import binaries, procs, proctree
from testbed.collection import REPO_ROOT, activate
from testbed.controlplane import ControlPlane, start_control_plane
from testbed.images import build as build_images
from testbed.kubelet import KuboKubelet
from testbed.pods import PodView
from testbed.ports import free_port

T = TypeVar("T")
BIN_DIR = Path(sys.executable).parent
# The chart's release in every cluster, as the README installs it.
RELEASE = "cluster-discovery"
RELEASE_NAMESPACE = "cluster-discovery"
MANAGER = f"{RELEASE}-controller-manager"
METRICS_PORT = 8443
Runtime = Literal["process", "container"]


class WaitTimeout(AssertionError):
    """A condition did not hold in time; the message says which and what was seen."""


class ProductProcess:
    """The operator or the agent of one cluster, started and stopped by PID."""

    def __init__(self, name: str, argv: list[str], *, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        # What a crash left running under the process, as (PID, start): in a container they would have gone
        # with it; here the next start, or the final stop, ends them.
        self.left_by_crash: list[tuple[int, int]] = []

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self._end_what_a_crash_left()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, timeout: float = 30, *, crash: bool = False) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``; SIGKILL at once when ``crash`` (no chance to shut down).

        A crash kills the process alone, as a crash of the product's own process would: what it started is left
        for the product's own safeguards (the module zygote ends with its operator) and is ended at the next
        start or stop, as a container's end would end it (an ansible-playbook run in flight otherwise waits on
        its dead worker for good, using CPU).
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            self._end_what_a_crash_left()
            return None if process is None else process.returncode
        if crash:
            self.left_by_crash += [
                (pid, start)
                for pid in proctree.descendants(process.pid)
                if (start := proctree.started(pid)) is not None
            ]
        process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(10)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _end_what_a_crash_left(self) -> None:
        left, self.left_by_crash = self.left_by_crash, []
        for pid, start in left:
            if proctree.started(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Gone before anything starts again, as a container's processes are before it restarts.
        procs.wait_for(
            lambda: not any(proctree.started(pid) == start and proctree.alive(pid) for pid, start in left),
            timeout=10,
            interval=0.02,
            what=f"what {self.name}'s crash left running to end",
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProductContainer:
    """The operator or the agent of one cluster, a container of the manager pod that the kubelet stand-in runs."""

    def __init__(self, name: str, container: str, kubelet: KuboKubelet) -> None:
        self.name = name
        self.container = container
        self.kubelet = kubelet

    def pod(self) -> PodView:
        views = [
            view
            for view in self.kubelet.pods()
            if view.namespace == RELEASE_NAMESPACE and view.name.startswith(f"{MANAGER}-")
        ]
        if len(views) != 1:
            raise RuntimeError(f"expected one manager pod in {RELEASE_NAMESPACE}, found {[v.name for v in views]}")
        return views[0]

    @property
    def log_path(self) -> Path:
        return self.pod().log_path(self.container)

    def running(self) -> bool:
        return self.pod().ready

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, RuntimeError):
            return ""


class Cluster:
    """One cluster of the federation: control plane, kubelet stand-in, operator and agent."""

    def __init__(self, name: str, base_dir: Path, *, runtime: Runtime = "process") -> None:
        self.name = name
        self.base_dir = base_dir
        self.runtime = runtime
        self.cp: ControlPlane | None = None
        self.kubelet: KuboKubelet | None = None
        self.operator: ProductProcess | ProductContainer | None = None
        self.agent: ProductProcess | ProductContainer | None = None
        self.operator_kubeconfig: Path | None = None
        self.metrics_port = 0
        self._short_dir: Path | None = None

    def start(self, *, operator_args: Sequence[str] = ()) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.cp = start_control_plane(self.name, self.base_dir)
        if self.runtime == "container":
            self._start_in_containers(operator_args)
            return
        self.operator_kubeconfig = self._install_chart()
        self.kubelet = KuboKubelet(self.cp, self.base_dir / "kubelet")
        self.kubelet.start()
        env = dict(os.environ)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(activate())
        env.pop("KUBECONFIG", None)
        self.metrics_port = free_port()
        # Shared by the two, as the chart's /tmp emptyDir shares it between the manager pod's containers.
        role_metrics = f"--role-metrics-socket={self._role_metrics_socket()}"
        self.operator = ProductProcess(
            "operator",
            [
                str(BIN_DIR / "cluster-discovery-operator"),
                f"--watches-file={REPO_ROOT / 'watches.yaml'}",
                f"--kubeconfig={self.operator_kubeconfig}",
                f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                "--metrics-secure=false",
                "--health-probe-bind-address=0",
                f"--artifacts-dir={self.base_dir / 'artifacts'}",
                # Several clusters share this machine's cores: one ansible run per kind at a time each.
                "--max-concurrent-reconciles=1",
                role_metrics,
                *operator_args,
            ],
            log_path=self.base_dir / "operator.log",
            env=env,
        )
        self.agent = ProductProcess(
            "agent",
            [
                str(BIN_DIR / "cluster-discovery-agent"),
                f"--kubeconfig={self.operator_kubeconfig}",
                "--health-probe-bind-address=0",
                role_metrics,
            ],
            log_path=self.base_dir / "agent.log",
            env=env,
        )
        self.operator.start()
        self.agent.start()

    def _role_metrics_socket(self) -> Path:
        """In the cluster's folder, unless it would not fit AF_UNIX's 107 bytes: then in a short folder of its own."""
        path = self.base_dir / "role-metrics.sock"
        if len(os.fsencode(path.resolve())) > MAX_SOCKET_PATH:
            self._short_dir = Path(tempfile.mkdtemp(prefix="cd-metrics-"))
            path = self._short_dir / "sock"
        return path

    def _start_in_containers(self, operator_args: Sequence[str]) -> None:
        """``helm install`` of the chart with the image built here; the manager pod runs in podman."""
        assert self.cp is not None
        built = build_images(["operator", "kubo"])
        repository, _, tag = built["operator"].rpartition(":")
        self.kubelet = KuboKubelet(self.cp, self.base_dir / "kubelet", kubo_image=built["kubo"])
        self.kubelet.start()
        values = {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            # Several clusters share this machine's cores: one ansible run per kind at a time each.
            "maxConcurrentReconciles": 1,
            "extraArgs": list(operator_args),
        }
        values_file = self.base_dir / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        self._helm("install", "--values", os.fspath(values_file), "--timeout=300s")
        self.operator = ProductContainer("operator", "manager", self.kubelet)
        self.agent = ProductContainer("agent", "agent", self.kubelet)

    def _helm(self, *args: str) -> None:
        assert self.cp is not None
        result = subprocess.run(
            [
                os.fspath(binaries.binary("helm", "helm")),
                args[0],
                RELEASE,
                os.fspath(REPO_ROOT / "charts" / "cluster-discovery"),
                f"--kubeconfig={self.cp.kubeconfig}",
                f"--namespace={RELEASE_NAMESPACE}",
                "--create-namespace",
                "--wait",
                *args[1:],
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            kubelet = self.kubelet.log_tail(60) if self.kubelet is not None else ""
            raise RuntimeError(f"helm {args[0]} on {self.name} failed: {result.stderr.strip()}\n{kubelet}")

    def _install_chart(self) -> Path:
        """Install the Helm chart as users do (CRDs, RBAC, ServiceAccount; no manager pod: the processes run here).

        Returns a kubeconfig with a token of the chart's ServiceAccount
        (TokenRequest), so the operator and the agent act with exactly the
        rights the chart gives them, never with the admin's.
        """
        assert self.cp is not None
        self._helm("install", "--set=replicaCount=0", "--timeout=120s")
        self.cp.wait_established()
        account = self.kubectl(
            "get", "serviceaccount", "-n", RELEASE_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}",
            "-o", "jsonpath={.items[0].metadata.name}",
        ).stdout.strip()  # fmt: skip
        token = self.kubectl("create", "token", account, "-n", RELEASE_NAMESPACE, "--duration=48h").stdout.strip()
        path = self.base_dir / "operator.kubeconfig"
        ca = base64.b64encode(self.cp.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": {"server": self.cp.server, "certificate-authority-data": ca}}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": account}}],
            "current-context": self.name,
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        for part in (self.agent, self.operator):
            if isinstance(part, ProductProcess):
                part.stop()  # containers stop with the kubelet stand-in
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.cp is not None:
            self.cp.stop()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)

    # -- using the cluster ---------------------------------------------------------

    @property
    def control_plane(self) -> ControlPlane:
        assert self.cp is not None, f"cluster {self.name} is not started"
        return self.cp

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, input=input, check=check)

    def apply(self, manifests: str | list[dict[str, Any]]) -> None:
        text = manifests if isinstance(manifests, str) else yaml.safe_dump_all(manifests, sort_keys=False)
        self.kubectl("apply", "-f", "-", input=text)

    def delete(self, kind: str, name: str, *, namespace: str, wait: bool = False) -> None:
        wait_flag = f"--wait={'true' if wait else 'false'}"
        self.kubectl("delete", kind, name, "-n", namespace, wait_flag, "--ignore-not-found")

    def get(self, kind: str, name: str | None = None, *, namespace: str | None = None) -> Any:
        """The object (or, without a name, the list's items, across all namespaces without one) as JSON; None when
        absent: what ``kubectl get -o json`` prints, read without a kubectl process (the tests poll with it)."""
        value = self.control_plane.read(kind, name, namespace=namespace)
        return value if name or value is None else value["items"]

    def table(self, *args: str) -> str:
        return self.kubectl("get", *args).stdout

    @property
    def metrics_url(self) -> str:
        """Where the operator serves /metrics: the manager pod's IP and the chart's port, or the process's port."""
        if isinstance(self.operator, ProductContainer):
            pod_ip = self.operator.pod().pod_ip
            return f"https://{pod_ip}:{METRICS_PORT}/metrics"
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def metrics(self) -> str:
        """The operator's metrics as the process runs them (plain HTTP; the chart's HTTPS needs a token)."""
        import requests

        assert isinstance(self.operator, ProductProcess), "in containers, /metrics needs a token: use metrics_url"
        return requests.get(self.metrics_url, timeout=10).text

    def metric(self, name: str, **labels: str) -> float | None:
        """The first sample ``name`` of the operator's metrics whose labels include ``labels``; None if none."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return None

    def logs(self) -> str:
        parts = [f"--- {p.name} of {self.name} ---\n{p.log_tail()}" for p in (self.operator, self.agent) if p]
        if self.kubelet is not None:
            parts.append(f"--- kubelet of {self.name} ---\n{self.kubelet.log_tail()}")
        return "\n".join(parts)

    def wait_for(self, condition: Callable[[], T], what: str, *, timeout: float = 120, interval: float = 0.25) -> T:
        """Poll ``condition`` until it returns something truthy; raise WaitTimeout with the logs otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            last = condition()
            if last:
                return last
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"{self.name}: timed out after {timeout:.0f} s waiting until {what}\n{self.logs()}")
            time.sleep(interval)


class Federation:
    """Clusters started under one folder; everything they started stops on exit."""

    def __init__(self, base_dir: Path, *, runtime: Runtime = "process") -> None:
        self.base_dir = base_dir
        self.runtime = runtime
        self.clusters: dict[str, Cluster] = {}

    def add_cluster(self, name: str, *, operator_args: Sequence[str] = ()) -> Cluster:
        """Start a cluster; ``operator_args`` come after the test bed's (or the chart's) own flags, so they win."""
        cluster = Cluster(name, self.base_dir / name, runtime=self.runtime)
        self.clusters[name] = cluster
        try:
            cluster.start(operator_args=operator_args)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def close(self) -> None:
        """Stop every cluster, all at once: most of a stop is waiting for processes to exit, which needs no CPU."""
        clusters = list(self.clusters.values())
        self.clusters.clear()
        if not clusters:
            return
        with concurrent.futures.ThreadPoolExecutor(len(clusters), thread_name_prefix="stop") as pool:
            errors = [err for err in pool.map(_stopped, clusters) if err is not None]
        if errors:
            raise errors[0]

    def __enter__(self) -> Federation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stopped(cluster: Cluster) -> Exception | None:
    """Stop ``cluster``; what went wrong is returned, so that every cluster is stopped before it is reported."""
    try:
        cluster.stop()
    except Exception as err:
        return err
    return None


@contextlib.contextmanager
def federation(base_dir: Path) -> Iterator[Federation]:
    with Federation(base_dir) as fed:
        yield fed


# -- the walkthrough's manifests -------------------------------------------------------


def swarm_pool(
    name: str,
    namespace: str,
    *,
    swarm: str,
    key_secret: str | None = None,
    bootstrap: list[str] | None = None,
    load_balancer_ip: str = "auto",
    exposed_api: bool = False,
    swarm_port: int = 4001,
    api_port: int = 5001,
    capacity: str = "1Gi",
    version: str | None = None,
) -> dict[str, Any]:
    """A SwarmPool of one swarm behind a LoadBalancer, as seed 000 writes it (by default the test bed's IPFSVersion)."""
    definition: dict[str, Any] = {}
    if key_secret:
        definition["swarmKeySecretRef"] = key_secret
    if bootstrap:
        definition["bootstrapNodeAddresses"] = bootstrap
    entry: dict[str, Any] = {"name": swarm}
    if definition:
        entry["swarmDefinition"] = definition
    entry.update(
        {
            "network": {
                "loadBalancer": {"loadBalancerIP": load_balancer_ip, "exposedAPI": exposed_api},
                "swarmPort": swarm_port,
                "apiPort": api_port,
            },
            "storage": {"capacity": capacity},
            "IPFSVersion": version or binaries.kubo_version(),
        }
    )
    return {
        "apiVersion": "peerdiscovery.irt-saintexupery.com/v1alpha1",
        "kind": "SwarmPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"swarms": [entry]},
    }


def identity(
    name: str,
    namespace: str,
    *,
    swarm_pool: str,
    swarm: str,
    display_name: str,
    description: str,
    url: str,
    categories: list[str],
    swarm_namespace: str | None = None,
) -> dict[str, Any]:
    """An Identity published on one swarm (of a SwarmPool in its own namespace unless ``swarm_namespace``)."""
    return {
        "apiVersion": "peerdiscovery.irt-saintexupery.com/v1alpha1",
        "kind": "Identity",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "swarms": [{"namespace": swarm_namespace or namespace, "swarmPool": swarm_pool, "swarm": swarm}],
            "description": description,
            "name": display_name,
            "URL": url,
            "categories": [{"name": category} for category in categories],
        },
    }


def swarm_node(cluster: Cluster, pool: str, namespace_: str) -> dict[str, Any]:
    """The status entry of a one-swarm SwarmPool whose swarm has the pool's name (empty until it is reported)."""
    obj = cluster.get("swarmpool", pool, namespace=namespace_) or {}
    return ((obj.get("status") or {}).get("status") or {}).get(pool) or {}


def form_swarm(clusters: Sequence[Cluster], namespace_: str, *, pool: str = "pool", timeout: float = 300) -> None:
    """One private swarm across ``clusters``, as seed 000 builds it: the first cluster's SwarmPool generates the
    key; each other one joins with a copy of it and the first node's address, and is connected to a member."""
    first, *others = clusters
    first.apply([namespace(namespace_), swarm_pool(pool, namespace_, swarm=pool, key_secret="swarm")])
    address = first.wait_for(
        lambda: swarm_node(first, pool, namespace_).get("Addresses"), f"{first.name}'s node is up", timeout=timeout
    )
    key = first.get("secret", "swarm", namespace=namespace_)["data"]["swarm-key"]
    for cluster in others:
        cluster.apply(
            [
                namespace(namespace_),
                secret("swarm", namespace_, {"swarm-key": key}),
                swarm_pool(pool, namespace_, swarm=pool, key_secret="swarm", bootstrap=address),
            ]
        )
    for cluster in others:

        def connected(cluster: Cluster = cluster) -> bool:
            return int(swarm_node(cluster, pool, namespace_).get("Number of connected peers", 0)) >= 1

        cluster.wait_for(connected, f"{cluster.name} joined {first.name}'s swarm", timeout=timeout)


def peers_by_name(cluster: Cluster, namespace_: str) -> dict[str, dict[str, Any]]:
    """The cluster's Peers in ``namespace_`` by the name the members published (``spec.name``)."""
    return {str(peer["spec"].get("name")): peer for peer in cluster.get("peers", namespace=namespace_) or []}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def secret(name: str, namespace_: str, data: dict[str, str]) -> dict[str, Any]:
    """A Secret whose ``data`` values are already base64, as seed 000 writes the swarm key Secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace_},
        "data": data,
    }
