"""SwarmPool-shaped StatefulSets run real private kubo through the kubelet stand-in: acceptance tests of issue 7.

Real: the control plane (its StatefulSet controller makes the Pods and PVCs,
the PV controller binds, the garbage collector deletes), and kubo (the built
``ipfs`` binary, started through the ipfs/kubo image's own entrypoint script).
Stand-ins, named in each test: the kubelet (node, binding, status), the
container runtime (local processes), the pod network (a loopback IP per pod),
the storage provisioner (hostPath volumes) and the cloud load balancer.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import requests
import yaml
from kubernetes.client.exceptions import ApiException

from testbed.controlplane import ControlPlane, KubectlError
from testbed.kubelet import POD_LABELS, KuboKubelet
from testbed.kubo import KuboNode, new_swarm_key

pytestmark = pytest.mark.integration

KUBO_IMAGE = "ipfs/kubo:v0.43.1"

# What a SwarmPool's init script has to do on kubo v0.43.1 for a private network
# (see testbed/README.md, "kubo on a private network").
PRIVATE_NETWORK_SCRIPT = """#!/bin/sh
set -e
ipfs bootstrap rm --all
ipfs config --json AutoConf.Enabled false
ipfs config --json DNS.Resolvers '{}'
ipfs config --json Routing.DelegatedRouters '[]'
ipfs config --json Ipns.DelegatedPublishers '[]'
ipfs config Routing.Type dht
ipfs config --json AutoTLS.Enabled false
ipfs config --json Discovery.MDNS.Enabled false
ipfs config --json Swarm.Transports.Network.Websocket false
ipfs config --json Pubsub.Enabled true
"""


def swarm_manifests(name: str, swarm_key: str, *, image: str = KUBO_IMAGE) -> list[dict[str, Any]]:
    """Secret (swarm key), ConfigMap (init script) and StatefulSet (with a PVC template), as a SwarmPool makes them."""
    labels = {**POD_LABELS, "app.kubernetes.io/instance": name}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-swarm-key"},
            "stringData": {"swarm-key": swarm_key},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-init"},
            "data": {"001-private-network.sh": PRIVATE_NETWORK_SCRIPT},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/name": "kubo"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "kubo",
                                "image": image,
                                "env": [
                                    {"name": "LIBP2P_FORCE_PNET", "value": "1"},
                                    {"name": "IPFS_SWARM_KEY_FILE", "value": "/etc/ipfs-swarm/swarm-key"},
                                ],
                                "ports": [
                                    {"name": "swarm", "containerPort": 4001},
                                    {"name": "api", "containerPort": 5001},
                                ],
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data/ipfs"},
                                    {"name": "swarm-key", "mountPath": "/etc/ipfs-swarm", "readOnly": True},
                                    {"name": "init", "mountPath": "/container-init.d"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "swarm-key", "secret": {"secretName": f"{name}-swarm-key", "defaultMode": 0o400}},
                            {"name": "init", "configMap": {"name": f"{name}-init", "defaultMode": 0o755}},
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    }
                ],
            },
        },
    ]


def apply(cp: ControlPlane, namespace: str, manifests: list[dict[str, Any]]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(manifests))


def rpc(url: str, command: str, *args: str, timeout: float = 30) -> requests.Response:
    return requests.post(f"{url}/api/v0/{command}", params=[("arg", a) for a in args], timeout=timeout)


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def read_pod(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cp.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)


def restarted(cp: ControlPlane, namespace: str, pod: str) -> dict[str, Any] | None:
    """The pod's container status once it restarted at least once (None before, or while the Pod is not made yet)."""
    try:
        statuses = read_pod(cp, namespace, pod)["status"].get("containerStatuses") or []
    except KubectlError:  # the StatefulSet controller has not made the Pod yet
        return None
    return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = control_plane.create_namespace("kubo")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def kubelet(control_plane: ControlPlane, kubo_kubelet: Callable[[ControlPlane], KuboKubelet]) -> KuboKubelet:
    return kubo_kubelet(control_plane)


def test_kubelet_stand_in_runs_a_kubo_statefulset_as_a_real_private_node_on_its_pod_ip(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str, kubo_node: Callable[..., KuboNode]
):
    key = new_swarm_key()
    apply(control_plane, namespace, swarm_manifests("swarm", key))

    view = kubelet.wait_for_pod(namespace, "swarm-0")

    pod = read_pod(control_plane, namespace, "swarm-0")
    assert pod["spec"]["nodeName"] == kubelet.node_name
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"] == view.pod_ip and view.pod_ip.startswith("127.0.")
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    (container,) = pod["status"]["containerStatuses"]
    assert (container["ready"], container["started"], container["restartCount"]) == (True, True, 0)
    claim = json.loads(control_plane.kubectl("get", "pvc", "data-swarm-0", "-n", namespace, "-o", "json").stdout)
    assert claim["status"]["phase"] == "Bound"

    api = f"http://{view.pod_ip}:5001"
    assert view.api_url == api
    assert rpc(api, "id").json()["ID"] == view.peer_id
    config = rpc(api, "config/show").json()
    assert not config["Bootstrap"], "the init script from the ConfigMap emptied the public bootstrap list"
    assert config["Routing"]["Type"] == "dht"
    assert (view.repo / "swarm.key").read_text().strip() == key.strip(), "the Secret's key is the repo's swarm.key"

    pod_addr = f"/ip4/{view.pod_ip}/tcp/4001/p2p/{view.peer_id}"
    member = kubo_node(key, name="member")
    outsider = kubo_node(new_swarm_key(), name="outsider")
    assert rpc(member.api_url, "swarm/connect", pod_addr, timeout=60).status_code == 200
    refused = rpc(outsider.api_url, "swarm/connect", pod_addr, timeout=60)
    assert refused.status_code == 500 and "failed to dial" in refused.json()["Message"]
    pod_peers = {p["Peer"] for p in rpc(api, "swarm/peers").json()["Peers"] or []}
    assert member.peer_id in pod_peers
    assert outsider.peer_id not in pod_peers

    pid = view.pid
    assert pid is not None and process_alive(pid)
    control_plane.kubectl("delete", "statefulset", "swarm", "-n", namespace)
    kubelet.wait_for_pod_gone(namespace, "swarm-0")
    assert not process_alive(pid), "deleting the StatefulSet stopped the kubo process"
    wait_until(
        lambda: "swarm-0" not in control_plane.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout,
        timeout=60,
        what="the Pod to be removed",
    )


def test_kubelet_stand_in_reports_err_image_pull_for_another_kubo_tag_and_runs_nothing(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
):
    apply(control_plane, namespace, swarm_manifests("old", new_swarm_key(), image="docker.io/ipfs/go-ipfs:v0.8.0"))

    def waiting_reason() -> str | None:
        try:
            statuses = read_pod(control_plane, namespace, "old-0")["status"].get("containerStatuses") or []
        except Exception:  # the Pod may not exist yet
            return None
        return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None

    assert wait_until(waiting_reason, timeout=60, what="a waiting container") == "ErrImagePull"
    pod = read_pod(control_plane, namespace, "old-0")
    assert pod["status"]["phase"] == "Pending"
    assert "podIP" not in pod["status"]
    message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert "ipfs/kubo:v0.43.1" in message
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=old-0", "-o", "json"
    ).stdout
    assert any(
        e["reason"] == "Failed" and e["type"] == "Warning" and "go-ipfs:v0.8.0" in e["message"]
        for e in json.loads(events)["items"]
    )
    view = kubelet.pod(namespace, "old-0")
    assert view is not None and view.pid is None and view.pod_ip is None


def test_kubelet_stand_in_restarts_a_deleted_pod_on_the_same_repository_from_its_volume(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
):
    apply(control_plane, namespace, swarm_manifests("durable", new_swarm_key()))
    first = kubelet.wait_for_pod(namespace, "durable-0")

    control_plane.kubectl("delete", "pod", "durable-0", "-n", namespace, "--wait=false")
    second = wait_until(
        lambda: (v := kubelet.pod(namespace, "durable-0")) is not None and v.uid != first.uid and v.ready and v,
        timeout=120,
        what="the StatefulSet controller to recreate the Pod and the kubelet to run it",
    )

    assert second.peer_id == first.peer_id, "the repository (and its identity) lives on the PersistentVolume"
    assert second.repo == first.repo
    assert first.pid is not None and not process_alive(first.pid)
    assert rpc(second.api_url, "id").json()["ID"] == first.peer_id


def test_kubelet_stand_in_gives_load_balancer_services_the_pod_ip_as_ingress(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
):
    apply(control_plane, namespace, swarm_manifests("exposed", new_swarm_key()))
    view = kubelet.wait_for_pod(namespace, "exposed-0")
    selector = {"app.kubernetes.io/instance": "exposed", "app.kubernetes.io/name": "kubo"}
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": selector, "ports": [{"name": "swarm", "port": 4001}], **extra},
        }
        for name, extra in (("swarm", {}), ("swarm-static", {"loadBalancerIP": "127.0.0.250"}))
    ]
    apply(control_plane, namespace, services)

    with control_plane.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)

        def ingress(name: str) -> str | None:
            try:
                status = core.read_namespaced_service_status(name, namespace).status
            except ApiException:
                return None
            entries = status.load_balancer.ingress if status.load_balancer else None
            return entries[0].ip if entries else None

        assert wait_until(lambda: ingress("swarm"), timeout=30, what="an ingress IP") == view.pod_ip
        assert wait_until(lambda: ingress("swarm-static"), timeout=30, what="the requested IP") == "127.0.0.250"


def test_kubelet_stand_in_resolves_env_from_secrets_and_fields_for_the_image_entrypoint(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
):
    key = new_swarm_key()
    manifests = swarm_manifests("envy", key)
    statefulset = manifests[2]
    pod_spec = statefulset["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    # The other way container_daemon takes a key: $IPFS_SWARM_KEY, here from a secretKeyRef.
    container["env"] = [
        {"name": "LIBP2P_FORCE_PNET", "value": "1"},
        {"name": "IPFS_SWARM_KEY", "valueFrom": {"secretKeyRef": {"name": "envy-swarm-key", "key": "swarm-key"}}},
        {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "pod $(MY_NAMESPACE) at $(MY_POD_IP)"},
    ]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "swarm-key"]
    pod_spec["volumes"] = [v for v in pod_spec["volumes"] if v["name"] != "swarm-key"]
    apply(control_plane, namespace, manifests)

    view = kubelet.wait_for_pod(namespace, "envy-0")

    assert view.pid is not None
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{view.pid}/environ").read_text().split("\0") if "=" in item
    )
    assert environ["MY_POD_IP"] == view.pod_ip
    assert environ["MY_NAMESPACE"] == namespace
    assert environ["GREETING"] == f"pod {namespace} at {view.pod_ip}"
    assert environ["IPFS_PATH"] == str(view.repo), "IPFS_PATH names the host folder behind the /data/ipfs mount"
    assert "IPFS_SWARM_KEY" not in environ, "the entrypoint unsets the key before starting the daemon"
    assert (view.repo / "swarm.key").read_text().strip() == key.strip()
    assert "Copying swarm key from variable..." in view.log_path("kubo").read_text()


def test_kubelet_stand_in_restarts_a_crashed_kubo_container_and_counts_the_restart(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
):
    apply(control_plane, namespace, swarm_manifests("crashy", new_swarm_key()))
    first = kubelet.wait_for_pod(namespace, "crashy-0")
    assert first.pid is not None

    os.kill(first.pid, signal.SIGKILL)  # the pod's own process, started by this test's kubelet

    second = wait_until(
        lambda: (
            (v := kubelet.pod(namespace, "crashy-0")) is not None and v.ready and v.pid not in (None, first.pid) and v
        ),
        timeout=60,
        what="the container to be restarted",
    )
    assert second.uid == first.uid and second.restart_count == 1
    assert second.peer_id == first.peer_id and second.pod_ip == first.pod_ip

    def reported() -> dict[str, Any] | None:
        (status,) = read_pod(control_plane, namespace, "crashy-0")["status"]["containerStatuses"]
        return status if status["restartCount"] == 1 and status["ready"] else None

    status = wait_until(reported, timeout=30, what="the restart in the Pod status")
    assert status["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGKILL


def apply_probed(
    cp: ControlPlane, namespace: str, name: str, probe: dict[str, Any], *, startup_failures: int, liveness_failures: int
) -> None:
    """A swarm StatefulSet whose kubo container has a startup and a liveness probe, both ``probe``."""
    manifests = swarm_manifests(name, new_swarm_key())
    manifests[-1]["spec"]["template"]["spec"]["containers"][0].update(
        startupProbe={**probe, "failureThreshold": startup_failures},
        livenessProbe={**probe, "failureThreshold": liveness_failures},
    )
    apply(cp, namespace, manifests)


def pod_events(cp: ControlPlane, namespace: str, pod: str) -> list[str]:
    selector = f"involvedObject.name={pod}"
    listed = cp.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json")
    return [event["message"] for event in json.loads(listed.stdout)["items"]]


def test_kubelet_stand_in_probes_liveness_only_once_the_startup_probe_passed(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
) -> None:
    # Port 4999 never listens. Alone, this liveness probe would kill the container after its first run; behind a
    # startup probe it is not run at all, and the startup probe kills after its own failureThreshold.
    never = {"tcpSocket": {"port": 4999}, "periodSeconds": 1}
    apply_probed(control_plane, namespace, "slow", never, startup_failures=4, liveness_failures=1)

    status = wait_until(
        lambda: restarted(control_plane, namespace, "slow-0"),
        timeout=90,
        what="a restart after the startup probe failed",
    )
    assert "terminated" in status["lastState"]
    messages = pod_events(control_plane, namespace, "slow-0")
    assert "Startup probe failed for container kubo" in messages, messages
    assert not any(message.startswith("Liveness probe failed") for message in messages), messages


def test_kubelet_stand_in_reports_started_and_ready_once_the_startup_probe_passed(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
) -> None:
    swarm_port = {"tcpSocket": {"port": "swarm"}, "periodSeconds": 1}
    apply_probed(control_plane, namespace, "starts", swarm_port, startup_failures=60, liveness_failures=1)
    kubelet.wait_for_pod(namespace, "starts-0")

    def reported() -> dict[str, Any] | None:
        (status,) = read_pod(control_plane, namespace, "starts-0")["status"]["containerStatuses"]
        return status if status["ready"] else None

    status = wait_until(reported, timeout=30, what="the ready container in the Pod status")
    assert status["started"] is True and status["restartCount"] == 0


def compact_etcd(cp: ControlPlane) -> None:
    """Compact etcd at its newest revision, through its gRPC gateway."""
    key = base64.b64encode(b"/").decode()
    header = requests.post(f"{cp.etcd_url}/v3/kv/range", json={"key": key}, timeout=10).json()["header"]
    reply = requests.post(
        f"{cp.etcd_url}/v3/kv/compaction", json={"revision": header["revision"], "physical": True}, timeout=30
    )
    assert reply.status_code == 200, reply.text


def test_kubelet_stand_in_keeps_working_after_an_etcd_compaction_expires_its_watches(
    control_plane: ControlPlane, kubelet: KuboKubelet, namespace: str
):
    before = sum(kubelet.watch_lists().values())
    # A cut watch resumes from the last version it saw (as after a dropped
    # connection, or its server-side timeout); that is below the compaction
    # only if no pod, volume or service of the shared cluster changed meanwhile
    # (an earlier test's namespace may be going away), so compact again until
    # a watch has met 410 Gone.
    for _attempt in range(4):
        for name in ("marker-1", "marker-2"):  # writes the kubelet does not watch
            control_plane.kubectl("create", "configmap", name, "-n", namespace)
        compact_etcd(control_plane)
        kubelet.interrupt_watches()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum(kubelet.watch_lists().values()) == before:
            time.sleep(0.2)
        if sum(kubelet.watch_lists().values()) > before:
            break
        control_plane.kubectl("delete", "configmap", "marker-1", "marker-2", "-n", namespace)
    assert sum(kubelet.watch_lists().values()) > before, kubelet.watch_lists()
    assert "410 Gone, listing again" in kubelet.log_path.read_text()

    apply(control_plane, namespace, swarm_manifests("after", new_swarm_key()))

    view = kubelet.wait_for_pod(namespace, "after-0", timeout=60)
    assert rpc(view.api_url, "id").json()["ID"] == view.peer_id
