"""What the kubelet stand-in needs to run a pod's container as a real podman container.

A container whose image is one the test bed built (testbed.images) runs with
``podman run`` from that image, with what its spec says: command and args (the
image's entrypoint and cmd when absent), env, volume mounts (bind mounts of the
folders the pod worker prepared, read-only when the mount says so), working
directory, and the security context (user and group, read-only root filesystem,
capabilities, no privilege escalation, runAsNonRoot checked against the image's
user as a kubelet checks it).

What stands in for a real node, and why:

- **network**: every container shares the host network (no bridge here); the
  pod's own loopback address is its IP. A wildcard bind in the args
  (``--*-bind-address=:PORT``) becomes a bind to the pod IP, as the pod's own
  network namespace would make it, so two pods can listen on one port. kubo
  binds what its config says, so a kubo container gets, read-only at
  ``/testbed``, an ``ipfs`` ahead of the image's on PATH that, just before
  ``ipfs daemon``, binds the config's listen addresses to the pod IP with
  testbed/podnet.py (the rule the emulated image applies too), then runs the
  image's own ``/usr/local/bin/ipfs``.
- **resources**: as a kubelet maps them onto cgroups (v1 here): ``limits.memory``
  is the memory limit (the kernel kills past it, exit code 137), ``limits.cpu``
  a CFS quota, ``requests.cpu`` the CPU shares and ``requests.memory`` a soft
  reservation. An exit from the memory limit is reported as ``Error`` with
  137, not ``OOMKilled``: the container is removed on exit, with its state.
  Each kubelet stand-in puts its containers under a cgroup of its own whose
  CPU shares are the node's allocatable CPU, as a kubelet sets its
  ``kubepods`` cgroup (PodsCgroup). In podman's default parent the kernel
  would weigh the containers of every node together as one process against
  each process outside, so three busy test processes would leave the pods of
  all nodes a quarter of the machine between them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed import images, podnet
from testbed.kube import Obj, parse_quantity

_WILDCARD_BIND = re.compile(r"^(--[a-z-]*bind-address=):(\d+)$")
KUBO_NETWORK_DIR = "testbed-network"
"""The folder, beside a kubo container's logs, mounted at ``/testbed`` in it."""
_KUBO_NETWORK_MOUNT = "/testbed"
_KUBO_IPFS_SHIM = """#!/bin/sh
# testbed: ahead of the image's /usr/local/bin/ipfs on PATH. Before `ipfs daemon`,
# bind the config's listen addresses to this pod's IP (the network stand-in,
# testbed/podnet.py), as the pod's own network namespace would.
for arg do
  case "$arg" in
    -*) continue ;;
    daemon) python3 /testbed/podnet.py "${IPFS_PATH:-$HOME/.ipfs}" "$TESTBED_POD_IP" || exit 1 ;;
  esac
  break
done
exec /usr/local/bin/ipfs "$@"
"""


class ContainerConfigError(ValueError):
    """The container cannot be created as its spec says (a kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class BindMount:
    host: str
    container: str
    read_only: bool


def is_built_image(image: str) -> bool:
    """True when ``image`` is in the test bed's podman storage (False where podman is not installed)."""
    try:
        return images.image_exists(image)
    except images.ImageBuildError:
        return False


@functools.lru_cache(maxsize=32)
def image_config(image: str) -> Obj:
    """The image's config (User, Env, Entrypoint, ...); images are tagged by their inputs, so it never changes."""
    result = images.podman("image", "inspect", "--format", "{{json .Config}}", image)
    config = json.loads(result.stdout.decode() or "{}")
    return config if isinstance(config, dict) else {}


def image_env(image: str) -> dict[str, str]:
    return _env_of(image_config(image))


def _env_of(config: Obj) -> dict[str, str]:
    entries = config.get("Env") or []
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


@functools.lru_cache(maxsize=32)
def image_rootfs(image: str) -> str:
    """The folder holding the image's files (``podman image mount``), for :func:`run_argv`'s ``rootfs``.

    The vfs storage driver, the only one this sandbox can use, copies an image's
    whole tree for each container it creates and deletes it after: about 3
    CPU-seconds for the operator's 418 MB, 2 for kubo's. An image's top layer
    folder already holds its whole tree, so containers run on it (read-only, or
    under an overlay) for a tenth of a second. It stays mounted: for vfs a mount
    is a count in the store, and ``podman rmi --force`` still removes the image.
    """
    return images.podman("image", "mount", image).stdout.decode().strip()


def prepare_kubo_network(folder: Path) -> None:
    """Lay out what a kubo container gets at ``/testbed``: the ``ipfs`` shim and podnet.py to run."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "bin" / "ipfs"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(_KUBO_IPFS_SHIM)
    shim.chmod(0o755)
    script = folder / "podnet.py"
    shutil.copyfile(podnet.__file__, script)
    script.chmod(0o644)


def kubo_network_mount(folder: Path) -> BindMount:
    return BindMount(str(folder), _KUBO_NETWORK_MOUNT, read_only=True)


def kubo_network_env(env: Mapping[str, str], *, image_env: Mapping[str, str], pod_ip: str) -> dict[str, str]:
    """The container's env with the shim first on PATH and the pod IP it binds."""
    path = env.get("PATH") or image_env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return {**env, "PATH": f"{_KUBO_NETWORK_MOUNT}/bin:{path}", "TESTBED_POD_IP": pod_ip}


def container_name(pod_uid: str, container: str) -> str:
    return f"testbed-{pod_uid}-{container}"


def effective_user(security: Obj, pod_security: Obj, image_user: str) -> tuple[str | None, str | None]:
    """The uid and gid the container runs as: container securityContext, then the pod's, then the image's."""
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
    image_uid, _, image_gid = image_user.partition(":")
    return (
        str(uid) if uid is not None else (image_uid or None),
        str(gid) if gid is not None else (image_gid or None),
    )


def run_argv(
    *,
    name: str,
    image: str,
    image_user: str,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    env: Mapping[str, str],
    mounts: Sequence[BindMount],
    working_dir: str | None,
    security: Obj,
    pod_security: Obj,
    pod_ip: str,
    resources: Obj | None = None,
    cgroup_parent: str | None = None,
    rootfs: str | None = None,
    image_settings: Obj | None = None,
) -> list[str]:
    """The ``podman run`` arguments (after ``podman``) for one container.

    With ``rootfs`` (the image's files, :func:`image_rootfs`) the container runs
    on them instead of on a copy: read-only as they are when its root file system
    is read-only, else under an overlay that takes its writes (``:O``), as a
    node's overlayfs snapshotter runs images. podman applies an image's own
    settings only to an image it runs itself, so they come from
    ``image_settings`` (its config, :func:`image_config`): Env under the
    container's env, WorkingDir unless the spec sets one, and Entrypoint and Cmd
    under ``command`` and ``args`` as a kubelet combines them.
    """
    uid, gid = effective_user(security, pod_security, image_user)
    non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
    if non_root and (uid is None or not uid.isdigit() or int(uid) == 0):
        raise ContainerConfigError(
            "container has runAsNonRoot and image will run as root"
            if uid in (None, "0", "root")
            else f"container has runAsNonRoot and image has non-numeric user ({uid}), cannot verify user is non-root"
        )
    argv = ["run", "--rm", "--name", name, "--runtime", "runc", "--network", "host", "--pull", "never"]
    argv += ["--hostname", name[:63], "--log-driver", "none", "--sig-proxy=true"]
    if uid is not None:
        argv += ["--user", f"{uid}:{gid}" if gid is not None else uid]
    for group in pod_security.get("supplementalGroups") or []:
        argv += ["--group-add", str(group)]
    if pod_security.get("fsGroup") is not None:
        argv += ["--group-add", str(pod_security["fsGroup"])]
    if security.get("readOnlyRootFilesystem"):
        argv += ["--read-only", "--read-only-tmpfs=false"]
    if security.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    if security.get("privileged"):
        raise ContainerConfigError("privileged containers are not run by the testbed kubelet")
    capabilities = security.get("capabilities") or {}
    for cap in capabilities.get("drop") or []:
        argv += ["--cap-drop", str(cap)]
    for cap in capabilities.get("add") or []:
        argv += ["--cap-add", str(cap)]
    argv += resource_args(resources or {})
    if cgroup_parent:
        argv += ["--cgroup-parent", cgroup_parent]
    settings = (image_settings or {}) if rootfs is not None else {}
    working_dir = working_dir or settings.get("WorkingDir") or None
    if working_dir:
        argv += ["--workdir", working_dir]
    for mount in mounts:
        argv += ["--volume", f"{mount.host}:{mount.container}:{'ro' if mount.read_only else 'rw'}"]
    for key, value in {**_env_of(settings), **env}.items():
        argv += ["--env", f"{key}={value}"]
    bound_args = [pod_local_bind(arg, pod_ip) for arg in args or []]
    if rootfs is None:
        if command:
            argv += ["--entrypoint", json.dumps(list(command))]
        return [*argv, image, *bound_args]
    read_only = bool(security.get("readOnlyRootFilesystem"))
    argv += ["--rootfs", rootfs if read_only else f"{rootfs}:O"]
    if command:
        return [*argv, *command, *bound_args]
    entrypoint = list(settings.get("Entrypoint") or [])
    process = entrypoint + (bound_args if args else list(settings.get("Cmd") or []))
    if not process:
        raise ContainerConfigError(f"no command specified: the image {image} has neither Entrypoint nor Cmd")
    return [*argv, *process]


def resource_args(resources: Obj) -> list[str]:
    """podman's cgroup settings for a container's ``resources``, as a kubelet sets them."""
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    argv: list[str] = []
    try:
        if "memory" in limits:
            argv += ["--memory", str(int(parse_quantity(str(limits["memory"]))))]
        if "memory" in requests:
            argv += ["--memory-reservation", str(int(parse_quantity(str(requests["memory"]))))]
        if "cpu" in limits:
            argv += ["--cpus", f"{float(parse_quantity(str(limits['cpu']))):g}"]
        if "cpu" in requests:
            # The kubelet's shares: 1024 per CPU, at least 2.
            argv += ["--cpu-shares", str(max(2, int(parse_quantity(str(requests["cpu"])) * 1024)))]
    except ValueError as err:
        raise ContainerConfigError(f"resources: {err}") from err
    return argv


class PodsCgroup:
    """A node's cgroup for its pods' containers: CPU shares of its allocatable CPU, as a kubelet's ``kubepods``.

    cgroup v1 only, as here; where the CPU hierarchy is not a writable v1 one, ``path`` is None and podman puts the
    containers in its default parent.
    """

    CPU_HIERARCHY = Path("/sys/fs/cgroup/cpu")

    def __init__(self, name: str, *, cpus: float) -> None:
        self.name = name
        self.cpus = cpus
        self.path: str | None = None

    def create(self) -> str | None:
        """Make the cgroup (once) and return the ``--cgroup-parent`` that puts a container in it."""
        if self.path is not None:
            return self.path
        folder = self.CPU_HIERARCHY / self.name
        try:
            folder.mkdir(exist_ok=True)
            (folder / "cpu.shares").write_text(str(max(2, int(self.cpus * 1024))))
        except OSError:
            return None
        self.path = f"/{self.name}"
        return self.path

    def remove(self, *, timeout: float = 10.0) -> None:
        """Remove the cgroup from every hierarchy runc made it in, once the processes in it have ended.

        podman's conmon, in a ``conmon`` child, ends a moment after its container: a cgroup still busy is tried
        again until ``timeout``, then left.
        """
        if self.path is None:
            return
        deadline = time.monotonic() + timeout
        while not self._remove_once() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.path = None

    def _remove_once(self) -> bool:
        """One pass over the hierarchies, children first (a cgroup goes with its control files); True when gone."""
        gone = True
        for hierarchy in self.CPU_HIERARCHY.parent.iterdir():
            folder = hierarchy / self.name
            if not folder.is_dir():
                continue
            for child in sorted((f for f in folder.rglob("*") if f.is_dir()), key=lambda f: -len(f.parts)):
                with contextlib.suppress(OSError):
                    child.rmdir()
            try:
                folder.rmdir()
            except OSError:
                gone = False
        return gone


def pod_local_bind(arg: str, pod_ip: str) -> str:
    """``--x-bind-address=:PORT`` binds the pod IP, as it would in the pod's own network namespace."""
    match = _WILDCARD_BIND.match(arg)
    return f"{match.group(1)}{pod_ip}:{match.group(2)}" if match else arg


def remove(name: str) -> None:
    """Remove the container if it is still there (the client that ran it may have been killed first)."""
    subprocess.run(
        images.podman_argv("rm", "--force", "--time", "0", "--ignore", name),
        env=images.podman_env(),
        capture_output=True,
        check=False,
    )
