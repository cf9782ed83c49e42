"""The peer role under the operator: when a Peer is checked again (issue 20).

Every Peer's check is an ansible run per reconcilePeriod, the operator's steady
cost that grows with the swarm. A Peer whose member published no kubeconfig has
nothing to check, so it is checked again only every
``peer_recheck_without_kubeconfig``; the kubeconfig its member publishes later
changes the Peer (peer_sync's kubeconfig-sha256 annotation), and is checked at
once.

Real: a whole test-bed cluster (control plane, operator with the product's
watches.yaml, agent); the Peer and its Secret are built by peer_sync's own
functions, as the identity role and the agent write them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    Scope,
    desired_peer,
    kubeconfig_secret,
)

from testbed.federation import Cluster, namespace
from tests.integration.roles.support import POLL, TIMEOUT, conditions
from tests.kubeconfigs import kubeconfig_text

pytestmark = pytest.mark.integration

NS = "peer-role"
MEMBER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
SCOPE = Scope("home", NS, None, NS, "pool", "main")


def member(**fields: Any) -> dict[str, Any]:
    return {"peer_id": MEMBER, "name": "Light", "description": "", "url": "", "categories": [], **fields}


def reachable(cluster: Cluster, reason: str) -> dict[str, Any] | None:
    condition = conditions(cluster.get("peer", MEMBER.lower(), namespace=NS)).get("Reachable")
    return condition if condition and condition.get("reason") == reason else None


def requeues_of(cluster: Cluster) -> list[float | None]:
    """The requeue_after of each of the Peer's successful reconciles, from the operator's log."""
    assert cluster.operator is not None
    found = []
    for line in cluster.operator.log_path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("msg") == "reconciled" and event.get("kind") == "Peer" and event.get("name") == MEMBER.lower():
            found.append(event.get("requeue_after"))
    return found


def test_a_peer_without_a_kubeconfig_is_rechecked_hourly_and_its_first_kubeconfig_at_once(cluster: Cluster) -> None:
    cluster.apply([namespace(NS)])
    peer = desired_peer(SCOPE, member())
    cluster.apply([peer])
    cluster.wait_for(lambda: reachable(cluster, "NoKubeconfig"), "the Peer checked", timeout=TIMEOUT, interval=POLL)
    requeues = cluster.wait_for(lambda: requeues_of(cluster), "the Peer's reconcile logged", timeout=60)
    assert requeues == [3600.0], "a Peer without a kubeconfig is checked again in an hour, not every 5 minutes"

    # Its member publishes a kubeconfig: the Secret, then the Peer with the kubeconfig's digest, as peer_sync writes.
    kubeconfig = kubeconfig_text("light", server="https://127.0.0.1:9")
    uid = cluster.get("peer", MEMBER.lower(), namespace=NS)["metadata"]["uid"]
    cluster.apply([kubeconfig_secret(SCOPE, MEMBER.lower(), kubeconfig, uid)])
    cluster.apply([desired_peer(SCOPE, member(), kubeconfig=kubeconfig)])
    checked = cluster.wait_for(
        lambda: reachable(cluster, "APIServerUnreachable"), "the new kubeconfig checked", timeout=120, interval=POLL
    )
    assert "did not answer" in checked["message"]
    # The role writes the condition during its run; the runner logs the run's requeue once it has finished.
    requeues = cluster.wait_for(lambda: requeues_of(cluster)[1:], "the second reconcile logged", timeout=60)
    assert requeues == [300.0], "a Peer with a kubeconfig is checked every reconcilePeriod"
