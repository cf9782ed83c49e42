"""One pod of the product, run by the kubelet stand-in as local processes or podman containers.

A :class:`PodWorker` is a thread per Pod (keyed by uid) that does what a
kubelet's pod worker does, in the same order:

1. check every image is the kubo release the test bed built (emulated) or an
   image the test bed built with podman (testbed.images) — otherwise the
   container waits with ``ErrImagePull`` and a Warning Event, and nothing runs;
2. hold a pod IP (testbed.podnet) and make the sandbox folder;
3. mount volumes as host folders: secret, configMap, downwardAPI, projected
   (including the service-account token, from TokenRequest bound to the Pod),
   emptyDir, and persistentVolumeClaim (waits until the claim is Bound and uses
   the PersistentVolume's hostPath, so data outlives the pod);
4. resolve env (value, valueFrom secretKeyRef/configMapKeyRef/fieldRef/
   resourceFieldRef, envFrom) with ``$(VAR)`` expansion, mapping values that
   name a mounted or image path to the host folder behind it;
5. run init containers to completion, then the containers: kubo as a process
   with the image's entrypoint emulated (testbed.kuboimage), a built image as a
   podman container with the spec's security context (testbed.containers);
6. report status: Running with the pod IP once processes run, Ready once kubo's
   RPC API answers on the pod IP, or a podman container's readinessProbe
   passes; exits are recorded and restarted per
   restartPolicy with a doubling back-off (1 s to 30 s, shorter than a real
   kubelet's 10 s to 5 min so tests see restarts quickly);
7. on a deletionTimestamp: stop the processes (SIGTERM, SIGKILL after the grace
   period, capped at 10 s) and remove the Pod with grace period 0.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes.client
import requests
from kubernetes.client.exceptions import ApiException

from testbed import containers, images, kuboimage
from testbed.kube import Obj, as_dict, ignore_not_found, now_rfc3339, parse_quantity
from testbed.kuboimage import ContainerFS, ImageError, Mount
from testbed.podnet import PodIP, allocate_pod_ip
from testbed.procs import ManagedProcess

if TYPE_CHECKING:
    from testbed.kubelet import KuboKubelet

BACKOFF_START_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
MAX_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.25
DEFAULT_FILE_MODE = 0o644
# A projected token's lifetime when the volume gives none (what the API server defaults it to).
DEFAULT_TOKEN_SECONDS = 3607


class PodSetupError(RuntimeError):
    """A container cannot start yet or at all; ``reason`` is the kubelet's word for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PodView:
    """What tests need to reach a kubo pod the stand-in runs (a snapshot)."""

    namespace: str
    name: str
    uid: str
    pod_ip: str | None
    api_url: str | None
    """``http://<podIP>:<port>`` of kubo's RPC API once it answered, else None."""
    peer_id: str | None
    pid: int | None
    """PID of the first container's process (the kubo daemon once it exec'd), None when not running."""
    repo: Path | None
    """Host folder of the kubo repository the daemon runs on."""
    sandbox: Path
    ready: bool
    restart_count: int
    phase: str
    reason: str | None
    message: str | None

    @property
    def swarm_addr(self) -> str | None:
        if self.pod_ip is None or self.peer_id is None or self.repo is None:
            return None
        return _swarm_addr(self.repo, self.pod_ip, self.peer_id)

    def log_path(self, container: str | None = None) -> Path:
        logs = sorted((self.sandbox / "logs").glob("*.log"))
        if container is not None:
            return self.sandbox / "logs" / f"{container}.log"
        return logs[0] if logs else self.sandbox / "logs"


def _swarm_addr(repo: Path, pod_ip: str, peer_id: str) -> str | None:
    try:
        swarm = json.loads((repo / "config").read_text())["Addresses"]["Swarm"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for addr in swarm if isinstance(swarm, list) else [swarm]:
        if isinstance(addr, str) and addr.startswith(f"/ip4/{pod_ip}/tcp/"):
            return f"{addr}/p2p/{peer_id}"
    return None


class Container:
    """One container of the pod: its spec, filesystem, process and reported state."""

    def __init__(self, spec: Obj, sandbox: Path, *, init: bool) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.dir = sandbox / "containers" / self.name
        self.fs = ContainerFS(rootfs=self.dir / "rootfs")
        self.repo_marker = self.dir / "ipfs-repo"
        self.log_path = sandbox / "logs" / f"{self.name}.log"
        self.process: ManagedProcess | None = None
        self.restart_count = 0
        self.state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Obj = {}
        self.ready = False
        self.api_url: str | None = None
        self.peer_id: str | None = None
        self.next_start = 0.0
        self.backoff = BACKOFF_START_SECONDS
        self.runs = 0
        self.done = False
        """Exited and not to be restarted (restartPolicy Never, or OnFailure after success)."""
        self.succeeded = False
        self.podman_name: str | None = None
        """Set when the container runs in podman; None when kubo is emulated as processes."""
        self.podman_image: str | None = None
        """The image podman runs: the spec's, or the kubo image built here for ``ipfs/kubo:<built release>``."""
        self.kubo = False
        """The container is kubo (the ipfs/kubo image), in podman or emulated."""
        self.next_readiness = 0.0
        self.readiness_failures = 0
        self.next_liveness = 0.0
        self.liveness_failures = 0
        self.started = False
        """The startupProbe passed (or there is none): until then neither readiness nor liveness is probed."""
        self.next_startup = 0.0
        self.startup_failures = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.alive() else None

    def repo(self) -> Path | None:
        try:
            return Path(self.repo_marker.read_text().strip())
        except OSError:
            return None

    def status(self) -> Obj:
        image = self.spec.get("image", "")
        status: Obj = {
            "name": self.name,
            "image": image,
            "imageID": f"testbed://{image}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started and "running" in self.state,
            "state": self.state,
        }
        if self.process is not None:
            status["containerID"] = f"testbed://{self.process.pid}"
        if self.last_state:
            status["lastState"] = self.last_state
        return status


class PodWorker(threading.Thread):
    """Runs one Pod until it is deleted or the kubelet stops."""

    def __init__(self, kubelet: KuboKubelet, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.sandbox = kubelet.pods_dir / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}"
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._gone = False
        self.ip: PodIP | None = None
        self.init_containers = [Container(c, self.sandbox, init=True) for c in pod["spec"].get("initContainers", [])]
        self.containers = [Container(c, self.sandbox, init=False) for c in pod["spec"]["containers"]]
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.initialized = not self.init_containers
        self.start_time: str | None = None
        self._last_status: Obj | None = None
        self._token_volumes: dict[str, Path] = {}
        """Projected volumes holding a service-account token, by volume name, and their folders."""
        self._tokens_refresh_at = math.inf
        self.finished = threading.Event()

    # -- called from the kubelet's watch thread ------------------------------

    def update(self, pod: Obj) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def mark_gone(self) -> None:
        with self._lock:
            self._gone = True
        self._wake.set()

    def view(self) -> PodView:
        main = self.containers[0]
        # Readiness first: the probe sets the API URL before readiness, so a ready view always has its URL.
        ready = all(c.ready and c.pid is not None for c in self.containers)
        repo = main.repo()
        return PodView(
            namespace=self.namespace,
            name=self.pod_name,
            uid=self.uid,
            pod_ip=self.ip.ip if self.ip else None,
            api_url=main.api_url,
            peer_id=main.peer_id,
            pid=main.pid,
            repo=repo,
            sandbox=self.sandbox,
            # A process that just died is not ready, even before the worker noticed.
            ready=ready,
            restart_count=main.restart_count,
            phase=self.phase,
            reason=self.reason,
            message=self.message,
        )

    def freeze(self) -> None:
        """SIGSTOP every container's processes (``podman pause`` in podman): nothing answers, nothing closes."""
        for container in self.containers:
            if container.podman_name is not None:
                images.podman("pause", container.podman_name)
            elif container.pid is not None:
                os.killpg(container.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for container in self.containers:
            if container.podman_name is not None:
                images.podman("unpause", container.podman_name, check=False)
            elif container.pid is not None:
                os.killpg(container.pid, signal.SIGCONT)

    # -- the worker ----------------------------------------------------------

    @property
    def pod(self) -> Obj:
        with self._lock:
            return self._pod

    def _terminating(self) -> bool:
        with self._lock:
            gone, pod = self._gone, self._pod
        return gone or bool(pod["metadata"].get("deletionTimestamp")) or self.kubelet.stopping.is_set()

    def run(self) -> None:
        try:
            self._run()
        except Exception as err:  # report, then clean up below
            self.kubelet.log(f"{self.name}: worker failed: {err!r}")
            self._event("Warning", "Failed", f"testbed kubelet: {err}")
        finally:
            self._shutdown()
            self.finished.set()

    def _run(self) -> None:
        self._event("Normal", "Scheduled", f"Bound to {self.kubelet.node_name} (testbed kubelet stand-in)")
        for container in self.init_containers + self.containers:
            image = container.spec.get("image", "")
            mismatch = kuboimage.image_mismatch(image, self.kubelet.kubo_version)
            container.kubo = mismatch is None
            if container.kubo and self.kubelet.kubo_image is not None:
                container.podman_image = self.kubelet.kubo_image
            elif mismatch and containers.is_built_image(image):
                container.podman_image = image
            if container.podman_image is not None:
                container.podman_name = containers.container_name(self.uid, container.name)
            elif mismatch:
                self._image_mismatch(container, f"{mismatch}; nor is it an image the test bed built (testbed.images)")
                return
        self.ip = allocate_pod_ip()
        self.sandbox.mkdir(parents=True, exist_ok=True)
        (self.sandbox / "logs").mkdir(exist_ok=True)
        self.start_time = now_rfc3339()
        volumes = self._until_ready("FailedMount", self._mount_volumes)
        if volumes is None:
            return
        self.reason = self.message = None
        for container in self.init_containers + self.containers:
            self._prepare_container(container, volumes)
        self.kubelet.log(f"{self.name}: sandbox {self.sandbox}, pod IP {self.ip.ip}")
        if not self._run_init_containers():
            return
        self.initialized = True
        self.phase = "Running"
        while not self._terminating():
            if time.monotonic() >= self._tokens_refresh_at:
                self._refresh_tokens()
            for container in self.containers:
                self._tend(container)
            self._write_status()
            if self.phase in ("Succeeded", "Failed"):
                break
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
        self._wait_while_not_terminating()

    def _image_mismatch(self, container: Container, message: str) -> None:
        container.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
        self.reason, self.message = "ErrImagePull", message
        self.kubelet.log(f"{self.name}: {message}")
        self._event("Warning", "Failed", f'Failed to pull image "{container.spec.get("image")}": {message}')
        self._write_status()
        self._wait_while_not_terminating()

    def _wait_while_not_terminating(self) -> None:
        while not self._terminating():
            self._wake.wait(1.0)
            self._wake.clear()

    def _until_ready(self, reason: str, attempt: Callable[[], Any]) -> Any:
        """Retry ``attempt`` while it raises PodSetupError (reported as ``reason``); None if the pod goes away."""
        reported: str | None = None
        while not self._terminating():
            try:
                return attempt()
            except PodSetupError as err:
                if err.message != reported:
                    reported = err.message
                    self.reason, self.message = err.reason, err.message
                    for c in self.init_containers + self.containers:
                        c.state = {"waiting": {"reason": err.reason, "message": err.message}}
                    self._event("Warning", reason, err.message)
                    self._write_status()
            self._wake.wait(0.5)
            self._wake.clear()
        return None

    # -- volumes -------------------------------------------------------------

    def _mount_volumes(self) -> dict[str, Path]:
        volumes: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes", []):
            volumes[volume["name"]] = self._mount_volume(volume)
        return volumes

    def _mount_volume(self, volume: Obj) -> Path:
        name: str = volume["name"]
        target = self.sandbox / "volumes" / name
        if "persistentVolumeClaim" in volume:
            return self._claim_path(volume["persistentVolumeClaim"]["claimName"])
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)  # as a kubelet makes it: writable by whatever user the containers run as
            return target
        files: dict[str, tuple[bytes, int]]
        if "secret" in volume:
            files = self._secret_files(volume["secret"])
        elif "configMap" in volume:
            files = self._config_map_files(volume["configMap"])
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            files = self._downward_files(source.get("items", []), source.get("defaultMode", DEFAULT_FILE_MODE))
        elif "projected" in volume:
            files = self._projected_files(volume["projected"])
            self._note_token_volume(name, volume["projected"], target)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise PodSetupError(
                "CreateContainerConfigError",
                f"volume {name!r}: {', '.join(kinds)} volumes are not supported by the testbed kubelet",
            )
        _write_files(target, files, group=self._fs_group)
        return target

    @property
    def _fs_group(self) -> int | None:
        """The group a kubelet gives the pod's volume files (the pod's ``fsGroup``)."""
        group = (self.pod["spec"].get("securityContext") or {}).get("fsGroup")
        return int(group) if group is not None else None

    def _claim_path(self, claim: str) -> Path:
        core = self.kubelet.core
        pvc = ignore_not_found(as_dict, core.read_namespaced_persistent_volume_claim, claim, self.namespace)
        if pvc is None:
            raise PodSetupError("ContainerCreating", f'persistentvolumeclaim "{claim}" not found')
        volume_name = pvc.get("spec", {}).get("volumeName")
        if pvc.get("status", {}).get("phase") != "Bound" or not volume_name:
            raise PodSetupError("ContainerCreating", f'persistentvolumeclaim "{claim}" is not bound yet')
        pv = as_dict(core.read_persistent_volume, volume_name)
        host_path = pv.get("spec", {}).get("hostPath", {}).get("path")
        if not host_path:
            raise PodSetupError(
                "CreateContainerConfigError",
                f"persistentvolume {volume_name} is not a hostPath volume; the testbed kubelet mounts only those",
            )
        path = Path(host_path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _secret_data(self, name: str, optional: bool) -> dict[str, bytes] | None:
        secret = ignore_not_found(as_dict, self.kubelet.core.read_namespaced_secret, name, self.namespace)
        if secret is None:
            if optional:
                return None
            raise PodSetupError("CreateContainerConfigError", f'secret "{name}" not found')
        return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}

    def _config_map_data(self, name: str, optional: bool) -> dict[str, bytes] | None:
        cm = ignore_not_found(as_dict, self.kubelet.core.read_namespaced_config_map, name, self.namespace)
        if cm is None:
            if optional:
                return None
            raise PodSetupError("CreateContainerConfigError", f'configmap "{name}" not found')
        data = {key: value.encode() for key, value in (cm.get("data") or {}).items()}
        data.update({key: base64.b64decode(value) for key, value in (cm.get("binaryData") or {}).items()})
        return data

    def _secret_files(self, source: Obj, default_mode: int | None = None) -> dict[str, tuple[bytes, int]]:
        data = self._secret_data(source.get("secretName") or source.get("name", ""), bool(source.get("optional")))
        mode = source.get("defaultMode", default_mode if default_mode is not None else DEFAULT_FILE_MODE)
        return _select_items(data or {}, source.get("items"), mode, what=f"secret {source.get('secretName')}")

    def _config_map_files(self, source: Obj, default_mode: int | None = None) -> dict[str, tuple[bytes, int]]:
        data = self._config_map_data(source["name"], bool(source.get("optional")))
        mode = source.get("defaultMode", default_mode if default_mode is not None else DEFAULT_FILE_MODE)
        return _select_items(data or {}, source.get("items"), mode, what=f"configmap {source['name']}")

    def _downward_files(self, items: Iterable[Obj], mode: int) -> dict[str, tuple[bytes, int]]:
        files: dict[str, tuple[bytes, int]] = {}
        for item in items:
            if "fieldRef" in item:
                value = self._field_value(item["fieldRef"]["fieldPath"], for_volume=True)
            else:
                ref = item["resourceFieldRef"]
                value = self._resource_value(ref, ref.get("containerName", self.containers[0].name))
            files[item["path"]] = (value.encode(), item.get("mode", mode))
        return files

    def _note_token_volume(self, name: str, projected: Obj, target: Path) -> None:
        """Schedule the refresh of a projected token: a kubelet renews it at 80 % of its lifetime."""
        lifetimes = [
            float(source["serviceAccountToken"].get("expirationSeconds", DEFAULT_TOKEN_SECONDS))
            for source in projected.get("sources", [])
            if "serviceAccountToken" in source
        ]
        if not lifetimes:
            return
        self._token_volumes[name] = target
        refresh_at = time.monotonic() + min(lifetimes) * self.kubelet.token_refresh_fraction
        self._tokens_refresh_at = min(self._tokens_refresh_at, refresh_at)

    def _refresh_tokens(self) -> None:
        """Request the projected tokens again and replace their files in place (the mounts keep their folder)."""
        self._tokens_refresh_at = math.inf
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes", [])}
        for name, target in self._token_volumes.items():
            projected = volumes[name]["projected"]
            try:
                files = self._projected_files(projected)
            except PodSetupError as err:
                self._event("Warning", "FailedMount", f"refreshing the token of volume {name}: {err.message}")
                self._tokens_refresh_at = time.monotonic() + 10.0
                continue
            _replace_files(target, files, group=self._fs_group)
            self._note_token_volume(name, projected, target)
            self.kubelet.log(f"{self.name}: refreshed the service-account token of volume {name}")

    def _projected_files(self, projected: Obj) -> dict[str, tuple[bytes, int]]:
        mode = projected.get("defaultMode", DEFAULT_FILE_MODE)
        files: dict[str, tuple[bytes, int]] = {}
        for source in projected.get("sources", []):
            if "secret" in source:
                files.update(self._secret_files(source["secret"], mode))
            elif "configMap" in source:
                files.update(self._config_map_files(source["configMap"], mode))
            elif "downwardAPI" in source:
                files.update(self._downward_files(source["downwardAPI"].get("items", []), mode))
            elif "serviceAccountToken" in source:
                token_source = source["serviceAccountToken"]
                files[token_source["path"]] = (self._service_account_token(token_source).encode(), mode)
            else:
                raise PodSetupError(
                    "CreateContainerConfigError",
                    f"projected source {sorted(source)} is not supported by the testbed kubelet",
                )
        return files

    def _service_account_token(self, source: Obj) -> str:
        pod = self.pod
        account = pod["spec"].get("serviceAccountName") or "default"
        spec: Obj = {
            "expirationSeconds": source.get("expirationSeconds", DEFAULT_TOKEN_SECONDS),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name, "uid": self.uid},
        }
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        try:
            reply = as_dict(
                self.kubelet.core.create_namespaced_service_account_token,
                account,
                self.namespace,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except ApiException as err:
            raise PodSetupError(
                "CreateContainerConfigError", f"token for serviceaccount {account}: {err.reason}"
            ) from err
        return str(reply["status"]["token"])

    # -- env and fields ------------------------------------------------------

    def _field_value(self, path: str, *, for_volume: bool = False) -> str:
        pod = self.pod
        meta = pod["metadata"]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return str(meta.get(match.group(1), {}).get(match.group(2), ""))
        if for_volume and path in ("metadata.labels", "metadata.annotations"):
            items = sorted(meta.get(path.split(".")[1], {}).items())
            return "\n".join(f"{key}={json.dumps(value)}" for key, value in items)
        pod_ip = self.ip.ip if self.ip else ""
        values: dict[str, str] = {
            "metadata.name": self.pod_name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.kubelet.node_name,
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
            "status.podIP": pod_ip,
            "status.podIPs": pod_ip,
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }
        if path not in values:
            raise PodSetupError(
                "CreateContainerConfigError", f"fieldRef {path} is not supported by the testbed kubelet"
            )
        return values[path]

    def _resource_value(self, ref: Obj, container_name: str) -> str:
        spec = next((c.spec for c in self.init_containers + self.containers if c.name == container_name), None)
        if spec is None:
            raise PodSetupError("CreateContainerConfigError", f"resourceFieldRef: no container {container_name!r}")
        kind, _, resource = ref["resource"].partition(".")
        resources = spec.get("resources", {})
        raw = resources.get(kind, {}).get(resource)
        if raw is None and kind == "requests":
            raw = resources.get("limits", {}).get(resource)
        if raw is None:
            raw = self.kubelet.allocatable.get(resource)
        if raw is None:
            raise PodSetupError("CreateContainerConfigError", f"resourceFieldRef {ref['resource']} has no value")
        divisor = parse_quantity(str(ref.get("divisor", "1")))
        return str(math.ceil(parse_quantity(str(raw)) / divisor))

    def _container_env(self, container: Container) -> dict[str, str]:
        """Image env, the kubernetes Service variables, then envFrom and env in order, as a kubelet merges them."""
        spec = container.spec
        defined: dict[str, str] = dict(self.kubelet.service_env)
        for source in spec.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self._config_map_data(ref["name"], bool(ref.get("optional"))) or {}
            else:
                ref = source["secretRef"]
                data = self._secret_data(ref["name"], bool(ref.get("optional"))) or {}
            defined.update({prefix + key: value.decode() for key, value in data.items()})
        for var in spec.get("env", []):
            name = var["name"]
            if "valueFrom" not in var:
                defined[name] = kuboimage.expand(var.get("value", ""), defined)
                continue
            value_from = var["valueFrom"]
            value: str | None
            if "secretKeyRef" in value_from:
                ref = value_from["secretKeyRef"]
                raw = (self._secret_data(ref["name"], bool(ref.get("optional"))) or {}).get(ref["key"])
                value = _key_value(raw, ref, f'secret "{ref["name"]}"')
            elif "configMapKeyRef" in value_from:
                ref = value_from["configMapKeyRef"]
                raw = (self._config_map_data(ref["name"], bool(ref.get("optional"))) or {}).get(ref["key"])
                value = _key_value(raw, ref, f'configmap "{ref["name"]}"')
            elif "fieldRef" in value_from:
                value = self._field_value(value_from["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in value_from:
                ref = value_from["resourceFieldRef"]
                value = self._resource_value(ref, ref.get("containerName") or container.name)
            else:
                raise PodSetupError(
                    "CreateContainerConfigError", f"env {name}: unsupported valueFrom {sorted(value_from)}"
                )
            if value is not None:
                defined[name] = value
        if container.podman_name is not None:
            return defined  # the image's own env is podman's to merge underneath
        env = dict(kuboimage.IMAGE_ENV)
        env.update(defined)
        mapped = {key: container.fs.map_value(value) for key, value in env.items()}
        mapped["PATH"] = container.fs.host_path_env()
        mapped["HOME"] = os.fspath(container.fs.host(kuboimage.IMAGE_HOME))
        mapped["HOSTNAME"] = self.pod["spec"].get("hostname") or self.pod_name
        return mapped

    # -- containers ----------------------------------------------------------

    def _prepare_container(self, container: Container, volumes: Mapping[str, Path]) -> None:
        assert self.ip is not None
        for mount in container.spec.get("volumeMounts", []):
            if mount["name"] not in volumes:
                raise PodSetupError("CreateContainerConfigError", f"volumeMount {mount['name']!r} names no volume")
            host = volumes[mount["name"]]
            if mount.get("subPath"):
                host = host / mount["subPath"]
                if not host.exists():
                    host.mkdir(parents=True)
            container.fs.mounts.append(Mount(mount["mountPath"], host, bool(mount.get("readOnly"))))
        container.dir.mkdir(parents=True, exist_ok=True)
        if container.podman_name is None:
            kuboimage.prepare_rootfs(container.fs, pod_ip=self.ip.ip, repo_marker=container.repo_marker)
        elif container.kubo:
            containers.prepare_kubo_network(container.dir / containers.KUBO_NETWORK_DIR)

    def _start(self, container: Container) -> bool:
        """Start the container's process; False (with the reason in its state) when it cannot."""
        try:
            env = self._container_env(container)
            if container.podman_name is not None:
                argv = self._podman_argv(container, env)
            else:
                argv = kuboimage.container_argv(
                    container.spec.get("command"), container.spec.get("args"), env, container.fs
                )
        except (PodSetupError, ImageError, containers.ContainerConfigError) as err:
            reason = err.reason if isinstance(err, PodSetupError) else "CreateContainerError"
            if container.state.get("waiting", {}).get("message") != str(err):
                self._event("Warning", "Failed", f"Error: {err}")
            container.state = {"waiting": {"reason": reason, "message": str(err)}}
            container.next_start = time.monotonic() + 1.0
            return False
        if container.podman_name is not None:
            containers.remove(container.podman_name)  # a run the kubelet lost track of
            cwd, env = container.dir, images.podman_env()
        else:
            cwd = container.fs.host(container.spec.get("workingDir") or "/")
            cwd.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            container.repo_marker.unlink()
        if container.podman_name is not None and container.kubo:
            # The repository is a mounted folder (the PVC): the probe reads its api file and identity there.
            repo = env.get("IPFS_PATH") or containers.image_env(container.podman_image or "").get("IPFS_PATH", "")
            container.repo_marker.write_text(os.fspath(container.fs.host(repo or kuboimage.IMAGE_HOME)) + "\n")
        container.api_url = None
        container.process = ManagedProcess(
            argv,
            name=f"pod {self.namespace}/{self.pod_name} container {container.name}",
            log_path=container.log_path,
            env=env,
            cwd=cwd,
            pass_fds=[self.ip.lock_fd] if self.ip is not None else [],
        )
        with self.kubelet.spawn_lock:
            if self.kubelet.stopping.is_set():
                return False
            container.process.start()
        if container.runs:
            container.restart_count += 1
        container.runs += 1
        container.state = {"running": {"startedAt": now_rfc3339()}}
        started = time.monotonic()
        readiness, liveness = container.spec.get("readinessProbe") or {}, container.spec.get("livenessProbe") or {}
        startup = container.spec.get("startupProbe")
        # Each delay counts from the container's start, as a kubelet counts it; readiness and liveness wait for
        # the startupProbe besides.
        container.next_readiness = started + float(readiness.get("initialDelaySeconds", 0))
        container.next_liveness = started + float(liveness.get("initialDelaySeconds", 0))
        container.next_startup = started + float((startup or {}).get("initialDelaySeconds", 0))
        container.started = not startup
        container.readiness_failures = container.liveness_failures = container.startup_failures = 0
        self.kubelet.log(f"{self.name}: started {container.name} as PID {container.process.pid}: {' '.join(argv)}")
        self._event("Normal", "Started", f"Started container {container.name} (PID {container.process.pid})")
        return True

    def _podman_argv(self, container: Container, env: dict[str, str]) -> list[str]:
        assert self.ip is not None and container.podman_name is not None and container.podman_image is not None
        image = container.podman_image
        settings = containers.image_config(image)
        spec = container.spec
        mounts = [containers.BindMount(str(m.host_path), m.container_path, m.read_only) for m in container.fs.mounts]
        if container.kubo:
            mounts.append(containers.kubo_network_mount(container.dir / containers.KUBO_NETWORK_DIR))
            env = containers.kubo_network_env(env, image_env=containers.image_env(image), pod_ip=self.ip.ip)
        return images.podman_argv(
            *containers.run_argv(
                name=container.podman_name,
                image=image,
                image_user=str(settings.get("User") or ""),
                rootfs=containers.image_rootfs(image),
                image_settings=settings,
                command=[kuboimage.expand(part, env) for part in spec.get("command") or []],
                args=[kuboimage.expand(part, env) for part in spec.get("args") or []],
                env=env,
                mounts=mounts,
                working_dir=spec.get("workingDir"),
                security=spec.get("securityContext") or {},
                pod_security=self.pod["spec"].get("securityContext") or {},
                pod_ip=self.ip.ip,
                resources=spec.get("resources") or {},
                cgroup_parent=self.kubelet.pods_cgroup.create(),
            )
        )

    def _run_init_containers(self) -> bool:
        for container in self.init_containers:
            while True:
                if self._terminating():
                    return False
                if container.process is None or not container.process.alive():
                    if container.process is not None:
                        code = container.process.returncode
                        if code == 0:
                            container.state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
                            break
                        self._record_exit(container, code)
                        if self.pod["spec"].get("restartPolicy", "Always") == "Never":
                            self.phase = "Failed"
                            self._write_status()
                            self._wait_while_not_terminating()
                            return False
                        container.process = None
                    if time.monotonic() >= container.next_start:
                        self._start(container)
                self._write_status()
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
        return True

    def _tend(self, container: Container) -> None:
        """Start, probe or restart one container, following the pod's restartPolicy."""
        if container.done:
            return
        proc = container.process
        if proc is not None and proc.alive():
            now = time.monotonic()
            if not container.started:
                if now >= container.next_startup:
                    self._check_startup(container)
                return
            if now >= container.next_readiness:
                self._probe(container)
            if now >= container.next_liveness:
                self._check_liveness(container)
            return
        if proc is not None:
            code = proc.returncode
            self._record_exit(container, code)
            container.process = None
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                container.done, container.succeeded = True, code == 0
                if all(c.done for c in self.containers):
                    self.phase = "Succeeded" if all(c.succeeded for c in self.containers) else "Failed"
                return
        if time.monotonic() >= container.next_start:
            self._start(container)
        elif container.runs:
            container.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off {container.backoff:.0f}s restarting failed"
                        f" container={container.name} pod={self.pod_name}"
                    ),
                }
            }

    def _record_exit(self, container: Container, code: int | None) -> None:
        started = container.state.get("running", {}).get("startedAt")
        terminated: Obj = {
            "exitCode": code if code is not None and code >= 0 else 128 + (-(code or 0)),
            "reason": "Completed" if code == 0 else "Error",
            "finishedAt": now_rfc3339(),
        }
        if started:
            terminated["startedAt"] = started
        container.last_state = {"terminated": terminated}
        container.state = {"terminated": terminated}
        container.ready = False
        container.next_start = time.monotonic() + container.backoff
        self.kubelet.log(f"{self.name}: container {container.name} exited with {code}; log {container.log_path}")
        self._event("Warning", "BackOff", f"Container {container.name} exited with {code}")
        container.backoff = min(container.backoff * 2, BACKOFF_MAX_SECONDS)
        self.kubelet.pod_readiness_changed(self.namespace)

    def _probe(self, container: Container) -> None:
        """Readiness, as a kubelet runs it: the container's readinessProbe every periodSeconds.

        Ready on the first success (kubo also once its daemon serves the RPC API
        it wrote in its repository, which gives the view its URL and peer id);
        not ready again after failureThreshold failures in a row. The probe is
        the pod spec's own (``tcpSocket`` or ``httpGet`` on the pod IP), so a
        node whose RPC API asks for authorization is probed as a kubelet would.
        """
        probe = container.spec.get("readinessProbe") or {}
        if not container.ready:  # probed at every turn of the worker until first ready
            if self._probe_passes(probe, container) and (not container.kubo or self._kubo_serves(container)):
                container.ready, container.readiness_failures = True, 0
                container.backoff = BACKOFF_START_SECONDS
                served = f", kubo {container.peer_id} at {container.api_url}" if container.kubo else ""
                self.kubelet.log(f"{self.name}: container {container.name} ready{served}")
                self.kubelet.pod_readiness_changed(self.namespace)
            return
        container.next_readiness = time.monotonic() + float(probe.get("periodSeconds", 10))
        if self._probe_passes(probe, container):
            container.readiness_failures = 0
            return
        container.readiness_failures += 1
        if container.readiness_failures >= int(probe.get("failureThreshold", 3)):
            container.ready = False
            self._event("Warning", "Unhealthy", f"Readiness probe failed for container {container.name}")
            self.kubelet.log(f"{self.name}: container {container.name} not ready: readiness probe failed")
            self.kubelet.pod_readiness_changed(self.namespace)

    def _kubo_serves(self, container: Container) -> bool:
        """kubo's daemon wrote its RPC address to the repository: note it and the peer id for the view."""
        repo = container.repo()
        if repo is None:
            return False
        try:
            api = (repo / "api").read_text().strip()
            peer_id = json.loads((repo / "config").read_text())["Identity"]["PeerID"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        url = _multiaddr_url(api)
        if url is None or not isinstance(peer_id, str):
            return False
        container.api_url, container.peer_id = url, peer_id
        return True

    def _check_startup(self, container: Container) -> None:
        """A startupProbe holds readiness and liveness back until it passes; failureThreshold failures kill."""
        probe = container.spec.get("startupProbe") or {}
        container.next_startup = time.monotonic() + float(probe.get("periodSeconds", 10))
        if self._probe_passes(probe, container):
            container.started = True
            self.kubelet.log(f"{self.name}: container {container.name} started: its startup probe passed")
            return
        container.startup_failures += 1
        if container.startup_failures < int(probe.get("failureThreshold", 3)):
            return
        self._kill_unhealthy(container, "Startup")

    def _check_liveness(self, container: Container) -> None:
        """A livenessProbe failing failureThreshold times in a row kills the container; its restart policy follows."""
        probe = container.spec.get("livenessProbe")
        if not probe or container.process is None:
            container.next_liveness = math.inf
            return
        container.next_liveness = time.monotonic() + float(probe.get("periodSeconds", 10))
        if self._probe_passes(probe, container):
            container.liveness_failures = 0
            return
        container.liveness_failures += 1
        if container.liveness_failures < int(probe.get("failureThreshold", 3)):
            return
        self._kill_unhealthy(container, "Liveness")

    def _kill_unhealthy(self, container: Container, probe_kind: str) -> None:
        """Stop a container whose startup or liveness probe failed; its restart policy follows."""
        assert container.process is not None
        probe = probe_kind.lower()
        self._event("Warning", "Unhealthy", f"{probe_kind} probe failed for container {container.name}")
        self._event("Normal", "Killing", f"Container {container.name} failed {probe} probe, will be restarted")
        self.kubelet.log(f"{self.name}: container {container.name} failed its {probe} probe: stopping it")
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        container.process.stop(grace=min(grace, MAX_GRACE_SECONDS))

    def _probe_passes(self, probe: Obj, container: Container) -> bool:
        """One run of a ``tcpSocket`` or ``httpGet`` probe on the pod IP; no probe passes, as a kubelet says."""
        host = self.ip.ip if self.ip else None
        if host is None:
            return False
        timeout = float(probe.get("timeoutSeconds", 1))
        if "tcpSocket" in probe:
            port = _container_port(container.spec, probe["tcpSocket"].get("port"))
            if port is None:
                return False
            try:
                socket.create_connection((host, port), timeout=timeout).close()
            except OSError:
                return False
            return True
        if "httpGet" in probe:
            port = _container_port(container.spec, probe["httpGet"].get("port"))
            path = probe["httpGet"].get("path") or "/"
            if port is None:
                return False
            try:
                return 200 <= requests.get(f"http://{host}:{port}{path}", timeout=timeout).status_code < 400
            except requests.RequestException:
                return False
        return True

    # -- status and events ---------------------------------------------------

    def _write_status(self) -> None:
        now = now_rfc3339()
        ready = self.phase == "Running" and all(c.ready for c in self.containers)
        pod_ip = self.ip.ip if self.ip else None

        def condition(kind: str, value: bool) -> Obj:
            return {"type": kind, "status": "True" if value else "False", "lastTransitionTime": now}

        running = any(c.pid for c in self.containers)
        status: Obj = {
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "conditions": [
                condition("PodReadyToStartContainers", pod_ip is not None),
                condition("Initialized", self.initialized),
                condition("ContainersReady", ready),
                condition("Ready", ready),
                condition("PodScheduled", True),
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if pod_ip and (running or self.phase == "Running"):
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        if self.start_time:
            status["startTime"] = self.start_time
        # None deletes a reason written while the pod was still pending.
        pending = self.phase == "Pending"
        status["reason"] = self.reason if pending else None
        status["message"] = self.message if pending else None
        comparable = json.loads(json.dumps(status))
        for cond in comparable["conditions"]:
            cond.pop("lastTransitionTime")
        if comparable == self._last_status:
            return
        if self._last_status is not None:
            previous = {c["type"]: c["status"] for c in self._last_status["conditions"]}
            for cond in status["conditions"]:
                if previous.get(cond["type"]) == cond["status"]:
                    cond.pop("lastTransitionTime")  # keep the server's time of the last real transition
        try:
            self.kubelet.core.patch_namespaced_pod_status(self.pod_name, self.namespace, {"status": status})
        except ApiException as err:
            if err.status != 404:
                raise
        self._last_status = comparable

    def _event(self, kind: str, reason: str, message: str) -> None:
        self.kubelet.event(
            involved={
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": self.namespace,
                "name": self.pod_name,
                "uid": self.uid,
            },
            kind=kind,
            reason=reason,
            message=message,
        )

    # -- teardown ------------------------------------------------------------

    def _shutdown(self) -> None:
        grace = min(float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)), MAX_GRACE_SECONDS)
        everyone = self.containers + self.init_containers
        running = [c.process is not None and c.process.alive() for c in everyone]
        # As a kubelet does: every container is signalled at once, within one grace period for the pod.
        began = time.monotonic()
        for container, was_running in zip(everyone, running, strict=True):
            if was_running and container.process is not None:
                container.process.terminate()
        for container, was_running in zip(everyone, running, strict=True):
            if container.process is not None:
                left = max(0.0, began + grace - time.monotonic())
                code = container.process.stop(grace=left, terminated=was_running)
                if was_running:  # how long a stop takes, and whether the grace period ran out
                    how = "killed after the grace period" if code == -signal.SIGKILL else f"exited with {code}"
                    self.kubelet.log(
                        f"{self.name}: stopped {container.name} in {time.monotonic() - began:.1f} s ({how})"
                    )
                if container.ready:
                    container.ready = False
            if container.podman_name is not None:
                containers.remove(container.podman_name)
        if self.ip is not None:
            self.ip.release()
        if self.kubelet.stopping.is_set():
            return
        self.kubelet.pod_readiness_changed(self.namespace)
        with self._lock:
            gone, pod = self._gone, self._pod
        if not gone and pod["metadata"].get("deletionTimestamp"):
            # As a kubelet does once the containers are gone: finish the graceful deletion.
            with contextlib.suppress(ApiException):
                self.kubelet.core.delete_namespaced_pod(
                    self.pod_name,
                    self.namespace,
                    grace_period_seconds=0,
                    body=kubernetes.client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=kubernetes.client.V1Preconditions(uid=self.uid)
                    ),
                )
        self.kubelet.log(f"{self.name}: stopped")
        shutil.rmtree(self.sandbox / "volumes", ignore_errors=True)


def _key_value(raw: bytes | None, ref: Obj, what: str) -> str | None:
    if raw is None:
        if ref.get("optional"):
            return None
        raise PodSetupError("CreateContainerConfigError", f"couldn't find key {ref['key']} in {what}")
    return raw.decode()


def _select_items(
    data: Mapping[str, bytes], items: list[Obj] | None, mode: int, *, what: str
) -> dict[str, tuple[bytes, int]]:
    if items is None:
        return {key: (value, mode) for key, value in data.items()}
    files: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in data:
            raise PodSetupError("CreateContainerConfigError", f"{what} has no key {item['key']!r}")
        files[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return files


def _write_files(target: Path, files: Mapping[str, tuple[bytes, int]], *, group: int | None = None) -> None:
    """Write a volume anew; with the pod's ``fsGroup``, its folders and files owned by that group, as a kubelet does."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    _replace_files(target, files, group=group)
    if group is not None:
        for folder in [target, *(path for path in target.rglob("*") if path.is_dir())]:
            os.chown(folder, -1, group)


def _replace_files(target: Path, files: Mapping[str, tuple[bytes, int]], *, group: int | None) -> None:
    """Replace each file by a rename in its folder, so a container that has the folder mounted sees the new one."""
    for relative, (content, mode) in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.new")
        scratch.write_bytes(content)
        scratch.chmod(mode)
        if group is not None:
            os.chown(scratch, -1, group)
        os.replace(scratch, path)


def _container_port(spec: Obj, port: Any) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for entry in spec.get("ports") or []:
        if entry.get("name") == port:
            return int(entry["containerPort"])
    return None


def _multiaddr_url(addr: str) -> str | None:
    parts = addr.split("/")
    if len(parts) >= 5 and parts[1] == "ip4" and parts[3] == "tcp":
        return f"http://{parts[2]}:{parts[4]}"
    return None
