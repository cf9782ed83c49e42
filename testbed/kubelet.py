"""The kubelet stand-in: runs the product's pods on a test control plane, as local processes or podman containers.

The control plane is real, including kube-controller-manager's StatefulSet and
Deployment controllers, which create the Pods (and PersistentVolumeClaims) of a
SwarmPool's StatefulSet and of the chart's manager Deployment. What a cluster's
nodes would add, this class plays, for Pods labelled
``app.kubernetes.io/part-of=cluster-discovery`` only:

- **node**: registers Node ``testbed-kubelet`` (Ready) and renews its Lease in
  kube-node-lease every 10 s, so the node-lifecycle controller treats it as
  healthy; binds pending Pods to it through the Binding subresource (there
  is no scheduler).
- **container runtime**: each Pod runs in a :class:`testbed.pods.PodWorker`
  with its own loopback pod IP (testbed.podnet). Containers of an image the
  test bed built (testbed.images, such as the operator image) run in podman
  (testbed.containers). kubo containers (``ipfs/kubo:<built release>``) run in
  podman from the kubo image built here when the kubelet is given it
  (``kubo_image``), else, the quick mode, as host processes with the image
  emulated (testbed.kuboimage).
- **storage provisioner**: a default StorageClass ``testbed-local``; each of its
  PVCs gets a hostPath PersistentVolume of the requested size under this
  kubelet's folder, pre-bound to the claim (the real PV controller completes
  the binding); a Released volume is deleted with its folder.
- **cloud load balancer**: a Service of type LoadBalancer whose selector
  matches a ready pod run here gets ``status.loadBalancer.ingress[0].ip``: its
  ``spec.loadBalancerIP`` when that is a 127.x address, else the pod's IP.

Each kind has one list+watch loop (testbed.kube.Watcher) on a background
thread. :meth:`KuboKubelet.stop` stops every process it started, by PID.

Module-level use::

    with kubo_kubelet_running(cp) as kubelet:
        view = kubelet.wait_for_pod("ns", "kubo-0")
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from testbed import binaries, containers
from testbed.controlplane import ControlPlane
from testbed.kube import Obj, Watcher, new_api_client, now_micro, now_rfc3339, uid_of
from testbed.pods import PodView, PodWorker

NODE_NAME = "testbed-kubelet"
POD_LABELS = {"app.kubernetes.io/part-of": "cluster-discovery", "app.kubernetes.io/name": "kubo"}
POD_SELECTOR = "app.kubernetes.io/part-of=cluster-discovery"
"""The pods run here: the product's own, kubo nodes (emulated image) and the chart's manager (podman)."""
STORAGE_CLASS = "testbed-local"
PROVISIONER = "testbed.cluster-discovery/local-path"
LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0


class KuboKubelet:
    """Plays node, container runtime, storage provisioner and cloud load balancer for the product's pods."""

    def __init__(
        self, cp: ControlPlane, base_dir: Path, *, node_name: str = NODE_NAME, kubo_image: str | None = None
    ) -> None:
        self.cp = cp
        self.kubo_image = kubo_image
        """The podman image that ``ipfs/kubo:<built release>`` runs from; None runs kubo emulated, as processes."""
        self.token_refresh_fraction = 0.8
        """Part of a projected token's lifetime after which it is requested again, as a kubelet does."""
        self.node_name = node_name
        self.base_dir = base_dir
        self.pods_dir = base_dir / "pods"
        self.volumes_dir = base_dir / "volumes"
        self.kubo_version = binaries.kubo_version()
        self.stopping = threading.Event()
        self.spawn_lock = threading.Lock()
        """Held while a pod process is spawned, so stop() cannot miss one."""
        self.allocatable = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_bytes()}", "pods": "110"}
        self.pods_cgroup = containers.PodsCgroup(
            f"cluster-discovery-testbed-{uuid.uuid4().hex[:12]}", cpus=float(self.allocatable["cpu"])
        )
        """Where this node's podman containers run, weighed as the node's CPU (see testbed/containers.py)."""
        self.service_env = _service_env(cp.server)
        self._client: kubernetes.client.ApiClient | None = None
        self._workers: dict[str, PodWorker] = {}
        self._workers_lock = threading.Lock()
        self._services: dict[str, Obj] = {}
        self._services_lock = threading.Lock()
        self._watchers: list[Watcher] = []
        self._threads: list[threading.Thread] = []
        self._log_lock = threading.Lock()
        self.log_path = base_dir / "kubelet.log"
        self.errors: list[str] = []
        """Watch and handler errors, for a failing test to show."""

    # -- API for tests -------------------------------------------------------

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        assert self._client is not None, "kubelet not started"
        return kubernetes.client.CoreV1Api(self._client)

    def pods(self) -> list[PodView]:
        """Snapshots of the pods this kubelet runs (or tried to run)."""
        with self._workers_lock:
            workers = list(self._workers.values())
        return [w.view() for w in workers]

    def pod(self, namespace: str, name: str) -> PodView | None:
        return next((p for p in self.pods() if p.namespace == namespace and p.name == name), None)

    def wait_for_pod(self, namespace: str, name: str, *, ready: bool = True, timeout: float = 120.0) -> PodView:
        """The pod once its first container's process runs here (and its kubo answers, when ``ready``).

        Raises TimeoutError carrying the kubelet's log otherwise.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.pod(namespace, name)
            if view is not None and (view.ready if ready else view.pid is not None):
                return view
            time.sleep(0.2)
        view = self.pod(namespace, name)
        raise TimeoutError(
            f"pod {namespace}/{name} not {'ready' if ready else 'running'} on the testbed kubelet"
            f" within {timeout:.0f} s (now: {view}); kubelet log {self.log_path}:\n{self.log_tail()}"
        )

    def freeze_pod(self, namespace: str, name: str) -> None:
        """Stop the pod's containers where they stand (a network cut, seen from outside): sockets stay open."""
        self._worker(namespace, name).freeze()

    def thaw_pod(self, namespace: str, name: str) -> None:
        """Let a frozen pod's containers go on."""
        self._worker(namespace, name).thaw()

    def _worker(self, namespace: str, name: str) -> PodWorker:
        with self._workers_lock:
            found = [w for w in self._workers.values() if (w.namespace, w.pod_name) == (namespace, name)]
        if not found:
            raise LookupError(f"pod {namespace}/{name} does not run on the testbed kubelet")
        return found[-1]

    def wait_for_pod_gone(self, namespace: str, name: str, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pod(namespace, name) is None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"pod {namespace}/{name} still runs on the testbed kubelet after {timeout:.0f} s")

    def watch_lists(self) -> dict[str, int]:
        """How often each kind was listed (1 + one per 410 Gone that expired its watch)."""
        return {watcher.name: watcher.lists for watcher in self._watchers}

    def log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}\n"
        with self._log_lock, self.log_path.open("a") as log:
            log.write(line)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.pods_dir.mkdir(exist_ok=True)
        self.volumes_dir.mkdir(exist_ok=True)
        self._client = new_api_client(self.cp.kubeconfig, self.cp.name)
        self._register_node()
        self._renew_lease()
        self._ensure_storage_class()
        core = self.core
        self._watchers = [
            Watcher("pods", core.list_pod_for_all_namespaces, self._on_pod, self.stopping,
                    on_error=self._error, log=self.log, label_selector=POD_SELECTOR),
            Watcher("persistentvolumeclaims", core.list_persistent_volume_claim_for_all_namespaces,
                    self._on_claim, self.stopping, on_error=self._error, log=self.log),
            Watcher("persistentvolumes", core.list_persistent_volume, self._on_volume, self.stopping,
                    on_error=self._error, log=self.log),
            Watcher("services", core.list_service_for_all_namespaces, self._on_service, self.stopping,
                    on_error=self._error, log=self.log),
        ]  # fmt: skip
        for watcher in self._watchers:
            watcher.start()
        lease = threading.Thread(target=self._lease_loop, name="node lease", daemon=True)
        lease.start()
        self._threads = [lease]
        for watcher in self._watchers:
            watcher.synced.wait(30)
        self.log(f"kubelet stand-in for {self.cp.name} started as node {self.node_name}")

    def stop(self) -> None:
        """Stop watching and stop every pod process (by PID); the Node is marked not ready."""
        with self.spawn_lock:
            self.stopping.set()
        self.interrupt_watches()
        with self._workers_lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.mark_gone()
        for worker in workers:
            worker.finished.wait(30)
        for worker in workers:
            # A worker stuck in an API call still owns processes: stop them here.
            for container in worker.containers + worker.init_containers:
                if container.process is not None:
                    container.process.stop(grace=5)
        self.pods_cgroup.remove()
        with contextlib.suppress(Exception):
            self._set_node_ready(False, "KubeletStopped", "the testbed kubelet stand-in stopped")
        if self._client is not None:
            self._client.close()
        self.log("kubelet stand-in stopped")

    def interrupt_watches(self) -> None:
        """Cut every watch stream, as a dropped connection would; each watches again from the last version it saw
        (or, stopping, ends at once)."""
        for watcher in self._watchers:
            watcher.interrupt()

    def __enter__(self) -> KuboKubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- node ----------------------------------------------------------------

    def _node_status(self, ready: bool, reason: str, message: str) -> Obj:
        now = now_rfc3339()
        conditions = [
            {"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}", "message": "testbed kubelet stand-in",
             "lastHeartbeatTime": now, "lastTransitionTime": now}
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]  # fmt: skip
        conditions.append(
            {"type": "Ready", "status": "True" if ready else "False", "reason": reason, "message": message,
             "lastHeartbeatTime": now, "lastTransitionTime": now}
        )  # fmt: skip
        capacity = dict(self.allocatable)
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "testbed",
                "systemUUID": "testbed",
                "bootID": "testbed",
                "kernelVersion": os.uname().release,
                "osImage": "testbed kubelet stand-in (local processes)",
                "containerRuntimeVersion": f"testbed://kubo-{self.kubo_version}",
                "kubeletVersion": "testbed",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register_node(self) -> None:
        node: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "testbed.cluster-discovery/kubelet": "stand-in",
                },
            },
            "spec": {},
            "status": self._node_status(True, "KubeletReady", "testbed kubelet stand-in is posting ready status"),
        }
        try:
            self.core.create_node(node)
        except ApiException as err:
            if err.status != 409:
                raise
        self._set_node_ready(True, "KubeletReady", "testbed kubelet stand-in is posting ready status")

    def _set_node_ready(self, ready: bool, reason: str, message: str) -> None:
        self.core.patch_node_status(self.node_name, {"status": self._node_status(ready, reason, message)})

    def _renew_lease(self) -> None:
        coordination = kubernetes.client.CoordinationV1Api(self._client)
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()},
        }
        try:
            coordination.patch_namespaced_lease(self.node_name, "kube-node-lease", {"spec": body["spec"]})
        except ApiException as err:
            if err.status != 404:
                raise
            coordination.create_namespaced_lease("kube-node-lease", body)

    def _lease_loop(self) -> None:
        while not self.stopping.wait(LEASE_RENEW_SECONDS):
            try:
                self._renew_lease()
            except Exception as err:  # keep renewing; the API server may blip
                self._error(f"renewing node lease: {err!r}")

    # -- pods ----------------------------------------------------------------

    def _on_pod(self, kind: str, pod: Obj) -> None:
        uid = uid_of(pod)
        with self._workers_lock:
            worker = self._workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.mark_gone()
            return
        node = pod["spec"].get("nodeName")
        if node and node != self.node_name:
            return
        if worker is not None:
            worker.update(pod)
            return
        meta = pod["metadata"]
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and not meta.get("deletionTimestamp"):
            return
        if meta.get("deletionTimestamp"):
            if node == self.node_name:
                # Bound here earlier (by a previous kubelet) and deleted since: nothing runs, finish it.
                with contextlib.suppress(ApiException):
                    self.core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0)
            return
        if not node and not self._bind(pod):
            return
        worker = PodWorker(self, pod)
        with self._workers_lock:
            if self.stopping.is_set():
                return
            self._workers[uid] = worker
        threading.Thread(target=self._run_worker, args=(worker,), name=f"run {worker.name}", daemon=True).start()

    def _run_worker(self, worker: PodWorker) -> None:
        worker.run()
        with self._workers_lock:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]

    def _bind(self, pod: Obj) -> bool:
        meta = pod["metadata"]
        binding: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            # _preload_content=False: the client cannot deserialize Binding's reply (a Status).
            self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], binding, _preload_content=False)
        except ApiException as err:
            if err.status in (404, 409):  # gone, or bound by someone else meanwhile
                return False
            raise
        self.log(f"bound pod {meta['namespace']}/{meta['name']} to {self.node_name}")
        return True

    # -- storage -------------------------------------------------------------

    def _ensure_storage_class(self) -> None:
        storage = kubernetes.client.StorageV1Api(self._client)
        body: Any = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        try:
            storage.create_storage_class(body)
        except ApiException as err:
            if err.status != 409:
                raise

    def _on_claim(self, kind: str, claim: Obj) -> None:
        if kind == "DELETED":
            return
        spec, meta = claim.get("spec", {}), claim["metadata"]
        annotations = meta.get("annotations") or {}
        ours = spec.get("storageClassName") == STORAGE_CLASS or PROVISIONER in (
            annotations.get("volume.kubernetes.io/storage-provisioner"),
            annotations.get("volume.beta.kubernetes.io/storage-provisioner"),
        )
        if not ours or spec.get("volumeName") or meta.get("deletionTimestamp"):
            return
        if claim.get("status", {}).get("phase", "Pending") != "Pending":
            return
        name = f"pvc-{meta['uid']}"
        path = self.volumes_dir / name
        path.mkdir(parents=True, exist_ok=True)
        # As the local-path provisioner makes its folders: writable by whatever user the pod runs as.
        path.chmod(0o777)
        volume: Any = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": spec.get("volumeMode", "Filesystem"),
                "hostPath": {"path": os.fspath(path), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            self.core.create_persistent_volume(volume)
        except ApiException as err:
            if err.status != 409:
                raise
            return
        self.log(f"provisioned {name} ({path}) for claim {meta['namespace']}/{meta['name']}")

    def _on_volume(self, kind: str, volume: Obj) -> None:
        meta, spec = volume["metadata"], volume.get("spec", {})
        if (meta.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            return
        if kind == "DELETED":
            path = spec.get("hostPath", {}).get("path")
            if path and Path(path).parent == self.volumes_dir:
                shutil.rmtree(path, ignore_errors=True)
            return
        if (
            volume.get("status", {}).get("phase") == "Released"
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            with contextlib.suppress(ApiException):
                self.core.delete_persistent_volume(meta["name"])
            self.log(f"deleted released volume {meta['name']}")

    # -- load balancers ------------------------------------------------------

    def _on_service(self, kind: str, service: Obj) -> None:
        uid = uid_of(service)
        if kind == "DELETED" or service.get("spec", {}).get("type") != "LoadBalancer":
            with self._services_lock:
                self._services.pop(uid, None)
            return
        with self._services_lock:
            self._services[uid] = service
        self._sync_load_balancer(service)

    def pod_readiness_changed(self, namespace: str) -> None:
        """A pod here became ready or stopped: load balancers in its namespace may change."""
        with self._services_lock:
            services = [s for s in self._services.values() if s["metadata"]["namespace"] == namespace]
        for service in services:
            try:
                self._sync_load_balancer(service)
            except Exception as err:  # a pod's worker must not die of a service
                self._error(f"syncing load balancer {namespace}/{service['metadata']['name']}: {err!r}")

    def _sync_load_balancer(self, service: Obj) -> None:
        meta, spec = service["metadata"], service["spec"]
        selector = spec.get("selector") or {}
        if not selector:
            return
        with self._workers_lock:
            workers = [w for w in self._workers.values() if w.namespace == meta["namespace"]]
        backends = [
            w.view()
            for w in workers
            if all((w.pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        ]
        ready = sorted((v for v in backends if v.ready and v.pod_ip), key=lambda v: v.name)
        if not ready:
            return
        requested = spec.get("loadBalancerIP") or ""
        ip = requested if _is_loopback(requested) else ready[0].pod_ip
        current = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip")
        if current == ip:
            return
        ingress: dict[str, Any] = {"ip": ip}
        if spec.get("ports"):
            ingress["ipMode"] = "VIP"
        with contextlib.suppress(ApiException):
            self.core.patch_namespaced_service_status(
                meta["name"], meta["namespace"], {"status": {"loadBalancer": {"ingress": [ingress]}}}
            )
        self.log(f"load balancer {meta['namespace']}/{meta['name']} -> {ip}")

    # -- events --------------------------------------------------------------

    def event(self, *, involved: Obj, kind: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on an object, as `kubectl describe` shows them."""
        now = now_rfc3339()
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": involved["namespace"]},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "testbed-kubelet", "host": self.node_name},
            "reportingComponent": "testbed-kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(involved["namespace"], body, _preload_content=False)
        except ApiException as err:
            message = f"recording event {reason} on {involved['namespace']}/{involved['name']}: {err.reason}"
            if err.status in (403, 404):  # the namespace is being deleted (or gone): nobody will read it
                self.log(f"skipped {message}")
            else:
                self._error(message)

    def _error(self, message: str) -> None:
        if self.stopping.is_set():
            return
        self.errors.append(message)
        self.log(f"error: {message}")


def _service_env(server: str) -> dict[str, str]:
    """The kubernetes Service variables a kubelet injects, pointing at this control plane's API server."""
    host, _, port = server.removeprefix("https://").rpartition(":")
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_ADDR": host,
        "KUBERNETES_PORT_443_TCP_PORT": port,
    }


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def _memory_bytes() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 4 * 2**30


class KuboKubelets:
    """One kubelet per control plane, all stopped at :meth:`close`."""

    def __init__(self, base_dir: Path, *, kubo_image: str | None = None) -> None:
        self.base_dir = base_dir
        self.kubo_image = kubo_image
        self.kubelets: dict[int, KuboKubelet] = {}

    def __call__(self, cp: ControlPlane) -> KuboKubelet:
        existing = self.kubelets.get(id(cp))
        if existing is not None:
            return existing
        kubelet = KuboKubelet(cp, self.base_dir / cp.name, kubo_image=self.kubo_image)
        self.kubelets[id(cp)] = kubelet
        kubelet.start()
        return kubelet

    def close(self) -> None:
        for kubelet in reversed(list(self.kubelets.values())):
            kubelet.stop()
        self.kubelets.clear()


@contextlib.contextmanager
def kubo_kubelets(base_dir: Path | None = None, *, kubo_image: str | None = None) -> Iterator[KuboKubelets]:
    """A kubelet factory (one per control plane) whose kubelets all stop on exit."""
    with contextlib.ExitStack() as stack:
        if base_dir is None:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="testbed-kubelet-")))
        factory = KuboKubelets(base_dir, kubo_image=kubo_image)
        try:
            yield factory
        finally:
            factory.close()


@contextlib.contextmanager
def kubo_kubelet_running(
    cp: ControlPlane, base_dir: Path | None = None, *, kubo_image: str | None = None
) -> Iterator[KuboKubelet]:
    """One started kubelet stand-in for ``cp``, stopped on exit."""
    with kubo_kubelets(base_dir, kubo_image=kubo_image) as factory:
        yield factory(cp)
