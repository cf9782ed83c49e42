"""Keep each SwarmPool's node counters true between the operator's reconciles.

The swarmpool role writes ``status.status.<swarm>`` when it reconciles: on a
spec change, when something it made changes, or every ``reconcilePeriod``
(10 min). Its two counters, ``Number of bootstraps`` and ``Number of
connected peers``, change whenever a member connects or goes, or the identity
role changes the bootstrap list (members join it and leave it), so between
reconciles they could be minutes stale: a swarm's creator would still say 0
connected peers after the others joined. The agent therefore reads every serving node each
``--node-status-period`` seconds (default 10), counts with the role's own code
(module_utils/swarm.py ``counters``, which the ipfs_swarm module returns), and
writes only when the counts differ from the status.

**Bound.** A change on a node shows in its SwarmPool's status within one
period plus one read of the node (milliseconds for a node that answers; a read
gives up after ``CONNECT_TIMEOUT`` + ``READ_TIMEOUT`` per call): under 15 s
with the default period of 10 s.

**Writes.** A JSON merge patch of the status subresource holding the changed
swarms' two counters, ``status.connectedPeers`` (the printer column that shows
them) and ``status.lastUpdate``, nothing else (the role's
``hash``, addresses and conditions are left alone), and nothing at all when
the counts already agree. The patch carries the ``metadata.resourceVersion``
it was computed from (optimistic concurrency): if the role, or anyone, wrote
the SwarmPool since, the API server answers 409 and the agent simply compares
again next period, so it never overwrites a newer report with a comparison
made against an older one. The role, in turn, keeps ``lastUpdate`` when its
report equals the stored one, so the two agree on when the status last
changed.

**Logs.** A swarm that loses its last connected peer or gets its first, or
whose bootstrap count changes, is logged at info; the connected count moving
between non-zero values (libp2p connections come and go, a member restarts)
is logged at debug: the status shows it, and a log line for each would say
the same thing again and again.

**Nodes that do not answer** are skipped, and their counters left as the
status says; that is logged once when a node stops answering and once when it
answers again, not every period. Only swarms whose status entry has an
``API`` and no ``Error`` are read: the role's report of a problem stands.

The decisions (:func:`nodes_of`, :func:`status_patch`, :class:`Reachability`)
are pure and unit-tested; :class:`NodeStatus` runs them on a schedule with the
reading (swarms.py ``NodeReader``) and writing (kube.py ``Watched``) passed in,
so this module needs no cluster, and of the collection only the status's names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    STATUS_BOOTSTRAPS,
    STATUS_CONNECTED,
    STATUS_CONNECTED_PEERS,
    connected_peers,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import utc_now
from cluster_discovery_operator.logs import fields

from .kube import ObjectRef

log = logging.getLogger(__name__)

DEFAULT_PERIOD = 10.0
# A node on the pod network answers these calls in milliseconds: waiting longer only delays the other
# SwarmPools' updates behind a node that hangs.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0
MAX_PARALLEL_READS = 8


@dataclass(frozen=True, order=True)
class NodeRef:
    """One swarm's node, where the SwarmPool's status says the operator reached its RPC API."""

    namespace: str
    pool: str
    swarm: str
    api_url: str

    @property
    def pool_ref(self) -> ObjectRef:
        return ObjectRef(namespace=self.namespace, name=self.pool)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pool}/{self.swarm} at {self.api_url}"


Counters = Mapping[str, int]


def _serving(entry: Any) -> bool:
    return isinstance(entry, Mapping) and bool(entry.get("API")) and not entry.get("Error")


def _entries(pool: Mapping[str, Any]) -> Mapping[str, Any]:
    entries = (pool.get("status") or {}).get("status")
    return entries if isinstance(entries, Mapping) else {}


def nodes_of(pool: Mapping[str, Any]) -> list[NodeRef]:
    """The nodes of a SwarmPool to read: each swarm whose status entry has an ``API`` and no ``Error``.

    None while the SwarmPool is being deleted (its nodes are going away with it).
    """
    metadata = pool.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return []
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    return [
        NodeRef(namespace=namespace, pool=name, swarm=str(swarm), api_url=str(entry["API"]))
        for swarm, entry in sorted(_entries(pool).items())
        if _serving(entry)
    ]


def status_patch(pool: Mapping[str, Any], readings: Mapping[NodeRef, Counters], *, now: str) -> dict[str, Any] | None:
    """The merge patch that brings the SwarmPool's counters to what its nodes said, or None when they agree.

    A reading counts only if the status still names that node as serving (same ``API``, no ``Error``): the
    role may have reported since the read, and its report stands. The patch holds the changed swarms'
    counters, ``lastUpdate`` (``now``) and the resourceVersion of ``pool``, so it applies only to the very
    version it was computed from; without a resourceVersion to hold it to, nothing is written, nor to a
    SwarmPool being deleted.
    """
    metadata = pool.get("metadata") or {}
    resource_version = metadata.get("resourceVersion")
    if metadata.get("deletionTimestamp"):
        return None
    entries = _entries(pool)
    changed: dict[str, dict[str, int]] = {}
    for node, counted in sorted(readings.items()):
        if (node.namespace, node.pool) != (metadata.get("namespace"), metadata.get("name")):
            continue
        entry = entries.get(node.swarm)
        if not isinstance(entry, Mapping) or not _serving(entry) or entry.get("API") != node.api_url:
            continue
        if any(entry.get(name) != value for name, value in counted.items()):
            changed[node.swarm] = dict(counted)
    if not changed or not resource_version:
        return None
    # The CONNECTED column follows the counters it prints.
    counted_now = {**entries, **{swarm: {**entries[swarm], **counted} for swarm, counted in changed.items()}}
    return {
        "metadata": {"resourceVersion": str(resource_version)},
        "status": {"lastUpdate": now, "status": changed, STATUS_CONNECTED_PEERS: connected_peers(counted_now)},
    }


def worth_telling(before: Any, after: Counters) -> bool:
    """Whether a swarm's new counters are news at info level: its bootstrap count changed, or it got its first
    connected peer or lost its last one (``before`` is its status entry, of any shape)."""
    previous = before if isinstance(before, Mapping) else {}
    was_connected = bool(previous.get(STATUS_CONNECTED))
    return previous.get(STATUS_BOOTSTRAPS) != after.get(STATUS_BOOTSTRAPS) or was_connected != bool(
        after.get(STATUS_CONNECTED)
    )


class Reachability:
    """Whether each node answered its last read, so a silent node is logged when that changes, not every period."""

    def __init__(self) -> None:
        self._failing: set[NodeRef] = set()

    def failed(self, node: NodeRef) -> bool:
        """Record a read that failed; True when the node answered before (or was never read)."""
        if node in self._failing:
            return False
        self._failing.add(node)
        return True

    def answered(self, node: NodeRef) -> bool:
        """Record a read that succeeded; True when the node had stopped answering."""
        if node not in self._failing:
            return False
        self._failing.discard(node)
        return True

    def keep_only(self, nodes: set[NodeRef]) -> None:
        """Forget nodes no SwarmPool names any more (so a node that comes back is logged afresh)."""
        self._failing &= nodes


class PoolCache(Protocol):
    """What NodeStatus needs of the watched SwarmPools (kube.Watched)."""

    def snapshot(self) -> list[dict[str, Any]]: ...

    def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...

    def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None: ...


class NodeStatus:
    """Every period: read the serving nodes of the watched SwarmPools, patch the counters that changed."""

    def __init__(
        self,
        pools: PoolCache,
        *,
        read: Callable[[NodeRef], Counters],
        period: float = DEFAULT_PERIOD,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self._pools = pools
        self._read = read
        self.period = period
        self._now = now
        self._reachability = Reachability()
        self._executor = ThreadPoolExecutor(max_workers=MAX_PARALLEL_READS, thread_name_prefix="node-status")

    def run(self, stop: threading.Event) -> None:
        """Tick every period until ``stop``; a tick that fails is logged and the next one tried."""
        try:
            while True:
                started = time.monotonic()
                try:
                    self.tick()
                except Exception:  # the loop must outlive an API server hiccup
                    log.exception("updating the SwarmPools' node counters failed; trying again next period")
                # A fixed cadence: the time a tick takes is not added to the period.
                if stop.wait(max(0.0, self.period - (time.monotonic() - started))):
                    return
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def tick(self) -> list[ObjectRef]:
        """One round; returns the SwarmPools written."""
        nodes = [node for pool in self._pools.snapshot() for node in nodes_of(pool)]
        self._reachability.keep_only(set(nodes))
        readings = self._read_all(nodes)
        written: list[ObjectRef] = []
        for ref in sorted({node.pool_ref for node in readings}):
            # The latest version of the SwarmPool, not the one of the snapshot: a write of the role seen since
            # is compared with, instead of costing a 409.
            pool = self._pools.get(ref)
            if pool is None:
                continue
            patch = status_patch(pool, readings, now=self._now())
            if patch is None:
                continue
            # Decided before the write: the cache may hand back the same entries, patched.
            entries = _entries(pool)
            news = {
                swarm: worth_telling(entries.get(swarm), counted)
                for swarm, counted in patch["status"]["status"].items()
            }
            if self._pools.patch_status(ref, patch) is None:
                log.debug(
                    "SwarmPool %s/%s changed or went away meanwhile; comparing again next period",
                    ref.namespace,
                    ref.name,
                    extra=fields(kind="SwarmPool", namespace=ref.namespace, name=ref.name),
                )
                continue
            written.append(ref)
            for swarm, counted in sorted(patch["status"]["status"].items()):
                log.log(
                    logging.INFO if news[swarm] else logging.DEBUG,
                    "SwarmPool %s/%s swarm %s: %s",
                    ref.namespace,
                    ref.name,
                    swarm,
                    ", ".join(f"{name} {value}" for name, value in sorted(counted.items())),
                    extra=fields(kind="SwarmPool", namespace=ref.namespace, name=ref.name, swarm=swarm),
                )
        return written

    def _read_all(self, nodes: list[NodeRef]) -> dict[NodeRef, Counters]:
        # In parallel: one node that hangs must not hold the others' updates past the bound.
        futures = {node: self._executor.submit(self._read, node) for node in nodes}
        readings: dict[NodeRef, Counters] = {}
        for node, future in futures.items():
            try:
                readings[node] = future.result()
            except Exception as err:  # whatever the reason, the node's counters stay as the status says
                if self._reachability.failed(node):
                    log.warning("node %s does not answer (%s); its counters stay as they are until it does", node, err)
                continue
            if self._reachability.answered(node):
                log.info("node %s answers again", node)
        return readings
