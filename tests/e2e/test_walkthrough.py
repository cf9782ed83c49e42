"""Seed 000's walkthrough across three clusters, with real control planes, kubo nodes and operators.

Each cluster is a real control plane (etcd, kube-apiserver,
kube-controller-manager) with the test bed's kubelet stand-in running its kubo
pods as real kubo processes, and the product's own two processes: the operator
(watches.yaml, the collection's roles) and the discovery agent. What stands
in: the container runtime and the pod network (local processes on 127.0.0.x),
the cloud load balancer (the stand-in gives it the pod's address).

The scenario, in order (each test builds on the previous ones):
A creates a private swarm with a generated key; B and C join with that key
and A's address; all three publish identities; each sees the two others as
Online Peers with the right spec and a usable kubeconfig that was sealed on
the wire; an update on A reaches B and C; deleting C's Identity removes its
Peer on A and B, and recreating it brings it back; a node with a wrong key
never appears; a member publishing junk or impersonating changes nothing; the
metrics count the peers; A's node stops and B and C still sync an update.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient, KuboError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import (
    api_token_secret,
    authorization,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

from testbed import binaries
from testbed.build import COMPONENTS
from testbed.federation import Cluster, Federation, identity, namespace, secret, swarm_pool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NS = "private-network-peer-configuration"
TIMEOUT = 180


class Walkthrough:
    """The three clusters and what the scenario learned along the way."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.clusters: dict[str, Cluster] = {}
        self.pools: dict[str, str] = {}
        self.identities: dict[str, str] = {}
        self.peer_ids: dict[str, str] = {}
        self.swarm_key_b64 = ""

    def pool_status(self, name: str) -> dict[str, Any]:
        cluster = self.clusters[name]
        pool = cluster.get("swarmpool", self.pools[name], namespace=NS) or {}
        return ((pool.get("status") or {}).get("status") or {}).get(self.pools[name]) or {}

    def node_api(self, name: str) -> KuboClient:
        """A client of the RPC API of ``name``'s node, with the token its Secret holds."""
        cluster = self.clusters[name]
        secret = cluster.get("secret", api_token_secret(self.pools[name], self.pools[name]), namespace=NS)
        return KuboClient(self.pool_status(name)["API"], authorization=authorization(secret))

    def peers(self, name: str) -> dict[str, dict[str, Any]]:
        return {peer["metadata"]["name"]: peer for peer in self.clusters[name].get("peers", namespace=NS)}

    def identity_manifest(self, name: str, description: str, categories: list[str]) -> dict[str, Any]:
        cluster = self.clusters[name]
        return identity(
            self.identities[name],
            NS,
            swarm_pool=self.pools[name],
            swarm=self.pools[name],
            display_name=f"Cluster {name.upper()}",
            description=description,
            url=cluster.control_plane.server,
            categories=categories,
        )

    def sees(self, viewer: str, other: str, **spec: Any) -> bool:
        peer = self.peers(viewer).get(self.peer_ids[other].lower())
        if peer is None or (peer.get("status") or {}).get("status") != "Online":
            return False
        return all(peer["spec"].get(key) == value for key, value in spec.items())


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walkthrough]:
    with Federation(tmp_path_factory.mktemp("federation")) as federation:
        walkthrough = Walkthrough(federation)
        for name in ("a", "b", "c"):
            walkthrough.clusters[name] = federation.add_cluster(name)
            walkthrough.pools[name] = f"cluster-{name}-private"
            walkthrough.identities[name] = f"cluster-{name}-identity"
        yield walkthrough


def test_a_creates_a_private_swarm_with_a_generated_key(walk: Walkthrough) -> None:
    a = walk.clusters["a"]
    a.apply([namespace(NS), swarm_pool(walk.pools["a"], NS, swarm=walk.pools["a"], key_secret="private-swarm")])
    status = a.wait_for(
        lambda: walk.pool_status("a").get("Addresses") and walk.pool_status("a"),
        "A's node reports its address",
        timeout=TIMEOUT,
    )
    walk.peer_ids["a"] = status["Peer Id"]
    assert status["Number of bootstraps"] == 0
    assert status["Addresses"] == [f"{status['Addresses'][0].rsplit('/p2p/', 1)[0]}/p2p/{status['Peer Id']}"]
    walk.swarm_key_b64 = a.get("secret", "private-swarm", namespace=NS)["data"]["swarm-key"]
    assert parse(base64.b64decode(walk.swarm_key_b64)).fingerprint


def test_b_and_c_join_with_the_key_and_a_bootstrap_address(walk: Walkthrough) -> None:
    bootstrap = walk.pool_status("a")["Addresses"]
    for name in ("b", "c"):
        walk.clusters[name].apply(
            [
                namespace(NS),
                secret("private-swarm-key", NS, {"swarm-key": walk.swarm_key_b64}),
                swarm_pool(
                    walk.pools[name], NS, swarm=walk.pools[name], key_secret="private-swarm-key", bootstrap=bootstrap
                ),
            ]
        )
    for name in ("b", "c"):
        status = walk.clusters[name].wait_for(
            lambda name=name: (
                walk.pool_status(name).get("Number of connected peers", 0) >= 1 and walk.pool_status(name)
            ),
            f"{name}'s node is connected to the swarm",
            timeout=TIMEOUT,
        )
        walk.peer_ids[name] = status["Peer Id"]
        assert status["Number of bootstraps"] == 1


def test_every_cluster_publishes_and_sees_the_two_others_as_online_peers(walk: Walkthrough) -> None:
    categories = {
        "a": ["computing", "EO data", "IOT data"],
        "b": ["computing", "sentinel S3A"],
        "c": ["weather forecast"],
    }
    for name, cluster in walk.clusters.items():
        cluster.apply([walk.identity_manifest(name, f"I'm cluster {name}", categories[name])])
    for viewer, cluster in walk.clusters.items():
        for other in walk.clusters:
            if other != viewer:
                cluster.wait_for(
                    lambda viewer=viewer, other=other: walk.sees(
                        viewer,
                        other,
                        name=f"Cluster {other.upper()}",
                        description=f"I'm cluster {other}",
                        URL=walk.clusters[other].control_plane.server,
                        categories=[{"name": c} for c in categories[other]],
                    ),
                    f"{viewer} sees {other} as an Online Peer",
                    timeout=TIMEOUT,
                )
        peers = walk.peers(viewer)
        assert set(peers) == {walk.peer_ids[o].lower() for o in walk.clusters if o != viewer}
        for peer in peers.values():
            assert peer["status"]["kubernetesVersion"] == COMPONENTS["kubernetes"].version
            assert peer["status"]["missingCounter"] == 0 and peer["status"]["lastSeen"]
    table = walk.clusters["a"].table("peers", "-A")
    assert table.split("\n")[0].split() == ["NAMESPACE", "NAME", "PEERNAME", "STATUS", "IP", "DESCRIPTION"]
    peers_by_category = (
        walk.clusters["a"]
        .kubectl(
            "get", "peers", "-n", NS, "-l", "category.peerdiscovery.irt-saintexupery.com/sentinel-s3a", "-o", "name"
        )
        .stdout.split()
    )
    assert peers_by_category == [f"peer.peerdiscovery.irt-saintexupery.com/{walk.peer_ids['b'].lower()}"]


def test_the_published_kubeconfig_is_sealed_on_the_wire(walk: Walkthrough) -> None:
    a = walk.clusters["a"]
    status = a.get("identity", walk.identities["a"], namespace=NS)["status"]["swarms"][0]
    with walk.node_api("b") as kubo:
        raw = kubo.cat(status["cid"])
    document = json.loads(raw)
    assert document["publisher"] == walk.peer_ids["a"]
    assert set(document["kubeconfig"]) == {"alg", "nonce", "ciphertext"}
    published = a.get("secret", f"{walk.identities['a']}-kubeconfig", namespace=NS)["data"]["config"]
    kubeconfig = base64.b64decode(published)
    token = yaml.safe_load(kubeconfig)["users"][0]["user"]["token"]
    assert token.encode() not in raw and b"certificate-authority-data" not in raw and b"kind: Config" not in raw


def test_b_acts_on_a_with_exactly_the_rights_of_as_role(walk: Walkthrough, tmp_path: Path) -> None:
    b = walk.clusters["b"]
    peer = walk.peers("b")[walk.peer_ids["a"].lower()]
    secret_name = peer["metadata"]["annotations"]["clusterdiscovery/kubeconfig-secret"]
    config = base64.b64decode(b.get("secret", secret_name, namespace=NS)["data"]["config"])
    path = tmp_path / "a.kubeconfig"
    path.write_bytes(config)

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binaries.kubernetes("kubectl")), f"--kubeconfig={path}", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    allowed = kubectl("get", "pods", "-n", NS, "-o", "name")
    assert allowed.returncode == 0, allowed.stderr
    assert f"pod/{walk.pools['a']}-{walk.pools['a']}-0" in allowed.stdout
    for denied in (kubectl("get", "secrets", "-n", NS), kubectl("get", "pods", "-n", "default")):
        assert denied.returncode != 0
        assert "Forbidden" in denied.stderr and f"system:serviceaccount:{NS}:{walk.identities['a']}" in denied.stderr


def test_an_update_of_as_identity_reaches_b_and_c(walk: Walkthrough) -> None:
    walk.clusters["a"].apply(
        [
            walk.identity_manifest(
                "a", "I'm cluster a, but updated", ["computing", "EO data", "IOT data", "new category"]
            )
        ]
    )
    for viewer in ("b", "c"):
        walk.clusters[viewer].wait_for(
            lambda viewer=viewer: walk.sees(viewer, "a", description="I'm cluster a, but updated"),
            f"{viewer} sees A's update",
            timeout=TIMEOUT,
        )
        labels = walk.peers(viewer)[walk.peer_ids["a"].lower()]["metadata"]["labels"]
        assert labels.get("category.peerdiscovery.irt-saintexupery.com/new-category") == "true"


def test_deleting_cs_identity_removes_its_peer_on_a_and_b_and_recreating_it_brings_it_back(walk: Walkthrough) -> None:
    c = walk.clusters["c"]
    c.delete("identity", walk.identities["c"], namespace=NS)
    c.wait_for(
        lambda: c.get("identity", walk.identities["c"], namespace=NS) is None, "C's Identity is gone", timeout=TIMEOUT
    )
    assert c.get("serviceaccount", walk.identities["c"], namespace=NS) is None
    assert walk.peers("c") == {}
    for viewer in ("a", "b"):
        walk.clusters[viewer].wait_for(
            lambda viewer=viewer: walk.peer_ids["c"].lower() not in walk.peers(viewer),
            f"{viewer} removed C's Peer",
            timeout=TIMEOUT,
        )
        secret_name = f"{walk.peer_ids['c'].lower()}-kubeconfig"
        walk.clusters[viewer].wait_for(
            lambda viewer=viewer, secret_name=secret_name: (
                walk.clusters[viewer].get("secret", secret_name, namespace=NS) is None
            ),
            f"{viewer} removed C's kubeconfig Secret",
            timeout=TIMEOUT,
        )
    c.apply([walk.identity_manifest("c", "I'm cluster c, back", ["weather forecast"])])
    for viewer in ("a", "b"):
        walk.clusters[viewer].wait_for(
            lambda viewer=viewer: walk.sees(viewer, "c", description="I'm cluster c, back"),
            f"{viewer} sees C again",
            timeout=TIMEOUT,
        )
    # C's own Peers went with its Identity; the new one finds A and B again.
    for other in ("a", "b"):
        c.wait_for(lambda other=other: walk.sees("c", other), f"C sees {other.upper()} again", timeout=TIMEOUT)


def test_a_node_with_a_wrong_key_never_appears(walk: Walkthrough, kubo_node: Any) -> None:
    stranger = kubo_node(name="stranger")  # a fresh random key
    with KuboClient(stranger.api_url, retries=0) as kubo:
        with pytest.raises(KuboError):
            kubo.swarm_connect(walk.pool_status("a")["Addresses"][0])
        node = SwarmIdentity(kubo, parse(stranger.swarm_key).key)
        outcome = node.publish(
            owner="Identity elsewhere/stranger",
            document=IdentityDocument(publisher="", sequence=0, issued_at="", name="Stranger"),
            kubeconfig=None,
        )
        assert outcome.published is not None
        node.announce(outcome.published)
    time.sleep(5)
    for name in walk.clusters:
        assert stranger.peer_id.lower() not in walk.peers(name)


def test_a_member_publishing_junk_or_impersonating_changes_nothing(walk: Walkthrough, kubo_node: Any) -> None:
    key = base64.b64decode(walk.swarm_key_b64).decode()
    rogue = kubo_node(key, name="rogue")
    for viewer in walk.clusters:
        for other in walk.clusters:
            if other != viewer:
                walk.clusters[viewer].wait_for(
                    lambda viewer=viewer, other=other: walk.sees(viewer, other),
                    f"{viewer} sees {other} before the rogue speaks",
                    timeout=TIMEOUT,
                )
    before = {name: walk.peers(name) for name in walk.clusters}
    with KuboClient(rogue.api_url) as kubo:
        kubo.swarm_connect(walk.pool_status("a")["Addresses"][0])
        node = SwarmIdentity(kubo, parse(key).key)
        junk = kubo.add(b"{not an identity", cid_version=1)
        huge = kubo.add(b"{" + b" " * 100_000 + b"}", cid_version=1)
        for cid, sequence in ((junk, 2**40), (huge, 2**41)):
            kubo.pubsub_pub(node.topic, Announce(rogue.peer_id, cid, sequence).encode())
        # Claim to be B, pointing at B's own latest document with a higher sequence.
        b_status = walk.clusters["b"].get("identity", walk.identities["b"], namespace=NS)["status"]["swarms"][0]
        kubo.pubsub_pub(node.topic, Announce(walk.peer_ids["b"], b_status["cid"], b_status["sequence"] + 1).encode())
    time.sleep(10)  # a discovery round on each cluster, and the agents' fast paths
    for name, cluster in walk.clusters.items():
        after = walk.peers(name)
        assert set(after) == set(before[name]), f"{name}'s Peers changed"
        assert rogue.peer_id.lower() not in after
        for peer_name, peer in after.items():
            assert peer["spec"] == before[name][peer_name]["spec"]
            assert peer["status"]["status"] == "Online"
        assert cluster.operator is not None and cluster.operator.running()
        assert cluster.agent is not None and cluster.agent.running()


def test_the_swarm_creators_status_counts_both_members_as_connected(walk: Walkthrough) -> None:
    a = walk.clusters["a"]
    a.wait_for(
        lambda: walk.pool_status("a").get("Number of connected peers", 0) >= 2,
        "A's SwarmPool status counts both members",
        timeout=TIMEOUT,
        interval=2,
    )
    assert walk.pool_status("a")["Number of bootstraps"] == 0


def test_the_metrics_count_the_peers_of_each_identity(walk: Walkthrough) -> None:
    a = walk.clusters["a"]

    def synchronized() -> bool:
        for line in a.metrics().splitlines():
            if (
                line.startswith("cluster_discovery_controller_identity_controller_peers_number{")
                and 'status="Synchronized"' in line
            ):
                return line.rsplit(" ", 1)[1] in ("2.0", "2")
        return False

    a.wait_for(synchronized, "A's metrics count two synchronized peers", timeout=TIMEOUT, interval=2)
    text = a.metrics()
    assert f'identity_name="{walk.identities["a"]}"' in text
    assert f'swarmpool_name="{walk.pools["a"]}"' in text


def test_b_and_c_still_sync_after_the_bootstrap_member_leaves(walk: Walkthrough) -> None:
    b, c = walk.clusters["b"], walk.clusters["c"]
    # The identity role peers each node with the live members it discovered.
    for viewer, other in (("b", "c"), ("c", "b")):

        def peered(viewer: str = viewer, other: str = other) -> bool:
            with walk.node_api(viewer) as kubo:
                return any(entry["ID"] == walk.peer_ids[other] for entry in kubo.peering_ls())

        walk.clusters[viewer].wait_for(peered, f"{viewer}'s node keeps {other} as a protected peer", timeout=TIMEOUT)
    a = walk.clusters["a"]
    a.delete("swarmpool", walk.pools["a"], namespace=NS)
    assert a.kubelet is not None
    a.kubelet.wait_for_pod_gone(NS, f"{walk.pools['a']}-{walk.pools['a']}-0", timeout=TIMEOUT)
    b.apply([walk.identity_manifest("b", "I'm cluster b, after A left", ["computing", "sentinel S3A"])])
    c.wait_for(
        lambda: walk.sees("c", "b", description="I'm cluster b, after A left"),
        "C sees B's update without A",
        timeout=TIMEOUT,
    )
