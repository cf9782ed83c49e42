"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Each :class:`ControlPlane` is one independent "cluster" with its own data
folder, CA, ports and service-account signing key, so several can run at once
(the walkthrough federates three). The binaries are the ones
``testbed/build.py`` builds from k8s.io/kubernetes and go.etcd.io/etcd.

What runs, and why these settings:

- etcd serves plain HTTP on 127.0.0.1 so tests can reach its gRPC gateway
  (``POST /v3/kv/compaction``) to force the "410 Gone" a long watch meets in
  production. ``--unsafe-no-fsync``: a test cluster is thrown away, and fsync
  dominates write latency on a shared disk.
- kube-apiserver with RBAC (and the Node authorizer, as real clusters have),
  client-certificate authentication, and a service-account issuer with its
  signing key, so TokenRequest works and tokens are checked for real. Its
  watch cache is off, so that such a compaction does reach watches and lists
  (the cache would keep serving the old versions).
- kube-controller-manager with the controllers our product and its tests lean
  on (see ``CONTROLLERS``), each under its own service account as in a real
  cluster (``--use-service-account-credentials``). There is no scheduler and no
  kubelet: testbed.kubelet plays the node for kubo pods.

Module-level use (demo, benchmarks)::

    with control_plane_running("cluster-a") as cp:
        cp.kubectl("get", "ns")
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from testbed import binaries
from testbed.certs import CertificateAuthority, new_private_key, private_key_pem, public_key_pem, write_kubeconfig
from testbed.kube import ObjectReader
from testbed.ports import free_port, is_port_clash
from testbed.procs import ManagedProcess

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT_SECONDS = 120.0
_START_ATTEMPTS = 3

# Controllers of kube-controller-manager that run. Named rather than "*" so a
# start-up stays fast on two cores and what the test bed offers is explicit:
# garbage collection, namespace deletion and service accounts (plus their
# tokens and the kube-root-ca.crt ConfigMap pods mount) are what the product's
# roles rely on; statefulset, PV binding and the PVC/PV protection finalizers
# turn a SwarmPool's StatefulSet into pods with bound volumes; endpointslice
# fills headless Services; nodelifecycle watches the kubelet stand-in's lease
# as it would a real node's; clusterrole-aggregation builds the admin/edit/view
# roles that aggregated RBAC rules extend.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "statefulset-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "node-lifecycle-controller",
    "clusterrole-aggregation-controller",
)


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def wait_established(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], *names: str, timeout: float = 60.0
) -> None:
    """Wait until the CustomResourceDefinitions ``names`` (``plural.group``; none: every one) are Established.

    ``kubectl`` runs kubectl against the cluster (``check=False`` returns a failed run instead of raising). Not
    ``kubectl wait --for=condition=Established``: a CRD read before the API server first wrote its status has
    no conditions, and kubectl then fails at once (".status.conditions accessor error: <nil>",
    kubernetes/kubernetes#66439) instead of waiting. A busy machine makes that window wide: 42 tests of one file
    errored on it in one suite run.
    """
    deadline = time.monotonic() + timeout
    pending: list[str] = list(names) or ["(any)"]
    while time.monotonic() < deadline:
        found = kubectl("get", "customresourcedefinitions", *names, "-o", "json", check=False)
        if found.returncode == 0:
            listed = json.loads(found.stdout)
            crds = listed["items"] if listed.get("kind") == "List" else [listed]
            pending = [crd["metadata"]["name"] for crd in crds if not _established(crd)]
            if crds and not pending:
                return
        time.sleep(0.2)
    raise TimeoutError(f"CustomResourceDefinitions not Established after {timeout:.0f} s: {', '.join(pending)}")


class ControlPlaneStartError(RuntimeError):
    """A component did not come up; the message carries its log tail."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike CalledProcessError its message includes what kubectl said."""

    def __str__(self) -> str:
        return f"{' '.join(map(str, self.cmd))} exited with {self.returncode}: {(self.stderr or '').strip()}"


def run_kubectl(
    kubeconfig: Path,
    *args: str,
    binary: str | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """kubectl (the built one unless ``binary``) with ``kubeconfig`` only, whatever KUBECONFIG the environment sets."""
    argv = [binary or os.fspath(binaries.kubernetes("kubectl")), f"--kubeconfig={kubeconfig}", *args]
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    result = subprocess.run(argv, input=input, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
    return result


@dataclass
class StartupReport:
    """How long a control plane took to become ready and what it weighs then."""

    seconds: float
    rss_bytes: dict[str, int] = field(default_factory=dict)

    def line(self, name: str) -> str:
        parts = ", ".join(f"{comp} {rss / 2**20:.0f} MiB" for comp, rss in self.rss_bytes.items())
        total = sum(self.rss_bytes.values()) / 2**20
        return f"control plane {name!r} ready in {self.seconds:.1f} s; RSS {total:.0f} MiB ({parts})"


class ControlPlane:
    """One running cluster. Build it with :func:`start_control_plane`."""

    def __init__(self, name: str, data_dir: Path, *, apiserver_args: Sequence[str] = ()) -> None:
        self.name = name
        self.apiserver_args = list(apiserver_args)
        self.data_dir = data_dir
        self.pki_dir = data_dir / "pki"
        self.kubeconfig = data_dir / "admin.kubeconfig"
        self.ca_file = self.pki_dir / "ca.crt"
        self.etcd_url = ""
        self.server = ""
        self.startup: StartupReport | None = None
        self._processes: dict[str, ManagedProcess] = {}
        self._stopped = False
        self._reader: ObjectReader | None = None
        self._reader_lock = threading.Lock()

    # -- for tests ----------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster as the admin."""
        return run_kubectl(self.kubeconfig, *args, input=input, check=check, timeout=timeout)

    def wait_established(self, *names: str, timeout: float = 60.0) -> None:
        """Wait until the CustomResourceDefinitions ``names`` (none: every one) are Established; see the function."""
        wait_established(self.kubectl, *names, timeout=timeout)

    def api_client(self) -> kubernetes.client.ApiClient:
        """A fresh client authenticated as the admin (group system:masters)."""
        client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
            config_file=os.fspath(self.kubeconfig), context=self.name
        )
        return client

    def read(self, kind: str, name: str | None = None, *, namespace: str | None = None) -> dict[str, Any] | None:
        """``kubectl get KIND [NAME] -o json`` as the admin, in this process (see testbed.kube.ObjectReader)."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = ObjectReader(self.kubeconfig, context=self.name)
        return self._reader.get(kind, name, namespace=namespace)

    def create_namespace(self, prefix: str = "test") -> str:
        """Create a namespace with a unique name starting with ``prefix`` and return its name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        with self.api_client() as client:
            kubernetes.client.CoreV1Api(client).create_namespace(
                kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
            )
        return name

    def rss_bytes(self) -> dict[str, int]:
        return {name: proc.rss_bytes() for name, proc in self._processes.items()}

    def pids(self) -> dict[str, int | None]:
        return {name: proc.pid for name, proc in self._processes.items()}

    def log_path(self, component: str) -> Path:
        return self.data_dir / f"{component}.log"

    def restart_etcd(self, *, down_for: float = 0.0) -> None:
        """Kill etcd (SIGKILL, as a crash) and start it again on its data and addresses after ``down_for`` seconds.

        The API server and its clients see their connections and watches break and must recover by themselves.
        Returns once etcd answers its health check again.
        """
        etcd = self._processes["etcd"]
        etcd.stop(crash=True)
        time.sleep(down_for)
        etcd.start()  # the same command line: its data directory and ports
        self._await(etcd, self._etcd_healthy, attempt=_START_ATTEMPTS)

    def stop(self) -> None:
        """Stop controller-manager, API server and etcd (in that order), by PID."""
        if self._stopped:
            return
        self._stopped = True
        if self._reader is not None:
            self._reader.close()
        for component in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._processes.get(component)
            if proc is not None:
                proc.stop()

    def __repr__(self) -> str:
        return f"ControlPlane({self.name!r}, server={self.server!r})"

    # -- start-up -----------------------------------------------------------

    def _start(self) -> None:
        began = time.monotonic()
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        ca = self._write_pki()
        self._start_etcd()
        self._start_apiserver(ca)
        self._start_controller_manager(ca)
        self._wait_for_controllers()
        self.startup = StartupReport(seconds=time.monotonic() - began, rss_bytes=self.rss_bytes())

    def _write_pki(self) -> CertificateAuthority:
        ca = CertificateAuthority(f"testbed-ca-{self.name}")
        self.ca_file.write_bytes(ca.cert_pem)
        ca.issue(
            "kube-apiserver",
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            # 10.96.0.1: the "kubernetes" Service's ClusterIP (first of the range).
            ip_addresses=["127.0.0.1", "10.96.0.1"],
            server=True,
        ).write(self.pki_dir, "apiserver")
        sa_key = new_private_key()
        (self.pki_dir / "sa.key").write_bytes(private_key_pem(sa_key))
        (self.pki_dir / "sa.pub").write_bytes(public_key_pem(sa_key))
        return ca

    def _start_etcd(self) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            client_port, peer_port = free_port(), free_port()
            self.etcd_url = f"http://127.0.0.1:{client_port}"
            peer_url = f"http://127.0.0.1:{peer_port}"
            data = self.data_dir / "etcd"
            shutil.rmtree(data, ignore_errors=True)
            proc = self._spawn(
                "etcd",
                [
                    binaries.kubernetes("etcd"),
                    f"--name={self.name}",
                    f"--data-dir={data}",
                    f"--listen-client-urls={self.etcd_url}",
                    f"--advertise-client-urls={self.etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster={self.name}={peer_url}",
                    "--initial-cluster-state=new",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
            )
            if self._await(proc, self._etcd_healthy, attempt=attempt):
                return

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as reply:
                return bool(json.loads(reply.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _start_apiserver(self, ca: CertificateAuthority) -> None:
        admin = ca.issue("testbed-admin", organizations=["system:masters"], client=True)
        admin_cert, admin_key = admin.write(self.pki_dir, "admin")
        self._admin_tls = (admin_cert, admin_key)
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = free_port()
            self.server = f"https://127.0.0.1:{port}"
            proc = self._spawn(
                "kube-apiserver",
                [
                    binaries.kubernetes("kube-apiserver"),
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    # The "kubernetes" Service's endpoints may not be a loopback
                    # address, and nothing in a test reaches the API through it.
                    "--endpoint-reconciler-type=none",
                    f"--secure-port={port}",
                    f"--etcd-servers={self.etcd_url}",
                    f"--tls-cert-file={self.pki_dir / 'apiserver.crt'}",
                    f"--tls-private-key-file={self.pki_dir / 'apiserver.key'}",
                    f"--client-ca-file={self.ca_file}",
                    "--authorization-mode=Node,RBAC",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={self.pki_dir / 'sa.pub'}",
                    f"--service-account-signing-key-file={self.pki_dir / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    "--allow-privileged=true",
                    "--profiling=false",
                    # Served from etcd rather than the watch cache, so that a
                    # compaction forced through etcd_url reaches watches and
                    # lists as 410 Gone, as an expired cache window does in
                    # production; the cache would keep serving old versions.
                    # Pass apiserver_args=["--watch-cache=true"] to turn it on.
                    "--watch-cache=false",
                    # Only metrics (object counts per kind, etcd's size) that
                    # nothing here reads: a count of every kind from etcd each
                    # minute, 0.2-0.3 CPU-s a minute of etcd's per cluster.
                    "--etcd-count-metric-poll-period=0",
                    "--etcd-db-metric-poll-interval=0",
                    "--v=1",
                    *self.apiserver_args,
                ],
            )
            if self._await(proc, self._apiserver_ready, attempt=attempt):
                write_kubeconfig(self.kubeconfig, name=self.name, server=self.server, ca_pem=ca.cert_pem, client=admin)
                return

    def _apiserver_ready(self) -> bool:
        context = ssl.create_default_context(cafile=os.fspath(self.ca_file))
        context.load_cert_chain(*map(os.fspath, self._admin_tls))
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=3, context=context) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _start_controller_manager(self, ca: CertificateAuthority) -> None:
        identity = ca.issue("system:kube-controller-manager", client=True)
        kubeconfig = write_kubeconfig(
            self.data_dir / "controller-manager.kubeconfig",
            name=self.name,
            server=self.server,
            ca_pem=ca.cert_pem,
            client=identity,
        )
        proc = self._spawn(
            "kube-controller-manager",
            [
                binaries.kubernetes("kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                # No serving endpoint: nothing scrapes it, and one port fewer to race for.
                "--secure-port=0",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allocate-node-cidrs=false",
                "--v=1",
            ],
        )
        if not proc.alive():
            raise self._failure("kube-controller-manager", "exited at once")

    def _wait_for_controllers(self) -> None:
        """Ready once the serviceaccount controller made the default namespace's "default" account.

        Pods (and so StatefulSets) are refused by the ServiceAccount admission
        plugin until that account exists, so a test starting right away would fail.
        """
        proc = self._processes["kube-controller-manager"]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with self.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            while time.monotonic() < deadline:
                if not proc.alive():
                    raise self._failure("kube-controller-manager", f"exited with {proc.returncode}")
                try:
                    core.read_namespaced_service_account("default", "default")
                    core.read_namespaced_config_map("kube-root-ca.crt", "default")
                    return
                except ApiException as err:
                    if err.status != 404:
                        raise
                time.sleep(0.2)
        raise self._failure("kube-controller-manager", "made no default ServiceAccount in time")

    def _spawn(self, component: str, argv: list[str | os.PathLike[str]]) -> ManagedProcess:
        proc = ManagedProcess(argv, name=f"{component} ({self.name})", log_path=self.log_path(component))
        self._processes[component] = proc
        proc.start()
        return proc

    def _await(self, proc: ManagedProcess, ready: Callable[[], bool], *, attempt: int) -> bool:
        """Wait for ``ready()``; False if the port was lost to a race (retry), raise on other failures."""
        component = next(name for name, p in self._processes.items() if p is proc)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if ready():
                return True
            if not proc.alive():
                if attempt < _START_ATTEMPTS and is_port_clash(proc.log_text()):
                    return False
                raise self._failure(component, f"exited with {proc.returncode}")
            time.sleep(0.1)
        proc.stop(grace=2.0)
        raise self._failure(component, f"was not ready within {START_TIMEOUT_SECONDS:.0f} s")

    def _failure(self, component: str, what: str) -> ControlPlaneStartError:
        proc = self._processes.get(component)
        tail = proc.log_tail() if proc is not None else "(not started)"
        return ControlPlaneStartError(
            f"{component} of control plane {self.name!r} {what}; log {self.log_path(component)}:\n{tail}"
        )


def start_control_plane(name: str, base_dir: Path, *, apiserver_args: Sequence[str] = ()) -> ControlPlane:
    """Start a control plane with its data under ``base_dir/<name>``; stop it with ``.stop()``.

    ``apiserver_args`` are appended to kube-apiserver's command line (a later
    flag wins), e.g. ``["--watch-cache=true"]`` or ``["--feature-gates=..."]``.
    """
    data_dir = base_dir / name
    if data_dir.exists():
        raise FileExistsError(f"control plane data folder {data_dir} already exists; pick another name")
    data_dir.mkdir(parents=True)
    cp = ControlPlane(name, data_dir, apiserver_args=apiserver_args)
    try:
        cp._start()
    except BaseException:
        cp.stop()
        raise
    return cp


class ControlPlanes:
    """Starts control planes under one folder and stops them all at :meth:`close`."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.started: list[ControlPlane] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, *, apiserver_args: Sequence[str] = ()) -> ControlPlane:
        cp = start_control_plane(name, self.base_dir, apiserver_args=apiserver_args)
        with self._lock:
            self.started.append(cp)
        return cp

    def close(self) -> None:
        with self._lock:
            started, self.started = self.started, []
        for cp in reversed(started):
            cp.stop()


@contextlib.contextmanager
def control_planes(base_dir: Path | None = None) -> Iterator[ControlPlanes]:
    """A control-plane factory whose clusters all stop on exit (a temporary folder when ``base_dir`` is None)."""
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="testbed-cp-")))
        factory = ControlPlanes(base_dir)
        try:
            yield factory
        finally:
            factory.close()


@contextlib.contextmanager
def control_plane_running(
    name: str, base_dir: Path | None = None, *, apiserver_args: Sequence[str] = ()
) -> Iterator[ControlPlane]:
    """One started control plane, stopped on exit."""
    with control_planes(base_dir) as factory:
        yield factory(name, apiserver_args=apiserver_args)
