"""``make sanity``: ansible-test sanity on the collection, on this machine.

ansible-test must run from inside ``ansible_collections/<namespace>/<name>/``
(a real directory, not a link) and wants the collections this one depends on
beside it. So the collection as ``ansible-galaxy collection build`` ships it
(the files git tracks, less galaxy.yml's ``build_ignore``: not the operator,
the agent, the test bed or the tests), and the ignore files of this folder,
are copied into a folder of the test bed's cache; kubernetes.core (from the
``ansible`` package, as the operator image installs it) is linked beside
them, and ansible-test runs there in its own virtual environments, installing
their requirements from the package index.

ansible-test bootstraps pip in those environments with a ``get-pip.py`` it
downloads from a host this project cannot reach; tests/sanity/get_pip.py does
the same from ``ensurepip`` and the index, and is put where ansible-test looks
for its cached copy. Arguments are passed to ``ansible-test sanity``.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from testbed.build import cache_root  # noqa: E402 - after the repository is on the path

NAMESPACE, NAME = "peerdiscovery", "cluster_discovery"
SANITY_ROOT = cache_root().parent / "sanity"


def pip_version() -> str:
    """The pip version ansible-test bootstraps its environments with."""
    from ansible_test._internal.python_requirements import get_venv_packages

    class Python:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"

    return get_venv_packages(Python())["pip"]  # type: ignore[arg-type]


def shipped(relative: str, build_ignore: list[str]) -> bool:
    """Whether ansible-galaxy's build takes ``relative`` (its patterns match a path or any folder above it)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    return not any(fnmatch.fnmatch(prefix, pattern) for pattern in build_ignore for prefix in prefixes)


def copy_collection() -> Path:
    target = SANITY_ROOT / "ansible_collections" / NAMESPACE / NAME
    shutil.rmtree(target, ignore_errors=True)
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    build_ignore = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text()).get("build_ignore") or []
    sanity_files = [relative for relative in tracked if relative.startswith("tests/sanity/ignore-")]
    for relative in [*(path for path in tracked if path and shipped(path, build_ignore)), *sanity_files]:
        source = REPO_ROOT / relative
        if source.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def link_dependencies() -> None:
    import ansible_collections.kubernetes.core as kubernetes_core

    link = SANITY_ROOT / "ansible_collections" / "kubernetes" / "core"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(kubernetes_core.__path__[0]), target_is_directory=True)


def install_pip_bootstrap() -> None:
    cached = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version().replace('.', '_')}.py"
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "tests" / "sanity" / "get_pip.py", cached)


def main(argv: list[str]) -> int:
    collection = copy_collection()
    link_dependencies()
    install_pip_bootstrap()
    command = [
        str(Path(sys.executable).with_name("ansible-test")),
        "sanity",
        "--venv",
        "--python",
        f"{sys.version_info.major}.{sys.version_info.minor}",
        "--requirements",
        *argv,
    ]
    print(f"sanity: {' '.join(command)} (in {collection})", flush=True)
    return subprocess.run(command, cwd=collection, env=dict(os.environ), check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
