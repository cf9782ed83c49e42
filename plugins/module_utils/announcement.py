# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Messages on a swarm's discovery topic: announcements of identity documents, and asks.

Private to the collection: may change without notice.

Pubsub carries only pointers. An ``announce`` names the CID and sequence of the
publisher's latest identity document (fetched with ``cat``); an ``ask`` requests
every member to announce again, which is how a member that just joined, or
that lost its view, learns every live identity at once. Pubsub delivers only to
current subscribers, so members re-announce on a schedule as well.

The topic is derived from the swarm key: only members can compute it, and two
private swarms never share one even if their nodes were ever bridged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeAlias

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import bounded_json
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import CID_RE, MAX_SEQUENCE
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import PEER_ID_RE
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import derive_key

PROTOCOL = "cluster-discovery/v1"
MAX_MESSAGE_BYTES = 1024


class MessageError(ValueError):
    """A pubsub message is not one of ours or breaks the protocol."""


def topic_for(swarm_key: bytes) -> str:
    """The discovery topic of the swarm whose 32-byte key is ``swarm_key``."""
    return f"{PROTOCOL}/identities/{derive_key(swarm_key, 'pubsub-topic')[:16].hex()}"


@dataclass(frozen=True)
class Announce:
    publisher: str
    cid: str
    sequence: int

    def encode(self) -> bytes:
        return _encode({"type": "announce", "publisher": self.publisher, "cid": self.cid, "sequence": self.sequence})


@dataclass(frozen=True)
class Ask:
    def encode(self) -> bytes:
        return _encode({"type": "ask"})


Message: TypeAlias = "Announce | Ask"


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps({"protocol": PROTOCOL, **body}, sort_keys=True, separators=(",", ":")).encode()


def decode(raw: bytes) -> Message:
    """Parse an untrusted message; raise MessageError naming what is wrong."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        value = bounded_json.loads(raw, max_depth=1)
    except bounded_json.DepthError as err:
        raise MessageError(f"message refused: {err}") from None
    except ValueError as err:
        raise MessageError("message is not UTF-8 JSON") from err
    if not isinstance(value, dict) or value.get("protocol") != PROTOCOL:
        raise MessageError("message is not of the cluster-discovery protocol")
    kind = value.get("type")
    if kind == "ask" and set(value) == {"protocol", "type"}:
        return Ask()
    if kind == "announce" and set(value) == {"protocol", "type", "publisher", "cid", "sequence"}:
        publisher, cid, sequence = value["publisher"], value["cid"], value["sequence"]
        if not isinstance(publisher, str) or not PEER_ID_RE.fullmatch(publisher):
            raise MessageError("announce: publisher is not a peer id")
        if not isinstance(cid, str) or not CID_RE.fullmatch(cid):
            raise MessageError("announce: cid is not a CID")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or not 0 <= sequence <= MAX_SEQUENCE:
            raise MessageError("announce: sequence is not a valid sequence number")
        return Announce(publisher=publisher, cid=cid, sequence=sequence)
    raise MessageError(f"unknown or malformed message type {str(kind)[:20]!r}")
