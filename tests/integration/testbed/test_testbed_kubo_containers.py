"""kubo pods in podman, from the kubo image the test bed builds: issue 18's kubo container.

Real: the control plane, podman with runc, the kubo image (kubo's own
Dockerfile's final stage on the Debian base, with the built ``ipfs`` and kubo's
entrypoint scripts) and kubo itself. Stand-ins: the kubelet and the pod network
(a loopback IP per pod; the container's ``ipfs`` binds its listen addresses to
it, testbed/containers.py).

The pods are shaped as the SwarmPool role makes them: uid 1000 and group 100
with fsGroup 100, no capabilities, no privilege escalation, the swarm key from a
Secret readable by the group only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from testbed import containers, images
from testbed.controlplane import ControlPlane
from testbed.kubelet import KuboKubelet
from testbed.kubo import KuboNode, new_swarm_key
from tests.integration.testbed.test_testbed_kubelet import (
    apply,
    process_alive,
    restarted,
    rpc,
    swarm_manifests,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kubo_image() -> str:
    return images.build(["kubo"])["kubo"]


@pytest.fixture
def kubelet(control_plane: ControlPlane, kubo_image: str, tmp_path: Path) -> Iterator[KuboKubelet]:
    kubelet = KuboKubelet(control_plane, tmp_path / "kubelet", kubo_image=kubo_image)
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = control_plane.create_namespace("kubo-podman")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def product_shaped(name: str, swarm_key: str, **container: Any) -> list[dict[str, Any]]:
    """``swarm_manifests`` with the SwarmPool role's security context and volume modes."""
    manifests = swarm_manifests(name, swarm_key)
    pod_spec = manifests[2]["spec"]["template"]["spec"]
    pod_spec["securityContext"] = {"runAsUser": 1000, "runAsGroup": 100, "runAsNonRoot": True, "fsGroup": 100}
    spec = pod_spec["containers"][0]
    spec["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    spec["readinessProbe"] = {"tcpSocket": {"port": "swarm"}, "periodSeconds": 5}
    spec.update(container)
    pod_spec["volumes"][0]["secret"]["defaultMode"] = 0o440
    pod_spec["volumes"][1]["configMap"]["defaultMode"] = 0o555
    return manifests


def container_processes(name: str) -> list[dict[str, str]]:
    """``podman top``'s user, group and command of each process in the container."""
    result = images.podman("top", name, "user", "group", "args")
    lines = result.stdout.decode().splitlines()[1:]
    return [dict(zip(("user", "group", "args"), line.split(None, 2), strict=True)) for line in lines if line.strip()]


def container_of(kubelet: KuboKubelet, namespace: str, pod: str) -> str:
    view = kubelet.pod(namespace, pod)
    assert view is not None
    return containers.container_name(view.uid, "kubo")


def test_a_kubo_pod_runs_in_podman_from_the_built_image_as_its_security_context_says(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str, kubo_node: Callable[..., KuboNode]
) -> None:
    key = new_swarm_key()
    apply(control_plane, namespace, product_shaped("boxed", key))

    view = kubelet.wait_for_pod(namespace, "boxed-0")

    name = container_of(kubelet, namespace, "boxed-0")
    processes = container_processes(name)
    daemon = [p for p in processes if p["args"].startswith("/usr/local/bin/ipfs daemon")]
    assert daemon, f"the image's own ipfs runs the daemon: {processes}"
    # uid 1000 and gid 100 (runAsUser, runAsGroup) are the image's ipfs user and users group.
    assert {(p["user"], p["group"]) for p in processes} == {("ipfs", "users")}, processes
    assert any(p["args"].startswith("/sbin/tini -- /usr/local/bin/start_ipfs") for p in processes), processes
    # In the node's own cgroup, weighed as the node's CPUs, as a kubelet's kubepods.
    (inspected,) = json.loads(images.podman("container", "inspect", name).stdout)
    assert inspected["HostConfig"]["CgroupParent"] == kubelet.pods_cgroup.path
    shares = containers.PodsCgroup.CPU_HIERARCHY / kubelet.pods_cgroup.name / "cpu.shares"
    assert int(shares.read_text()) == int(float(kubelet.allocatable["cpu"]) * 1024)
    log = view.log_path("kubo").read_text()
    assert "testbed network stand-in: listen addresses" in log and "Daemon is ready" in log

    api = f"http://{view.pod_ip}:5001"
    assert view.api_url == api
    assert rpc(api, "id").json()["ID"] == view.peer_id
    assert (view.repo / "swarm.key").read_text().strip() == key.strip(), "the group-readable Secret was read"
    assert (view.repo / "config").stat().st_uid == 1000, "the repository belongs to the image's ipfs user"

    member = kubo_node(key, name="member")
    outsider = kubo_node(new_swarm_key(), name="outsider")
    pod_addr = f"/ip4/{view.pod_ip}/tcp/4001/p2p/{view.peer_id}"
    assert rpc(member.api_url, "swarm/connect", pod_addr, timeout=60).status_code == 200
    assert rpc(outsider.api_url, "swarm/connect", pod_addr, timeout=60).status_code == 500

    control_plane.kubectl("delete", "statefulset", "boxed", "-n", namespace)
    kubelet.wait_for_pod_gone(namespace, "boxed-0")
    assert images.podman("container", "exists", name, check=False).returncode == 1, "the container was removed"
    assert view.pid is not None and not process_alive(view.pid)


def test_a_container_failing_its_liveness_probe_is_restarted_and_the_events_say_why(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
) -> None:
    # Port 4999 never listens: the probe fails from its first run on.
    liveness = {"tcpSocket": {"port": 4999}, "initialDelaySeconds": 2, "periodSeconds": 1, "failureThreshold": 2}
    apply(control_plane, namespace, product_shaped("unwell", new_swarm_key(), livenessProbe=liveness))

    def reasons() -> set[tuple[str, str]]:
        events = json.loads(
            control_plane.kubectl(
                "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=unwell-0", "-o", "json"
            ).stdout
        )["items"]
        return {(e["type"], e["reason"]) for e in events}

    # The kill is looked for among the events rather than taken from the first restart: a container that exits on
    # its own before the probe's first failures (once in a full run here, exit 1 within a second, its log gone
    # with the run) restarts too, and its probe then fails and kills it as this test expects.
    def restarted_by_the_probe() -> dict[str, Any] | None:
        status = restarted(control_plane, namespace, "unwell-0")
        return status if status and {("Warning", "Unhealthy"), ("Normal", "Killing")} <= reasons() else None

    status = wait_until(
        restarted_by_the_probe,
        timeout=90,
        what="a restart after the liveness probe failed, with the Unhealthy and Killing events",
    )
    assert "terminated" in status["lastState"]


def test_a_frozen_kubo_pod_answers_nothing_and_goes_on_when_thawed(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
) -> None:
    apply(control_plane, namespace, product_shaped("frozen", new_swarm_key()))
    view = kubelet.wait_for_pod(namespace, "frozen-0")
    assert view.api_url is not None

    kubelet.freeze_pod(namespace, "frozen-0")
    try:
        with pytest.raises(requests.Timeout):
            rpc(view.api_url, "id", timeout=2)
    finally:
        kubelet.thaw_pod(namespace, "frozen-0")
    started = time.monotonic()
    assert rpc(view.api_url, "id", timeout=30).json()["ID"] == view.peer_id
    assert time.monotonic() - started < 30
    after = kubelet.pod(namespace, "frozen-0")
    assert after is not None and after.restart_count == 0, "a freeze is not a crash"


def test_a_projected_token_is_requested_again_as_it_ages_and_the_container_sees_the_new_one(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
) -> None:
    # 600 s is the shortest lifetime the API server grants; renew at 1 % of it (6 s) instead of a kubelet's 80 %.
    kubelet.token_refresh_fraction = 0.01
    manifests = product_shaped("tokened", new_swarm_key(), command=["/bin/sh", "-c", "exec sleep 600"])
    pod_spec = manifests[2]["spec"]["template"]["spec"]
    pod_spec["containers"][0]["volumeMounts"].append({"name": "token", "mountPath": "/var/run/secrets/tokens"})
    pod_spec["volumes"].append(
        {
            "name": "token",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}]},
        }
    )
    apply(control_plane, namespace, manifests)
    kubelet.wait_for_pod(namespace, "tokened-0", ready=False)  # no kubo daemon: running, never ready
    name = container_of(kubelet, namespace, "tokened-0")
    last_error = [""]

    def token() -> str:
        result = images.podman("exec", name, "cat", "/var/run/secrets/tokens/token", check=False)
        if result.returncode != 0:
            last_error[0] = result.stderr.decode(errors="replace").strip()
            return ""
        return result.stdout.decode()

    # As long as wait_for_pod's own limit: on 2 busy cores a container's vfs root can take a minute to be copied.
    try:
        first = wait_until(token, timeout=120, what="the container to run with its token")
    except AssertionError as err:
        raise AssertionError(f"{err}; last podman exec: {last_error[0]}\n{kubelet.log_tail()}") from None
    assert first.count(".") == 2, "a JWT"
    second = wait_until(lambda: (t := token()) != first and t, timeout=60, what="a new token in the container")
    assert second.count(".") == 2
    after = kubelet.pod(namespace, "tokened-0")
    assert after is not None and after.restart_count == 0


def test_a_container_past_its_memory_limit_is_killed_by_the_kernel_and_restarted(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
) -> None:
    # A shell variable of 100 MB in a container limited to 32 MiB.
    greedy = ["/bin/sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\000' a); sleep 600"]
    resources = {"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi"}}
    apply(control_plane, namespace, product_shaped("greedy", new_swarm_key(), command=greedy, resources=resources))

    status = wait_until(
        lambda: restarted(control_plane, namespace, "greedy-0"), timeout=90, what="a restart after the memory limit"
    )
    assert status["lastState"]["terminated"]["exitCode"] == 137, status
