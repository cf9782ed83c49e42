# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Peer addresses: multiaddrs that end in ``/p2p/<peer id>``.

Private to the collection: may change without notice.

A structural check of the text form, enough to refuse typos with a message
that names the address and the fault before anything is written to a node
(and in check mode, where nothing is). kubo parses every address fully when it
receives it, and its refusal reaches the user too. We do not depend on the
``multiaddr`` package: its resolver pulls DNS and async dependencies onto
every managed host for what is, here, a table of protocol names.

The legacy ``/ipfs/<id>`` component is read as ``/p2p/<id>`` and written back
in the canonical form, which is how kubo prints addresses, so that comparing a
user's list with the node's never reports a change that is only spelling.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError

BASE58 = "[1-9A-HJ-NP-Za-km-z]"
_BASE58_PEER_ID = rf"Qm{BASE58}{{44}}|12D3KooW{BASE58}{{44}}|16Uiu2{BASE58}{{40,60}}"
PEER_ID_RE = re.compile(rf"^(?:{_BASE58_PEER_ID})$")
"""A peer id as kubo prints it (``ipfs id``, pubsub senders): a base58btc multihash (Qm... RSA, 12D3KooW...
ed25519, 16Uiu2... secp256k1). What the protocol's documents and announcements carry."""
_MULTIADDR_PEER_ID_RE = re.compile(rf"^(?:{_BASE58_PEER_ID}|bafz[a-z2-7]{{50,70}}|k51[0-9a-z]{{50,70}})$")
"""What a multiaddr's /p2p/ component may also hold: a CIDv1 of the libp2p-key codec, base32 (bafz...) or
base36 (k51...)."""
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$"
)

# Protocol name -> kind of value it takes (None: no value).
_PROTOCOLS: dict[str, str | None] = {
    "ip4": "ip4",
    "ip6": "ip6",
    "ip6zone": "text",
    "dns": "host",
    "dns4": "host",
    "dns6": "host",
    "dnsaddr": "host",
    "tcp": "port",
    "udp": "port",
    "sctp": "port",
    "quic": None,
    "quic-v1": None,
    "webtransport": None,
    "certhash": "text",
    "ws": None,
    "wss": None,
    "tls": None,
    "sni": "host",
    "noise": None,
    "http": None,
    "https": None,
    "webrtc": None,
    "webrtc-direct": None,
    "p2p-circuit": None,
    "p2p": "peer",
    "ipfs": "peer",
}


class MultiaddrError(CollectionError):
    """A peer address is malformed; the message names the address and what is wrong."""

    def __init__(self, address: str, problem: str) -> None:
        super().__init__(f"Invalid peer address {address!r}: {problem}", address=address)
        self.address = address
        self.problem = problem


@dataclass(frozen=True, order=True)
class PeerAddress:
    """A transport multiaddr and the peer reached through it."""

    peer_id: str
    transport: str
    """The part before the final ``/p2p/<id>`` (may itself hold a relay's ``/p2p/``)."""

    @property
    def text(self) -> str:
        return f"{self.transport}/p2p/{self.peer_id}"


def is_peer_id(text: str) -> bool:
    return bool(_MULTIADDR_PEER_ID_RE.fullmatch(text))


def parse_peer_address(text: str) -> PeerAddress:
    """Parse ``/<transport...>/p2p/<peer id>``; raise MultiaddrError naming the fault."""
    if not isinstance(text, str) or not text:
        raise MultiaddrError(str(text), "an address must be a non-empty string")
    if not text.startswith("/"):
        raise MultiaddrError(text, "a multiaddr begins with '/'")
    parts = text.rstrip("/").split("/")[1:]
    components: list[tuple[str, str | None]] = []
    index = 0
    while index < len(parts):
        name = parts[index]
        if name not in _PROTOCOLS:
            raise MultiaddrError(text, f"unknown protocol {name!r}")
        kind = _PROTOCOLS[name]
        if kind is None:
            components.append((name, None))
            index += 1
            continue
        if index + 1 >= len(parts) or not parts[index + 1]:
            raise MultiaddrError(text, f"protocol {name!r} needs a value")
        value = parts[index + 1]
        _check_value(text, name, kind, value)
        components.append(("p2p" if name == "ipfs" else name, value))
        index += 2

    if not components or components[-1][0] != "p2p":
        raise MultiaddrError(text, "it must end with /p2p/<peer id> (the peer to reach)")
    peer_id = components[-1][1]
    if peer_id is None:  # the parser always gives /p2p a value; unlike assert, this check survives python -O
        raise MultiaddrError(text, "it must end with /p2p/<peer id> (the peer to reach)")
    transport_components = components[:-1]
    if not transport_components:
        raise MultiaddrError(text, "it has no transport before /p2p/<peer id> (e.g. /ip4/10.0.0.1/tcp/4001)")
    if transport_components[0][0] not in ("ip4", "ip6", "ip6zone", "dns", "dns4", "dns6", "dnsaddr", "p2p"):
        raise MultiaddrError(text, "the transport must start with an address (/ip4, /ip6 or /dns...)")
    transport = "".join(f"/{name}" + (f"/{value}" if value is not None else "") for name, value in transport_components)
    return PeerAddress(peer_id=peer_id, transport=transport)


def _check_value(text: str, name: str, kind: str, value: str) -> None:
    if kind == "ip4":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise MultiaddrError(text, f"{value!r} is not an IPv4 address") from None
    elif kind == "ip6":
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise MultiaddrError(text, f"{value!r} is not an IPv6 address") from None
    elif kind == "port":
        if not value.isdigit() or not 0 <= int(value) <= 65535:
            raise MultiaddrError(text, f"{name} port {value!r} is not a number from 0 to 65535")
    elif kind == "host":
        if not _HOSTNAME_RE.fullmatch(value):
            raise MultiaddrError(text, f"{value!r} is not a DNS name")
    elif kind == "peer" and not is_peer_id(value):
        raise MultiaddrError(text, f"{value!r} is not a libp2p peer id")


def parse_peer_addresses(texts: Iterable[str]) -> list[PeerAddress]:
    """Parse several addresses, dropping exact repeats (order kept)."""
    seen: dict[PeerAddress, None] = {}
    for text in texts:
        seen.setdefault(parse_peer_address(text), None)
    return list(seen)


def canonical(text: str) -> str:
    """The canonical text of an address when it parses (``/ipfs/`` -> ``/p2p/``), else the text itself."""
    try:
        return parse_peer_address(text).text
    except MultiaddrError:
        return text


def group_by_peer(addresses: Iterable[PeerAddress]) -> dict[str, list[str]]:
    """Peer id -> its transports, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for address in addresses:
        transports = grouped.setdefault(address.peer_id, [])
        if address.transport not in transports:
            transports.append(address.transport)
    return grouped
