# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""One node's side of the identity protocol: publish, retract, ask, listen, remember.

Private to the collection: may change without notice. No Ansible imports: the
``ipfs_identity`` module and the discovery agent both use it.

Everything travels through the node's RPC API. State lives in the node's own
mutable file system, one folder per swarm topic:

- ``published.json``: what this node last published (owner, CID, sequence,
  tombstone). Publishing compares against it, so an unchanged identity keeps
  its CID and sequence and reports no change, and a second owner cannot
  silently take over a node that already speaks for another Identity.
- ``heard.json``: the latest announcement heard from each other member, with
  the time it was heard. The discovery agent (a long-lived subscriber) writes
  it; a module run reads it, so what was announced between two runs (a
  tombstone, an update) is not lost although pubsub keeps nothing.

A module run also asks the swarm directly: it subscribes, publishes an ``ask``
and listens until the answers stop coming, so discovery works without an
agent, only more slowly.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import bounded_json
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    Announce,
    Ask,
    MessageError,
    decode,
    topic_for,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.byte_budget import ByteBudget
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    DEFAULT_FRESH_WITHIN,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.discovery import (
    Discovery,
    Received,
    Resolutions,
    discover,
    latest_announcements,
    resolution_key,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    CID_RE,
    MAX_DOCUMENT_BYTES,
    DocumentError,
    IdentityDocument,
    next_sequence,
    validate,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import utc_now, utc_time
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    KuboClient,
    KuboContentTooLarge,
    KuboError,
    KuboTimeout,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import PEER_ID_RE
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.public_keys import is_public
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import (
    SealError,
    open_sealed,
    seal,
)

STATE_ROOT = "/cluster-discovery/v1"
MAX_STATE_BYTES = 256 * 1024
# How long a heard announcement is fetched again in every round: long enough
# for a tombstone to reach every member that runs discovery at least daily.
# After that it stays in heard.json only as a floor of the member's sequence.
HEARD_RETENTION_SECONDS = 24 * 3600
# heard.json keeps at most this many members, the most recently heard: any
# number of publishers may announce, and the file must stay readable.
MAX_HEARD_MEMBERS = 256
# A member's document that its node no longer serves would hold a round for
# kubo's whole timeout, and every retry of it: one fetch waits at most
# FETCH_TIMEOUT_SECONDS, and a round fetches nothing once ROUND_DEADLINE_SECONDS
# have passed (what is left is refused for this round, its Peer untouched).
FETCH_TIMEOUT_SECONDS = 5.0
ROUND_DEADLINE_SECONDS = 20.0
# A node connected to a member can still lack a working bitswap stream to it
# (seen at 50 members on one machine: the connection's identify raced under
# load), and then every fetch of the member's document times out, round after
# round. A round closes such a connection and dials again, once per member,
# each step within REDIAL_TIMEOUT_SECONDS.
REDIAL_TIMEOUT_SECONDS = 5.0
# A round fetches the members' latest documents this many at a time, so a
# member whose document does not come holds only its own fetch: fetched one
# after another, at 50 members joining at once, a few such members spent each
# round's whole deadline (and their redials) and left the others for later
# rounds, minutes in all.
FETCH_CONCURRENCY = 8
# Every member may ask, as often as it likes; one answer reaches every
# subscriber, so a node answers at most one ask per interval and a flood of
# asks costs it one announcement a second.
ASK_ANSWER_INTERVAL_SECONDS = 1.0


# How often the agent's listener looks for members that fell silent: the Offline time is kept to this.
SILENCE_CHECK_SECONDS = 5.0
# How often the listener looks at who is on the topic, to announce to a member that has just appeared there.
TOPIC_PEERS_CHECK_SECONDS = 2.0
# After its node answers again (a freeze, a restart), the listener announces at these delays besides: the
# connections its node still lists can be dead ones whose members come back between two checks of the topic,
# never seen gone, and then neither the announcement made at once nor an appearance reached them (the
# walkthrough's frozen member was heard again a whole period, 30 s, after its node went on).
RECOVERY_ANNOUNCE_DELAYS = (3.0, 8.0, 15.0)


class RateLimit:
    """True at most once per ``interval`` seconds."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def allow(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class IdentityConflictError(CollectionError):
    """The node already publishes the identity of another owner."""


@dataclass(frozen=True)
class Published:
    owner: str
    cid: str
    sequence: int
    tombstone: bool

    def to_json(self) -> dict[str, object]:
        return {"owner": self.owner, "cid": self.cid, "sequence": self.sequence, "tombstone": self.tombstone}


@dataclass(frozen=True)
class Heard:
    cid: str
    sequence: int
    heard_at: float


KUBECONFIG_WITHHELD = (
    "the swarm key is public (the default network's or one printed in a manual), so anyone could open"
    " the kubeconfig: the identity is published without it; use a swarm of your own key to share credentials"
)


@dataclass
class PublishOutcome:
    changed: bool
    published: Published | None
    issued_at: str | None = None
    kubeconfig_withheld: str | None = None
    """Why a kubeconfig that was given is not published, when it is not."""


class SwarmIdentity:
    """The identity protocol on one node, for one swarm (identified by its key)."""

    def __init__(
        self,
        client: KuboClient,
        swarm_key: bytes | None,
        *,
        topic: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``swarm_key`` derives the topic and opens documents; a listener that only
        announces and remembers (the agent) may give the ``topic`` instead."""
        if swarm_key is None and topic is None:
            raise ValueError("a swarm key or a topic is needed")
        self.client = client
        self._swarm_key = swarm_key
        self.topic = topic_for(swarm_key) if swarm_key is not None else str(topic)
        self.folder = f"{STATE_ROOT}/{self.topic.rsplit('/', 1)[-1]}"
        self._clock = clock
        self._peer_id: str | None = None
        # heard.json as serve() last wrote it: serve is the file's only writer, so its next write merges into this
        # copy instead of reading the file back, and a discovery pass in the same process reads it here.
        self._heard_written: dict[str, Heard] | None = None

    @property
    def swarm_key(self) -> bytes:
        if self._swarm_key is None:
            raise ValueError("this operation needs the swarm key")
        return self._swarm_key

    @property
    def peer_id(self) -> str:
        if self._peer_id is None:
            self._peer_id = str(self.client.id()["ID"])
        return self._peer_id

    # -- state in the node's MFS -------------------------------------------------

    def _read_json(self, name: str) -> object:
        try:
            raw = self.client.files_read(f"{self.folder}/{name}", max_bytes=MAX_STATE_BYTES)
        except KuboContentTooLarge:
            return None  # written by someone else than us (we never exceed the limit): rebuilt
        if raw is None:
            return None
        try:
            return bounded_json.loads(raw, max_depth=2)
        except ValueError:
            return None  # a damaged state file is rebuilt rather than trusted

    def published(self) -> Published | None:
        value = self._read_json("published.json")
        if not isinstance(value, dict):
            return None
        try:
            record = Published(
                owner=str(value["owner"]),
                cid=str(value["cid"]),
                sequence=int(value["sequence"]),
                tombstone=bool(value["tombstone"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return record if CID_RE.fullmatch(record.cid) else None

    def _write_published(self, record: Published) -> None:
        self.client.files_write(f"{self.folder}/published.json", json.dumps(record.to_json()).encode())

    def heard(self) -> dict[str, Heard]:
        value = self._read_json("heard.json")
        result: dict[str, Heard] = {}
        if not isinstance(value, dict):
            return result
        for publisher, entry in value.items():
            try:
                heard = Heard(cid=str(entry["cid"]), sequence=int(entry["sequence"]), heard_at=float(entry["heardAt"]))
            except (KeyError, TypeError, ValueError):
                continue
            if PEER_ID_RE.fullmatch(publisher) and CID_RE.fullmatch(heard.cid):
                result[publisher] = heard
        return result

    def remember(self, announces: Iterable[Announce], *, heard_at: Mapping[str, float] | None = None) -> bool:
        """Record announcements heard (their sender already checked); True when something new was learned.

        ``heard_at`` says when each publisher's announcement was heard (this node's clock, seconds since the epoch),
        for announcements recorded later than they were heard; the others were heard now.
        """
        return self._remember(announces, heard_at=heard_at, base=None)[0]

    def _remember(
        self,
        announces: Iterable[Announce],
        *,
        heard_at: Mapping[str, float] | None,
        base: Mapping[str, Heard] | None,
        before_write: Callable[[dict[str, Heard]], None] | None = None,
    ) -> tuple[bool, dict[str, Heard]]:
        """remember(), merged into ``base`` (heard.json as this caller last wrote it) rather than the file read back.

        Returns whether something new was learned, and what heard.json holds now. ``before_write`` gets that
        before the file is written (a round trip to the node).
        """
        heard = dict(base) if base is not None else self.heard()
        now = self._clock()
        when = heard_at or {}
        news = False
        for announce in announces:
            if announce.publisher == self.peer_id:
                continue
            known = heard.get(announce.publisher)
            if known is None or announce.sequence > known.sequence:
                news = True
            if known is None or announce.sequence >= known.sequence:
                at = when.get(announce.publisher, now)
                heard[announce.publisher] = Heard(cid=announce.cid, sequence=announce.sequence, heard_at=at)
        # Entries past HEARD_RETENTION_SECONDS stay as floors against replays
        # (round_input); the count bound keeps the file small and readable.
        recent = sorted(heard.items(), key=lambda item: item[1].heard_at, reverse=True)
        kept = dict(recent[:MAX_HEARD_MEMBERS])
        body = {p: {"cid": e.cid, "sequence": e.sequence, "heardAt": e.heard_at} for p, e in sorted(kept.items())}
        if before_write is not None:
            before_write(kept)
        self.client.files_write(f"{self.folder}/heard.json", json.dumps(body).encode())
        return news, kept

    # -- publishing ----------------------------------------------------------------

    def _check_owner(self, current: Published | None, owner: str) -> None:
        if current is not None and not current.tombstone and current.owner != owner:
            raise IdentityConflictError(
                f"kubo node {self.client.node} already publishes the identity of {current.owner} on this swarm;"
                f" one node speaks for one Identity (retract that one first)",
                node=self.client.node,
                owner=current.owner,
            )

    def _previous_document(self, current: Published) -> tuple[IdentityDocument, str | None] | None:
        try:
            document = IdentityDocument.decode(self.client.cat(current.cid, max_bytes=MAX_DOCUMENT_BYTES))
            kubeconfig = None
            if document.kubeconfig is not None:
                kubeconfig = open_sealed(
                    self.swarm_key, document.kubeconfig, publisher=document.publisher, sequence=document.sequence
                ).decode("utf-8")
        except (KuboError, DocumentError, SealError, UnicodeDecodeError):
            return None  # unreadable: publish anew
        return document, kubeconfig

    def publish(
        self,
        *,
        owner: str,
        document: IdentityDocument,
        kubeconfig: str | None,
        keep_kubeconfig: bool = False,
        check_mode: bool = False,
    ) -> PublishOutcome:
        """Publish ``document`` (its publisher, sequence and time are filled in here) unless unchanged.

        With ``keep_kubeconfig`` and no ``kubeconfig``, the kubeconfig of the
        document published before is kept: the agent republishes a changed spec
        at once without the account, and must never take credentials away.
        The kubeconfig must be of the one shape members accept (member_kubeconfig)
        and is published in its canonical text; under a public swarm key it is
        never published (``kubeconfig_withheld`` says so).
        Raises DocumentError when the identity breaks the document's rules, before anything is written.
        """
        if kubeconfig is not None:
            try:
                kubeconfig = parse_kubeconfig(kubeconfig).to_text()
            except KubeconfigError as err:
                raise DocumentError(f"the kubeconfig to publish is refused: {err}") from None
        withheld = None
        if is_public(self.swarm_key) and (kubeconfig is not None or keep_kubeconfig):
            withheld = KUBECONFIG_WITHHELD if kubeconfig is not None else None
            kubeconfig, keep_kubeconfig = None, False
        current = self.published()
        self._check_owner(current, owner)
        candidate = replace(document, publisher=self.peer_id, sequence=0, issued_at="", kubeconfig=None)
        validate(replace(candidate, issued_at=utc_now()))
        if current is not None and not current.tombstone and current.owner == owner:
            previous = self._previous_document(current)
            if keep_kubeconfig and kubeconfig is None and previous is not None:
                kubeconfig = previous[1]
            if (
                previous is not None
                and previous[0].publisher == self.peer_id
                and previous[0].same_content(candidate)
                and previous[1] == kubeconfig
            ):
                return PublishOutcome(
                    changed=False, published=current, issued_at=previous[0].issued_at, kubeconfig_withheld=withheld
                )
        sequence = next_sequence(current.sequence if current else None, int(self._clock() * 1000))
        sealed = (
            seal(self.swarm_key, kubeconfig.encode("utf-8"), publisher=self.peer_id, sequence=sequence)
            if kubeconfig is not None
            else None
        )
        issued_at = utc_now()
        final = replace(candidate, sequence=sequence, issued_at=issued_at, kubeconfig=sealed)
        try:
            # Encoded in check mode too: only the whole document shows whether it fits the size limit.
            raw = final.encode()
        except DocumentError as err:
            if kubeconfig is not None:
                raise DocumentError(f"{err}; the kubeconfig it carries has {len(kubeconfig.encode())} bytes") from None
            raise
        if check_mode:
            return PublishOutcome(changed=True, published=None, kubeconfig_withheld=withheld)
        cid = self.client.add(raw, cid_version=1)
        record = Published(owner=owner, cid=cid, sequence=sequence, tombstone=False)
        self._write_published(record)
        return PublishOutcome(changed=True, published=record, issued_at=issued_at, kubeconfig_withheld=withheld)

    def retract(self, *, owner: str, check_mode: bool = False) -> PublishOutcome:
        """Publish a tombstone for ``owner``'s identity; nothing to do when none is published."""
        current = self.published()
        if current is None or current.tombstone:
            return PublishOutcome(changed=False, published=current)
        self._check_owner(current, owner)
        if check_mode:
            return PublishOutcome(changed=True, published=None)
        sequence = next_sequence(current.sequence, int(self._clock() * 1000))
        issued_at = utc_now()
        tombstone = IdentityDocument(publisher=self.peer_id, sequence=sequence, issued_at=issued_at, tombstone=True)
        cid = self.client.add(tombstone.encode(), cid_version=1)
        record = Published(owner=owner, cid=cid, sequence=sequence, tombstone=True)
        self._write_published(record)
        return PublishOutcome(changed=True, published=record, issued_at=issued_at)

    def announce(self, record: Published) -> None:
        self.client.pubsub_pub(self.topic, Announce(self.peer_id, record.cid, record.sequence).encode())

    def ask(self) -> None:
        self.client.pubsub_pub(self.topic, Ask().encode())

    # -- the long-lived side: what the discovery agent runs -------------------------

    def serve(
        self,
        *,
        stop: threading.Event,
        announce_every: float,
        on_news: Callable[[dict[str, int]], None] | None = None,
        offline_after: float = DEFAULT_FRESH_WITHIN,
        session: float = 600.0,
        refresh_every: float = 10.0,
        retry_after: float = 2.0,
        ask: bool = True,
        remember: bool = True,
    ) -> None:
        """Keep this node's identity heard on the swarm until ``stop`` is set.

        Answers ``ask``s with the node's published identity (or tombstone), at
        most one per ASK_ANSWER_INTERVAL_SECONDS,
        re-announces it every ``announce_every`` seconds, and records what other
        members announce in ``heard.json``: at once when it is news, else
        together, at most every ``refresh_every`` seconds, to keep liveness
        times current (one write per period, however many members announce:
        each write rewrites the whole file).
        News is a new member or sequence, a member that has just been silent
        for ``offline_after`` seconds (its Peer turns Offline), and a member
        heard again after such a silence (its Peer turns Online); then
        ``on_news`` is called with the latest sequence known of every member.
        Connection losses (a restarting node) are retried every ``retry_after``
        seconds; after each (re)subscription it asks, so what was announced
        meanwhile is learned again. For a period after its node was away or
        alone on the topic (a freeze, a cut, a start), a member that appears
        there gets an announcement within TOPIC_PEERS_CHECK_SECONDS: what was
        published while it was not there never reached it. After its node was
        away it also announces at RECOVERY_ANNOUNCE_DELAYS. With ``ask`` false it never asks: for a
        member that consumes nothing (the light member), since every member
        answers an ask, N answers that each reach N nodes. With ``remember`` false it keeps no heard.json and
        tells no news, for the same member: it hears announcements only to answer asks, and a file write of
        its node for each member's news and every ``refresh_every`` seconds would buy it nothing.
        """
        remembered = self._heard_or_empty() if remember else {}
        known: dict[str, int] = {publisher: entry.sequence for publisher, entry in remembered.items()}
        # Heard and not yet written to heard.json (with when, on this node's clock), and when it was last written.
        pending: dict[str, tuple[Announce, float]] = {}
        last_write = [time.monotonic()]
        write_lock = threading.Lock()  # one read-merge-write of heard.json at a time
        # When each member was last heard, on the monotonic clock; heard.json's times seed it, so a member that
        # fell silent while this listener was away is found silent too.
        started, wall = time.monotonic(), self._clock()
        last_heard: dict[str, float] = {
            publisher: started - max(0.0, wall - entry.heard_at) for publisher, entry in remembered.items()
        }
        silent: set[str] = set()
        lock = threading.Lock()  # handle() and the silence watcher share the three above
        # heard.json's times may lag what this listener heard by refresh_every, so a discovery round can find a
        # member silent that much earlier: hearing it again after that shorter silence is news already.
        returns_after = max(0.0, offline_after - refresh_every)
        current: list[object] = [None]
        answers = RateLimit(ASK_ANSWER_INTERVAL_SECONDS)
        asked = threading.Event()
        self._heard_written = None  # read back before the first write

        def announce_own() -> None:
            record = self.published()
            if record is not None:
                self.announce(record)

        def announcer() -> None:
            # Announces every announce_every seconds, and at once when asked: the subscription loop only sets
            # ``asked``, so an ask never holds up the messages behind it (every member answers an ask together).
            due = time.monotonic() + announce_every
            while True:
                asked.wait(max(0.0, due - time.monotonic()))
                if stop.is_set():
                    return
                if not asked.is_set() and time.monotonic() < due:
                    continue
                asked.clear()
                try:
                    announce_own()
                    due = time.monotonic() + announce_every
                except KuboError:
                    # The node is away (the subscription loop reconnects): try again soon, so that members hear
                    # this one as soon as its node answers, not a whole period later.
                    due = time.monotonic() + retry_after

        def write_heard(*, news: bool, remembered: Callable[[], None] = lambda: None) -> None:
            """Write what was heard since the last write: now for news, else once ``refresh_every`` has passed.

            ``remembered`` is called once what was heard is in :meth:`heard_as_written`, before the file write.
            For news, this returns only once it is there, whoever wrote it. A node that is away raises KuboError;
            what was pending stays pending.
            """

            def due() -> bool:
                return bool(pending) and (news or time.monotonic() - last_write[0] >= refresh_every)

            def hold(kept: dict[str, Heard]) -> None:
                self._heard_written = kept
                remembered()

            if not news:
                with lock:
                    if not due():
                        return  # most messages: decided without waiting for a write in progress
            with write_lock:
                with lock:
                    if not due():
                        return
                    batch = dict(pending)
                    pending.clear()
                try:
                    # When each was heard, not when written: Offline is counted from the last hearing.
                    self._remember(
                        [announce for announce, _heard in batch.values()],
                        heard_at={sender: heard for sender, (_announce, heard) in batch.items()},
                        base=self._heard_written,
                        before_write=hold,
                    )
                except KuboError:
                    with lock:
                        for sender, entry in batch.items():
                            newer = pending.get(sender)
                            if newer is None or newer[0].sequence < entry[0].sequence:
                                pending[sender] = entry
                    raise
                last_write[0] = time.monotonic()

        def watch_silence() -> None:
            while not stop.wait(min(SILENCE_CHECK_SECONDS, offline_after / 10)):
                # Liveness of the members heard since the last write; a node that is away is the subscription
                # loop's to reconnect.
                with contextlib.suppress(KuboError):
                    write_heard(news=False)
                now = time.monotonic()
                with lock:
                    quiet = [m for m, at in last_heard.items() if m not in silent and now - at > offline_after]
                    silent.update(quiet)
                    snapshot = dict(known)
                if quiet and on_news is not None:
                    on_news(snapshot)

        def watch_topic_peers() -> None:
            # What a node publishes while a member is not on the topic with it is lost, and a node that answers
            # again after a freeze or finds members again after a cut announces at once, usually before its
            # connections are back: it would be heard only a period later. So for a period after this node was cut
            # off (away, or alone on the topic; a listener that starts counts as cut off), a member that appears gets
            # an announcement. A member that only sees a newcomer appear does nothing: the newcomer announces and
            # asks itself, and every member announcing at each appearance flooded a swarm of 50 (a newcomer's
            # creation reached a whole cluster in 3.6-6.7 s instead of under one).
            seen: set[str] = set()
            cut_at = time.monotonic()
            away = False
            follow_ups: list[float] = []
            while not stop.wait(TOPIC_PEERS_CHECK_SECONDS):
                now = time.monotonic()
                try:
                    present = set(self.client.pubsub_peers(self.topic))
                except KuboError:
                    seen, cut_at, away = set(), now, True  # what it sent meanwhile went nowhere
                    continue
                if away:
                    away, follow_ups = False, [now + delay for delay in RECOVERY_ANNOUNCE_DELAYS]
                if follow_ups and now >= follow_ups[0]:
                    follow_ups = [at for at in follow_ups if at > now]
                    asked.set()
                if not present:
                    cut_at = now
                elif present - seen and now - cut_at <= announce_every:
                    asked.set()
                seen = present

        def closer() -> None:
            stop.wait()
            asked.set()  # wakes the announcer to end
            subscription = current[0]
            if subscription is not None:
                subscription.close()  # type: ignore[attr-defined]

        def handle(sender: str, data: bytes) -> None:
            try:
                parsed = decode(data)
            except MessageError:
                return
            if sender == self.peer_id:
                return
            if isinstance(parsed, Ask):
                if answers.allow():
                    asked.set()
                return
            if not remember:
                return
            if parsed.publisher != sender:
                return  # a member announcing for another peer is ignored, as in discovery
            now = time.monotonic()
            with lock:
                # A member silent this long may be Offline: hearing it again is news, so the fast path marks it
                # Online now, not at the role's next round.
                returning = sender in silent or (sender in last_heard and now - last_heard[sender] > returns_after)
                news = parsed.sequence > known.get(sender, -1) or returning
            with lock:
                waiting = pending.get(sender)
                if waiting is None or waiting[0].sequence <= parsed.sequence:
                    pending[sender] = (parsed, self._clock())
            told = False

            def tell() -> None:
                # A pass of the fast path reads what was heard from memory (heard_as_written): told before the
                # file write, it need not wait out that round trip (a third of an update's propagation at 50).
                nonlocal told
                if news and on_news is not None and not told:
                    told = True
                    with lock:
                        snapshot = dict(known)
                    snapshot[sender] = max(parsed.sequence, snapshot.get(sender, -1))
                    on_news(snapshot)

            # A node that is away raises here, told or not: the news is found again next time.
            write_heard(news=news, remembered=tell)
            with lock:
                silent.discard(sender)
                last_heard[sender] = now
                if news:
                    known[sender] = max(parsed.sequence, known.get(sender, -1))
            tell()  # another write took this message along

        threads = [
            threading.Thread(target=announcer, daemon=True),
            threading.Thread(target=watch_topic_peers, daemon=True),
            threading.Thread(target=closer, daemon=True),
        ]
        if remember:
            threads.append(threading.Thread(target=watch_silence, daemon=True))
        for thread in threads:
            thread.start()
        while not stop.is_set():
            try:
                subscription = self.client.subscribe(self.topic, duration=session)
                current[0] = subscription
                if stop.is_set():
                    subscription.close()
                    break
                # Announce before asking: every member answers an ask at once, and an announcement sent into
                # that burst reached the others seconds late (at 50 members).
                announce_own()
                if ask:
                    self.ask()
                for message in subscription:
                    handle(message.sender, message.data)
            except KuboError:
                stop.wait(retry_after)
        for thread in threads:
            thread.join(timeout=1)

    def heard_as_written(self) -> dict[str, Heard] | None:
        """heard.json as this node's :meth:`serve` last wrote it, or is writing it; None before its first write.

        What :meth:`discover` of the same process may be given instead of reading the file back: the listener
        keeps news here before it calls ``on_news``, so this copy already holds it.
        """
        return self._heard_written

    def _heard_or_empty(self) -> dict[str, Heard]:
        try:
            return self.heard()
        except KuboError:
            return {}

    # -- discovery -------------------------------------------------------------------

    def listen(self, *, window: float, quiet: float, ask: bool = True) -> list[Received]:
        """Messages heard on the topic, after an ``ask``, until ``quiet`` s pass without one or ``window`` ends."""
        received: list[Received] = []
        last = [time.monotonic()]
        subscription = self.client.subscribe(self.topic, duration=window)

        def collect() -> None:
            try:
                for message in subscription:
                    received.append(Received(sender=message.sender, data=message.data))
                    last[0] = time.monotonic()
            except KuboError:
                pass  # a broken stream ends the window; what was heard stands

        worker = threading.Thread(target=collect, daemon=True)
        worker.start()
        if ask:
            self.ask()
        started = last[0] = time.monotonic()
        deadline = started + window
        while worker.is_alive():
            now = time.monotonic()
            if now >= deadline or now - last[0] >= quiet:
                break
            worker.join(timeout=min(0.05, deadline - now))
        subscription.close()
        worker.join(timeout=2)
        return list(received)

    def discover(
        self,
        *,
        window: float,
        quiet: float,
        fresh_within: float,
        listen: bool = True,
        documents: DocumentCache | None = None,
        resolutions: Resolutions | None = None,
        heard: Mapping[str, Heard] | None = None,
    ) -> tuple[Discovery, set[str]]:
        """Validated identities of the other members, and the set of members heard recently (alive).

        With ``listen`` false only what the agent remembered is used: the agent's
        own fast path, right after it heard news, needs no new round of asks.
        ``documents`` keeps what was fetched for the next round, ``resolutions``
        what was concluded on it. ``heard`` is heard.json as its listener wrote
        it (:meth:`heard_as_written`), else the file is read.
        """
        messages = self.listen(window=window, quiet=quiet) if listen else []
        heard, now = (dict(heard) if heard is not None else self.heard()), self._clock()
        candidates, live = round_input(messages, heard, now=now, fresh_within=fresh_within)
        deadline = time.monotonic() + ROUND_DEADLINE_SECONDS
        latest = latest_announcements(candidates, own_peer_id=self.peer_id, rejected=[])
        publisher_of = {announce.cid: publisher for publisher, announces in latest.items() for announce in announces}
        latest_cids = dict.fromkeys(
            announces[0].cid
            for announces in latest.values()
            if announces
            and (resolutions is None or resolutions.get(resolution_key(announces[0], self.swarm_key)) is None)
        )
        redialled: set[str] = set()
        redialled_lock = threading.Lock()

        def cat(cid: str) -> bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the discovery round's {ROUND_DEADLINE_SECONDS:.0f} s were spent")
            return self.client.cat(cid, max_bytes=MAX_DOCUMENT_BYTES, timeout=min(FETCH_TIMEOUT_SECONDS, left))

        def fetch(cid: str) -> bytes:
            try:
                return cat(cid)
            except KuboTimeout:
                publisher = publisher_of.get(cid)
                with redialled_lock:
                    if publisher is None or publisher in redialled:
                        raise
                    redialled.add(publisher)
                if not self._redial(publisher):
                    raise
                return cat(cid)

        def fetch_once(cid: str) -> bytes:
            return documents.fetch(cid, fetch) if documents is not None else fetch(cid)

        prefetched = fetch_concurrently(list(latest_cids), fetch_once)

        def fetch_in_round(cid: str) -> bytes:
            outcome = prefetched.pop(cid, None)
            if outcome is None:  # an older announcement, tried once the latest was refused
                return fetch_once(cid)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        result = discover(
            candidates,
            own_peer_id=self.peer_id,
            swarm_key=self.swarm_key,
            fetch=fetch_in_round,
            resolutions=resolutions,
        )
        live.discard(self.peer_id)
        # A Peer's lastSeen is written when it turns Offline: the last time its member was heard.
        answered = {message.sender for message in messages}
        result.heard_at = {publisher: entry.heard_at for publisher, entry in heard.items()}
        result.heard_at.update({member: now for member in live if member in answered})
        return result, live

    def _redial(self, publisher: str) -> bool:
        """Closes this node's connections to ``publisher`` and dials it again; False when none was open."""
        address = f"/p2p/{publisher}"
        try:
            closed = self.client.swarm_disconnect(address, timeout=REDIAL_TIMEOUT_SECONDS)
        except KuboError:
            return False
        if not closed or not all(line.endswith(" success") for line in closed):
            return False  # not connected: reaching members is the bootstrap list's work, not discovery's
        with contextlib.suppress(KuboError):  # the fetch that follows says whether the member is reachable
            self.client.swarm_connect(address, timeout=REDIAL_TIMEOUT_SECONDS)
        return True


class DocumentCache:
    """Documents fetched from the swarm, by CID, the most recently used first, within a byte budget.

    A CID names its content (kubo checks every block it receives against it), so
    a document fetched once is the document for good: the agent's fast path,
    which runs a discovery pass per batch of news, fetches only what is new
    instead of every member's document each time (issue 20). What comes out is
    checked again by discovery like anything fetched.
    """

    def __init__(self, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._documents: ByteBudget[str, bytes] = ByteBudget(max_bytes)
        self._lock = threading.Lock()
        self.fetches = 0
        """Documents fetched from the swarm (cache misses), and the seconds those fetches took: where a pass waits."""
        self.fetch_seconds = 0.0

    @property
    def max_bytes(self) -> int:
        return self._documents.max_bytes

    def fetch(self, cid: str, fetch: Callable[[str], bytes]) -> bytes:
        kept = self._documents.get(cid)
        if kept is not None:
            return kept
        started = time.monotonic()
        try:
            data = fetch(cid)
        finally:
            with self._lock:
                self.fetches += 1
                self.fetch_seconds += time.monotonic() - started
        self._documents.put(cid, data, size=len(data))
        return data

    def __len__(self) -> int:
        return len(self._documents)


def fetch_concurrently(cids: list[str], fetch: Callable[[str], bytes]) -> dict[str, bytes | Exception]:
    """Each of ``cids`` fetched, FETCH_CONCURRENCY at a time: its content, or what its fetch raised."""
    if len(cids) < 2:
        return {}  # nothing to overlap: the round fetches it itself

    def outcome(cid: str) -> bytes | Exception:
        try:
            return fetch(cid)
        except Exception as err:  # handed to the round, which refuses this member's document only
            return err

    workers = min(FETCH_CONCURRENCY, len(cids))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        return dict(zip(cids, pool.map(outcome, cids), strict=True))


def round_input(
    messages: list[Received], heard: dict[str, Heard], *, now: float, fresh_within: float
) -> tuple[list[Received], set[str]]:
    """What a discovery round considers, and the members that count as live.

    heard.json adds each member's latest announcement it remembers (the agent
    checked their senders). One heard longer than HEARD_RETENTION_SECONDS ago
    is not fetched any more, but its sequence stays a floor: a member's signed
    announcement replayed after pubsub forgot it, older than what the member
    said since (a tombstone among them), is dropped, so it never brings a
    retired member back.
    """
    live: set[str] = set()
    floors: dict[str, int] = {}
    remembered = []
    for publisher, entry in heard.items():
        if now - entry.heard_at > HEARD_RETENTION_SECONDS:
            floors[publisher] = entry.sequence
            continue
        remembered.append(Received(publisher, Announce(publisher, entry.cid, entry.sequence).encode()))
        if now - entry.heard_at <= fresh_within:
            live.add(publisher)
    current = []
    for message in messages:
        try:
            parsed = decode(message.data)
        except MessageError:
            current.append(message)  # discovery reports it
            continue
        if isinstance(parsed, Announce) and parsed.sequence < floors.get(parsed.publisher, -1):
            continue
        if isinstance(parsed, Announce) and parsed.publisher == message.sender:
            live.add(message.sender)
        current.append(message)
    return [*remembered, *current], live


def results(found: Discovery, live: set[str]) -> dict[str, list[Any]]:
    """A discovery round as the ``ipfs_identity`` module returns it (and ``peer_sync`` reads it)."""
    return {
        "identities": [
            {
                "peer_id": peer_id,
                "cid": item.cid,
                "sequence": item.document.sequence,
                "issued_at": item.document.issued_at,
                "name": item.document.name,
                "description": item.document.description,
                "url": item.document.url,
                "categories": list(item.document.categories),
                "addresses": list(item.document.addresses),
                "kubernetes_version": item.document.kubernetes_version,
                "kubeconfig": item.kubeconfig,
                "live": peer_id in live,
                "heard_at": utc_time(found.heard_at[peer_id]) if peer_id in found.heard_at else None,
            }
            for peer_id, item in sorted(found.identities.items())
        ],
        "removed": [{"peer_id": peer_id, "sequence": sequence} for peer_id, sequence in sorted(found.removed.items())],
        "rejected": [{"peer_id": r.sender, "reason": r.reason} for r in found.rejected],
    }
