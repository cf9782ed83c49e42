"""The operator image and the chart's manager, built and run for real (issue 18).

The image is built from the repository's Dockerfile with podman (testbed.images)
on a Debian 12 base made by debootstrap. The chart is installed with
``helm install`` on a test-bed control plane whose kubelet stand-in runs the
manager Deployment's pod in podman as the pod spec says (the chart's
ServiceAccount and its projected token at the in-cluster path, the read-only
root filesystem as uid 1001 with every capability dropped, the emptyDir and
ConfigMap mounts, the readiness probes), and the kubo pods of a SwarmPool as
processes with the ipfs/kubo image emulated.

Covered: the image runs the operator, the agent, ansible-doc and ansible-galaxy
as the chart runs them and keeps neither the sources nor the build's CA bundle;
`helm install --wait` becomes ready with both containers probed ready; the
operator in its container reconciles the original manual's SwarmPool through
in-cluster configuration, so its kubo node serves and the SwarmPool says so;
/metrics answers a token bound to a metrics-reader ClusterRole and refuses one
without it.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import binaries, images
from testbed.controlplane import ControlPlane, control_plane_running
from testbed.kubelet import KuboKubelet, kubo_kubelet_running
from tests.unit.deploy.deploy_support import CHART_DIR, REPO_ROOT

pytestmark = pytest.mark.integration

NAMESPACE = "cluster-discovery"
RELEASE = "cd"
MANAGER = f"{RELEASE}-cluster-discovery-controller-manager"
SEED_SWARMPOOL = REPO_ROOT / "tests" / "e2e" / "seed_000" / "swarmpool.yaml"


@pytest.fixture(scope="module")
def operator_image() -> str:
    """The image `make testbed` built (built here, from the cache, when it is missing)."""
    return images.build(["operator"])["operator"]


@pytest.fixture(scope="module")
def container(operator_image: str) -> Iterator[str]:
    """A container of the image as the chart runs the manager: uid 1001, read-only root, no capabilities.

    One for the module's commands, each run in it with ``podman exec``: a container of its own per command cost
    about 6 s each, podman's vfs storage copying the whole image for every container.
    """
    started = subprocess.run(
        images.podman_argv(
            "run", "--detach", "--rm", "--runtime", "runc", "--network", "host", "--pull", "never",
            "--user", "1001:0", "--read-only", "--read-only-tmpfs=false",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--tmpfs", "/tmp:rw,mode=1777", "--tmpfs", "/opt/ansible/.ansible:rw,mode=1777",
            "--env", "TMPDIR=/tmp", "--entrypoint", json.dumps(["sleep"]), operator_image, "infinity",
        ),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert started.returncode == 0, f"podman run of {operator_image}: {started.stderr}"
    container_id = started.stdout.strip()
    try:
        yield container_id
    finally:
        subprocess.run(
            images.podman_argv("rm", "--force", "--time", "0", container_id),
            env=images.podman_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )


def run_in_container(container: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the image's ``container``, with the user, root and capabilities it runs with."""
    return subprocess.run(
        images.podman_argv("exec", container, *argv),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_image_runs_the_operator_and_the_agent_as_the_chart_runs_them(container: str) -> None:
    operator = run_in_container(container, "cluster-discovery-operator", "--help")
    assert operator.returncode == 0, operator.stderr
    assert "--watches-file" in operator.stdout
    agent = run_in_container(container, "cluster-discovery-agent", "--help")
    assert agent.returncode == 0, agent.stderr
    assert "--offline-after" in agent.stdout
    identity = run_in_container(container, "id", "-u")
    assert identity.stdout.strip() == "1001"


def test_the_image_ships_the_collection_and_kubernetes_core_where_ansible_finds_them(container: str) -> None:
    listed = run_in_container(container, "ansible-galaxy", "collection", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    found = {name: info["version"] for where in json.loads(listed.stdout).values() for name, info in where.items()}
    assert found["peerdiscovery.cluster_discovery"] == "0.1.0"
    assert found["kubernetes.core"].startswith("6.")
    doc = run_in_container(container, "ansible-doc", "peerdiscovery.cluster_discovery.ipfs_swarm")
    assert doc.returncode == 0, doc.stderr
    assert "ipfs_swarm" in doc.stdout


def test_the_image_keeps_neither_the_sources_nor_the_build_ca_bundle(operator_image: str, container: str) -> None:
    found = run_in_container(container, "sh", "-c", "ls -d /src /run/secrets/ca-bundle /root/.cache/pip 2>/dev/null")
    assert found.stdout.strip() == ""
    history = subprocess.run(
        images.podman_argv("history", "--no-trunc", "--format", "{{.CreatedBy}}", operator_image),
        env=images.podman_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "BEGIN CERTIFICATE" not in history


def _helm(cp: ControlPlane, *args: str) -> str:
    result = subprocess.run(
        [str(binaries.binary("helm", "helm")), "--kubeconfig", str(cp.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, f"helm {' '.join(args[:2])}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(
    operator_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ControlPlane, KuboKubelet]]:
    """A control plane and kubelet stand-in with the chart installed from the image built here."""
    base = tmp_path_factory.mktemp("operator-image")
    repository, _, tag = operator_image.rpartition(":")
    with control_plane_running("image", base_dir=base) as cp, kubo_kubelet_running(cp, base_dir=base) as kubelet:
        try:
            _helm(
                cp, "install", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--create-namespace",
                "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                "--set", "image.pullPolicy=Never", "--wait", "--timeout", "5m",
            )  # fmt: skip
            yield cp, kubelet
        except BaseException:
            print(kubelet.log_tail(80))
            for view in kubelet.pods():
                for log in sorted((view.sandbox / "logs").glob("*.log")):
                    print(f"--- {log}\n{log.read_text(errors='replace')[-4000:]}")
            raise


def _json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json").stdout)


def test_helm_install_waits_until_the_manager_and_the_agent_are_probed_ready(
    installed: tuple[ControlPlane, KuboKubelet], operator_image: str
) -> None:
    cp, _ = installed
    (pod,) = _json(cp, "get", "pods", "-n", NAMESPACE, "-l", "control-plane=controller-manager")["items"]
    statuses = {status["name"]: status for status in pod["status"]["containerStatuses"]}
    assert set(statuses) == {"manager", "agent"}
    assert all(status["ready"] and "running" in status["state"] for status in statuses.values())
    assert all(status["image"] == operator_image for status in statuses.values())
    uid = pod["metadata"]["uid"]
    for container in ("manager", "agent"):
        inspected = subprocess.run(
            images.podman_argv("container", "inspect", f"testbed-{uid}-{container}"),
            env=images.podman_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        (config,) = json.loads(inspected.stdout)
        assert config["State"]["Running"]
        assert config["Config"]["User"].split(":")[0] == "1001"  # the image's USER: the chart sets no runAsUser
        assert config["HostConfig"]["ReadonlyRootfs"] is True
        assert config["HostConfig"]["CapDrop"] and not config["HostConfig"]["CapAdd"]
        mounts = {mount["Destination"] for mount in config["Mounts"]}
        assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts


def test_the_operator_in_its_container_reconciles_the_manuals_swarmpool(
    installed: tuple[ControlPlane, KuboKubelet],
) -> None:
    cp, kubelet = installed
    cp.kubectl("apply", "-f", str(SEED_SWARMPOOL))
    deadline = time.monotonic() + 240
    entry: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pool = _json(cp, "get", "swarmpool", "cluster1", "-n", "peer-configuration")
        entry = ((pool.get("status") or {}).get("status") or {}).get("cluster1") or {}
        if entry.get("Peer Id"):
            break
        time.sleep(2)
    assert entry.get("Peer Id"), json.dumps(pool.get("status"), indent=2)
    view = kubelet.wait_for_pod("peer-configuration", "cluster1-cluster1-ss-0")
    assert view.peer_id == entry["Peer Id"]


def _token(cp: ControlPlane, namespace: str, account: str) -> str:
    return cp.kubectl("create", "token", account, "-n", namespace, "--duration=10m").stdout.strip()


def _get_metrics(url: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # the operator's self-signed serving cert
    try:
        with urllib.request.urlopen(request, timeout=10, context=insecure) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_metrics_answer_a_token_bound_to_a_metrics_reader_and_refuse_others(
    installed: tuple[ControlPlane, KuboKubelet], tmp_path: Path
) -> None:
    cp, _ = installed
    cp.kubectl("create", "serviceaccount", "scraper", "-n", NAMESPACE)
    cp.kubectl("create", "serviceaccount", "stranger", "-n", NAMESPACE)
    cp.kubectl("create", "clusterrole", "metrics-reader", "--verb=get", "--non-resource-url=/metrics")
    cp.kubectl("create", "clusterrolebinding", "scraper-metrics", "--clusterrole=metrics-reader",
               f"--serviceaccount={NAMESPACE}:scraper")  # fmt: skip
    (pod,) = _json(cp, "get", "pods", "-n", NAMESPACE, "-l", "control-plane=controller-manager")["items"]
    url = f"https://{pod['status']['podIP']}:8443/metrics"
    status, body = 0, ""
    deadline = time.monotonic() + 60  # the RBAC authorizer sees a new binding within seconds
    while time.monotonic() < deadline:
        status, body = _get_metrics(url, _token(cp, NAMESPACE, "scraper"))
        if status == 200:
            break
        time.sleep(2)
    assert status == 200
    assert "# TYPE" in body
    assert _get_metrics(url, _token(cp, NAMESPACE, "stranger"))[0] == 403
    assert _get_metrics(url, None)[0] == 401
