"""The swarmpool role, run by the real operator against the real test bed (issue 10's acceptance).

Covers: a SwarmPool naming a missing key Secret gets a generated PSK v1 key
it owns; every object the role creates (ConfigMap, headless Service,
StatefulSet, PVC, LoadBalancer Service) holds what the spec asks, for a pool
with the cloud's address and one with a pinned address, other ports and the
API exposed; the status reports the running node as its RPC API describes
itself; the node is a private one with exactly that configuration (a node
with the same key connects, a node with another key is refused, no public
bootstrap); a second pool joining with the key and the first's address gets
it as bootstrap and protected peer and connects; a second reconcile of an
unchanged pool changes nothing (ansibleResult.changed 0, no object
rewritten); a malformed user key is reported in the Failure condition and
touches nothing; the original's IPFSVersion v0.8.0 runs the tested kubo
release and says so (condition, Warning Event, status), a malformed one is
refused by the API server; deleting pools removes what they created and keeps
the Secret the user provided.

What is real: kube-apiserver, etcd, kube-controller-manager (StatefulSet
controller, garbage collector), the operator (``cluster-discovery-operator``
with the repository's watches.yaml, ansible-runner, the collection's roles
and modules), the discovery agent, kubo v0.43.1. What stands in (see
testbed/README.md): the kubelet and container runtime (each kubo pod is a
real kubo process started as the image would, on its own 127.0.x.y
address), the cloud load balancer (the ingress is the pod's address, or the
pinned ``loadBalancerIP``) and the storage provisioner (hostPath PVs).
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

from testbed import binaries
from testbed.federation import Cluster, secret, swarm_pool
from tests.integration.roles.support import (
    POLL,
    TIMEOUT,
    connected_peer_ids,
    describe_says_why,
    force_reconcile,
    node_authorization,
    owner_reference,
    rpc,
    rpc_call,
    run_marker,
    wait_for_run,
)

pytestmark = pytest.mark.integration

# Outside the 127.0.x.y range pods get: the load balancer stand-in reports it as the ingress.
PINNED_IP = "127.42.0.7"


@dataclass
class Pool:
    """A SwarmPool of one swarm that a test applied, and what it asked for."""

    namespace: str
    name: str
    swarm: str
    key_secret: str
    bootstrap: list[str] = field(default_factory=list)
    load_balancer_ip: str = "auto"
    exposed_api: bool = False
    swarm_port: int = 4001
    api_port: int = 5001
    capacity: str = "1Gi"

    @property
    def node(self) -> str:
        return f"{self.name}-{self.swarm}"

    @property
    def statefulset(self) -> str:
        return f"{self.node}-ss"  # the original's name: its pods are <pool>-<swarm>-ss-0

    @property
    def pod(self) -> str:
        return f"{self.statefulset}-0"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "kubo",
            "app.kubernetes.io/part-of": "cluster-discovery",
            "app.kubernetes.io/managed-by": "cluster-discovery-operator",
            "app.kubernetes.io/instance": self.node,
            "peerdiscovery.irt-saintexupery.com/swarmpool": self.name,
            "peerdiscovery.irt-saintexupery.com/swarm": self.swarm,
        }

    def manifest(self, **changes: Any) -> dict[str, Any]:
        args: dict[str, Any] = {
            "swarm": self.swarm,
            "key_secret": self.key_secret,
            "bootstrap": self.bootstrap,
            "load_balancer_ip": self.load_balancer_ip,
            "exposed_api": self.exposed_api,
            "swarm_port": self.swarm_port,
            "api_port": self.api_port,
            "capacity": self.capacity,
        }
        return swarm_pool(self.name, self.namespace, **(args | changes))


def pool_object(cluster: Cluster, pool: Pool) -> dict[str, Any]:
    obj = cluster.get("swarmpool", pool.name, namespace=pool.namespace)
    assert obj is not None, f"SwarmPool {pool.namespace}/{pool.name} is gone"
    return dict(obj)


def node_status(cluster: Cluster, pool: Pool) -> dict[str, Any]:
    return dict(((pool_object(cluster, pool).get("status") or {}).get("status") or {}).get(pool.swarm) or {})


def apply_and_wait_until_serving(cluster: Cluster, pool: Pool) -> None:
    cluster.apply([pool.manifest()])
    cluster.wait_for(
        lambda: run_marker(pool_object(cluster, pool)) is not None and node_status(cluster, pool).get("Addresses"),
        f"SwarmPool {pool.namespace}/{pool.name} reports its node",
        timeout=TIMEOUT,
        interval=POLL,
    )
    conditions = {c["type"]: c for c in pool_object(cluster, pool)["status"]["conditions"]}
    assert conditions["Successful"]["status"] == "True", conditions


def auth(cluster: Cluster, pool: Pool) -> str:
    """What the RPC API of ``pool``'s node asks for."""
    return node_authorization(cluster, pool.namespace, pool.name, pool.swarm)


def running_pod(cluster: Cluster, pool: Pool) -> Any:
    assert cluster.kubelet is not None
    return cluster.kubelet.wait_for_pod(pool.namespace, pool.pod, timeout=TIMEOUT)


def process_alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def key_text(cluster: Cluster, namespace_: str, name: str) -> str:
    return base64.b64decode(cluster.get("secret", name, namespace=namespace_)["data"]["swarm-key"]).decode()


@pytest.fixture(scope="module")
def creator(cluster: Cluster) -> Pool:
    """A pool creating a new swarm: its key Secret does not exist, the cloud chooses its address."""
    pool = Pool(
        cluster.control_plane.create_namespace("sp-creator"), "creator", "main", "generated-key", capacity="2Gi"
    )
    apply_and_wait_until_serving(cluster, pool)
    return pool


@pytest.fixture(scope="module")
def joiner(cluster: Cluster, creator: Pool) -> Pool:
    """A pool joining the creator's swarm with its key (a Secret the user made) and its address as bootstrap."""
    ns = cluster.control_plane.create_namespace("sp-joiner")
    key = base64.b64encode(key_text(cluster, creator.namespace, creator.key_secret).encode()).decode()
    cluster.apply([secret("member-key", ns, {"swarm-key": key})])
    pool = Pool(
        ns,
        "joiner",
        "member",
        "member-key",
        bootstrap=list(node_status(cluster, creator)["Addresses"]),
        load_balancer_ip=PINNED_IP,
        exposed_api=True,
        swarm_port=4101,
        api_port=5101,
    )
    apply_and_wait_until_serving(cluster, pool)
    return pool


def check_node_objects(cluster: Cluster, pool: Pool) -> None:
    """Every object the role creates for one swarm, field by field."""
    owner = owner_reference(pool_object(cluster, pool))
    ns = pool.namespace
    ports = [
        {"name": "swarm", "port": pool.swarm_port, "protocol": "TCP", "targetPort": "swarm"},
        {"name": "api", "port": pool.api_port, "protocol": "TCP", "targetPort": "api"},
    ]

    config = cluster.get("configmap", f"{pool.node}-config", namespace=ns)
    assert config["metadata"]["ownerReferences"] == [owner]
    assert config["metadata"]["labels"] == pool.labels
    assert set(config["data"]) == {"configure-private-network.sh", "bootstrap-addresses"}
    assert config["data"]["bootstrap-addresses"] == "".join(f"{address}\n" for address in pool.bootstrap)
    script = config["data"]["configure-private-network.sh"]
    assert f"(SwarmPool {ns}/{pool.name}, swarm {pool.swarm})" in script
    for line in (
        "ipfs config Routing.Type dht",
        "ipfs config --json AutoConf.Enabled false",
        "ipfs config --json Bootstrap '[]'",
    ):
        assert line in script

    headless = cluster.get("service", pool.node, namespace=ns)
    assert headless["metadata"]["ownerReferences"] == [owner]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["ports"] == ports
    assert headless["spec"]["selector"] == pool.labels

    statefulset = cluster.get("statefulset", pool.statefulset, namespace=ns)
    assert statefulset["metadata"]["ownerReferences"] == [owner]
    spec = statefulset["spec"]
    assert (spec["replicas"], spec["serviceName"], spec["selector"]["matchLabels"]) == (1, pool.node, pool.labels)
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    [container] = spec["template"]["spec"]["containers"]
    assert container["image"] == f"docker.io/ipfs/kubo:{binaries.kubo_version()}"
    # kubo needs nothing of the Kubernetes API, and nothing of root (SECURITY.md, "Pods").
    pod_spec = spec["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env == {
        "IPFS_PATH": "/data/ipfs",
        "IPFS_SWARM_KEY_FILE": "/etc/cluster-discovery/swarm-key/swarm.key",
        "LIBP2P_FORCE_PNET": "1",
        "SWARM_PORT": str(pool.swarm_port),
        "API_PORT": str(pool.api_port),
        "BOOTSTRAP_ADDRESSES_FILE": "/etc/cluster-discovery/config/bootstrap-addresses",
        "CLUSTER_DISCOVERY_API_TOKEN": None,  # from the node's RPC API token Secret
    }
    token_env = next(item for item in container["env"] if item["name"] == "CLUSTER_DISCOVERY_API_TOKEN")
    assert token_env["valueFrom"] == {"secretKeyRef": {"name": f"{pool.node}-api", "key": "token"}}
    assert container["ports"] == [
        {"name": "swarm", "containerPort": pool.swarm_port, "protocol": "TCP"},
        {"name": "api", "containerPort": pool.api_port, "protocol": "TCP"},
    ]
    volumes = {volume["name"]: volume for volume in spec["template"]["spec"]["volumes"]}
    assert volumes["swarm-key"]["secret"]["secretName"] == pool.key_secret
    assert volumes["swarm-key"]["secret"]["items"] == [{"key": "swarm-key", "path": "swarm.key"}]
    assert volumes["init-scripts"]["configMap"]["name"] == f"{pool.node}-config"
    [claim] = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"] == {"storage": pool.capacity}

    pvc = cluster.get("pvc", f"data-{pool.pod}", namespace=ns)
    assert pvc["spec"]["resources"]["requests"] == {"storage": pool.capacity}
    assert pvc["status"]["phase"] == "Bound"
    # The StatefulSet's retention policy makes the claim its dependent, so it goes with the pool.
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == statefulset["metadata"]["uid"]

    balancer = cluster.get("service", f"{pool.node}-lb", namespace=ns)
    assert balancer["metadata"]["ownerReferences"] == [owner]
    assert balancer["spec"]["type"] == "LoadBalancer"
    assert balancer["spec"]["selector"] == pool.labels
    exposed = [{k: v for k, v in port.items() if k != "nodePort"} for port in balancer["spec"]["ports"]]
    assert exposed == (ports if pool.exposed_api else ports[:1])
    if pool.load_balancer_ip == "auto":
        assert "loadBalancerIP" not in balancer["spec"]
    else:
        assert balancer["spec"]["loadBalancerIP"] == pool.load_balancer_ip


def test_a_swarmpool_naming_a_missing_secret_gets_a_generated_psk_v1_key_it_owns(
    cluster: Cluster, creator: Pool
) -> None:
    generated = cluster.get("secret", creator.key_secret, namespace=creator.namespace)
    assert generated["type"] == "Opaque"
    assert set(generated["data"]) == {"swarm-key"}
    text = base64.b64decode(generated["data"]["swarm-key"]).decode()
    key = parse(text)
    assert text == key.text  # the canonical form: header, /base16/, 64 lowercase hex digits
    assert re.fullmatch(r"/key/swarm/psk/1\.0\.0/\n/base16/\n[0-9a-f]{64}", text)
    assert generated["metadata"]["ownerReferences"] == [owner_reference(pool_object(cluster, creator))]
    assert generated["metadata"]["labels"] == creator.labels
    # The running node holds exactly that key.
    pod = running_pod(cluster, creator)
    assert parse((Path(pod.repo) / "swarm.key").read_bytes()) == key


def test_every_object_the_role_creates_holds_what_the_spec_asks(cluster: Cluster, creator: Pool) -> None:
    check_node_objects(cluster, creator)


def test_the_status_reports_the_running_node_as_its_api_describes_it(cluster: Cluster, creator: Pool) -> None:
    obj = pool_object(cluster, creator)
    pod = running_pod(cluster, creator)
    peer_id = rpc(pod.api_url, "id", authorization=auth(cluster, creator))["ID"]
    ingress = cluster.get("service", f"{creator.node}-lb", namespace=creator.namespace)["status"]["loadBalancer"]
    assert ingress["ingress"][0]["ip"] == pod.pod_ip  # the stand-in balancer gives the pod's address
    status = obj["status"]
    assert status["status"] == {
        creator.swarm: {
            "Name": creator.swarm,
            "API": f"http://{pod.pod_ip}:{creator.api_port}",
            "Peer Id": peer_id,
            "Addresses": [f"/ip4/{pod.pod_ip}/tcp/{creator.swarm_port}/p2p/{peer_id}"],
            "Number of bootstraps": 0,
            "Number of connected peers": len(connected_peer_ids(pod.api_url, authorization=auth(cluster, creator))),
            "IPFS Version": binaries.kubo_version(),
        }
    }
    # What `kubectl get swarmpools` prints under CONNECTED.
    assert status["connectedPeers"] == f"{creator.swarm}={status['status'][creator.swarm]['Number of connected peers']}"
    # The original's form: an MD5 digest in base64, such as PXqJ2FxEz64Aofb/Zx374w==.
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}==", status["hash"])
    updated = datetime.datetime.strptime(status["lastUpdate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert datetime.timedelta(0) <= datetime.datetime.now(datetime.UTC) - updated < datetime.timedelta(minutes=10)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Successful"]["status"], conditions["Successful"]["reason"]) == ("True", "Successful")
    assert conditions["Failure"]["status"] == "False"
    assert conditions["Running"]["message"] == "Awaiting next reconciliation"
    assert conditions["Running"]["ansibleResult"]["failures"] == 0
    assert status["observedGeneration"] == obj["metadata"]["generation"]


def test_a_second_reconcile_of_an_unchanged_swarmpool_changes_and_rewrites_nothing(
    cluster: Cluster, creator: Pool
) -> None:
    ns = creator.namespace
    objects = [
        ("secret", creator.key_secret),
        ("configmap", f"{creator.node}-config"),
        ("service", creator.node),
        ("service", f"{creator.node}-lb"),
        ("statefulset", creator.statefulset),
        ("pvc", f"data-{creator.pod}"),
    ]

    def versions() -> dict[tuple[str, str], str]:
        return {
            (kind, name): cluster.get(kind, name, namespace=ns)["metadata"]["resourceVersion"] for kind, name in objects
        }

    before, status_before, pod_before = (
        versions(),
        pool_object(cluster, creator)["status"],
        running_pod(cluster, creator),
    )
    previous = force_reconcile(cluster, "swarmpool", creator.name, ns)
    after = wait_for_run(cluster, "swarmpool", creator.name, ns, after=previous)

    conditions = {c["type"]: c for c in after["status"]["conditions"]}
    assert conditions["Successful"]["status"] == "True", conditions
    result = conditions["Running"]["ansibleResult"]
    assert (result["changed"], result["failures"]) == (0, 0), result
    assert result["ok"] > 0
    assert versions() == before
    for key in ("status", "hash", "lastUpdate"):
        assert after["status"][key] == status_before[key]
    pod_after = running_pod(cluster, creator)
    assert (pod_after.uid, pod_after.pid, pod_after.restart_count) == (pod_before.uid, pod_before.pid, 0)


def test_a_statefulset_of_the_earlier_name_goes_only_if_this_swarmpool_made_it(cluster: Cluster, creator: Pool) -> None:
    """Releases before the original's naming called the StatefulSet <pool>-<swarm>; its node must not run on."""
    ns = creator.namespace

    def statefulset(name: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
        labels = {"app": name}  # not the node's labels: nothing of it may be taken for the node
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": owners},
            "spec": {
                "replicas": 0,
                "serviceName": name,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "kubo", "image": "docker.io/ipfs/kubo:v0.20.0"}]},
                },
            },
        }

    owner = owner_reference(pool_object(cluster, creator))
    cluster.apply([statefulset(creator.node, [owner])])
    previous = force_reconcile(cluster, "swarmpool", creator.name, ns)
    wait_for_run(cluster, "swarmpool", creator.name, ns, after=previous)
    cluster.wait_for(
        lambda: cluster.get("statefulset", creator.node, namespace=ns) is None,
        "the earlier StatefulSet is removed",
        timeout=TIMEOUT,
        interval=POLL,
    )
    assert cluster.get("statefulset", creator.statefulset, namespace=ns) is not None

    # Someone else's StatefulSet of that name is not ours to remove.
    cluster.apply([statefulset(creator.node, [])])
    previous = force_reconcile(cluster, "swarmpool", creator.name, ns)
    obj = wait_for_run(cluster, "swarmpool", creator.name, ns, after=previous)
    assert {c["type"]: c for c in obj["status"]["conditions"]}["Successful"]["status"] == "True"
    assert cluster.get("statefulset", creator.node, namespace=ns) is not None
    cluster.delete("statefulset", creator.node, namespace=ns, wait=True)


def test_the_node_is_a_private_node_configured_exactly_as_the_swarmpool_says(
    cluster: Cluster, creator: Pool, kubo_node: Any
) -> None:
    pod = running_pod(cluster, creator)
    assert rpc(pod.api_url, "bootstrap/list", authorization=auth(cluster, creator))["Peers"] in (
        None,
        [],
    )  # no public bootstrap, none of its own
    config = rpc(pod.api_url, "config/show", authorization=auth(cluster, creator))
    assert config["Bootstrap"] in (None, [])
    assert config["Pubsub"]["Enabled"] is True
    assert config["Routing"]["Type"] == "dht"
    assert config["Provide"]["Strategy"] == "pinned", "only documents are announced, not the node's state files"
    assert config["AutoConf"]["Enabled"] is False
    assert config["Swarm"]["Transports"]["Network"]["QUIC"] is False
    assert config["Peering"].get("Peers") in (None, [])
    environ = Path(f"/proc/{pod.pid}/environ").read_bytes().split(b"\0")
    assert b"LIBP2P_FORCE_PNET=1" in environ

    address = node_status(cluster, creator)["Addresses"][0]
    key = key_text(cluster, creator.namespace, creator.key_secret)
    member = kubo_node(key, name="member")
    assert rpc(member.api_url, "swarm/connect", address)["Strings"] == [f"connect {pod.peer_id} success"]
    assert member.peer_id in connected_peer_ids(pod.api_url, authorization=auth(cluster, creator))

    stranger = kubo_node(name="stranger")  # a key of its own
    refused = rpc_call(stranger.api_url, "swarm/connect", address)
    assert refused.status_code == 500, refused.text
    assert stranger.peer_id not in connected_peer_ids(pod.api_url, authorization=auth(cluster, creator))


def test_a_swarmpool_joining_with_the_key_and_a_bootstrap_address_is_peered_and_connected(
    cluster: Cluster, creator: Pool, joiner: Pool
) -> None:
    creator_id = node_status(cluster, creator)["Peer Id"]
    [creator_address] = joiner.bootstrap
    pod = running_pod(cluster, joiner)
    cluster.wait_for(
        lambda: creator_id in connected_peer_ids(pod.api_url, authorization=auth(cluster, joiner)),
        "the joiner's node is connected to the creator's",
        timeout=TIMEOUT,
        interval=POLL,
    )
    if node_status(cluster, joiner)["Number of connected peers"] < 1:
        # The first run reported before the connection was up: the next one (not the 10 min period) must count it.
        wait_for_run(
            cluster,
            "swarmpool",
            joiner.name,
            joiner.namespace,
            after=force_reconcile(cluster, "swarmpool", joiner.name, joiner.namespace),
        )
    status = node_status(cluster, joiner)
    assert status == {
        "Name": joiner.swarm,
        "API": f"http://{pod.pod_ip}:{joiner.api_port}",
        "Peer Id": pod.peer_id,
        # The pinned address, on the pool's own swarm port.
        "Addresses": [f"/ip4/{PINNED_IP}/tcp/{joiner.swarm_port}/p2p/{pod.peer_id}"],
        "Number of bootstraps": 1,
        "Number of connected peers": len(connected_peer_ids(pod.api_url, authorization=auth(cluster, joiner))),
        "IPFS Version": binaries.kubo_version(),
    }
    # What the alert rules read to tell a node left alone (files/prometheus-rules.yaml, SwarmIsolated).
    labels = f'swarm_name="{joiner.swarm}",swarmpool_name="{joiner.name}",swarmpool_namespace="{joiner.namespace}"'
    gauge = f"cluster_discovery_swarmpool_connected_peers{{{labels}}}"
    assert f"{gauge} {float(status['Number of connected peers'])}" in cluster.metrics().splitlines()
    assert rpc(pod.api_url, "bootstrap/list", authorization=auth(cluster, joiner))["Peers"] == [creator_address]
    creator_transport = creator_address.rsplit("/p2p/", 1)[0]
    peering = rpc(pod.api_url, "swarm/peering/ls", authorization=auth(cluster, joiner))["Peers"]
    assert [(p["ID"], p["Addrs"]) for p in peering] == [(creator_id, [creator_transport])]
    assert rpc(pod.api_url, "config/show", authorization=auth(cluster, joiner))["Peering"]["Peers"] == [
        {"ID": creator_id, "Addrs": [creator_transport]}
    ]

    check_node_objects(cluster, joiner)
    # The Secret the user made is used as it is: not owned, not relabelled.
    user_secret = cluster.get("secret", joiner.key_secret, namespace=joiner.namespace)
    assert "ownerReferences" not in user_secret["metadata"]
    assert "labels" not in user_secret["metadata"]


MALFORMED = [
    pytest.param(
        "bad-header",
        "/key/swarm/psk/2.0.0/\n/base16/\n" + "ab" * 32,
        "line 1 (header)",
        id="header",
    ),
    pytest.param("bad-encoding", "/key/swarm/psk/1.0.0/\n/base58/\n" + "ab" * 32, "line 2 (encoding)", id="encoding"),
    pytest.param("bad-length", "/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 31, "line 3 (length)", id="length"),
    pytest.param("bad-hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 31 + "zz", "line 3 (non-hex)", id="non-hex"),
]


@pytest.fixture(scope="module")
def malformed(cluster: Cluster) -> str:
    """One namespace with, per malformed key, the user's Secret and a SwarmPool naming it (reconciled together)."""
    ns = cluster.control_plane.create_namespace("sp-malformed")
    secrets, pools = [], []
    for param in MALFORMED:
        name, text, _ = param.values
        secrets.append(secret(f"{name}-key", ns, {"swarm-key": base64.b64encode(str(text).encode()).decode()}))
        pools.append(swarm_pool(str(name), ns, swarm="main", key_secret=f"{name}-key"))
    cluster.apply(secrets)
    # Created in one burst, the pools share one ansible-playbook process.
    cluster.apply(pools)
    return ns


@pytest.mark.parametrize(("name", "text", "rule"), MALFORMED)
def test_a_malformed_user_key_is_reported_by_line_and_rule_and_nothing_is_touched(
    cluster: Cluster, malformed: str, name: str, text: str, rule: str
) -> None:
    before = cluster.get("secret", f"{name}-key", namespace=malformed)
    obj = wait_for_run(cluster, "swarmpool", name, malformed)
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conditions["Successful"]["status"] == "False"
    failure = conditions["Failure"]
    assert (failure["status"], failure["reason"]) == ("True", "Failed")
    assert f"Malformed swarm key, {rule}" in failure["message"], failure
    assert f"{name}-key" in failure["message"]
    assert text.splitlines()[-1] not in failure["message"]  # the key is never echoed
    assert "status" not in obj["status"]
    described = describe_says_why(cluster, "swarmpool", name, malformed, failure["message"])
    assert text.splitlines()[-1] not in described
    after = cluster.get("secret", f"{name}-key", namespace=malformed)
    assert after == before  # byte-identical, same resourceVersion, no owner or labels added
    for kind in ("statefulset", "service", "persistentvolumeclaim"):
        assert cluster.get(kind, namespace=malformed) == [], f"a {kind} was created"
    configmaps = [c["metadata"]["name"] for c in cluster.get("configmap", namespace=malformed)]
    assert configmaps == ["kube-root-ca.crt"]
    # A failing pool is retried with backoff on the operator's one SwarmPool worker: remove it so it does not
    # delay the next tests. Its deletion leaves the user's Secret as it is.
    cluster.delete("swarmpool", name, namespace=malformed, wait=True)
    assert cluster.get("secret", f"{name}-key", namespace=malformed) == before


def test_the_originals_ipfs_version_runs_the_tested_release_and_the_swarmpool_says_so(
    cluster: Cluster, joiner: Pool
) -> None:
    ns = joiner.namespace
    statefulset_before = cluster.get("statefulset", joiner.statefulset, namespace=ns)
    pod_before = running_pod(cluster, joiner)
    previous = run_marker(pool_object(cluster, joiner))
    patch = [{"op": "replace", "path": "/spec/swarms/0/IPFSVersion", "value": "v0.8.0"}]
    cluster.kubectl("patch", "swarmpool", joiner.name, "-n", ns, "--type=json", "-p", json.dumps(patch))

    obj = wait_for_run(cluster, "swarmpool", joiner.name, ns, after=previous)
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conditions["Successful"]["status"] == "True", conditions
    substituted = conditions["IPFSVersionSubstituted"]
    assert (substituted["status"], substituted["reason"]) == ("True", "UnsupportedIPFSVersion")
    expected = (
        f"swarm {joiner.swarm}: IPFSVersion v0.8.0 is not a release this operator runs (kubo v0.43.x);"
        f" the node runs kubo {binaries.kubo_version()} instead"
    )
    assert substituted["message"] == expected
    assert node_status(cluster, joiner)["IPFS Version"] == binaries.kubo_version()
    events = [
        event
        for event in cluster.get("event", namespace=ns)
        if event["involvedObject"].get("name") == joiner.name and event["reason"] == "UnsupportedIPFSVersion"
    ]
    assert [(e["type"], e["message"], e["involvedObject"]["kind"]) for e in events] == [
        ("Warning", expected, "SwarmPool")
    ]
    assert events[0]["involvedObject"]["uid"] == obj["metadata"]["uid"]

    # The node already ran the tested release: nothing about it changes.
    statefulset_after = cluster.get("statefulset", joiner.statefulset, namespace=ns)
    assert statefulset_after["metadata"]["resourceVersion"] == statefulset_before["metadata"]["resourceVersion"]
    [container] = statefulset_after["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"docker.io/ipfs/kubo:{binaries.kubo_version()}"
    pod_after = running_pod(cluster, joiner)
    assert (pod_after.uid, pod_after.pid) == (pod_before.uid, pod_before.pid)

    # A second reconcile tells nobody again.
    previous = force_reconcile(cluster, "swarmpool", joiner.name, ns)
    again = wait_for_run(cluster, "swarmpool", joiner.name, ns, after=previous)
    assert {c["type"]: c for c in again["status"]["conditions"]}["IPFSVersionSubstituted"] == substituted
    assert len([e for e in cluster.get("event", namespace=ns) if e["reason"] == "UnsupportedIPFSVersion"]) == 1

    # Only a value that is no release tag is refused, by the API server, and the stored spec stays.
    bad = [{"op": "replace", "path": "/spec/swarms/0/IPFSVersion", "value": "latest"}]
    refused = cluster.kubectl(
        "patch", "swarmpool", joiner.name, "-n", ns, "--type=json", "-p", json.dumps(bad), check=False
    )
    assert refused.returncode != 0
    assert "IPFSVersion" in refused.stderr and "should match" in refused.stderr, refused.stderr
    assert pool_object(cluster, joiner)["spec"]["swarms"][0]["IPFSVersion"] == "v0.8.0"

    # Back to a release of the series: the condition says so.
    previous = run_marker(pool_object(cluster, joiner))
    fixed = [{"op": "replace", "path": "/spec/swarms/0/IPFSVersion", "value": binaries.kubo_version()}]
    cluster.kubectl("patch", "swarmpool", joiner.name, "-n", ns, "--type=json", "-p", json.dumps(fixed))
    obj = wait_for_run(cluster, "swarmpool", joiner.name, ns, after=previous)
    cleared = {c["type"]: c for c in obj["status"]["conditions"]}["IPFSVersionSubstituted"]
    assert (cleared["status"], cleared["reason"]) == ("False", "AsRequested")


def test_deleting_swarmpools_removes_what_they_created_and_keeps_the_secret_the_user_provided(
    cluster: Cluster, creator: Pool, joiner: Pool
) -> None:
    assert cluster.kubelet is not None
    user_secret = cluster.get("secret", joiner.key_secret, namespace=joiner.namespace)
    pids = {pool.name: running_pod(cluster, pool).pid for pool in (creator, joiner)}
    for pool in (creator, joiner):
        cluster.delete("swarmpool", pool.name, namespace=pool.namespace)

    for pool in (creator, joiner):
        created = [
            ("statefulset", pool.statefulset),
            ("service", pool.node),
            ("service", f"{pool.node}-lb"),
            ("configmap", f"{pool.node}-config"),
            ("pvc", f"data-{pool.pod}"),
        ]
        if pool is creator:
            created.append(("secret", pool.key_secret))
        for kind, name in created:
            cluster.wait_for(
                lambda kind=kind, name=name, pool=pool: cluster.get(kind, name, namespace=pool.namespace) is None,
                f"{kind} {pool.namespace}/{name} is removed",
                timeout=TIMEOUT,
                interval=POLL,
            )
        cluster.kubelet.wait_for_pod_gone(pool.namespace, pool.pod, timeout=TIMEOUT)
        pid = pids[pool.name]
        cluster.wait_for(
            lambda pid=pid: not process_alive(pid),
            f"kubo of {pool.name} (PID {pid}) stopped",
            timeout=TIMEOUT,
            interval=POLL,
        )
    kept = cluster.get("secret", joiner.key_secret, namespace=joiner.namespace)
    assert kept is not None
    assert kept["data"] == user_secret["data"]
    assert kept["metadata"]["resourceVersion"] == user_secret["metadata"]["resourceVersion"]
