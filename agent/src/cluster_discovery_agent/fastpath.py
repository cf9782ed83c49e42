"""Apply a member's news at once: discovery from what was heard, then peer_sync's writes.

This is the identity role's own code (swarm_identity, peer_sync, kube), run in
the agent's process, where the Kubernetes client is already loaded, instead of in
an Ansible run that would spend seconds importing it. Misses are not counted
here: the agent did not ask the swarm, so nobody can have been missed. A member
the agent heard, but not within the Offline time, is silent: its Peer turns
Offline at once, without waiting for the role's next round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    DEFAULT_FORGET_AFTER,
    DEFAULT_OFFLINE_AFTER,
    peer_name,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.discovery import Resolutions
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import utc_now
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    Scope,
    apply,
    gauges,
    last_heard,
    plan,
    selector,
    tombstones,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm import protect_members
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    DocumentCache,
    Heard,
    SwarmIdentity,
    results,
)
from cluster_discovery_operator.kube import KubeClient
from cluster_discovery_operator.logs import fields

from .channels import Channel, IdentityRef
from .kube import CacheFirst, Watched, ref_of
from .objects import PEERS, SECRETS, SWARM_POOLS, KindObjects
from .peer_counts import PeerCounts
from .role_metrics import RoleMetrics
from .swarms import NodeTokens, SwarmKeys, SwarmNotReady, resolve

log = logging.getLogger(__name__)


class FastPath:
    def __init__(
        self,
        kube: KubeClient,
        identities: Watched,
        pools: Watched,
        peers: Watched,
        *,
        offline_after: float,
        tokens: NodeTokens | None = None,
        heard_on: Callable[[Channel], Mapping[str, Heard] | None] = lambda channel: None,
        role_metrics: RoleMetrics | None = None,
    ) -> None:
        """``heard_on(channel)``: heard.json as the channel's listener last wrote it, None to read the file."""
        self._identities = identities
        self._role_metrics = role_metrics if role_metrics is not None else RoleMetrics(None)
        self._offline_after = offline_after
        self._peers = KindObjects(kube, PEERS)
        self._secrets = KindObjects(kube, SECRETS)
        # Round trips a pass need not make (issue 20): the SwarmPool and the Peer list come from the agent's
        # watches, the node's token is read once (again when refused), the swarm key once per topic (SwarmKeys).
        # The node's peer id is asked every pass: a node made anew (its repository lost) answers with a new one
        # before its SwarmPool's status says so, and a pass that took the old one would take the node's own
        # document for another member's.
        self._pools = CacheFirst(pools, KindObjects(kube, SWARM_POOLS))
        self._listed_peers = CacheFirst(peers, self._peers)
        self.count_peers = PeerCounts(identities, self._listed_peers)
        self._tokens = tokens if tokens is not None else NodeTokens(self._secrets)
        self._keys = SwarmKeys()
        self._heard_on = heard_on
        self._lock = threading.Lock()  # one channel's news at a time: writes stay ordered
        self._documents = DocumentCache()  # content-addressed: fetched once, whatever the channel
        self._resolutions = Resolutions()  # and checked once: a pass checks only what is new

    def __call__(self, channel: Channel, refs: list[IdentityRef]) -> None:
        with self._lock:
            for ref in refs:
                identity = self._identities.get(ref)
                if identity is None:
                    continue
                for entry in (identity.get("status") or {}).get("swarms") or []:
                    if entry.get("apiUrl") == channel.api_url and entry.get("topic") == channel.topic:
                        try:
                            self._apply(identity, entry, channel)
                        except (CollectionError, SwarmNotReady, ValueError) as err:
                            log.warning(
                                "could not apply news for %s/%s: %s",
                                ref.namespace,
                                ref.name,
                                err,
                                extra=fields(kind="Identity", namespace=ref.namespace, name=ref.name),
                            )

    def _node_client(self, channel: Channel, entry: Mapping[str, Any]) -> KuboClient:
        return self._tokens.client(
            channel.api_url,
            namespace=entry["namespace"],
            pool=entry["swarmPool"],
            swarm=entry["swarm"],
            timeout=30,
            retries=1,
        )

    def _apply(self, identity: dict[str, Any], entry: dict[str, Any], channel: Channel) -> None:
        started = time.monotonic()
        metadata = identity.get("metadata") or {}
        swarm_node = resolve(
            self._pools,
            self._secrets,
            identity_namespace=str(metadata.get("namespace")),
            namespace=entry["namespace"],
            pool=entry["swarmPool"],
            swarm=entry["swarm"],
            topic=channel.topic,
            keys=self._keys,
        )
        resolved = time.monotonic()
        fetches, fetch_seconds = self._documents.fetches, self._documents.fetch_seconds
        with self._node_client(channel, entry) as client:
            node = SwarmIdentity(client, swarm_node.key)
            found, live = node.discover(
                window=0,
                quiet=0,
                fresh_within=self._offline_after,
                listen=False,
                documents=self._documents,
                resolutions=self._resolutions,
                heard=self._heard_on(channel),
            )
        discovered = time.monotonic()
        fetches, fetch_seconds = self._documents.fetches - fetches, self._documents.fetch_seconds - fetch_seconds
        round_ = results(found, live)
        scope = Scope(
            identity_name=str(metadata.get("name")),
            identity_namespace=str(metadata.get("namespace")),
            identity_uid=metadata.get("uid"),
            namespace=entry["namespace"],
            swarm_pool=entry["swarmPool"],
            swarm=entry["swarm"],
        )
        existing = self._listed_peers.list(scope.namespace, label_selector=selector(scope))
        listed = time.monotonic()
        decided = plan(
            scope,
            existing=existing,
            discovered=[item for item in round_["identities"] if item["live"]],
            removed=tombstones(round_["removed"]),
            refused=[item["peer_id"] for item in round_["rejected"]],
            now=utc_now(),
            offline_after=DEFAULT_OFFLINE_AFTER,  # the fast path counts no misses
            forget_after=DEFAULT_FORGET_AFTER,
            count_misses=False,
            silent=[item["peer_id"] for item in round_["identities"] if not item["live"]],
            last_heard=last_heard(round_["identities"]),
        )
        done = apply(decided, scope, peers=self._peers, secrets=self._secrets, check_mode=False)
        self._role_metrics.send(gauges(scope, decided))
        joined = set(done.created) | set(done.updated)
        addresses = [
            address
            for item in round_["identities"]
            if item["live"] and peer_name(item["peer_id"]) in joined
            for address in item["addresses"]
        ]
        if addresses:
            # Seed 000: the bootstrap list "get actualized when an Identity is published": protected and
            # bootstrapped from in this pass, not at the role's next round (two minutes). Only added: a member that
            # left is dropped by the round, whose list of the live members is complete. A node that does not take
            # it now gets it at that round; the Peers written above stand.
            try:
                with self._node_client(channel, entry) as client:
                    protect_members(client, addresses)
            except CollectionError as err:
                log.warning(
                    "could not protect the members of %s/%s/%s on its node; the next round does: %s",
                    scope.namespace,
                    scope.swarm_pool,
                    scope.swarm,
                    err,
                    extra=fields(kind="SwarmPool", namespace=scope.namespace, name=scope.swarm_pool),
                )
        if done.created or done.deleted:
            # The PEERS column, without waiting for the role's next round; counted on the counts' own thread, from
            # the Peer watch, which counts again when it shows what this pass wrote.
            self.count_peers.request(ref_of(identity))
        for failure in done.failed:
            log.warning(
                "could not write Peer %s/%s; left as it was",
                scope.namespace,
                failure,
                extra=fields(kind="Peer", namespace=scope.namespace, name=failure),
            )
        if done.changed:
            ended = time.monotonic()
            log.info(
                "applied news on %s/%s/%s for Identity %s/%s in %.0f ms: created %s, updated %s, deleted %s",
                scope.namespace,
                scope.swarm_pool,
                scope.swarm,
                scope.identity_namespace,
                scope.identity_name,
                (ended - started) * 1000,
                done.created,
                done.updated,
                done.deleted,
                # Where a pass spends its time, for whoever profiles propagation (bench/scale_bench.py).
                extra=fields(
                    kind="Identity",
                    namespace=scope.identity_namespace,
                    name=scope.identity_name,
                    ms_resolve=round((resolved - started) * 1000),
                    ms_discover=round((discovered - resolved) * 1000),
                    fetches=fetches,
                    ms_fetch=round(fetch_seconds * 1000),
                    ms_list=round((listed - discovered) * 1000),
                    ms_write=round((ended - listed) * 1000),
                ),
            )
