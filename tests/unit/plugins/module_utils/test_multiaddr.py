"""Peer addresses: the structural check of multiaddrs ending in /p2p/<peer id>.

Covers plugins/module_utils/multiaddr.py: accepted forms (IPv4, IPv6, DNS,
QUIC, relays, the legacy /ipfs/ spelling), each refusal with the address and
fault in its message, canonical forms and grouping by peer. No network.
"""

from __future__ import annotations

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import (
    MultiaddrError,
    PeerAddress,
    canonical,
    group_by_peer,
    parse_peer_address,
    parse_peer_addresses,
)

ED25519 = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
RSA = "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq"


@pytest.mark.parametrize(
    ("text", "peer", "transport"),
    [
        pytest.param(f"/ip4/104.155.27.210/tcp/4001/p2p/{RSA}", RSA, "/ip4/104.155.27.210/tcp/4001", id="ip4-tcp-rsa"),
        pytest.param(f"/ip6/::1/tcp/4001/p2p/{ED25519}", ED25519, "/ip6/::1/tcp/4001", id="ip6-tcp-ed25519"),
        pytest.param(
            f"/dns4/node.example.org/tcp/4001/p2p/{ED25519}", ED25519, "/dns4/node.example.org/tcp/4001", id="dns4"
        ),
        pytest.param(
            f"/ip4/10.0.0.1/udp/4001/quic-v1/p2p/{ED25519}", ED25519, "/ip4/10.0.0.1/udp/4001/quic-v1", id="quic-v1"
        ),
        pytest.param(f"/ip4/10.0.0.1/tcp/4001/ipfs/{RSA}", RSA, "/ip4/10.0.0.1/tcp/4001", id="legacy-ipfs-spelling"),
        pytest.param(
            f"/ip4/10.0.0.1/tcp/4001/p2p/{RSA}/p2p-circuit/p2p/{ED25519}",
            ED25519,
            f"/ip4/10.0.0.1/tcp/4001/p2p/{RSA}/p2p-circuit",
            id="through-a-relay",
        ),
        pytest.param(f"/ip4/10.0.0.1/tcp/4001/p2p/{RSA}/", RSA, "/ip4/10.0.0.1/tcp/4001", id="trailing-slash"),
    ],
)
def test_valid_peer_addresses_split_into_transport_and_peer(text: str, peer: str, transport: str) -> None:
    address = parse_peer_address(text)
    assert (address.peer_id, address.transport) == (peer, transport)
    assert address.text == f"{transport}/p2p/{peer}"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        pytest.param("", "non-empty", id="empty"),
        pytest.param(f"ip4/10.0.0.1/tcp/4001/p2p/{RSA}", "begins with '/'", id="no-leading-slash"),
        pytest.param("/ip4/10.0.0.1/tcp/4001", "must end with /p2p/<peer id>", id="missing-p2p"),
        pytest.param(f"/p2p/{RSA}", "no transport", id="peer-only"),
        pytest.param(f"/ip4/10.0.0.300/tcp/4001/p2p/{RSA}", "not an IPv4 address", id="bad-ipv4"),
        pytest.param(f"/ip6/12345::/tcp/4001/p2p/{RSA}", "not an IPv6 address", id="bad-ipv6"),
        pytest.param(f"/ip4/10.0.0.1/tcp/70000/p2p/{RSA}", "0 to 65535", id="port-out-of-range"),
        pytest.param(f"/ip4/10.0.0.1/tcp/http/p2p/{RSA}", "0 to 65535", id="port-not-a-number"),
        pytest.param(f"/ip4/10.0.0.1/tcp/4001/p2p/{RSA[:-3]}", "not a libp2p peer id", id="truncated-peer-id"),
        pytest.param("/ip4/10.0.0.1/tcp/4001/p2p/QmO0Il" + "a" * 40, "not a libp2p peer id", id="non-base58-peer-id"),
        pytest.param(f"/ip4/10.0.0.1/tcp/4001/p2p/{RSA}/ws", "must end with /p2p/<peer id>", id="p2p-not-last"),
        pytest.param(f"/ip4/10.0.0.1/tcpx/4001/p2p/{RSA}", "unknown protocol 'tcpx'", id="unknown-protocol"),
        pytest.param(f"/ip4//tcp/4001/p2p/{RSA}", "needs a value", id="missing-value"),
        pytest.param(f"/tcp/4001/p2p/{RSA}", "must start with an address", id="transport-without-address"),
        pytest.param(f"/dns4/bad_host!/tcp/4001/p2p/{RSA}", "not a DNS name", id="bad-hostname"),
    ],
)
def test_malformed_addresses_are_refused_with_the_address_and_the_fault(text: str, fault: str) -> None:
    with pytest.raises(MultiaddrError) as caught:
        parse_peer_address(text)
    assert fault in caught.value.msg
    assert repr(text) in caught.value.msg
    assert caught.value.fields == {"address": text}


def test_canonical_rewrites_ipfs_as_p2p_and_leaves_what_does_not_parse() -> None:
    assert canonical(f"/ip4/10.0.0.1/tcp/4001/ipfs/{RSA}") == f"/ip4/10.0.0.1/tcp/4001/p2p/{RSA}"
    assert canonical("auto") == "auto"


def test_repeated_addresses_are_dropped_in_order() -> None:
    addresses = parse_peer_addresses(
        [f"/ip4/10.0.0.2/tcp/1/p2p/{RSA}", f"/ip4/10.0.0.1/tcp/1/p2p/{RSA}", f"/ip4/10.0.0.2/tcp/1/ipfs/{RSA}"]
    )
    assert [a.transport for a in addresses] == ["/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.1/tcp/1"]


def test_addresses_group_by_peer_in_first_seen_order() -> None:
    grouped = group_by_peer(
        [
            PeerAddress(RSA, "/ip4/10.0.0.1/tcp/1"),
            PeerAddress(ED25519, "/ip4/10.0.0.3/tcp/1"),
            PeerAddress(RSA, "/ip4/10.0.0.2/tcp/1"),
            PeerAddress(RSA, "/ip4/10.0.0.1/tcp/1"),
        ]
    )
    assert grouped == {RSA: ["/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1"], ED25519: ["/ip4/10.0.0.3/tcp/1"]}
