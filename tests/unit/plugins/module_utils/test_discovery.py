"""Discovery rules: topic derivation, message parsing, sender checks, latest-sequence-wins, tombstones, rejections.

Covers plugins/module_utils/announcement.py and discovery.py with an in-memory
document store standing in for `cat`; the same rules run against real kubo
nodes in the ipfs_identity integration tests.
"""

from __future__ import annotations

import hashlib
from unittest import mock

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import discovery
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    MAX_MESSAGE_BYTES,
    Announce,
    Ask,
    MessageError,
    decode,
    topic_for,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.discovery import (
    Received,
    Resolutions,
    discover,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import seal
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    DocumentCache,
    Heard,
    RateLimit,
    round_input,
)

from tests.kubeconfigs import kubeconfig_text

ME = "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq"
B = "QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz"
C = "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"
KEY = bytes(range(32))


class Store:
    """Content-addressed bytes, as `add`/`cat` would keep them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, raw: bytes) -> str:
        cid = "b" + hashlib.sha256(raw).hexdigest()[:58].translate(str.maketrans("0189", "abcd"))
        self.blobs[cid] = raw
        return cid

    def cat(self, cid: str) -> bytes:
        return self.blobs[cid]


def kubeconfig_of(publisher: str) -> str:
    return kubeconfig_text(publisher[-6:].lower(), token=f"token-of-{publisher}")


def publish(
    store: Store, publisher: str, sequence: int, *, key: bytes = KEY, kubeconfig: str | None = None, **fields: object
) -> Received:
    text = kubeconfig if kubeconfig is not None else kubeconfig_of(publisher)
    document = IdentityDocument(
        publisher=publisher,
        sequence=sequence,
        issued_at="2026-11-29T01:00:00Z",
        name=str(fields.pop("name", f"cluster {publisher[-4:]}")),
        kubeconfig=seal(key, text.encode(), publisher=publisher, sequence=sequence),
        **fields,  # type: ignore[arg-type]
    )
    cid = store.add(document.encode())
    return Received(sender=publisher, data=Announce(publisher=publisher, cid=cid, sequence=sequence).encode())


def test_the_topic_depends_on_the_swarm_key_only() -> None:
    assert topic_for(KEY) == topic_for(bytes(KEY))
    assert topic_for(KEY) != topic_for(bytes(32))
    assert topic_for(KEY).startswith("cluster-discovery/v1/identities/")


def test_messages_round_trip_and_garbage_is_refused() -> None:
    announce = Announce(publisher=B, cid="bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", sequence=3)
    assert decode(announce.encode()) == announce
    assert decode(Ask().encode()) == Ask()
    for raw in [
        b"",
        b"x" * (MAX_MESSAGE_BYTES + 1),
        b'{"protocol":"other"}',
        b'{"protocol":"cluster-discovery/v1","type":"announce"}',
    ]:
        with pytest.raises(MessageError):
            decode(raw)


def test_each_member_is_discovered_with_its_opened_kubeconfig_and_not_myself() -> None:
    store = Store()
    messages = [publish(store, B, 10), publish(store, C, 20), publish(store, ME, 30), Received(B, Ask().encode())]
    result = discover(messages, own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert sorted(result.identities) == sorted([B, C])
    assert result.identities[B].kubeconfig == kubeconfig_of(B)
    assert result.rejected == []


def test_the_latest_sequence_wins_whatever_the_arrival_order() -> None:
    store = Store()
    newer, older = publish(store, B, 11, description="new"), publish(store, B, 10, description="old")
    result = discover([newer, older], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities[B].document.description == "new"


def test_a_tombstone_with_a_higher_sequence_removes_the_member() -> None:
    store = Store()
    live = publish(store, B, 10)
    tombstone = IdentityDocument(publisher=B, sequence=11, issued_at="2026-11-29T01:00:00Z", tombstone=True)
    cid = store.add(tombstone.encode())
    gone = Received(B, Announce(publisher=B, cid=cid, sequence=11).encode())
    result = discover([live, gone], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities == {}
    assert result.removed == {B: 11}


def test_a_member_announcing_for_another_peer_is_dropped_and_changes_nothing() -> None:
    store = Store()
    genuine = publish(store, B, 10, description="genuine")
    forged_doc = publish(store, B, 99, description="forged")
    forged = Received(sender=C, data=forged_doc.data)
    result = discover([genuine, forged], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities[B].document.description == "genuine"
    assert C not in result.identities
    assert [r.sender for r in result.rejected] == [C]
    assert "another peer" in result.rejected[0].reason


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param(b"not json", id="malformed"),
        pytest.param(b"{" + b" " * 70_000 + b"}", id="oversized"),
    ],
)
def test_junk_under_a_higher_sequence_cannot_hide_the_valid_document(junk: bytes) -> None:
    store = Store()
    valid = publish(store, B, 10)
    cid = store.add(junk)
    junk_announce = Received(B, Announce(publisher=B, cid=cid, sequence=50).encode())
    result = discover([valid, junk_announce], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities[B].document.sequence == 10
    assert len(result.rejected) == 1 and result.rejected[0].sender == B


def test_a_document_sealed_with_another_swarm_key_is_refused() -> None:
    store = Store()
    foreign = publish(store, B, 10, key=bytes(32))
    result = discover([foreign], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities == {}
    assert "does not open" in result.rejected[0].reason


def test_a_document_that_contradicts_its_announcement_is_refused() -> None:
    store = Store()
    real = publish(store, B, 10)
    cid = decode(real.data).cid  # type: ignore[union-attr]
    lying = Received(B, Announce(publisher=B, cid=cid, sequence=12).encode())
    result = discover([lying], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities == {}
    assert "does not match" in result.rejected[0].reason


def test_an_unreachable_document_is_reported_not_raised() -> None:
    store = Store()
    announce = publish(store, B, 10)
    store.blobs.clear()
    result = discover([announce], own_peer_id=ME, swarm_key=KEY, fetch=store.cat)
    assert result.identities == {}
    assert "could not be fetched" in result.rejected[0].reason


def test_asks_are_answered_at_a_bounded_rate() -> None:
    now = [100.0]
    limit = RateLimit(1.0, clock=lambda: now[0])
    answered = 0
    for _ in range(1000):  # a flood of asks within half a second
        answered += limit.allow()
        now[0] += 0.0005
    assert answered == 1
    now[0] += 1.0
    assert limit.allow()


def test_an_old_announcement_replayed_after_its_member_retired_is_dropped() -> None:
    day = 24 * 3600.0
    now = 10 * day
    heard = {
        B: Heard(cid=CID_TOMBSTONE, sequence=20, heard_at=now - 2 * day),  # B retired two days ago
        C: Heard(cid=CID_TOMBSTONE, sequence=7, heard_at=now - 5),
    }
    replayed = Received(B, Announce(B, CID_OLD, 10).encode())  # B's signed announcement from before
    returning = Received(B, Announce(B, CID_TOMBSTONE, 20).encode())
    candidates, live = round_input([replayed], heard, now=now, fresh_within=90)
    assert replayed not in candidates
    assert [decode(m.data).publisher for m in candidates] == [C]  # B's aged entry is no longer fetched
    assert live == {C}
    candidates, live = round_input([returning], heard, now=now, fresh_within=90)
    assert returning in candidates and B in live


CID_OLD = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CID_TOMBSTONE = "bafkreiaaaacefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_the_document_cache_fetches_a_cid_once_and_keeps_within_its_byte_budget() -> None:
    """Issue 20: the agent's fast path fetched every member's document at each pass; a CID's content never changes."""
    fetched: list[str] = []

    def fetch(cid: str) -> bytes:
        fetched.append(cid)
        return cid.encode() * 10  # 10 bytes a letter

    cache = DocumentCache(max_bytes=25)
    assert cache.fetch("a", fetch) == b"a" * 10
    assert cache.fetch("a", fetch) == b"a" * 10
    assert fetched == ["a"], "fetched again"
    cache.fetch("b", fetch)
    cache.fetch("a", fetch)  # a is now the most recently used
    cache.fetch("c", fetch)  # 30 bytes: the least recently used (b) goes
    assert len(cache) == 2
    cache.fetch("a", fetch)
    cache.fetch("b", fetch)
    assert fetched == ["a", "b", "c", "b"]
    assert cache.fetches == 4, "only fetches from the swarm count, not the cache's answers"


def test_a_failed_fetch_is_not_cached() -> None:
    cache = DocumentCache()
    calls = []

    def failing(cid: str) -> bytes:
        calls.append(cid)
        raise TimeoutError("nobody serves it")

    for _ in range(2):
        with pytest.raises(TimeoutError):
            cache.fetch("a", failing)
    assert calls == ["a", "a"] and len(cache) == 0
    assert cache.fetches == 2, "a failed fetch is a fetch the pass waited for"


class CountingStore(Store):
    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []
        self.failing: set[str] = set()

    def cat(self, cid: str) -> bytes:
        self.fetched.append(cid)
        if cid in self.failing:
            raise TimeoutError("nobody serves it")
        return super().cat(cid)


def test_with_resolutions_a_round_neither_fetches_nor_checks_again_what_it_concluded_on() -> None:
    """Issue 20: at 50 members each pass of the agent checked every member's document again (about 100 ms of CPU)."""
    store = CountingStore()
    junk = Received(C, Announce(publisher=C, cid=store.add(b"{}"), sequence=9).encode())
    messages = [publish(store, B, 10), junk]
    resolutions = Resolutions()
    first = discover(messages, own_peer_id=ME, swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert sorted(first.identities) == [B] and [r.sender for r in first.rejected] == [C]
    fetched = len(store.fetched)
    with mock.patch.object(discovery, "_check", side_effect=AssertionError("checked again")):
        again = discover(messages, own_peer_id=ME, swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert len(store.fetched) == fetched, "fetched again"
    assert again.identities == first.identities and again.rejected == first.rejected, "a refusal is kept too"
    newer = publish(store, B, 11, description="new")
    after = discover([*messages, newer], own_peer_id=ME, swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert after.identities[B].document.description == "new" and len(store.fetched) == fetched + 1


def test_a_failed_fetch_is_no_conclusion_and_is_tried_again_next_round() -> None:
    store = CountingStore()
    announce = publish(store, B, 10)
    cid = decode(announce.data).cid  # type: ignore[union-attr]
    store.failing.add(cid)
    resolutions = Resolutions()
    failed = discover([announce], own_peer_id=ME, swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert failed.identities == {} and "could not be fetched" in failed.rejected[0].reason
    assert len(resolutions) == 0
    store.failing.clear()
    found = discover([announce], own_peer_id=ME, swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert sorted(found.identities) == [B] and store.fetched == [cid, cid]


def test_a_conclusion_holds_for_its_swarm_key_only() -> None:
    """One agent serves several swarms: a document accepted under one key is not accepted under another."""
    store = Store()
    announce = publish(store, B, 10)
    resolutions = Resolutions()
    assert B in discover([announce], own_peer_id=ME, swarm_key=KEY, fetch=store.cat, resolutions=resolutions).identities
    other = discover([announce], own_peer_id=ME, swarm_key=bytes(32), fetch=store.cat, resolutions=resolutions)
    assert other.identities == {} and "does not open" in other.rejected[0].reason


def test_resolutions_keep_the_most_recently_used_within_their_byte_budget() -> None:
    """A member publishing many large documents pushes out old conclusions; it never grows the agent past the budget."""
    store = CountingStore()
    announces = [publish(store, member, 10) for member in (B, C, ME)]
    size = max(len(blob) for blob in store.blobs.values())
    resolutions = Resolutions(max_bytes=2 * size)
    for announce in announces:
        discover([announce], own_peer_id="", swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert len(resolutions) == 2
    fetched = len(store.fetched)
    discover(announces[1:], own_peer_id="", swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert len(store.fetched) == fetched, "the two most recent are kept"
    discover(announces[:1], own_peer_id="", swarm_key=KEY, fetch=store.cat, resolutions=resolutions)
    assert len(store.fetched) == fetched + 1, "the oldest went"
    too_big = Resolutions(max_bytes=min(len(blob) for blob in store.blobs.values()) - 1)
    discover(announces[:1], own_peer_id="", swarm_key=KEY, fetch=store.cat, resolutions=too_big)
    assert len(too_big) == 0
