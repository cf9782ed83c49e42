"""Where a swarm of a SwarmPool is served (swarm_access.served_swarm): one rule for the identity role and the agent."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.filter.boundaries import FilterModule
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    identity_owner,
    swarm_key_secret,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import (
    served_swarm,
)

PEER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"


def pool(*, node: dict[str, Any] | None = None, reference: str = "") -> dict[str, Any]:
    swarm: dict[str, Any] = {"name": "private", "swarmDefinition": {"bootstrapNodeAddresses": []}}
    if reference:
        swarm["swarmDefinition"]["swarmKeySecretRef"] = reference
    return {
        "metadata": {"name": "cluster1", "namespace": "ns"},
        "spec": {"swarms": [swarm]},
        "status": {"status": {"private": node}} if node is not None else {},
    }


def test_a_node_is_ready_once_it_reported_its_api_and_its_peer_id() -> None:
    assert served_swarm(pool(node={"API": "http://10.0.0.5:5001", "Peer Id": PEER}), "private").ready
    # The agent used to take a node with an API but no peer id yet as ready; the role did not.
    assert not served_swarm(pool(node={"API": "http://10.0.0.5:5001", "Peer Id": ""}), "private").ready
    assert not served_swarm(pool(node={"Peer Id": PEER}), "private").ready
    assert not served_swarm(pool(), "private").ready
    assert not served_swarm(pool(node={"API": "http://x", "Peer Id": PEER}), "other").ready
    assert not served_swarm({}, "private").ready


def test_the_key_secret_is_the_reference_or_the_generated_name() -> None:
    assert served_swarm(pool(), "private").key_secret == "cluster1-private-swarm-key"
    assert served_swarm(pool(reference="my-key"), "private").key_secret == "my-key"
    assert (
        swarm_key_secret("cluster1", "private")
        == swarm_key_secret("cluster1", "private", "")
        == ("cluster1-private-swarm-key")
    )


@pytest.mark.parametrize("status", [{"status": {"private": "garbage"}}, {"status": None}, None])
def test_a_status_of_another_shape_serves_nothing(status: Any) -> None:
    obj = pool()
    obj["status"] = status
    served = served_swarm(obj, "private")
    assert (served.ready, dict(served.status)) == (False, {})


def test_the_filters_say_the_same() -> None:
    filters = FilterModule().filters()
    served = filters["swarm_served"](pool(node={"API": "http://10.0.0.5:5001", "Peer Id": PEER}), "private")
    assert served["ready"] is True and served["key_secret"] == "cluster1-private-swarm-key"
    assert served["status"]["API"] == "http://10.0.0.5:5001" and served["spec"]["name"] == "private"
    assert filters["swarm_served"]({}, "private")["ready"] is False
    assert filters["identity_owner"]("ns", "cluster1-identity") == identity_owner("ns", "cluster1-identity")
    assert identity_owner("ns", "cluster1-identity") == "Identity ns/cluster1-identity"
