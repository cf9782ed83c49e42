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
  network namespace would make it, so two pods can listen on one port.
- **resources**: limits are not enforced (no cgroup delegation in this sandbox).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from testbed import images
from testbed.kube import Obj

_WILDCARD_BIND = re.compile(r"^(--[a-z-]*bind-address=):(\d+)$")


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


def image_config(image: str) -> Obj:
    result = images.podman("image", "inspect", "--format", "{{json .Config}}", image)
    config = json.loads(result.stdout.decode() or "{}")
    return config if isinstance(config, dict) else {}


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
) -> list[str]:
    """The ``podman run`` arguments (after ``podman``) for one container."""
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
    if working_dir:
        argv += ["--workdir", working_dir]
    for mount in mounts:
        argv += ["--volume", f"{mount.host}:{mount.container}:{'ro' if mount.read_only else 'rw'}"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if command:
        argv += ["--entrypoint", json.dumps(list(command))]
    argv.append(image)
    argv += [pod_local_bind(arg, pod_ip) for arg in args or []]
    return argv


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
