"""The Dockerfile, checked by reading it (Docker does not run on the test machines).

Covered: pinned base images matching the runner's Python, the dependencies
installed from requirements.txt and consistent with runner/pyproject.toml, the
collection installed by pip with its Galaxy requirements, the runner's
console script as ENTRYPOINT, a numeric non-root USER, watches.yaml where the
manager's flag points, and a .dockerignore that keeps what the build copies.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.unit.deploy.deploy_support import CONFIG_DIR, REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
PYPROJECT: dict[str, Any] = tomllib.loads((REPO_ROOT / "runner" / "pyproject.toml").read_text())
AGENT_PYPROJECT: dict[str, Any] = tomllib.loads((REPO_ROOT / "agent" / "pyproject.toml").read_text())
COLLECTION_PYPROJECT: dict[str, Any] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int


def _instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    instructions, stage = [], -1
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


INSTRUCTIONS = _instructions(DOCKERFILE)
FINAL_STAGE = max(i.stage for i in INSTRUCTIONS)
FINAL = [i for i in INSTRUCTIONS if i.stage == FINAL_STAGE]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"requirements.txt must pin exactly: {line}"
            pins[requirement.name.lower()] = spec.version
    return pins


PINS = _pins()


def _exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.arguments)
    assert isinstance(value, list), f"{instruction.keyword} must use the exec (JSON) form"
    return value


def test_every_stage_starts_from_the_pinned_slim_python_of_the_runner_by_default() -> None:
    bases = [i.arguments.split()[0] for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert bases == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    (default,) = [i.arguments for i in INSTRUCTIONS if i.keyword == "ARG" and i.arguments.startswith("BASE_IMAGE=")]
    assert default == "BASE_IMAGE=python:3.11-slim-bookworm"
    python = Version(re.match(r"BASE_IMAGE=python:(\d+\.\d+)-", default).group(1))  # type: ignore[union-attr]
    assert python in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_the_agent_depends_on_the_operator_package_the_image_builds_beside_it() -> None:
    assert PYPROJECT["project"]["name"] in [Requirement(d).name for d in AGENT_PYPROJECT["project"]["dependencies"]]


def test_the_agent_depends_on_the_collections_distribution_the_image_installs_beside_it() -> None:
    assert COLLECTION_PYPROJECT["project"]["name"] in [
        Requirement(d).name for d in AGENT_PYPROJECT["project"]["dependencies"]
    ]


def test_dependencies_come_from_requirements_txt_together_with_the_collection_the_runner_and_the_agent() -> None:
    runs = " ".join(i.arguments for i in INSTRUCTIONS if i.keyword == "RUN")
    assert re.search(r"pip install --requirement /src/requirements\.txt /src /src/runner /src/agent", runs)
    copies = [i.arguments for i in INSTRUCTIONS if i.keyword == "COPY"]
    assert "requirements.txt /src/requirements.txt" in copies
    assert ". /src" in copies


def test_any_version_the_dockerfile_names_equals_the_pin_in_requirements_txt() -> None:
    text = " ".join(i.arguments for i in INSTRUCTIONS)
    for name, version in re.findall(r"\b([A-Za-z0-9_.-]+)==([0-9][^\s\"']*)", text):
        assert PINS.get(name.lower()) == version, f"{name}=={version} differs from requirements.txt"


# The agent depends on the operator's package and the collection's, which the image builds in the same pip install.
BUILT_HERE = {PYPROJECT["project"]["name"], COLLECTION_PYPROJECT["project"]["name"]}


@pytest.mark.parametrize(
    "dependency",
    [
        dependency
        for dependency in PYPROJECT["project"]["dependencies"]
        + AGENT_PYPROJECT["project"]["dependencies"]
        + COLLECTION_PYPROJECT["project"]["dependencies"]
        if Requirement(dependency).name not in BUILT_HERE
    ],
)
def test_every_declared_dependency_is_pinned_within_its_declared_range(dependency: str) -> None:
    requirement = Requirement(dependency)
    name = requirement.name.lower()
    assert name in PINS, f"{name} is not pinned in requirements.txt, so the image would float"
    assert Version(PINS[name]) in requirement.specifier, f"{name}=={PINS[name]} is outside {requirement.specifier}"


def test_the_collections_it_depends_on_come_with_its_galaxy_requirements() -> None:
    runs = [shlex.split(i.arguments) for i in INSTRUCTIONS if i.keyword == "RUN"]
    joined = " ".join(" ".join(run) for run in runs)
    assert "ansible-galaxy collection install --collections-path /usr/share/ansible/collections" in joined
    assert "--requirements-file /src/requirements.yml" in joined
    copied = [i.arguments for i in FINAL if i.keyword == "COPY"]
    assert "--from=build /usr/share/ansible/collections /usr/share/ansible/collections" in copied
    assert "--from=build /opt/venv /opt/venv" in copied  # the collection itself, in site-packages
    # Galaxy unless told otherwise: the test bed, which cannot reach it, takes the ansible package's copy.
    assert [i.arguments for i in INSTRUCTIONS if i.keyword == "ARG" and "KUBERNETES_CORE_SOURCE" in i.arguments] == [
        "KUBERNETES_CORE_SOURCE=galaxy"
    ]


def test_the_entrypoint_is_the_runner_console_script() -> None:
    (entrypoint,) = [i for i in FINAL if i.keyword == "ENTRYPOINT"]
    assert _exec_form(entrypoint) == ["cluster-discovery-operator"]
    assert "cluster-discovery-operator" in PYPROJECT["project"]["scripts"]


def test_the_agent_container_runs_the_agent_console_script() -> None:
    (manager,) = [d for d in yaml.safe_load_all((CONFIG_DIR / "manager" / "manager.yaml").read_text())][1:]
    containers = {c["name"]: c for c in manager["spec"]["template"]["spec"]["containers"]}
    assert "command" not in containers["manager"]
    (script,) = containers["agent"]["command"]
    assert script in AGENT_PYPROJECT["project"]["scripts"]
    assert AGENT_PYPROJECT["project"]["version"] == PYPROJECT["project"]["version"]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [i.arguments for i in FINAL if i.keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "Kubernetes can only verify runAsNonRoot for a numeric USER"
    assert int(user) == 1001


def test_watches_yaml_and_workdir_are_where_the_manager_looks() -> None:
    (manager,) = [d for d in yaml.safe_load_all((CONFIG_DIR / "manager" / "manager.yaml").read_text())][1:]
    args = manager["spec"]["template"]["spec"]["containers"][0]["args"]
    watches = next(a.split("=", 1)[1] for a in args if a.startswith("--watches-file="))
    assert f"watches.yaml {watches}" in [i.arguments for i in FINAL if i.keyword == "COPY"]
    assert [i.arguments for i in FINAL if i.keyword == "WORKDIR"] == ["/opt/ansible"]
    env = " ".join(i.arguments for i in FINAL if i.keyword == "ENV")
    assert "HOME=/opt/ansible" in env


def test_the_version_label_matches_the_runner_and_the_collection() -> None:
    labels = " ".join(i.arguments for i in FINAL if i.keyword == "LABEL")
    version = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', labels)
    assert version is not None
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    assert version.group(1) == PYPROJECT["project"]["version"] == galaxy["version"]
    assert COLLECTION_PYPROJECT["project"]["version"] == galaxy["version"]


def _dockerignored(path: str) -> bool:
    ignored = False
    for pattern in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        # Docker's `**/` also matches no folder at all.
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in candidates):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "LICENSE",
        "requirements.txt",
        "requirements.yml",
        "runner",
        "agent",
        "watches.yaml",
        "galaxy.yml",
        "README.md",
        "meta",
        "plugins",
        "roles",
        "playbooks",
    ],
)
def test_the_dockerignore_keeps_what_the_build_uses(path: str) -> None:
    assert not _dockerignored(path)


@pytest.mark.parametrize(
    "path",
    [".venv", ".git", "tests", "testbed", "charts", "molecule", "bench", "config", "skaffold.yaml",
     "cluster-discovery-0.1.0.tgz"],
)  # fmt: skip
def test_the_dockerignore_drops_development_files(path: str) -> None:
    assert _dockerignored(path)


def _docker_context(destination: Path) -> Path:
    """What the build context holds: the checkout less the .dockerignore."""
    import shutil

    # Walk with pruning: descending into .venv (and the other ignored trees) would
    # cost more than everything else these tests do.
    for folder, dirs, files in os.walk(REPO_ROOT):
        base = Path(folder).relative_to(REPO_ROOT)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not _dockerignored((base / d).as_posix())]
        for name in files:
            relative = (base / name).as_posix()
            if relative.endswith(".pyc") or _dockerignored(relative):
                continue
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / relative, destination / relative)
    return destination


def test_the_collection_installs_by_pip_from_the_docker_build_context_where_ansible_and_python_find_it(
    tmp_path: Path,
) -> None:
    """The Dockerfile's `pip install /src`, run offline on what the context would hold, into a fresh folder."""
    import subprocess
    import sys

    context = _docker_context(tmp_path / "context")
    site = tmp_path / "site-packages"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    root = site / "ansible_collections" / "peerdiscovery" / "cluster_discovery"
    for needed in (
        "galaxy.yml",
        "meta/runtime.yml",
        "plugins/modules/swarm_key.py",
        "plugins/module_utils/swarm_identity.py",
        "plugins/module_utils/py.typed",
        "plugins/filter/identity_owner.yml",
        "roles/swarmpool/tasks/main.yml",
        "roles/identity/templates/kubeconfig.yaml.j2",
        "playbooks/federation_join.yml",
        "watches.yaml",
    ):
        assert (root / needed).is_file(), needed
    for dropped in ("tests", "testbed", "runner", "agent", ".venv", "charts", "molecule", "bench"):
        assert not (root / dropped).exists(), dropped
        assert not (site / dropped).exists(), dropped

    # ansible-core finds it on sys.path alone (as it finds what the `ansible` package installs), and Python
    # imports its module_utils as the agent does: no collections path, no sys.path editing.
    environment = {
        **os.environ,
        "PYTHONPATH": str(site),
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "nowhere"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    doc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "--json", "peerdiscovery.cluster_discovery.swarm_key"],
        capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert doc.returncode == 0, doc.stderr
    documented = json.loads(doc.stdout)["peerdiscovery.cluster_discovery.swarm_key"]
    assert str(site) in documented["doc"]["filename"]
    imported = subprocess.run(
        [sys.executable, "-c",
         "import ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity as m;"
         " print(m.__file__)"],
        capture_output=True, text=True, timeout=60, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().startswith(str(site))


def test_the_collection_builds_for_galaxy_without_the_python_packaging(tmp_path: Path) -> None:
    """What Ansible users get from Galaxy: galaxy.yml's build_ignore drops the distribution's build outputs."""
    import subprocess
    import sys

    context = _docker_context(tmp_path / "context")
    # What `pip install -e .` and a wheel build leave in a checkout.
    (context / "peerdiscovery_cluster_discovery.egg-info").mkdir()
    (context / "build" / "lib").mkdir(parents=True)
    galaxy = str(Path(sys.executable).with_name("ansible-galaxy"))
    built = subprocess.run(
        [galaxy, "collection", "build", "--output-path", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (tarball,) = (tmp_path / "dist").glob("peerdiscovery-cluster_discovery-*.tar.gz")
    import tarfile

    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/module_utils/swarm_identity.py" in names
    assert "roles/swarmpool/tasks/main.yml" in names
    assert not [name for name in names if name.startswith(("build", "peerdiscovery_cluster_discovery.egg-info"))]
