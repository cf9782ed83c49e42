"""Attacks on the product's trust boundaries, through the real operator and agent on the test bed (issue 14).

Each test is an attack seen in review, made the way an attacker would make it:

- a swarm member (a real kubo node holding the swarm key) publishes a
  kubeconfig whose ``exec`` plugin runs a command while a client loads it;
- a swarm member publishes a document nested thousands deep, and one whose
  addresses are junk or name another peer;
- a namespace user writes a Peer whose ``clusterdiscovery/kubeconfig-secret``
  annotation names a Secret of their own holding such a kubeconfig;
- a namespace user names an Identity after an existing ServiceAccount;
- a namespace user's Identity publishes through another namespace's SwarmPool;
- an Identity on a swarm whose key is public (the manual's);
- a namespace user annotates a SwarmPool to be reconciled every millisecond,
  and to keep every run's artifacts.

What the attacks would do is observed directly (a file the exec plugin would
create, a token Secret, what the node published), and what the product did
instead is read from the objects and metrics the operator wrote.

Real: kube-apiserver, etcd, kube-controller-manager, the operator and agent
processes, kubo v0.43.1 for the SwarmPools and for the attacker's node. Stands
in: the kubelet and container runtime (see testbed/README.md).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce, decode
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    IdentityDocument,
    canonical_json,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import utc_now
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import open_sealed, seal
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from cluster_discovery_operator.watches import parse as parse_watches

from testbed.certs import CertificateAuthority
from testbed.federation import Cluster, secret, swarm_pool
from tests.integration.roles.support import (
    API_GROUP,
    API_VERSION,
    POLL,
    TIMEOUT,
    Swarm,
    conditions,
    force_reconcile,
    node_authorization,
    rpc,
    rpc_call,
    run_marker,
    running_swarm,
    wait_for_run,
)
from tests.kubeconfigs import kubeconfig_dict

pytestmark = pytest.mark.integration

IDENTITY = "cluster-a"
WATCHES = Path(__file__).parents[3] / "watches.yaml"
# What the operator keeps of a SwarmPool's runs, as the product's watches.yaml says.
WATCH_MAX_RUNNER_ARTIFACTS = next(
    watch.max_runner_artifacts
    for watch in parse_watches(WATCHES.read_text(), path=WATCHES, check_paths=False)
    if watch.gvk.kind == "SwarmPool"
)
# How soon the discovery agent applies what a member publishes (a pass within a second; the rest is room for a
# loaded machine). The identity role's round comes every 2 minutes.
AGENT_BOUND = 15
# The key printed in the original manual's walkthrough: public, whoever holds it.
MANUAL_KEY = "/key/swarm/psk/1.0.0/\n/base16/\n0849c7ce4cb89ef22842da52295d7f21072bf1243fb6b7e5506533392adaea0c"


def key_text(swarm: Swarm) -> str:
    return f"/key/swarm/psk/1.0.0/\n/base16/\n{swarm.key.hex()}"


def exec_kubeconfig(marker: Path) -> dict[str, Any]:
    """A kubeconfig that creates ``marker`` the moment a Kubernetes client loads it."""
    value = kubeconfig_dict("rogue", server="https://127.0.0.1:1")
    value["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "touch",
            "args": [str(marker)],
            "interactiveMode": "Never",
        }
    }
    return value


def touching_template(marker: Path) -> str:
    """Jinja that creates ``marker`` if ansible ever evaluates it (a command run with the operator's rights)."""
    return "{{ lookup('ansible.builtin.pipe', 'touch " + str(marker) + "') }}"


@pytest.fixture(scope="module")
def swarm(cluster: Cluster) -> Swarm:
    return running_swarm(cluster, cluster.control_plane.create_namespace("trust"))


@pytest.fixture(scope="module")
def published(cluster: Cluster, swarm: Swarm) -> str:
    """The legitimate Identity of the swarm's node, once published."""
    cluster.apply([swarm.identity(IDENTITY, swarm.namespace, url=cluster.control_plane.server)])
    obj = wait_for_run(cluster, "identity", IDENTITY, swarm.namespace)
    assert_successful(obj)
    return IDENTITY


class Rogue:
    """A member of the swarm that publishes whatever it likes, bypassing every check of the product's own code."""

    def __init__(self, node: Any, swarm: Swarm) -> None:
        self.node = node
        self.swarm = swarm
        self.peer_id = node.peer_id
        with KuboClient(node.api_url) as kubo:
            kubo.swarm_connect(swarm.addresses[0])

    def publish_raw(self, raw: bytes, sequence: int) -> None:
        with KuboClient(self.node.api_url) as kubo:
            cid = kubo.add(raw, cid_version=1)
            # Announced a few times: the pubsub mesh may still be forming right after connecting.
            for _ in range(3):
                kubo.pubsub_pub(self.swarm.topic, Announce(self.peer_id, cid, sequence).encode())
                time.sleep(0.5)

    def publish(
        self,
        *,
        sequence: int,
        kubeconfig: str | None = None,
        addresses: tuple[str, ...] = (),
        url: str = "https://127.0.0.1:1",
        name: str = "Rogue",
    ) -> None:
        sealed = (
            seal(self.swarm.key, kubeconfig.encode(), publisher=self.peer_id, sequence=sequence)
            if kubeconfig is not None
            else None
        )
        document = IdentityDocument(
            publisher=self.peer_id,
            sequence=sequence,
            issued_at=utc_now(),
            name=name,
            url=url,
            addresses=addresses,
            kubeconfig=sealed,
        )
        self.publish_raw(canonical_json(document.to_json()), sequence)


@pytest.fixture
def rogue(kubo_node: Callable[..., Any], swarm: Swarm, published: str) -> Rogue:
    return Rogue(kubo_node(key_text(swarm), name="rogue"), swarm)


def refused_members(cluster: Cluster, swarm: Swarm, identity: str = IDENTITY) -> int:
    """The identity role's count of members whose documents it refused in its last round (a Prometheus gauge)."""
    refused = cluster.metric(
        "cluster_discovery_controller_identity_controller_sync_peers_number",
        identity_name=identity,
        status="Out of sync",
        swarmpool_namespace=swarm.namespace,
    )
    return int(refused or 0)


def refused_or_checked(cluster: Cluster, swarm: Swarm, peer_name: str) -> str:
    """Wait until the round refused a member's document, or (code without the check) its Peer was checked."""

    def decided() -> str | None:
        if refused_members(cluster, swarm) >= 1:
            return "refused"
        peer = cluster.get("peer", peer_name, namespace=swarm.namespace)
        return "checked" if peer is not None and "Reachable" in conditions(peer) else None

    return cluster.wait_for(decided, "the rogue's document is refused or its Peer checked", timeout=TIMEOUT)


def assert_successful(obj: dict[str, Any]) -> None:
    current = conditions(obj)
    assert current["Successful"]["status"] == "True", current.get("Failure", current)


def discovery_round(cluster: Cluster, swarm: Swarm) -> dict[str, Any]:
    """Run the legitimate Identity's reconcile (its discovery round) once more; the Identity after it."""
    before = force_reconcile(cluster, "identity", IDENTITY, swarm.namespace)
    return wait_for_run(cluster, "identity", IDENTITY, swarm.namespace, after=before)


# -- swarm members -------------------------------------------------------------------------


def test_a_members_kubeconfig_with_an_exec_plugin_is_refused_and_never_run(
    cluster: Cluster, swarm: Swarm, rogue: Rogue, tmp_path: Path
) -> None:

    marker = tmp_path / "exec-plugin-ran"
    rogue.publish(sequence=10, kubeconfig=yaml.safe_dump(exec_kubeconfig(marker)))
    peer_name = rogue.peer_id.lower()

    obj = discovery_round(cluster, swarm)
    outcome = refused_or_checked(cluster, swarm, peer_name)
    time.sleep(3)  # room for any Peer reconcile that would load the kubeconfig
    assert not marker.exists(), "the member's exec plugin ran inside the operator"
    assert outcome == "refused"
    assert cluster.get("peer", peer_name, namespace=swarm.namespace) is None
    assert cluster.get("secret", f"{peer_name}-kubeconfig", namespace=swarm.namespace) is None
    assert_successful(obj)


class TokenCatcher:
    """An HTTPS server on loopback standing in for a hostile member's API server: it records what it is sent."""

    def __init__(self, directory: Path) -> None:
        authority = CertificateAuthority("rogue member CA")
        cert, key = authority.issue("127.0.0.1", ip_addresses=["127.0.0.1"], server=True).write(directory, "rogue")
        self.ca_pem = authority.cert_pem
        self.authorizations: list[str] = []
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                catcher.authorizations.append(self.headers.get("Authorization") or "")
                body = b'{"gitVersion": "v1.37.2", "major": "1", "minor": "37"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_members_kubeconfig_naming_a_local_token_file_sends_nothing_anywhere(
    cluster: Cluster, swarm: Swarm, rogue: Rogue, tmp_path: Path
) -> None:
    """A tokenFile naming the operator's own token, and a server at the member's: a token thief, if ever loaded."""
    secret_token = tmp_path / "operator-token"
    secret_token.write_text("the-operators-own-token")
    catcher = TokenCatcher(tmp_path)
    try:
        stealing = kubeconfig_dict("rogue", server=catcher.url, ca=catcher.ca_pem)
        stealing["users"][0]["user"] = {"tokenFile": str(secret_token)}
        rogue.publish(sequence=15, kubeconfig=yaml.safe_dump(stealing))
        peer_name = rogue.peer_id.lower()

        discovery_round(cluster, swarm)
        outcome = refused_or_checked(cluster, swarm, peer_name)
        time.sleep(3)
        assert catcher.authorizations == [], f"sent to the member's server: {catcher.authorizations}"
        assert outcome == "refused"
    finally:
        catcher.close()


def test_a_document_nested_thousands_deep_refuses_that_member_only(
    cluster: Cluster, swarm: Swarm, rogue: Rogue
) -> None:
    rogue.publish_raw(b"[" * 5000 + b"]" * 5000, sequence=20)
    obj = discovery_round(cluster, swarm)
    assert_successful(obj)
    assert refused_members(cluster, swarm) >= 1
    assert cluster.get("peer", rogue.peer_id.lower(), namespace=swarm.namespace) is None


def test_junk_addresses_and_addresses_of_other_peers_are_dropped_not_dialled(
    cluster: Cluster, swarm: Swarm, rogue: Rogue
) -> None:
    own = f"{rogue.node.swarm_addr}"
    someone_else = f"/ip4/127.0.0.1/tcp/9/p2p/{swarm.peer_id}"
    # No URL either: valid in a document, refused by the Peer CRD.
    rogue.publish(sequence=30, addresses=("/x", someone_else, own), url="")
    peer_name = rogue.peer_id.lower()
    obj = discovery_round(cluster, swarm)
    assert_successful(obj)
    cluster.wait_for(
        lambda: cluster.get("peer", peer_name, namespace=swarm.namespace), "the rogue's Peer", timeout=TIMEOUT
    )
    peering = {
        entry["ID"]: entry
        for entry in rpc(swarm.api_url, "swarm/peering/ls", authorization=swarm.authorization).get("Peers") or []
    }
    assert rogue.peer_id in peering, "the member's own address is kept"
    assert set(peering[rogue.peer_id]["Addrs"]) <= {own.rsplit("/p2p/", 1)[0]}
    cluster.delete("peer", peer_name, namespace=swarm.namespace)


def test_the_agent_protects_a_member_it_hears_between_rounds_at_its_own_addresses_only(
    cluster: Cluster, swarm: Swarm, rogue: Rogue
) -> None:
    """The agent protects and bootstraps from a member in the pass that makes its Peer (seed 000's bootstrap
    list), without a round: from the same checked document, so junk and an address of another peer go nowhere."""
    own = rogue.node.swarm_addr
    other_peer = "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"
    rogue.publish(sequence=35, addresses=("/x", f"/ip4/127.0.0.1/tcp/9/p2p/{other_peer}", own))

    def protected() -> dict[str, Any]:
        return {
            entry["ID"]: entry
            for entry in rpc(swarm.api_url, "swarm/peering/ls", authorization=swarm.authorization).get("Peers") or []
        }

    peering = cluster.wait_for(
        lambda: protected() if rogue.peer_id in protected() else None,
        "the agent protects the member",
        timeout=AGENT_BOUND,
        interval=0.5,
    )
    assert set(peering[rogue.peer_id]["Addrs"]) == {own.rsplit("/p2p/", 1)[0]}
    assert other_peer not in peering
    bootstrap = rpc(swarm.api_url, "bootstrap/list", authorization=swarm.authorization)["Peers"] or []
    assert f"{own.rsplit('/p2p/', 1)[0]}/p2p/{rogue.peer_id}" in bootstrap
    assert not [entry for entry in bootstrap if other_peer in entry or entry.startswith("/x")]
    cluster.delete("peer", rogue.peer_id.lower(), namespace=swarm.namespace)


def test_a_member_naming_an_address_nobody_answers_fails_no_reconcile(
    cluster: Cluster, swarm: Swarm, rogue: Rogue
) -> None:
    """Its own peer id at a closed port, and then gone: a live member the node is not connected to.

    Well-formed, so kept and protected; dialling it is kubo's business, in the background.
    """
    closed = f"/ip4/127.0.0.1/tcp/1/p2p/{rogue.peer_id}"
    rogue.publish(sequence=40, addresses=(closed,))
    time.sleep(2)  # the agent has heard it
    rogue.node.stop()
    obj = discovery_round(cluster, swarm)
    assert_successful(obj)
    peering = {
        entry["ID"]: entry
        for entry in rpc(swarm.api_url, "swarm/peering/ls", authorization=swarm.authorization).get("Peers") or []
    }
    assert "/ip4/127.0.0.1/tcp/1" in peering[rogue.peer_id]["Addrs"]
    cluster.delete("peer", rogue.peer_id.lower(), namespace=swarm.namespace)


def test_a_members_name_written_as_a_template_is_kept_as_written_and_never_evaluated(
    cluster: Cluster, swarm: Swarm, rogue: Rogue, tmp_path: Path
) -> None:
    """The name lands in the Peer's spec, and the operator runs the Peer's role with the Peer as extra vars."""
    marker = tmp_path / "member-template-ran"
    template = touching_template(marker)
    rogue.publish(sequence=40, name=template)
    peer_name = rogue.peer_id.lower()
    discovery_round(cluster, swarm)

    def checked() -> dict[str, Any] | None:
        peer = cluster.get("peer", peer_name, namespace=swarm.namespace)
        return peer if peer is not None and "Reachable" in conditions(peer) else None

    peer = cluster.wait_for(checked, "the rogue's Peer is written and checked", timeout=TIMEOUT)
    assert "Reachable" in conditions(peer), "the Peer's role has not run yet"
    assert not marker.exists(), "the operator evaluated a template a swarm member published"
    assert peer["spec"]["name"] == template


# -- namespace users --------------------------------------------------------------------------


def test_a_spec_written_as_a_template_is_published_as_written_and_never_evaluated(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Jinja in an Identity's spec: the operator, with its cluster-wide rights, would run it for a namespace user."""
    marker = tmp_path / "spec-template-ran"
    template = touching_template(marker)
    own = running_swarm(cluster, cluster.control_plane.create_namespace("templates"))
    cluster.apply([own.identity("templated", own.namespace, url=cluster.control_plane.server, description=template)])
    obj = wait_for_run(cluster, "identity", "templated", own.namespace)
    assert not marker.exists(), "the operator evaluated a template a namespace user wrote"
    assert_successful(obj)
    record = own.published()
    assert record is not None
    document = json.loads(rpc_call(own.api_url, "cat", record["cid"], authorization=own.authorization).content)
    assert document["description"] == template
    cluster.delete("identity", "templated", namespace=own.namespace, wait=True)


def test_a_kubeconfig_a_user_writes_into_the_identitys_secret_is_never_published(
    cluster: Cluster, swarm: Swarm, rogue: Rogue, tmp_path: Path
) -> None:
    """The agent republishes a changed Identity with the kubeconfig of its Secret, at once; a user may write there."""
    marker = tmp_path / "exec-plugin-ran"
    hostile = yaml.safe_dump(exec_kubeconfig(marker))
    heard: list[Any] = []
    with KuboClient(rogue.node.api_url) as kubo:
        listener = SwarmIdentity(kubo, swarm.key)
        # Everything the node announces while the attack plays out, as any member hears it.
        listening = threading.Thread(
            target=lambda: heard.extend(listener.listen(window=45, quiet=45, ask=False)), daemon=True
        )
        listening.start()
        time.sleep(2)
        cluster.kubectl(
            "patch", "secret", f"{IDENTITY}-kubeconfig", "-n", swarm.namespace, "--type=merge",
            "-p", json.dumps({"data": {"config": base64.b64encode(hostile.encode()).decode()}}),
        )  # fmt: skip
        before = force_reconcile(cluster, "identity", IDENTITY, swarm.namespace)
        cluster.kubectl(
            "patch", "identity", IDENTITY, "-n", swarm.namespace, "--type=merge",
            "-p", json.dumps({"spec": {"description": "changed while the Secret was tampered with"}}),
        )  # fmt: skip
        generation = cluster.get("identity", IDENTITY, namespace=swarm.namespace)["metadata"]["generation"]
        # The Secret's change and the annotation wake runs of their own, which only discover; the spec's change is
        # a full sync, the one that renews the account and its Secret.
        obj = cluster.wait_for(
            lambda: full_sync_of(cluster, swarm.namespace, generation, after=before),
            f"a full sync of generation {generation} finished",
            timeout=TIMEOUT,
            interval=POLL,
        )
        listening.join(timeout=60)
        announced = {
            (parsed.cid, parsed.sequence)
            for message in heard
            if message.sender == swarm.peer_id and isinstance(parsed := decode(message.data), Announce)
        }
        assert announced, "the node announced nothing while the Identity changed"
        for cid, sequence in announced:
            document = IdentityDocument.decode(kubo.cat(cid))
            assert document.kubeconfig is not None
            opened = open_sealed(swarm.key, document.kubeconfig, publisher=swarm.peer_id, sequence=sequence).decode()
            assert "exec" not in opened, "a kubeconfig with an exec plugin went out to the swarm"
            parse_kubeconfig(opened)
    assert_successful(obj)
    restored = base64.b64decode(
        cluster.get("secret", f"{IDENTITY}-kubeconfig", namespace=swarm.namespace)["data"]["config"]
    )
    assert b"exec" not in restored, "the role put its own kubeconfig back"


def full_sync_of(cluster: Cluster, namespace: str, generation: int, *, after: str) -> dict[str, Any] | None:
    """The Identity once a run other than ``after`` finished and renewed it at ``generation``."""
    obj = cluster.get("identity", IDENTITY, namespace=namespace)
    marker = run_marker(obj)
    done = marker is not None and marker != after
    return obj if done and (obj.get("status") or {}).get("fullSyncGeneration") == generation else None


def test_a_peer_written_by_a_user_never_has_its_kubeconfig_loaded(
    cluster: Cluster, swarm: Swarm, published: str, tmp_path: Path
) -> None:

    marker = tmp_path / "exec-plugin-ran"
    text = yaml.safe_dump(exec_kubeconfig(marker))
    cluster.apply(
        [
            secret("users-kubeconfig", swarm.namespace, {"config": base64.b64encode(text.encode()).decode()}),
            {
                "apiVersion": API_VERSION,
                "kind": "Peer",
                "metadata": {
                    "name": "planted",
                    "namespace": swarm.namespace,
                    "annotations": {"clusterdiscovery/kubeconfig-secret": "users-kubeconfig"},
                },
                "spec": {"name": "Planted", "description": "", "URL": "https://127.0.0.1:1", "categories": []},
            },
        ]
    )

    def checked() -> dict[str, Any] | None:
        peer = cluster.get("peer", "planted", namespace=swarm.namespace)
        return conditions(peer).get("Reachable")

    reachable = cluster.wait_for(checked, "the planted Peer's Reachable condition", timeout=TIMEOUT, interval=POLL)
    time.sleep(2)
    assert not marker.exists(), "a namespace user's kubeconfig ran its exec plugin inside the operator"
    assert reachable["status"] == "False"
    assert reachable["reason"] == "NotManaged", reachable


def test_an_identity_named_after_an_existing_service_account_takes_nothing_over(
    cluster: Cluster, swarm: Swarm, published: str
) -> None:
    ns = swarm.namespace
    cluster.apply([{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": ns}}])
    before = cluster.get("serviceaccount", "builder", namespace=ns)
    cluster.apply([swarm.identity("builder", ns, url=cluster.control_plane.server)])
    obj = wait_for_run(cluster, "identity", "builder", ns)
    assert cluster.get("secret", "builder-token", namespace=ns) is None, "a token was minted for the victim"
    failure = conditions(obj).get("Failure", {})
    assert failure.get("status") == "True", conditions(obj)
    assert "ServiceAccount builder" in failure.get("message", ""), failure
    assert cluster.get("role", "builder", namespace=ns) is None
    assert cluster.get("rolebinding", "builder", namespace=ns) is None
    assert cluster.get("secret", "builder-kubeconfig", namespace=ns) is None
    published_record = swarm.published() or {}
    assert published_record.get("owner") == f"Identity {ns}/{IDENTITY}", "the node now speaks for the intruder"

    cluster.delete("identity", "builder", namespace=ns, wait=True)
    after = cluster.get("serviceaccount", "builder", namespace=ns)
    assert after is not None, "deleting the Identity deleted the victim's ServiceAccount"
    assert after["metadata"]["uid"] == before["metadata"]["uid"]


def test_an_identity_cannot_publish_through_a_swarm_pool_of_another_namespace(cluster: Cluster) -> None:
    victim = running_swarm(cluster, cluster.control_plane.create_namespace("victim-team"), pool="private")
    attacker_ns = cluster.control_plane.create_namespace("attacker-team")
    cluster.apply([victim.identity("intruder", attacker_ns, url=cluster.control_plane.server)])
    obj = wait_for_run(cluster, "identity", "intruder", attacker_ns)
    assert conditions(obj).get("Failure", {}).get("status") == "True", conditions(obj)
    [report] = obj["status"]["swarms"]
    assert "does not admit Identities of namespace attacker-team" in report.get("error", ""), report
    assert report.get("published") is False
    assert victim.published() is None, "the intruder claimed the victim's node"
    cluster.delete("identity", "intruder", namespace=attacker_ns, wait=True)


def test_no_kubeconfig_is_published_under_a_public_swarm_key(cluster: Cluster) -> None:
    ns = cluster.control_plane.create_namespace("manual-key")
    cluster.apply(
        [
            secret("manual-swarm", ns, {"swarm-key": base64.b64encode(MANUAL_KEY.encode()).decode()}),
            swarm_pool("manual", ns, swarm="manual", key_secret="manual-swarm"),
        ]
    )
    obj = wait_for_run(cluster, "swarmpool", "manual", ns)
    status = obj["status"]["status"]["manual"]
    manual = Swarm(ns, "manual", "manual", status["API"], status["Peer Id"], list(status["Addresses"]), b"", "")
    cluster.apply([manual.identity("open-door", ns, url=cluster.control_plane.server)])
    obj = wait_for_run(cluster, "identity", "open-door", ns)
    assert_successful(obj)
    kubeconfig_condition = conditions(obj)["KubeconfigPublished"]
    assert kubeconfig_condition["status"] == "False"
    assert kubeconfig_condition["reason"] == "PublicSwarmKey"
    [report] = obj["status"]["swarms"]
    assert "public" in report["kubeconfigWithheld"]
    document = rpc(
        status["API"], "cat", report["cid"], authorization=node_authorization(cluster, ns, "manual", "manual")
    )
    assert document["kubeconfig"] is None, "a kubeconfig went out under a key everybody has"
    assert document["name"] == "open-door"
    cluster.delete("identity", "open-door", namespace=ns, wait=True)
    cluster.delete("swarmpool", "manual", namespace=ns)


def test_no_token_or_swarm_key_is_left_in_the_operators_run_artifacts(
    cluster: Cluster, swarm: Swarm, published: str
) -> None:
    """ansible-runner keeps every task's result on disk: a task that returns a secret must be no_log."""
    token_secret = cluster.get("secret", f"{IDENTITY}-token", namespace=swarm.namespace)
    token_b64 = token_secret["data"]["token"]
    secrets_ = {
        "the Identity's token": base64.b64decode(token_b64).decode(),
        "the Identity's token, base64": token_b64,
        "the swarm key": swarm.key.hex(),
        "the node's RPC API token": swarm.authorization.removeprefix("Bearer "),
    }
    artifacts = cluster.base_dir / "artifacts"
    files = [path for path in artifacts.rglob("*") if path.is_file()]
    assert files, f"no run artifacts under {artifacts}"
    for path in files:
        text = path.read_text(errors="replace")
        for what, value in secrets_.items():
            assert value not in text, f"{what} is written in {path.relative_to(artifacts)}"


# -- pods ----------------------------------------------------------------------------------


def test_the_rpc_api_serves_only_holders_of_the_nodes_token(cluster: Cluster, swarm: Swarm, published: str) -> None:
    """Any pod can reach a node's address: without the token the node publishes, writes and stops nothing."""
    folder = f"/cluster-discovery/v1/{swarm.topic.rsplit('/', 1)[-1]}"
    attempts = {
        "publish as the cluster": ("pubsub/pub", ("u" + "x" * 10,), {}),
        "rewrite the agent's state": ("files/write", (f"{folder}/published.json",), {"create": "true"}),
        "read what the node published": ("files/read", (f"{folder}/published.json",), {}),
        "stop the node": ("shutdown", (), {}),
    }
    for what, (command, args, params) in attempts.items():
        refused = rpc_call(swarm.api_url, command, *args, **params)
        assert refused.status_code in (401, 403), f"{what}: {refused.status_code} {refused.text[:200]}"
        wrong = rpc_call(swarm.api_url, command, *args, authorization="Bearer not-the-token", **params)
        assert wrong.status_code in (401, 403), f"{what} with a wrong token: {wrong.status_code}"
    assert rpc(swarm.api_url, "id", authorization=swarm.authorization)["ID"] == swarm.peer_id
    assert swarm.published() is not None  # the node still runs and still speaks for the cluster

    # Who may reach the port at all: the operator's pods (enforced by the cluster's network plugin;
    # the test bed has none, so the policy is read, not exercised).
    policy = cluster.get("networkpolicy", f"{swarm.pool}-{swarm.swarm}", namespace=swarm.namespace)
    assert policy is not None
    api_rule = next(rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 5001)
    assert api_rule["from"] == [
        {
            "namespaceSelector": {},
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "cluster-discovery", "control-plane": "controller-manager"}
            },
        }
    ]


def test_swarm_key_secret_ref_never_writes_into_a_secret_the_product_did_not_make(cluster: Cluster) -> None:
    ns = cluster.control_plane.create_namespace("other-secrets")
    cluster.apply([secret("db-credentials", ns, {"password": base64.b64encode(b"hunter2").decode()})])
    before = cluster.get("secret", "db-credentials", namespace=ns)
    cluster.apply([swarm_pool("grabby", ns, swarm="main", key_secret="db-credentials")])
    obj = wait_for_run(cluster, "swarmpool", "grabby", ns)
    failure = conditions(obj).get("Failure", {})
    assert failure.get("status") == "True", conditions(obj)
    assert "holds no swarm-key" in failure.get("message", ""), failure
    after = cluster.get("secret", "db-credentials", namespace=ns)
    assert after["data"] == before["data"], "a swarm key was written into the user's Secret"
    assert not after["metadata"].get("ownerReferences"), "the user's Secret now goes with the SwarmPool"
    cluster.delete("swarmpool", "grabby", namespace=ns)


def swarm_pool_runs(cluster: Cluster) -> float:
    """ansible-playbook processes the operator started for SwarmPools so far (its own counter)."""
    return cluster.metric("cluster_discovery_operator_ansible_runs_total", kind="SwarmPool") or 0.0


def test_annotations_cannot_make_the_operator_run_an_object_back_to_back_or_keep_every_run(
    cluster: Cluster,
) -> None:
    """operator-sdk takes an object's reconcile-period and max-runner-artifacts annotations as written. Whoever may
    edit a SwarmPool could ask for a run every millisecond (the operator, shared by every namespace, then runs
    that role back to back) and for every run's artifacts to be kept (about half a megabyte each, on the
    operator's disk, until it is full)."""
    own = running_swarm(cluster, cluster.control_plane.create_namespace("hurried"))
    kept = cluster.base_dir / "artifacts" / API_GROUP / "v1alpha1" / "SwarmPool" / own.namespace / own.pool
    kept /= "artifacts"
    for number in range(2 * WATCH_MAX_RUNNER_ARTIFACTS):  # earlier runs' folders, as if the operator ran for a while
        (kept / f"earlier-{number}").mkdir()
        os.utime(kept / f"earlier-{number}", (1_000_000_000 + number, 1_000_000_000 + number))
    before = swarm_pool_runs(cluster)
    cluster.kubectl(
        "annotate", "swarmpool", own.pool, "-n", own.namespace,
        "ansible.sdk.operatorframework.io/reconcile-period=1ms",
        "ansible.sdk.operatorframework.io/max-runner-artifacts=0",
    )  # fmt: skip
    # Annotations are inputs: the change itself wakes one run.
    cluster.wait_for(lambda: swarm_pool_runs(cluster) > before, "the annotated SwarmPool's run", timeout=TIMEOUT)
    started = swarm_pool_runs(cluster)
    time.sleep(45)
    more = swarm_pool_runs(cluster) - started
    assert more <= 1, f"the operator ran SwarmPools {more:.0f} more times in 45 s for a reconcile-period of 1ms"
    folders = len(list(kept.iterdir()))
    assert folders <= WATCH_MAX_RUNNER_ARTIFACTS, f"{folders} runs' artifacts kept: max-runner-artifacts=0 kept all"
    log = (cluster.base_dir / "operator.log").read_text()
    for annotation in ("reconcile-period", "max-runner-artifacts"):
        said = rf"{annotation}.*{own.namespace}|{own.namespace}.*{annotation}"
        assert re.search(said, log), f"the operator's log says nothing of the {annotation} annotation it bounded"
    cluster.delete("swarmpool", own.pool, namespace=own.namespace)
