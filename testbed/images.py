"""Build the container images the test bed runs: a Debian base, the operator from our Dockerfile, and kubo.

No image registry is reachable here, so:

- the **base image** is Debian 12 with Python 3.11 and its venv module, made by
  ``debootstrap --variant=minbase`` from the Debian mirror apt uses and
  ``podman import``; the Dockerfile's ``BASE_IMAGE`` build argument names it (its
  default stays the public ``python:3.11-slim-bookworm`` users get);
- the **operator image** is ``podman build`` of the repository's own Dockerfile,
  with kubernetes.core taken from the ``ansible`` package on PyPI (the
  ``KUBERNETES_CORE_SOURCE`` build argument) since Galaxy is not reachable, and
  the CA bundle of ``SSL_CERT_FILE`` given as a build secret, never a layer;
- the **kubo image** is ``testbed/containerfiles/kubo.Containerfile``: kubo's own
  Dockerfile's final stage on the base, with the ``ipfs`` binary testbed/build.py
  built and kubo's entrypoint scripts from the Go module cache at that version.

Podman keeps its storage in the cache beside the test bed's binaries, never in
the repository, with the ``vfs`` driver, the ``runc`` runtime and a
containers.conf without default rlimits (this sandbox lacks CAP_SYS_RESOURCE).
Each image's tag is a digest of its inputs, so a second run builds nothing and
any change builds beside the old tag, which is then removed.

Usage: ``python -m testbed.images [base|operator|kubo ...]`` (default: all), or
``--print-tag operator``.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from testbed import binaries, kuboimage
from testbed.build import cache_root

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_REPOSITORY = "localhost/cluster-discovery-base"
OPERATOR_REPOSITORY = "localhost/cluster-discovery-operator"
KUBO_REPOSITORY = "localhost/cluster-discovery-kubo"
KUBO_CONTAINERFILE = Path(__file__).resolve().parent / "containerfiles" / "kubo.Containerfile"
IMAGES = ("base", "operator", "kubo")
DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONTAINERS_CONF = """\
# Written by testbed/images.py. The sandbox lacks CAP_SYS_RESOURCE, so podman's
# default rlimits would be refused; crun refuses its hybrid cgroup layout.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class ImageBuildError(RuntimeError):
    """An image could not be built; the message says which command failed and how."""


def podman_dir() -> Path:
    return cache_root().parent / "containers"


def podman_env() -> dict[str, str]:
    """The environment every podman command of the test bed runs with."""
    conf = podman_dir() / "containers.conf"
    if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def podman_argv(*args: str) -> list[str]:
    """podman with the test bed's storage: vfs under the cache, run state in the temporary folder."""
    podman = shutil.which("podman")
    if podman is None:
        raise ImageBuildError("podman is not installed: `apt-get install podman runc debootstrap` (make images does)")
    runroot = Path(tempfile.gettempdir()) / f"cluster-discovery-podman-{os.getuid()}"
    return [
        podman,
        "--root",
        str(podman_dir() / "storage"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
        *args,
    ]


def podman(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(podman_argv(*args), env=podman_env(), input=input, capture_output=True, check=False)
    if check and result.returncode != 0:
        raise ImageBuildError(
            f"podman {' '.join(args[:2])} exited with {result.returncode}: "
            f"{result.stderr.decode(errors='replace')[-3000:]}"
        )
    return result


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:12]


def debian_mirror(sources: Sequence[Path] = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))) -> str:
    """The Debian mirror apt uses here (deb822 ``URIs:`` or a one-line ``deb`` entry), else deb.debian.org."""
    files: list[Path] = []
    for source in sources:
        files.extend(sorted(source.glob("*.sources")) if source.is_dir() else [source] if source.is_file() else [])
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"\s*(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", line)
            if match and not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def base_tag() -> str:
    recipe = [DEBIAN_SUITE.encode(), ",".join(BASE_PACKAGES).encode(), b"minbase"]
    return f"{BASE_REPOSITORY}:{_digest(recipe)}"


def build_base(log: Path) -> str:
    """Debian 12 with Python 3.11 from debootstrap, imported as an image; returns its tag."""
    tag = base_tag()
    if image_exists(tag):
        return tag
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).is_file():
        raise ImageBuildError("debootstrap is not installed: `apt-get install podman runc debootstrap`")
    with tempfile.TemporaryDirectory(prefix="cluster-discovery-rootfs-") as scratch:
        root = Path(scratch) / "root"
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_SUITE,
            str(root),
            debian_mirror(),
        ]
        with log.open("ab") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise ImageBuildError(f"{' '.join(argv)} exited with {result.returncode}; log {log}")
        # apt's caches and lists are not part of an image (the public Debian images drop them too).
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
        podman("import", "--change", 'CMD ["/bin/bash"]', "-", tag, input=tar.stdout)
    _remove_other_tags(BASE_REPOSITORY, keep=tag)
    return tag


def _ignored(path: str, patterns: Sequence[str]) -> bool:
    parts = path.split("/")
    for pattern in patterns:
        anchored = pattern.lstrip("/")
        if anchored.startswith("**/"):
            if any(fnmatch.fnmatch(part, anchored[3:]) for part in parts):
                return True
        elif fnmatch.fnmatch(path, anchored) or fnmatch.fnmatch(parts[0], anchored):
            return True
    return False


def build_context_files(root: Path = REPO_ROOT) -> list[str]:
    """The files the build context sends, by the rules of .dockerignore that this repository uses."""
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(path for path in listed.split("\0") if path and not _ignored(path, patterns))


def kubernetes_core_source(requirements: Path = REPO_ROOT / "requirements-test.txt") -> str:
    """``pypi:ansible==X`` with the ansible release the tests pin, whose kubernetes.core the tests use."""
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"ansible==(\S+)", line.strip())
        if match:
            return f"pypi:ansible=={match.group(1)}"
    raise ImageBuildError(f"{requirements} pins no ansible release")


def operator_tag(base: str) -> str:
    files = build_context_files()
    parts = [base.encode(), kubernetes_core_source().encode(), (REPO_ROOT / "Dockerfile").read_bytes()]
    for path in files:
        full = REPO_ROOT / path
        parts += [path.encode(), full.read_bytes() if full.is_file() else b""]
    return f"{OPERATOR_REPOSITORY}:{_digest(parts)}"


def build_operator(base: str, log: Path) -> str:
    """The operator image from the repository's Dockerfile on ``base``; returns its tag."""
    tag = operator_tag(base)
    if image_exists(tag):
        return tag
    options = ["--build-arg", f"KUBERNETES_CORE_SOURCE={kubernetes_core_source()}"]
    ca_bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
    if ca_bundle and Path(ca_bundle).is_file():
        options += ["--secret", f"id=ca-bundle,src={ca_bundle}"]
    _podman_build(tag, base=base, containerfile=REPO_ROOT / "Dockerfile", context=REPO_ROOT, options=options, log=log)
    return tag


def _podman_build(
    tag: str, *, base: str, containerfile: Path, context: Path, options: Sequence[str] = (), log: Path
) -> None:
    """``podman build`` on ``base`` into ``tag``; then only that tag of its repository is kept."""
    argv = ["build", "--runtime", "runc", "--network", "host", "--layers", "--build-arg", f"BASE_IMAGE={base}"]
    argv += [*options, "--tag", tag, "--file", str(containerfile), str(context)]
    with log.open("ab") as out:
        result = subprocess.run(podman_argv(*argv), env=podman_env(), stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"podman build of {tag} exited with {result.returncode}; log {log}")
    _remove_other_tags(tag.rpartition(":")[0], keep=tag)
    podman("image", "prune", "--force", check=False)


def _kubo_context_files() -> dict[str, Path]:
    """The kubo image's build context: name in the context -> the file it is copied from."""
    source = kuboimage.kubo_source_dir() / "bin"
    return {
        "ipfs": binaries.ipfs(),
        "container_daemon": source / "container_daemon",
        "container_init_run": source / "container_init_run",
    }


def kubo_tag(base: str) -> str:
    parts = [base.encode(), KUBO_CONTAINERFILE.read_bytes()]
    for name, path in sorted(_kubo_context_files().items()):
        parts += [name.encode(), path.read_bytes()]
    return f"{KUBO_REPOSITORY}:{binaries.kubo_version()}-{_digest(parts)}"


def build_kubo(base: str, log: Path) -> str:
    """The ipfs/kubo image of the built release on ``base``; returns its tag."""
    tag = kubo_tag(base)
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="cluster-discovery-kubo-context-") as scratch:
        context = Path(scratch)
        for name, path in _kubo_context_files().items():
            # The module cache keeps files read-only; the image has them executable, as kubo's does.
            shutil.copyfile(path, context / name)
            (context / name).chmod(0o755)
        _podman_build(tag, base=base, containerfile=KUBO_CONTAINERFILE, context=context, log=log)
    return tag


def _remove_other_tags(repository: str, *, keep: str) -> None:
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", repository, check=False)
    for tag in listed.stdout.decode().split():
        if tag != keep and tag.startswith(repository + ":"):
            podman("rmi", "--force", tag, check=False)


def build(which: Sequence[str] = IMAGES) -> dict[str, str]:
    """Build (or find in the cache) the images named; return name -> tag."""
    log = podman_dir() / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        tags = {"base": build_base(log)}
        if "operator" in which:
            tags["operator"] = build_operator(tags["base"], log)
        if "kubo" in which:
            tags["kubo"] = build_kubo(tags["base"], log)
    except (binaries.BinaryMissing, kuboimage.ImageError) as err:
        raise ImageBuildError(str(err)) from err
    return {name: tag for name, tag in tags.items() if name in which}


def tag_of(name: str) -> str:
    """The tag ``name`` has (or would have once built)."""
    base = base_tag()
    if name == "operator":
        return operator_tag(base)
    if name == "kubo":
        return kubo_tag(base)
    return base


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", metavar="|".join(IMAGES), help="the images to build (default: all)")
    parser.add_argument("--print-tag", choices=IMAGES, help="print the tag the image would have")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        parser.error(f"unknown images: {', '.join(unknown)}")
    if args.print_tag:
        print(tag_of(args.print_tag))
        return 0
    try:
        for name in args.images or IMAGES:
            started = time.monotonic()
            tag = build([name])[name]
            print(f"images: {name} {tag} ready in {time.monotonic() - started:.1f} s")
    except ImageBuildError as err:
        print(f"images: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
