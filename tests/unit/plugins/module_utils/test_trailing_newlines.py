"""A value a member or user sends with a trailing newline is refused like any other malformed value.

Python's ``$`` also matches before a final newline, so a pattern anchored with
``^...$`` and applied with ``re.match`` accepted ``<peer id>\\n``. Such a
member address passed validation, was written to the node's ``Peering.Peers``,
and kubo then refused the whole config update: one member's announcement
stopped every other member's identity reconcile (seen on the test bed, HTTP
500 "failed to parse peer ID"). A kubeconfig token ending in a newline would
be a header injection.
"""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    Announce,
    MessageError,
    decode,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import (
    MultiaddrError,
    is_peer_id,
    parse_peer_address,
)

from tests.kubeconfigs import kubeconfig_dict

PEER_ID = "12D3KooWL6hRKVHYWx6KkXbuGwKehtH4MjzTg1fx6ybGt5WfBJkR"
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def test_a_peer_id_or_address_ending_in_a_newline_is_refused() -> None:
    assert is_peer_id(PEER_ID)
    assert not is_peer_id(PEER_ID + "\n")
    with pytest.raises(MultiaddrError):
        parse_peer_address(f"/ip4/127.0.0.4/tcp/4001/p2p/{PEER_ID}\n")
    with pytest.raises(MultiaddrError):
        parse_peer_address(f"/dns4/member.example\n/tcp/4001/p2p/{PEER_ID}")


@pytest.mark.parametrize(("publisher", "cid"), [(PEER_ID + "\n", CID), (PEER_ID, CID + "\n")])
def test_an_announcement_with_a_trailing_newline_is_refused(publisher: str, cid: str) -> None:
    assert decode(Announce(PEER_ID, CID, 1).encode()) == Announce(PEER_ID, CID, 1)
    with pytest.raises(MessageError):
        decode(Announce(publisher, cid, 1).encode())


def test_a_document_whose_publisher_ends_in_a_newline_is_refused() -> None:
    good = IdentityDocument(publisher=PEER_ID, sequence=1, issued_at="2026-11-30T00:00:00Z", name="m")
    assert IdentityDocument.decode(good.encode()).publisher == PEER_ID
    for bad in (
        IdentityDocument(publisher=PEER_ID + "\n", sequence=1, issued_at="2026-11-30T00:00:00Z", name="m"),
        IdentityDocument(publisher=PEER_ID, sequence=1, issued_at="2026-11-30T00:00:00Z\n", name="m"),
    ):
        with pytest.raises(ValueError):
            IdentityDocument.decode(bad.encode())


@pytest.mark.parametrize("field", ["token", "namespace"])
def test_a_kubeconfig_whose_token_or_namespace_ends_in_a_newline_is_refused(field: str) -> None:
    config = kubeconfig_dict("member", token="t0ken", namespace="shared")
    parse_kubeconfig(yaml.safe_dump(config))
    if field == "token":
        config["users"][0]["user"]["token"] = "t0ken\n"
    else:
        config["contexts"][0]["context"]["namespace"] = "shared\n"
    with pytest.raises(KubeconfigError):
        parse_kubeconfig(yaml.safe_dump(config))
