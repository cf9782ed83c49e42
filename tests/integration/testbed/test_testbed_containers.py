"""The container mode's pure rules: a pod spec's container as `podman run` arguments, and the images' inputs.

Covered: the security context (user and group from the container, the pod or the
image; read-only root; capabilities; no-new-privileges) and runAsNonRoot refused
for a root image as a kubelet refuses it; command and args against the image's
entrypoint; mounts and env; the wildcard bind that becomes the pod IP; the
Debian mirror read from apt's sources; the build context after .dockerignore.
The same code runs for real in tests/integration/deploy/test_operator_image.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testbed.containers import BindMount, ContainerConfigError, PodsCgroup, pod_local_bind, run_argv
from testbed.images import _ignored, debian_mirror


def argv(**overrides: Any) -> list[str]:
    spec: dict[str, Any] = {
        "name": "testbed-uid-manager",
        "image": "localhost/cluster-discovery-operator:abc",
        "image_user": "1001",
        "command": None,
        "args": ["--health-probe-bind-address=:8081", "--watches-file=/opt/ansible/watches.yaml"],
        "env": {"TMPDIR": "/tmp"},
        "mounts": [BindMount("/host/tmp", "/tmp", False), BindMount("/host/watches.yaml", "/w.yaml", True)],
        "working_dir": None,
        "security": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "pod_security": {"runAsNonRoot": True},
        "pod_ip": "127.0.0.7",
    }
    spec.update(overrides)
    return run_argv(**spec)


def test_the_charts_manager_runs_as_its_security_context_says() -> None:
    result = argv()
    joined = " ".join(result)
    assert "--user 1001" in joined
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--cap-drop ALL" in joined and "--cap-add" not in joined
    assert "--security-opt no-new-privileges" in joined
    assert "--volume /host/tmp:/tmp:rw" in joined and "--volume /host/watches.yaml:/w.yaml:ro" in joined
    assert "--env TMPDIR=/tmp" in joined
    assert "--network host" in joined and "--pull never" in joined
    image = result.index("localhost/cluster-discovery-operator:abc")
    assert result[image + 1 :] == [
        "--health-probe-bind-address=127.0.0.7:8081",
        "--watches-file=/opt/ansible/watches.yaml",
    ]
    assert "--entrypoint" not in result  # no command: the image's ENTRYPOINT runs with the args


def test_the_container_user_wins_over_the_pods_and_the_pods_over_the_images() -> None:
    assert "--user 2000:3000" in " ".join(argv(security={"runAsUser": 2000}, pod_security={"runAsGroup": 3000}))
    assert "--user 4000" in " ".join(argv(pod_security={"runAsUser": 4000}))


def test_a_command_replaces_the_entrypoint_and_its_cmd() -> None:
    result = argv(command=["cluster-discovery-agent"], args=[])
    assert json.loads(result[result.index("--entrypoint") + 1]) == ["cluster-discovery-agent"]
    assert result[-1] == "localhost/cluster-discovery-operator:abc"


IMAGE_SETTINGS = {
    "Entrypoint": ["cluster-discovery-operator"],
    "Cmd": ["--watches-file=/opt/ansible/watches.yaml"],
    "Env": ["PATH=/opt/venv/bin:/usr/bin", "HOME=/opt/ansible", "TMPDIR=/var/tmp"],
    "WorkingDir": "/opt/ansible",
}


def test_on_the_images_own_files_a_read_only_root_is_them_and_the_image_settings_come_along() -> None:
    result = argv(rootfs="/store/vfs/dir/layer", image_settings=IMAGE_SETTINGS)
    joined = " ".join(result)
    assert "localhost/cluster-discovery-operator:abc" not in result
    rootfs = result.index("--rootfs")
    assert result[rootfs + 1] == "/store/vfs/dir/layer"  # read-only: no overlay, nothing can write to them
    assert "--read-only --read-only-tmpfs=false" in joined
    # A kubelet's rules: args replace the image's Cmd and follow its Entrypoint.
    assert result[rootfs + 2 :] == [
        "cluster-discovery-operator",
        "--health-probe-bind-address=127.0.0.7:8081",
        "--watches-file=/opt/ansible/watches.yaml",
    ]
    # The image's env under the container's (TMPDIR is the spec's), its working folder unless the spec sets one.
    assert "--env PATH=/opt/venv/bin:/usr/bin" in joined and "--env HOME=/opt/ansible" in joined
    assert "--env TMPDIR=/tmp" in joined and "TMPDIR=/var/tmp" not in joined
    assert "--workdir /opt/ansible" in joined
    assert "--workdir /data" in " ".join(argv(rootfs="/l", image_settings=IMAGE_SETTINGS, working_dir="/data"))


def test_on_the_images_own_files_a_writable_root_is_an_overlay_and_command_and_cmd_combine_as_in_a_kubelet() -> None:
    writable = {"readOnlyRootFilesystem": False}
    result = argv(rootfs="/l", image_settings=IMAGE_SETTINGS, security=writable, args=[])
    assert result[result.index("--rootfs") + 1 :] == [
        "/l:O",
        "cluster-discovery-operator",
        "--watches-file=/opt/ansible/watches.yaml",
    ]
    result = argv(rootfs="/l", image_settings=IMAGE_SETTINGS, security=writable, command=["sh", "-c"], args=["id"])
    assert result[result.index("--rootfs") + 1 :] == ["/l:O", "sh", "-c", "id"]
    with pytest.raises(ContainerConfigError, match="neither Entrypoint nor Cmd"):
        argv(rootfs="/l", image_settings={}, args=[])


@pytest.mark.parametrize("image_user", ["", "0", "root"])
def test_run_as_non_root_refuses_an_image_that_runs_as_root(image_user: str) -> None:
    with pytest.raises(ContainerConfigError, match="runAsNonRoot"):
        argv(image_user=image_user)


def test_a_privileged_container_is_refused() -> None:
    with pytest.raises(ContainerConfigError, match="privileged"):
        argv(security={"privileged": True})


def test_resources_become_the_cgroup_settings_a_kubelet_makes() -> None:
    result = argv(
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1500m", "memory": "1Gi"}}
    )
    joined = " ".join(result)
    assert "--memory 1073741824" in joined and "--memory-reservation 268435456" in joined
    assert "--cpus 1.5" in joined and "--cpu-shares 102" in joined


def test_a_nodes_containers_go_in_its_own_cgroup_weighed_as_its_cpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(PodsCgroup, "CPU_HIERARCHY", tmp_path / "cpu")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "memory" / "testbed-node").mkdir(parents=True)  # as runc makes it in each hierarchy
    pods = PodsCgroup("testbed-node", cpus=2)
    parent = pods.create()
    assert parent == "/testbed-node" and pods.create() == parent
    assert (tmp_path / "cpu" / "testbed-node" / "cpu.shares").read_text() == "2048"  # a kubelet's kubepods shares
    joined = " ".join(argv(cgroup_parent=parent))
    assert "--cgroup-parent /testbed-node" in joined
    (tmp_path / "cpu" / "testbed-node" / "conmon").mkdir()  # as podman leaves it
    (tmp_path / "cpu" / "testbed-node" / "cpu.shares").unlink()  # cgroupfs removes a cgroup with its control files
    pods.remove()
    assert not (tmp_path / "cpu" / "testbed-node").exists() and not (tmp_path / "memory" / "testbed-node").exists()


def test_without_a_writable_cpu_hierarchy_containers_stay_in_podmans_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(PodsCgroup, "CPU_HIERARCHY", tmp_path / "no-cgroup-v1")
    assert PodsCgroup("testbed-node", cpus=2).create() is None
    assert "--cgroup-parent" not in argv(cgroup_parent=None)


def test_a_resource_that_is_no_quantity_is_a_container_config_error() -> None:
    with pytest.raises(ContainerConfigError, match="not a resource quantity"):
        argv(resources={"limits": {"memory": "lots"}})


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("--metrics-bind-address=:8443", "--metrics-bind-address=127.0.0.7:8443"),
        ("--metrics-bind-address=10.0.0.1:8443", "--metrics-bind-address=10.0.0.1:8443"),
        ("--metrics-bind-address=0", "--metrics-bind-address=0"),
        ("--leader-elect", "--leader-elect"),
    ],
)
def test_only_a_wildcard_bind_becomes_the_pod_ip(arg: str, expected: str) -> None:
    assert pod_local_bind(arg, "127.0.0.7") == expected


def test_the_debian_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    deb822 = tmp_path / "sources.list.d"
    deb822.mkdir()
    (deb822 / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.test/debian-security/\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example.test/debian/\nSuites: bookworm\n"
    )
    assert debian_mirror([deb822]) == "http://mirror.example.test/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://other.example.test/debian bookworm main\n")
    assert debian_mirror([tmp_path / "missing", one_line]) == "http://other.example.test/debian"
    assert debian_mirror([tmp_path / "missing"]) == "http://deb.debian.org/debian"


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("tests/unit/test_x.py", True),
        ("runner/src/x/__pycache__/a.pyc", True),
        ("charts/cluster-discovery/values.yaml", True),
        ("roles/identity/tasks/main.yml", False),
        ("watches.yaml", False),
        ("Dockerfile", True),
    ],
)
def test_the_build_context_follows_dockerignore(path: str, ignored: bool) -> None:
    patterns = [".git", "**/__pycache__", "**/*.pyc", "tests", "charts", "Dockerfile"]
    assert _ignored(path, patterns) is ignored
