"""The PEERS column kept true between the identity role's rounds: what is counted, what is written, on what."""

from __future__ import annotations

import threading
import time
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import KubernetesError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import Scope, selector
from cluster_discovery_agent.kube import ObjectRef
from cluster_discovery_agent.peer_counts import PeerCounts, recounted, swarm_scope
from cluster_discovery_operator.kube import KubeError


def entry(swarm: str, *, peers: int, published: bool = True) -> dict[str, Any]:
    return {"namespace": "pools", "swarmPool": "pool", "swarm": swarm, "published": published, "peers": peers}


def identity(*entries: dict[str, Any], column: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "cluster-a", "namespace": "ids", "resourceVersion": "41"},
        "status": {"swarms": list(entries), "peerCounts": column},
    }


def test_a_published_swarm_owns_the_peers_labelled_for_the_identity_there() -> None:
    scope = swarm_scope(identity(column=""), entry("main", peers=0))
    assert scope == Scope("cluster-a", "ids", None, "pools", "pool", "main")
    assert swarm_scope(identity(column=""), entry("main", peers=0, published=False)) is None
    assert swarm_scope(identity(column=""), {"published": True, "swarm": "main"}) is None


def test_only_counts_that_differ_are_written_on_the_version_read() -> None:
    current = identity(entry("main", peers=0), entry("other", peers=2), column="main=0,other=2")
    patch = recounted(current, {0: 1, 1: 2})
    assert patch == {
        "metadata": {"resourceVersion": "41"},
        "status": {"swarms": [entry("main", peers=1), entry("other", peers=2)], "peerCounts": "main=1,other=2"},
    }
    assert current["status"]["swarms"][0]["peers"] == 0, "the object read is left as it was"
    assert recounted(current, {0: 0, 1: 2}) is None
    stale_column = identity(entry("main", peers=1), column="main=0")
    only_the_column = {"metadata": {"resourceVersion": "41"}, "status": {"peerCounts": "main=1"}}
    assert recounted(stale_column, {0: 1}) == only_the_column
    refused = {"metadata": {"name": "cluster-a", "namespace": "ids", "resourceVersion": "7"}, "status": {}}
    assert recounted(refused, {}) is None, "an Identity published nowhere keeps the status the role wrote"


class Listed:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.selectors: list[tuple[str, str | None]] = []

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.selectors.append((namespace, label_selector))
        return [{}] * self.counts.get(label_selector or "", 0)


class Identities:
    def __init__(self, answer: dict[str, Any] | None, cached: dict[str, Any] | None = None) -> None:
        self.answer = answer
        self.cached = cached
        self.patches: list[tuple[ObjectRef, dict[str, Any]]] = []

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.cached

    def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.patches.append((ref, patch))
        return self.answer


def test_the_peers_are_counted_from_the_api_and_a_refused_write_is_left_to_the_next_change() -> None:
    current = identity(entry("main", peers=0), entry("off", peers=0, published=False), column="main=0")
    main = selector(Scope("cluster-a", "ids", None, "pools", "pool", "main"))
    peers = Listed({main: 3})
    identities = Identities(answer={})
    counts = PeerCounts(identities, peers)  # type: ignore[arg-type]
    assert counts(current) is True
    assert peers.selectors == [("pools", main)], "only the published swarm is counted"
    [(ref, patch)] = identities.patches
    assert ref == ObjectRef(namespace="ids", name="cluster-a")
    assert patch["status"]["peerCounts"] == "main=3"
    assert patch["metadata"]["resourceVersion"] == "41"

    refused = PeerCounts(Identities(answer=None), peers)  # type: ignore[arg-type]
    assert refused(current) is False, "a conflict (the role wrote since) writes nothing more"
    deleting = {**current, "metadata": {**current["metadata"], "deletionTimestamp": "2026-12-03T00:00:00Z"}}
    assert PeerCounts(identities, Listed({})).__call__(deleting) is False  # type: ignore[arg-type]


def test_an_api_server_that_fails_leaves_the_counts_to_the_next_change() -> None:
    class Failing(Listed):
        def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
            raise KubernetesError("Failed to list Peer: 503")

    class Refusing(Identities):
        def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None:
            raise KubeError("Failed to update the status of Identity: 500")

    current = identity(entry("main", peers=0), column="main=0")
    main = selector(Scope("cluster-a", "ids", None, "pools", "pool", "main"))
    assert PeerCounts(Identities(answer={}), Failing({})).__call__(current) is False  # type: ignore[arg-type]
    assert PeerCounts(Refusing(answer={}), Listed({main: 1})).__call__(current) is False  # type: ignore[arg-type]


def test_a_pass_that_read_the_identity_before_the_role_published_it_counts_on_what_the_watch_has_now() -> None:
    """The walkthrough's two Identities were created at once: the agent's pass that created the other's Peer had
    read its Identity before the role's first round wrote ``published``, and the role's status event came before
    that Peer existed. Neither counted it: the column read 0 until the next round, 2 minutes later."""
    read_by_the_pass = {"metadata": {"name": "cluster-a", "namespace": "ids", "resourceVersion": "40"}}
    published = identity(entry("main", peers=0), column="main=0")
    main = selector(Scope("cluster-a", "ids", None, "pools", "pool", "main"))
    identities = Identities(answer={}, cached=published)
    assert PeerCounts(identities, Listed({main: 1}))(read_by_the_pass) is True  # type: ignore[arg-type]
    [(_, patch)] = identities.patches
    assert (patch["status"]["peerCounts"], patch["metadata"]["resourceVersion"]) == ("main=1", "41")


class Watching(Identities):
    """Identities as the watch has them, by reference."""

    def __init__(self, *known: dict[str, Any]) -> None:
        super().__init__(answer={})
        self.known = {ObjectRef(item["metadata"]["namespace"], item["metadata"]["name"]): item for item in known}

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.known.get(ref)

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.known.values())


def named(name: str, namespace: str, *entries: dict[str, Any]) -> dict[str, Any]:
    obj = identity(*entries, column="")
    obj["metadata"] = {**obj["metadata"], "name": name, "namespace": namespace}
    return obj


def test_a_peer_that_appears_or_goes_asks_a_count_of_the_identities_publishing_in_its_namespace_only() -> None:
    here = named("here", "ids", entry("main", peers=0))
    elsewhere = named("elsewhere", "ids", {**entry("main", peers=0), "namespace": "other-pools"})
    unpublished = named("unpublished", "ids", entry("main", peers=0, published=False))
    counts = PeerCounts(Watching(here, elsewhere, unpublished), Listed({}))  # type: ignore[arg-type]
    peer = ObjectRef("pools", "member")
    counts.peer_changed(peer, {"metadata": {"name": "member", "namespace": "pools"}})
    assert counts._requested == {ObjectRef("ids", "here")}
    counts._requested.clear()
    counts.peer_changed(peer, {"metadata": {"name": "member", "namespace": "pools", "resourceVersion": "2"}})
    assert counts._requested == set(), "a change of a Peer already known asks no count"
    counts.peer_changed(peer, None)
    assert counts._requested == {ObjectRef("ids", "here")}, "a Peer that went asks a count"


def test_requests_made_while_a_count_runs_are_counted_once_after_it() -> None:
    here = named("here", "ids", entry("main", peers=0))
    main = selector(Scope("here", "ids", None, "pools", "pool", "main"))
    stop = threading.Event()
    peers = Listed({main: 1})
    counted = threading.Event()
    release = threading.Event()
    first = True

    class Held(Listed):
        def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
            nonlocal first
            if first:
                first = False
                counted.set()
                release.wait(5)
            return peers.list(namespace, label_selector=label_selector)

    counts = PeerCounts(Watching(here), Held({}))  # type: ignore[arg-type]
    worker = threading.Thread(target=counts.run, args=(stop,), daemon=True)
    worker.start()
    try:
        counts.request(ObjectRef("ids", "here"))
        assert counted.wait(5)
        for _ in range(10):
            counts.request(ObjectRef("ids", "here"))
        release.set()
        deadline = time.monotonic() + 5
        while len(peers.selectors) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert len(peers.selectors) == 2, "ten requests during a count make one count after it"
    finally:
        stop.set()
        worker.join(timeout=5)
    assert not worker.is_alive()


def test_a_count_after_its_own_write_reads_that_write_until_the_watch_delivers_it() -> None:
    """Under load the Identity watch delivers the agent's own status write late: a count in between read the old
    status, wrote the same counts again on the old resourceVersion and was refused (409), one wasted write per
    Peer event (27 writes for 25 changes in a suite run)."""
    stale = identity(entry("main", peers=0), column="main=0")
    main = selector(Scope("cluster-a", "ids", None, "pools", "pool", "main"))
    written = identity(entry("main", peers=1), column="main=1")
    written["metadata"]["resourceVersion"] = "42"
    identities = Identities(answer=written, cached=stale)
    peers = Listed({main: 1})
    counts = PeerCounts(identities, peers)  # type: ignore[arg-type]
    assert counts(stale) is True
    assert counts(stale) is False, "the watch still has version 41: the count reads its own write, 42"
    assert len(identities.patches) == 1
    peers.counts[main] = 2  # another Peer: written on top of the agent's own write
    assert counts(stale) is True
    assert identities.patches[-1][1]["metadata"]["resourceVersion"] == "42"
    # The watch moves on (the role wrote, 50): the cache is read again, whatever this count wrote before.
    by_the_role = identity(entry("main", peers=0), column="main=0")
    by_the_role["metadata"]["resourceVersion"] = "50"
    identities.cached = by_the_role
    assert counts(stale) is True
    assert identities.patches[-1][1]["metadata"]["resourceVersion"] == "50"
