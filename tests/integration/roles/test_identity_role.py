"""The identity role, run by the real operator against the real test bed (issue 10's acceptance).

Covers: an Identity on a running SwarmPool gets its ServiceAccount, Role
(the role's default rules), RoleBinding, long-lived token Secret and
kubeconfig Secret, and is published on the swarm's node (status fields
checked against the node's own record and the document it serves); the
kubeconfig, used by a fresh Kubernetes client against the real API server,
can read pods, services and configmaps in the Identity's namespace and
gets 403 for secrets there, for writes, and for pods elsewhere; an update
publishes a new document with a higher sequence; an Identity the role
refuses (a blank name, a swarm of no SwarmPool) gets a clear Failure and
publishes nothing; deleting an Identity publishes a tombstone, then removes
the account.

What is real: kube-apiserver (RBAC, service-account token authentication),
etcd, kube-controller-manager (token controller, garbage collector), the
operator (``cluster-discovery-operator`` with the repository's watches.yaml,
ansible-runner, the collection's roles and modules), the discovery agent,
kubo v0.43.1. What stands in (see testbed/README.md): the kubelet and
container runtime (the SwarmPool's kubo pod is a real kubo process on its own
127.0.x.y address), the cloud load balancer and the storage provisioner.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import SealedBox, open_sealed
from kubernetes.client.exceptions import ApiException

from testbed.federation import Cluster
from tests.integration.roles.support import (
    POLL,
    TIMEOUT,
    Swarm,
    conditions,
    describe_says_why,
    owner_reference,
    rpc,
    run_marker,
    running_swarm,
    wait_for_run,
)

pytestmark = pytest.mark.integration

RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
DEFAULT_RULES = [
    {"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": ["get", "list", "watch"]}
]


def identity(name: str, namespace: str, swarm: Swarm, *, display_name: str, description: str, url: str) -> Any:
    return swarm.identity(
        name,
        namespace,
        display_name=display_name,
        description=description,
        url=url,
        categories=["computing", "EO data"],
    )


@pytest.fixture(scope="module")
def swarm(cluster: Cluster) -> Swarm:
    return running_swarm(cluster, cluster.control_plane.create_namespace("id-swarm"))


@dataclass
class Published:
    namespace: str
    name: str
    url: str


@pytest.fixture(scope="module")
def published(cluster: Cluster, swarm: Swarm) -> Published:
    """An Identity on the running swarm, once the operator reports it published."""
    entry = Published(swarm.namespace, "cluster-a", cluster.control_plane.server)
    cluster.apply(
        [identity(entry.name, entry.namespace, swarm, display_name="Cluster A", description="first", url=entry.url)]
    )
    obj = wait_for_run(cluster, "identity", entry.name, entry.namespace)
    assert conditions(obj)["Successful"]["status"] == "True", conditions(obj)
    return entry


def swarm_status(cluster: Cluster, entry: Published) -> dict[str, Any]:
    [status] = cluster.get("identity", entry.name, namespace=entry.namespace)["status"]["swarms"]
    return dict(status)


def test_an_identity_on_a_running_swarmpool_gets_its_account_and_is_published(
    cluster: Cluster, swarm: Swarm, published: Published
) -> None:
    ns, name = published.namespace, published.name
    obj = cluster.get("identity", name, namespace=ns)
    owner = [owner_reference(obj)]

    account = cluster.get("serviceaccount", name, namespace=ns)
    assert account["metadata"]["ownerReferences"] == owner
    role = cluster.get("role", name, namespace=ns)
    assert role["metadata"]["ownerReferences"] == owner
    assert role["rules"] == DEFAULT_RULES
    binding = cluster.get("rolebinding", name, namespace=ns)
    assert binding["metadata"]["ownerReferences"] == owner
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": ns}]

    token_secret = cluster.get("secret", f"{name}-token", namespace=ns)
    assert token_secret["type"] == "kubernetes.io/service-account-token"
    assert token_secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == name
    ca = cluster.control_plane.ca_file.read_bytes()
    assert base64.b64decode(token_secret["data"]["ca.crt"]) == ca
    token = base64.b64decode(token_secret["data"]["token"]).decode()

    kubeconfig_secret = cluster.get("secret", f"{name}-kubeconfig", namespace=ns)
    assert kubeconfig_secret["metadata"]["ownerReferences"] == owner
    assert set(kubeconfig_secret["data"]) == {"config"}
    kubeconfig_text = base64.b64decode(kubeconfig_secret["data"]["config"])
    kubeconfig = yaml.safe_load(kubeconfig_text)
    [kube_cluster], [user], [context] = kubeconfig["clusters"], kubeconfig["users"], kubeconfig["contexts"]
    assert kube_cluster["cluster"]["server"] == published.url
    assert base64.b64decode(kube_cluster["cluster"]["certificate-authority-data"]) == ca
    assert user == {"name": f"system:serviceaccount:{ns}:{name}", "user": {"token": token}}
    assert context["context"]["namespace"] == ns
    assert kubeconfig["current-context"] == context["name"] == "Cluster A"

    status = obj["status"]
    assert (status["serviceAccount"], status["kubeconfigSecret"]) == (name, f"{name}-kubeconfig")
    assert conditions(obj)["Successful"]["status"] == "True"
    [entry] = status["swarms"]
    assert rpc(swarm.api_url, "id", authorization=swarm.authorization)["ID"] == swarm.peer_id
    record = swarm.published()
    assert record == {
        "owner": f"Identity {ns}/{name}",
        "cid": entry["cid"],
        "sequence": entry["sequence"],
        "tombstone": False,
    }
    assert {k: entry[k] for k in ("namespace", "swarmPool", "swarm", "published", "peerId", "apiUrl", "topic")} == {
        "namespace": swarm.namespace,
        "swarmPool": swarm.pool,
        "swarm": swarm.swarm,
        "published": True,
        "peerId": swarm.peer_id,
        "apiUrl": swarm.api_url,
        "topic": swarm.topic,
    }
    assert isinstance(entry["sequence"], int) and entry["sequence"] > 0
    assert re.fullmatch(RFC3339, entry["publishedAt"])
    assert "error" not in entry
    # What `kubectl get identities` prints under PUBLISHED and PEERS.
    assert (status["publishedOn"], status["peerCounts"]) == (swarm.swarm, f"{swarm.swarm}={entry['peers']}")

    # What the node serves under that CID is the identity, its kubeconfig sealed with the swarm key.
    document = rpc(swarm.api_url, "cat", entry["cid"], authorization=swarm.authorization)
    assert {k: document[k] for k in ("publisher", "sequence", "issuedAt", "tombstone")} == {
        "publisher": swarm.peer_id,
        "sequence": entry["sequence"],
        "issuedAt": entry["publishedAt"],
        "tombstone": False,
    }
    assert (document["name"], document["description"], document["url"]) == ("Cluster A", "first", published.url)
    assert document["categories"] == ["computing", "EO data"]
    assert document["addresses"] == swarm.addresses
    box = SealedBox.from_json(document["kubeconfig"])
    assert open_sealed(swarm.key, box, publisher=swarm.peer_id, sequence=entry["sequence"]) == kubeconfig_text


def test_the_kubeconfig_used_by_a_fresh_client_can_do_exactly_what_the_role_allows(
    cluster: Cluster, swarm: Swarm, published: Published, tmp_path: Path
) -> None:
    ns = published.namespace
    secret = cluster.get("secret", f"{published.name}-kubeconfig", namespace=ns)
    path = tmp_path / "identity.kubeconfig"
    path.write_bytes(base64.b64decode(secret["data"]["config"]))
    elsewhere = cluster.control_plane.create_namespace("id-elsewhere")

    def forbidden(call: Any, *args: Any) -> bool:
        with pytest.raises(ApiException) as refused:
            call(*args)
        return refused.value.status == 403

    with kubernetes.config.new_client_from_config(config_file=str(path)) as client:
        core = kubernetes.client.CoreV1Api(client)
        pods = [pod.metadata.name for pod in core.list_namespaced_pod(ns).items]
        assert f"{swarm.pool}-{swarm.swarm}-ss-0" in pods
        services = {service.metadata.name for service in core.list_namespaced_service(ns).items}
        assert {f"{swarm.pool}-{swarm.swarm}", f"{swarm.pool}-{swarm.swarm}-lb"} <= services
        configmaps = {configmap.metadata.name for configmap in core.list_namespaced_config_map(ns).items}
        assert f"{swarm.pool}-{swarm.swarm}-config" in configmaps
        assert core.read_namespaced_pod(f"{swarm.pool}-{swarm.swarm}-ss-0", ns).status.phase == "Running"

        assert forbidden(core.list_namespaced_secret, ns)
        assert forbidden(core.read_namespaced_secret, "swarm-key", ns)
        assert forbidden(core.list_namespaced_pod, elsewhere)
        assert forbidden(core.list_namespaced_config_map, "default")
        configmap = {"metadata": {"name": "written-by-a-member"}, "data": {"x": "y"}}
        assert forbidden(core.create_namespaced_config_map, ns, configmap)
        assert forbidden(core.delete_namespaced_pod, f"{swarm.pool}-{swarm.swarm}-ss-0", ns)
    assert cluster.get("configmap", "written-by-a-member", namespace=ns) is None


def test_updating_the_description_publishes_a_new_document_with_a_higher_sequence(
    cluster: Cluster, swarm: Swarm, published: Published
) -> None:
    before = swarm_status(cluster, published)
    previous = run_marker(cluster.get("identity", published.name, namespace=published.namespace))
    patch = {"spec": {"description": "second"}}
    cluster.kubectl(
        "patch", "identity", published.name, "-n", published.namespace, "--type=merge", "-p", json.dumps(patch)
    )

    def republished() -> dict[str, Any] | None:
        # A run that began before the patch may finish first: wait for the one that published the new spec.
        obj = cluster.get("identity", published.name, namespace=published.namespace)
        marker = run_marker(obj)
        newer = obj["status"]["swarms"][0].get("sequence", 0) > before["sequence"]
        return obj if marker is not None and marker != previous and newer else None

    obj = cluster.wait_for(republished, "the Identity reports a newer publication", timeout=TIMEOUT, interval=POLL)
    assert conditions(obj)["Successful"]["status"] == "True"
    [after] = obj["status"]["swarms"]
    assert after["published"] is True
    assert after["cid"] != before["cid"]
    assert after["publishedAt"] >= before["publishedAt"]
    record = swarm.published()
    assert record is not None
    assert (record["cid"], record["sequence"], record["tombstone"]) == (after["cid"], after["sequence"], False)
    document = rpc(swarm.api_url, "cat", after["cid"], authorization=swarm.authorization)
    assert (document["description"], document["sequence"], document["name"]) == (
        "second",
        after["sequence"],
        "Cluster A",
    )


MALFORMED = [
    pytest.param({"name": "   "}, "spec.name must not be empty", id="blank-name"),
    pytest.param({"swarmPool": "no-such-pool"}, "is not a swarm of an existing SwarmPool", id="swarm-of-no-swarmpool"),
]


@pytest.mark.parametrize(("change", "reason"), MALFORMED)
def test_an_identity_the_role_refuses_gets_a_clear_failure_and_publishes_nothing(
    cluster: Cluster, swarm: Swarm, published: Published, change: dict[str, str], reason: str
) -> None:
    ns = cluster.control_plane.create_namespace("id-refused")
    manifest = identity("refused", ns, swarm, display_name="Refused", description="", url=published.url)
    if "swarmPool" in change:
        manifest["spec"]["swarms"][0]["swarmPool"] = change["swarmPool"]
    else:
        manifest["spec"].update(change)
    record_before = swarm.published()
    other_before = swarm_status(cluster, published)

    cluster.apply([manifest])
    obj = wait_for_run(cluster, "identity", "refused", ns)
    failure = conditions(obj)["Failure"]
    assert (failure["status"], failure["reason"]) == ("True", "Failed"), conditions(obj)
    message = " ".join(failure["message"].split())
    assert reason in message, message
    describe_says_why(cluster, "identity", "refused", ns, failure["message"])
    if "swarmPool" in change:
        assert f"swarm {swarm.namespace}/no-such-pool/{swarm.swarm} {reason}" in message
        [entry] = obj["status"]["swarms"]
        assert (entry["published"], entry["swarmPool"]) == (False, "no-such-pool")
        assert reason in entry["error"]
        assert "cid" not in entry and "peerId" not in entry
    else:
        assert message.startswith(f"Identity {ns}/refused: ")
        assert "swarms" not in obj["status"]
        # Refused before anything changes: no account, no kubeconfig.
        for kind, name in (
            ("serviceaccount", "refused"),
            ("role", "refused"),
            ("rolebinding", "refused"),
            ("secret", "refused-token"),
            ("secret", "refused-kubeconfig"),
        ):
            assert cluster.get(kind, name, namespace=ns) is None, f"{kind} {name} was created"
    # Nothing was published on the swarm, and the other Identity's publication is as it was.
    assert swarm.published() == record_before
    assert swarm_status(cluster, published) == other_before
    assert cluster.get("peers", namespace=ns) == []
    assert cluster.get("peers", namespace=swarm.namespace) == []


def test_deleting_the_identity_publishes_a_tombstone_then_removes_its_account(
    cluster: Cluster, swarm: Swarm, published: Published
) -> None:
    ns, name = published.namespace, published.name
    before = swarm_status(cluster, published)
    cluster.delete("identity", name, namespace=ns)
    cluster.wait_for(
        lambda: cluster.get("identity", name, namespace=ns) is None,
        "the Identity is gone (its finalizer ran)",
        timeout=TIMEOUT,
        interval=POLL,
    )
    record = swarm.published()
    assert record is not None
    assert record["owner"] == f"Identity {ns}/{name}"
    assert record["tombstone"] is True
    assert record["sequence"] > before["sequence"]
    tombstone = rpc(swarm.api_url, "cat", record["cid"], authorization=swarm.authorization)
    assert (tombstone["tombstone"], tombstone["publisher"], tombstone["sequence"]) == (
        True,
        swarm.peer_id,
        record["sequence"],
    )
    assert tombstone["kubeconfig"] is None
    for kind, object_name in (
        ("serviceaccount", name),
        ("role", name),
        ("rolebinding", name),
        ("secret", f"{name}-token"),
        ("secret", f"{name}-kubeconfig"),
    ):
        assert cluster.get(kind, object_name, namespace=ns) is None, f"{kind} {object_name} is left"
