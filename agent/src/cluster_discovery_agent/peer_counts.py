"""The PEERS column of ``kubectl get identities``, kept true between the identity role's rounds.

The role writes the number of Peers of each swarm an Identity publishes on (``status.swarms[].peers``) and the
column's string (``status.peerCounts``) at the end of a round, from what that round planned. The agent's
passes create and delete Peers between rounds, and a round that planned before a pass wrote ends by writing
its older count: in the walkthrough the column said 0 for two minutes while ``kubectl get peers`` listed the
member. The agent counts again when a Peer appears or goes (its Peer watch), after a pass that created or
deleted one, and after every change of an Identity it watches (the role's status write among them). It writes
only counts that differ, on the resourceVersion it read: a write of the role in between wins and is counted
in turn.

Counts come from the agent's Peer watch where it covers the namespace (``CacheFirst``), on a thread of their
own: requests that arrive while a count runs are counted once after it. Counting from the API server after
each pass listed 1 + 2 + ... + 49 Peers while a newcomer of a 50-member swarm created its Peers, and held up
the pass that was to create the next one (issue 20).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import peer_counts
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import KubernetesError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import Scope, selector
from cluster_discovery_operator.bodies import resource_version_of
from cluster_discovery_operator.kube import KubeError
from cluster_discovery_operator.logs import fields

from .kube import ObjectRef, Presence, Watched, ref_of

log = logging.getLogger(__name__)


class Listable(Protocol):
    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]: ...


def swarm_scope(identity: Mapping[str, Any], entry: Mapping[str, Any]) -> Scope | None:
    """The Peers a published entry of ``status.swarms`` owns; None for an entry that publishes nothing."""
    metadata = identity.get("metadata") or {}
    where = (entry.get("namespace"), entry.get("swarmPool"), entry.get("swarm"))
    if not entry.get("published") or not all(isinstance(part, str) and part for part in where):
        return None
    return Scope(
        identity_name=str(metadata.get("name") or ""),
        identity_namespace=str(metadata.get("namespace") or ""),
        identity_uid=None,
        namespace=str(where[0]),
        swarm_pool=str(where[1]),
        swarm=str(where[2]),
    )


def recounted(identity: Mapping[str, Any], counts: Mapping[int, int]) -> dict[str, Any] | None:
    """The status patch that makes ``status.swarms[i].peers`` read ``counts[i]``; None when all already do.

    The patch carries the resourceVersion of ``identity``: the API server refuses it if the Identity changed
    since, rather than let it replace a newer list of swarms.
    """
    if not counts:
        return None  # published nowhere: the role's status stands as it wrote it
    status = identity.get("status") or {}
    entries = [dict(entry) for entry in status.get("swarms") or [] if isinstance(entry, Mapping)]
    written: dict[str, Any] = {}
    for index, count in counts.items():
        if entries[index].get("peers") != count:
            entries[index]["peers"] = count
            written["swarms"] = entries
    column = peer_counts(entries)
    if status.get("peerCounts") != column:
        written["peerCounts"] = column
    if not written:
        return None
    return {"metadata": {"resourceVersion": (identity.get("metadata") or {}).get("resourceVersion")}, "status": written}


class PeerCounts:
    """Counts each published swarm's Peers of an Identity and writes what differs (see the module's docstring)."""

    def __init__(self, identities: Watched, peers: Listable) -> None:
        self._identities = identities
        self._peers = peers
        self._presence = Presence()
        self._requested: set[ObjectRef] = set()
        self._wake = threading.Condition()
        # This counter's last status write of each Identity, with the version the watch had then (see _latest).
        self._own_writes: dict[ObjectRef, tuple[str, dict[str, Any]]] = {}

    def request(self, ref: ObjectRef) -> None:
        """Count ``ref``'s Peers again soon, on the thread of :meth:`run`."""
        with self._wake:
            self._requested.add(ref)
            self._wake.notify()

    def peer_changed(self, ref: ObjectRef, peer: dict[str, Any] | None) -> None:
        """The Peer watch's handler: a Peer that appears or goes asks for a count of the Identities that own it."""
        if not self._presence.moved(ref, peer is not None):
            return  # a change of a Peer already known (its status, mostly) changes no count
        for identity in self._identities.snapshot():
            scopes = [swarm_scope(identity, entry) for entry in _entries(identity)]
            if any(scope is not None and scope.namespace == ref.namespace for scope in scopes):
                self.request(ref_of(identity))

    def run(self, stop: threading.Event) -> None:
        """Count what was requested, until ``stop``."""
        while not stop.is_set():
            with self._wake:
                while not self._requested and not stop.is_set():
                    self._wake.wait(timeout=1)
                requested, self._requested = self._requested, set()
            for ref in sorted(requested):
                identity = self._identities.get(ref)
                try:
                    if identity is not None:
                        self(identity)
                except Exception:  # a bug on one Identity must not stop the counts of the others for good
                    log.exception("could not count the Peers of Identity %s/%s", ref.namespace, ref.name)

    def __call__(self, identity: Mapping[str, Any]) -> bool:
        """Count again for ``identity``, as the watch has it now; True when the status was written."""
        metadata = identity.get("metadata") or {}
        ref = ObjectRef(namespace=str(metadata.get("namespace") or ""), name=str(metadata.get("name") or ""))
        # Not the copy a pass read when it started: the role may have published the Identity since, and its
        # status event may have been counted before this pass's Peers existed.
        cached = self._identities.get(ref)
        identity = self._latest(ref, cached) or identity
        metadata = identity.get("metadata") or {}
        if metadata.get("deletionTimestamp") or not metadata.get("resourceVersion"):
            return False
        counts: dict[int, int] = {}
        try:
            for index, entry in enumerate(_entries(identity)):
                scope = swarm_scope(identity, entry)
                if scope is not None:
                    counts[index] = len(self._peers.list(scope.namespace, label_selector=selector(scope)))
        except KubernetesError as err:  # the role's next round counts
            _say(ref, "could not count the Peers", str(err))
            return False
        patch = recounted(identity, counts)
        if patch is None:
            return False
        try:
            answer = self._identities.patch_status(ref, patch)
        except KubeError as err:  # the next change of the Identity, or the role's next round, counts
            _say(ref, "could not write the Peer counts", str(err))
            return False
        written = answer is not None
        if answer and resource_version_of(answer) and cached is not None:
            self._own_writes[ref] = (resource_version_of(cached), answer)
        if written:
            _say(ref, "counted the Peers by swarm entry", ", ".join(f"{i}={n}" for i, n in sorted(counts.items())))
        return written

    def _latest(self, ref: ObjectRef, cached: dict[str, Any] | None) -> Mapping[str, Any] | None:
        """The watch's copy, or this counter's own last write while the watch still has the version it replaced.

        Under load the watch delivers a status write well after the next Peer event: counting on the copy it
        still had wrote the same counts again, on a version the API server then refused (409), once for each
        Peer event in between. Once the watch has any other version (this write, or anyone's after it), its
        copy is the truth again.
        """
        own = self._own_writes.get(ref)
        if own is not None:
            version_then, written = own
            if cached is not None and resource_version_of(cached) == version_then:
                return written
            del self._own_writes[ref]
        return cached


def _entries(identity: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``status.swarms`` as the role wrote it; an entry of another shape counts nothing."""
    entries = (identity.get("status") or {}).get("swarms") or []
    return [entry if isinstance(entry, Mapping) else {} for entry in entries]


def _say(ref: ObjectRef, what: str, detail: str) -> None:
    log.info(
        "%s of Identity %s/%s: %s",
        what,
        ref.namespace,
        ref.name,
        detail,
        extra=fields(kind="Identity", namespace=ref.namespace, name=ref.name),
    )
