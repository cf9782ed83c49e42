"""The ipfs/kubo container image, emulated on the host for the kubelet stand-in.

There is no container runtime here, so a kubo "container" is a host process
whose filesystem view is a folder (its *rootfs*) plus the pod's volumes. The
rootfs holds what the image puts on PATH, made to behave as in the image:

- ``/usr/local/bin/ipfs``: a shim that execs the release binary built by
  testbed/build.py; for ``ipfs daemon`` it first binds the config's listen
  addresses to the pod IP (testbed.podnet, the network stand-in).
- ``/usr/local/bin/start_ipfs`` and ``container_init_run``: the image's own
  entrypoint scripts (kubo's ``bin/container_daemon`` and
  ``bin/container_init_run``), read from the kubo source the build fetched into
  the Go module cache, at the built version. Two substitutions are made, and
  checked: the switch to the ``ipfs`` user is skipped (pods run as the user
  running the tests), and the absolute ``/container-init.d`` becomes the
  container's folder for it.
- ``/sbin/tini``: execs its child (the real tini reaps zombies and forwards
  signals; our pod process leads its own session and is signalled as a group).

The image's ENTRYPOINT, CMD and ENV are those of kubo's Dockerfile, and
``command``/``args`` combine with them as Kubernetes defines.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed import binaries
from testbed.build import COMPONENTS

ENTRYPOINT = ("/sbin/tini", "--", "/usr/local/bin/start_ipfs")
CMD = ("daemon", "--migrate=true", "--agent-version-suffix=docker")
IMAGE_ENV = {"IPFS_PATH": "/data/ipfs", "GOLOG_LOG_LEVEL": ""}
# The ipfs user's home in the image (adduser -h $IPFS_PATH).
IMAGE_HOME = "/data/ipfs"
IMAGE_DIRS = ("/data/ipfs", "/container-init.d", "/ipfs", "/ipns", "/mfs", "/tmp")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Tools the image's busybox provides that the host also has; run from the host.
_HOST_TOOL_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin")
_IMAGE_REPOSITORIES = ("ipfs/kubo", "docker.io/ipfs/kubo", "docker.io/library/ipfs/kubo", "index.docker.io/ipfs/kubo")

_REPO_ROOT = Path(__file__).resolve().parent.parent


class ImageError(RuntimeError):
    """The pod asks for something the emulated image cannot give."""


def parse_image(image: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference (tag "latest" when absent)."""
    name, _, digest = image.partition("@")
    if digest:
        return name, "@" + digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = name.rpartition(":")
        return repo, tag
    return name, "latest"


def image_mismatch(image: str, version: str | None = None) -> str | None:
    """None when ``image`` is the kubo release the test bed built; else why it is not."""
    version = version or binaries.kubo_version()
    repository, tag = parse_image(image)
    if repository not in _IMAGE_REPOSITORIES:
        return (
            f'image "{image}" is not available on the testbed kubelet: it runs only ipfs/kubo:{version}, '
            "the kubo release built by testbed/build.py"
        )
    if tag != version:
        return (
            f'image "{image}" is not available on the testbed kubelet: tag {tag} differs from the built '
            f"kubo release {version} (change testbed/go/kubo/go.mod and rebuild to test another release)"
        )
    return None


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: Path
    read_only: bool = False


@dataclass
class ContainerFS:
    """A container's view of files: its mounts over its rootfs, both host folders."""

    rootfs: Path
    mounts: list[Mount] = field(default_factory=list)

    def host(self, container_path: str) -> Path:
        """The host path behind an absolute container path (longest mount wins)."""
        path = os.path.normpath(container_path)
        best: Mount | None = None
        for mount in self.mounts:
            base = mount.container_path.rstrip("/") or "/"
            if (path == base or path.startswith(base + "/")) and (best is None or len(base) > len(best.container_path)):
                best = mount
        if best is not None:
            rest = os.path.relpath(path, best.container_path)
            return best.host_path if rest == "." else best.host_path / rest
        return self.rootfs / path.lstrip("/")

    def rewrites(self, value: str) -> bool:
        """Whether ``value`` reads as a container path worth mapping.

        That is an absolute path under a mount or an image folder, or one that
        exists in the rootfs (``/usr/local/bin/start_ipfs`` given to tini). A
        multiaddr such as ``/ip4/...`` is none of these and stays as it is.
        """
        if not value.startswith("/") or value.startswith("//") or value == "/":
            return False
        path = os.path.normpath(value)
        prefixes = [m.container_path.rstrip("/") for m in self.mounts] + list(IMAGE_DIRS)
        if any(prefix and (path == prefix or path.startswith(prefix + "/")) for prefix in prefixes):
            return True
        return (self.rootfs / path.lstrip("/")).exists()

    def map_value(self, value: str) -> str:
        return os.fspath(self.host(value)) if self.rewrites(value) else value

    def host_path_env(self) -> str:
        return os.pathsep.join(
            [os.fspath(self.rootfs / "usr/local/bin"), os.fspath(self.rootfs / "sbin"), *_HOST_TOOL_DIRS]
        )


def kubo_source_dir() -> Path:
    """kubo's source at the built version, as `go build` left it in the module cache."""
    comp = COMPONENTS["kubo"]
    for cache in _module_cache_candidates():
        candidate = cache / "github.com" / "ipfs" / f"kubo@{comp.version}"
        if (candidate / "bin" / "container_daemon").is_file():
            return candidate
    raise ImageError(
        f"kubo {comp.version}'s source (for the image entrypoint bin/container_daemon) is not in the Go module "
        f"cache; run `cd {comp.wrapper_dir} && go mod download github.com/ipfs/kubo` to fetch it"
    )


def _module_cache_candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get("GOMODCACHE"):
        found.append(Path(os.environ["GOMODCACHE"]))
    gopath = os.environ.get("GOPATH", "").split(os.pathsep)[0]
    found.append(Path(gopath) / "pkg" / "mod" if gopath else Path.home() / "go" / "pkg" / "mod")
    if shutil.which("go"):
        result = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30)
        if result.returncode == 0 and result.stdout.strip():
            found.append(Path(result.stdout.strip()))
    return found


def _entrypoint_script(init_dir: Path) -> str:
    """kubo's container_daemon with the two documented substitutions, each checked to apply once."""
    source = (kubo_source_dir() / "bin" / "container_daemon").read_text()
    # 1. Skip the privilege drop: `if [ "$(id -u)" -eq 0 ]; then ... exec gosu ...` (the condition never holds).
    root_check = re.compile(r'if \[ "?\$\(id -u\)"? -eq 0 \]')
    source, count = root_check.subn('if [ "testbed: no user switch" = "" ]', source)
    # 2. The init-script folder is the container's own host folder.
    source, count2 = re.subn(r"(?<![\w/])/container-init\.d\b", shlex.quote(os.fspath(init_dir)), source)
    if count != 1 or count2 != 1:
        raise ImageError(
            "kubo's bin/container_daemon changed shape (user switch or /container-init.d not found exactly once); "
            "update testbed/kuboimage.py for this kubo release"
        )
    return source


def prepare_rootfs(fs: ContainerFS, *, pod_ip: str, repo_marker: Path) -> None:
    """Lay out the image's executables and folders under the rootfs (after the mounts are known)."""
    rootfs = fs.rootfs
    bin_dir = rootfs / "usr/local/bin"
    for folder in (bin_dir, rootfs / "sbin", *(rootfs / d.lstrip("/") for d in IMAGE_DIRS)):
        folder.mkdir(parents=True, exist_ok=True)
    source = kubo_source_dir()
    _write_executable(bin_dir / "start_ipfs", _entrypoint_script(fs.host("/container-init.d")))
    _write_executable(bin_dir / "container_init_run", (source / "bin" / "container_init_run").read_text())
    _write_executable(bin_dir / "ipfs", _ipfs_shim(pod_ip=pod_ip, repo_marker=repo_marker))
    _write_executable(rootfs / "sbin" / "tini", _TINI_SHIM)


_TINI_SHIM = """#!/bin/sh
# testbed: stands in for tini in the ipfs/kubo image: skip its options, exec the child.
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
"""


def _ipfs_shim(*, pod_ip: str, repo_marker: Path) -> str:
    real = shlex.quote(os.fspath(binaries.ipfs()))
    python = shlex.quote(sys.executable)
    root = shlex.quote(os.fspath(_REPO_ROOT))
    marker = shlex.quote(os.fspath(repo_marker))
    return f"""#!/bin/sh
# testbed: the image's /usr/local/bin/ipfs. Before `ipfs daemon`, bind the
# config's listen addresses to this pod's IP (the network stand-in, see
# testbed/podnet.py), and note which repository the daemon runs on.
for arg do
  case "$arg" in
    -*) continue ;;
    daemon)
      repo="${{IPFS_PATH:-$HOME/.ipfs}}"
      PYTHONPATH={root} {python} -m testbed.podnet "$repo" {shlex.quote(pod_ip)} || exit 1
      printf '%s\\n' "$repo" > {marker} ;;
  esac
  break
done
exec {real} "$@"
"""


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def container_argv(
    command: Sequence[str] | None, args: Sequence[str] | None, env: Mapping[str, str], fs: ContainerFS
) -> list[str]:
    """The host argv for a container: Kubernetes' command/args rules over the image's ENTRYPOINT/CMD.

    ``$(VAR)`` references are expanded from the container's env first, as the
    kubelet does; the executable is then found in the container's filesystem.
    """
    if command:
        argv = [expand(part, env) for part in command] + [expand(part, env) for part in (args or [])]
    else:
        argv = list(ENTRYPOINT) + ([expand(part, env) for part in args] if args is not None else list(CMD))
    if not argv:
        raise ImageError("the container has no command")
    argv[0] = os.fspath(resolve_executable(argv[0], fs))
    return [argv[0], *(fs.map_value(part) for part in argv[1:])]


def resolve_executable(name: str, fs: ContainerFS) -> Path:
    if name.startswith("/"):
        inside = fs.host(name)
        if inside.is_file() and os.access(inside, os.X_OK):
            return inside
        directory, base = os.path.split(os.path.normpath(name))
        host_tool = shutil.which(base, path=os.pathsep.join(_HOST_TOOL_DIRS))
        if directory in _HOST_TOOL_DIRS and host_tool:
            return Path(host_tool)
        raise ImageError(f"executable {name} is not in the ipfs/kubo image as the testbed emulates it")
    found = shutil.which(name, path=fs.host_path_env())
    if found is None:
        raise ImageError(f'executable "{name}" not found in $PATH of the ipfs/kubo image')
    return Path(found)


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, the rest stays."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(substitute, text)
