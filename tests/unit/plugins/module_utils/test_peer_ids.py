"""One definition of a peer id (module_utils/multiaddr.py), used by documents, announcements and multiaddrs alike.

identity.py kept its own PEER_ID_RE, narrower than multiaddr.py's: a member's
document and a multiaddr disagreed on what a peer id is (issue 15). Now the
protocol's peer id is the base58 form kubo prints (``ipfs id``, pubsub
senders), and a multiaddr's ``/p2p/`` may also hold the CIDv1 forms kubo
accepts there.
"""

from __future__ import annotations

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import (
    announcement,
    identity,
    multiaddr,
    swarm_identity,
)

BASE58_IDS = [
    "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq",
    "12D3KooWL6hRKVHYWx6KkXbuGwKehtH4MjzTg1fx6ybGt5WfBJkR",
]
CID_IDS = [
    "bafzaajaiaejcbwd4owgrxolfhdkbofndgiqfb2nyhtcsmqqb3aa3jmesjw5xaglo",
    "k51qzi5uqu5dl96qbq93mwl5drvk5cu5q4pkb33wa5kmqjjclpfuurfh1e7nqm",
]


def test_documents_and_announcements_use_the_one_definition() -> None:
    assert identity.PEER_ID_RE is multiaddr.PEER_ID_RE
    assert announcement.PEER_ID_RE is multiaddr.PEER_ID_RE
    assert swarm_identity.PEER_ID_RE is multiaddr.PEER_ID_RE


@pytest.mark.parametrize("peer_id", BASE58_IDS)
def test_a_base58_peer_id_is_one_everywhere(peer_id: str) -> None:
    assert multiaddr.PEER_ID_RE.fullmatch(peer_id)
    assert multiaddr.is_peer_id(peer_id)
    assert multiaddr.parse_peer_address(f"/ip4/127.0.0.2/tcp/4001/p2p/{peer_id}").peer_id == peer_id


@pytest.mark.parametrize("peer_id", CID_IDS)
def test_a_cid_peer_id_is_one_in_a_multiaddr_only(peer_id: str) -> None:
    assert multiaddr.is_peer_id(peer_id)
    assert multiaddr.parse_peer_address(f"/ip4/127.0.0.2/tcp/4001/p2p/{peer_id}").peer_id == peer_id
    assert not multiaddr.PEER_ID_RE.fullmatch(peer_id)
