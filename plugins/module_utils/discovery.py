# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Turn what was heard on a discovery topic into validated identities.

Private to the collection: may change without notice.

Pure logic: the caller supplies the messages received (sender peer id as
pubsub reports it, and payload) and a ``fetch(cid)`` function, so every rule
is unit-tested without a node. The rules, in order:

- an announcement counts only if its pubsub sender is the publisher it names
  (libp2p signs pubsub messages, so the sender cannot be forged; a member
  claiming another peer's id is dropped);
- per publisher the highest sequence wins; candidates are tried from the
  highest down, so junk announced under a higher number cannot hide a valid
  document, yet is reported;
- the fetched document must decode strictly, name the same publisher and
  sequence as its announcement, and its kubeconfig must open with the swarm
  key;
- its kubeconfig must be of the one accepted shape (member_kubeconfig), and
  is kept only in that shape's canonical text;
- of its addresses only multiaddrs that reach the publisher itself
  (``.../p2p/<publisher>``) are kept: a member speaks for itself only, and a
  bad address costs that address, not the document;
- a tombstone removes the publisher.
Every rule after the fetch depends only on the fetched bytes, which the CID
names, the announcement and the swarm key: a caller that runs rounds over and
over (the agent, a pass per batch of news) keeps their conclusions in
``Resolutions`` and checks each document once, not once per round.
Nothing here raises on bad input from the swarm: every refusal, whatever
raised it, is returned as a Rejection so one misbehaving member changes
nothing for the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    Announce,
    MessageError,
    decode,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.byte_budget import ByteBudget
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    DocumentError,
    IdentityDocument,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import (
    MultiaddrError,
    parse_peer_address,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import SealError, open_sealed

MAX_CANDIDATES_PER_PUBLISHER = 3


@dataclass(frozen=True)
class Received:
    """One pubsub message as the node delivered it."""

    sender: str
    data: bytes


@dataclass(frozen=True)
class Rejection:
    sender: str
    reason: str


@dataclass(frozen=True)
class Discovered:
    """A member's latest valid identity, with its kubeconfig opened."""

    cid: str
    document: IdentityDocument
    kubeconfig: str | None


@dataclass
class Discovery:
    identities: dict[str, Discovered] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    heard: set[str] = field(default_factory=set)
    """Every peer that sent a well-formed announcement under its own id, valid or not."""
    heard_at: dict[str, float] = field(default_factory=dict)
    """When each member was last heard (this node's clock, seconds since the epoch), where it is known."""


ResolutionKey = tuple[str, str, int, bytes]
"""An announcement's CID, publisher and sequence, and the swarm key's digest: what a conclusion depends on."""


class Resolutions(ByteBudget[ResolutionKey, "Discovered | Rejection"]):
    """What discovery concluded about announced documents, the most recently used first, within a byte budget.

    Only conclusions are kept, accepted or refused; a fetch that failed is not
    one (the member may be reachable next round), so it is tried again. Without
    this a member's update cost the agent a check of every member's document
    (about 100 ms of CPU at 50 members, issue 20). The budget counts each
    document's fetched bytes, which bound what is kept of it: members that
    publish many large documents push out the oldest conclusions, which are
    then checked again, and never grow the agent past it.
    """

    def __init__(self, max_bytes: int = 4 * 1024 * 1024) -> None:
        super().__init__(max_bytes)


def resolution_key(announce: Announce, swarm_key: bytes) -> ResolutionKey:
    return (announce.cid, announce.publisher, announce.sequence, hashlib.sha256(swarm_key).digest())


def latest_announcements(
    messages: Iterable[Received], *, own_peer_id: str, rejected: list[Rejection]
) -> dict[str, list[Announce]]:
    """Announcements per publisher, highest sequence first, after the sender check."""
    by_publisher: dict[str, dict[int, Announce]] = {}
    for message in messages:
        try:
            parsed = decode(message.data)
        except MessageError as err:
            rejected.append(Rejection(message.sender, str(err)))
            continue
        if not isinstance(parsed, Announce) or message.sender == own_peer_id:
            continue
        if parsed.publisher != message.sender:
            rejected.append(
                Rejection(message.sender, f"announced a document for another peer ({parsed.publisher}); dropped")
            )
            continue
        by_publisher.setdefault(parsed.publisher, {})[parsed.sequence] = parsed
    return {
        publisher: [announces[seq] for seq in sorted(announces, reverse=True)]
        for publisher, announces in by_publisher.items()
    }


def discover(
    messages: Iterable[Received],
    *,
    own_peer_id: str,
    swarm_key: bytes,
    fetch: Callable[[str], bytes],
    resolutions: Resolutions | None = None,
) -> Discovery:
    """Apply the rules of this module to ``messages``; ``fetch`` may raise any Exception.

    With ``resolutions``, a document concluded on before is not fetched or checked again.
    """
    result = Discovery()
    for publisher, candidates in latest_announcements(
        messages, own_peer_id=own_peer_id, rejected=result.rejected
    ).items():
        result.heard.add(publisher)
        for announce in candidates[:MAX_CANDIDATES_PER_PUBLISHER]:
            outcome = _resolve(announce, swarm_key=swarm_key, fetch=fetch, resolutions=resolutions)
            if isinstance(outcome, Rejection):
                result.rejected.append(outcome)
                continue
            if outcome.document.tombstone:
                result.removed[publisher] = outcome.document.sequence
            else:
                result.identities[publisher] = outcome
            break
    return result


def own_addresses(publisher: str, addresses: Iterable[str]) -> tuple[str, ...]:
    """The addresses that reach ``publisher`` itself, canonical; every other one is dropped."""
    kept: list[str] = []
    for text in addresses:
        try:
            address = parse_peer_address(text)
        except MultiaddrError:
            continue
        if address.peer_id == publisher and address.text not in kept:
            kept.append(address.text)
    return tuple(kept)


def _resolve(
    announce: Announce, *, swarm_key: bytes, fetch: Callable[[str], bytes], resolutions: Resolutions | None
) -> Discovered | Rejection:
    key = resolution_key(announce, swarm_key)
    known = resolutions.get(key) if resolutions is not None else None
    if known is not None:
        return known
    try:
        raw = fetch(announce.cid)
    except Exception as err:  # a member's unreachable or oversized document must not stop discovery
        # Not a conclusion on the document: it is fetched again next round.
        return Rejection(announce.publisher, f"document {announce.cid} could not be fetched: {err}")
    try:
        outcome = _check(announce, raw, swarm_key=swarm_key)
    except Exception as err:  # a fault on one member's input refuses that input only
        outcome = Rejection(announce.publisher, f"document {announce.cid} refused: {type(err).__name__}")
    if resolutions is not None:
        resolutions.put(key, outcome, size=len(raw))
    return outcome


def _check(announce: Announce, raw: bytes, *, swarm_key: bytes) -> Discovered | Rejection:
    try:
        document = IdentityDocument.decode(raw)
    except DocumentError as err:
        return Rejection(announce.publisher, f"document {announce.cid} refused: {err}")
    if document.publisher != announce.publisher or document.sequence != announce.sequence:
        return Rejection(
            announce.publisher, f"document {announce.cid} does not match its announcement (publisher or sequence)"
        )
    kubeconfig = None
    if document.kubeconfig is not None:
        try:
            kubeconfig = open_sealed(
                swarm_key, document.kubeconfig, publisher=document.publisher, sequence=document.sequence
            ).decode("utf-8")
        except (SealError, UnicodeDecodeError) as err:
            return Rejection(announce.publisher, f"document {announce.cid} refused: {err}")
        try:
            kubeconfig = parse_kubeconfig(kubeconfig).to_text()
        except KubeconfigError as err:
            return Rejection(announce.publisher, f"document {announce.cid} refused: kubeconfig: {err}")
    document = replace(document, addresses=own_addresses(document.publisher, document.addresses))
    return Discovered(cid=announce.cid, document=document, kubeconfig=kubeconfig)
