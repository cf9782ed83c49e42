"""The product's conventions (module_utils.conventions): what the roles, the modules and the agent must agree on.

The roles reach them through filters, the modules and the agent import them, so each rule is tested once, here,
and through the filter the role calls.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.filter.identity import (
    FilterModule as IdentityFilters,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.filter.swarmpool import (
    FilterModule as SwarmPoolFilters,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    STATUS_API,
    STATUS_BOOTSTRAPS,
    STATUS_CONNECTED,
    STATUS_PEER_ID,
    draft_document,
    node_address,
    node_ready,
    published_fields,
    swarm_status,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import served_swarm

PEER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
SPEC = {
    "name": "Cluster 1",
    "description": "the first",
    "URL": "https://192.0.2.1:6443",
    "categories": [{"name": "computing"}, {"name": "storage"}],
    "swarms": [{"namespace": "ns", "swarmPool": "pool", "swarm": "private"}],
}


def test_the_role_and_the_agent_publish_the_same_fields_of_a_spec() -> None:
    fields = published_fields(SPEC)
    assert fields == {
        "name": "Cluster 1",
        "description": "the first",
        "url": "https://192.0.2.1:6443",
        "categories": ["computing", "storage"],
    }
    assert IdentityFilters().filters()["identity_published"](SPEC) == fields


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"name": "x"}, {"name": "x", "description": "", "url": "", "categories": []}, id="only-a-name"),
        pytest.param({}, {"name": "", "description": "", "url": "", "categories": []}, id="empty"),
        pytest.param(
            {"name": "x", "categories": [{"name": "a"}, "not-an-object"]},
            {"name": "x", "description": "", "url": "", "categories": ["a"]},
            id="a-category-that-is-no-object",
        ),
    ],
)
def test_fields_a_spec_leaves_out_are_empty_in_the_document(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert published_fields(spec) == expected
    assert IdentityFilters().filters()["identity_published"](spec or None) == expected


def test_the_draft_document_is_what_the_module_and_the_agent_hand_to_swarm_identity() -> None:
    document = draft_document(
        published_fields(SPEC), publisher=PEER, addresses=["/ip4/192.0.2.10/tcp/4001"], kubernetes_version="v1.37.2"
    )
    assert document == IdentityDocument(
        publisher=PEER,
        sequence=0,
        issued_at="",
        name="Cluster 1",
        description="the first",
        url="https://192.0.2.1:6443",
        categories=("computing", "storage"),
        addresses=("/ip4/192.0.2.10/tcp/4001",),
        kubernetes_version="v1.37.2",
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.10", f"/ip4/192.0.2.10/tcp/4001/p2p/{PEER}"),
        ("2001:db8::1", f"/ip6/2001:db8::1/tcp/4001/p2p/{PEER}"),
        ("swarm.example.org", f"/dns/swarm.example.org/tcp/4001/p2p/{PEER}"),
    ],
)
def test_a_nodes_address_names_its_protocol_from_its_host(host: str, expected: str) -> None:
    assert node_address(host, 4001, PEER) == expected


def test_a_serving_nodes_status_entry_has_the_originals_fields_and_is_read_back_as_ready() -> None:
    entry = SwarmPoolFilters().filters()["swarm_status"](
        "private",
        api_url="http://10.0.0.5:5001",
        peer_id=PEER,
        external_host="192.0.2.10",
        external_port="4001",
        counters={STATUS_BOOTSTRAPS: 1, STATUS_CONNECTED: 2},
    )
    assert entry == {
        "Name": "private",
        "API": "http://10.0.0.5:5001",
        "Peer Id": PEER,
        "Addresses": [f"/ip4/192.0.2.10/tcp/4001/p2p/{PEER}"],
        "Number of bootstraps": 1,
        "Number of connected peers": 2,
    }
    assert node_ready(entry)
    pool = {
        "metadata": {"name": "pool", "namespace": "ns"},
        "spec": {"swarms": [{"name": "private", "swarmDefinition": {}}]},
        "status": {"status": {"private": entry}},
    }
    assert served_swarm(pool, "private").ready


def test_a_node_without_an_external_address_is_ready_but_says_why_members_cannot_reach_it() -> None:
    entry = swarm_status("private", api_url="http://10.0.0.5:5001", peer_id=PEER, error="no external address yet")
    assert entry["Addresses"] == [] and entry["Error"] == "no external address yet"
    assert node_ready(entry)


def test_a_node_that_does_not_serve_reports_nothing_but_why() -> None:
    entry = swarm_status("private", error="node pool-private-ss-0 is not ready after 300 s")
    assert entry == {
        "Name": "private",
        "Addresses": [],
        "Peer Id": "",
        "Number of bootstraps": 0,
        "Number of connected peers": 0,
        "Error": "node pool-private-ss-0 is not ready after 300 s",
    }
    assert not node_ready(entry)
    assert not node_ready({STATUS_API: "http://10.0.0.5:5001", STATUS_PEER_ID: ""})


# -- what kubectl get prints: one string, because a printer column shows only its JSONPath's first match -----------


def test_the_connected_peers_column_names_every_swarm_of_a_swarmpool_in_name_order() -> None:
    def serving(swarm: str, connected: int) -> dict[str, Any]:
        return swarm_status(swarm, api_url="http://10.0.0.6:5001", peer_id=PEER, counters={STATUS_CONNECTED: connected})

    entries = {
        "swarm-b": serving("swarm-b", 3),
        "swarm-a": serving("swarm-a", 2),
        "swarm-c": swarm_status("swarm-c", error="node pool-swarm-c-ss-0 is not ready after 300 s"),
    }
    assert SwarmPoolFilters().filters()["swarmpool_connected_peers"](entries) == "swarm-a=2,swarm-b=3,swarm-c=0"
    assert SwarmPoolFilters().filters()["swarmpool_connected_peers"]({}) == ""


def test_the_peers_column_of_an_identity_names_only_the_swarms_it_is_published_on() -> None:
    report = [
        {"namespace": "ns", "swarmPool": "pool", "swarm": "swarm-b", "published": True, "peers": 1},
        {"namespace": "ns", "swarmPool": "pool", "swarm": "swarm-a", "published": True, "peers": 4},
        {"namespace": "ns", "swarmPool": "pool", "swarm": "swarm-c", "published": False, "error": "no node"},
    ]
    assert IdentityFilters().filters()["identity_peer_counts"](report) == "swarm-a=4,swarm-b=1"
    assert IdentityFilters().filters()["identity_peer_counts"]([]) == ""
