"""The agent's cache of Identities, SwarmPools and Peers (cluster_discovery_agent.kube.Watched) on a real API server.

WATCH_NAMESPACE may name several namespaces, comma separated, as operator-sdk reads it; the agent then
lists and watches each of them, and nothing of the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import Scope, selector
from cluster_discovery_agent.cli import watch_namespaces
from cluster_discovery_agent.kube import CacheFirst, ObjectRef, Watched, equality_labels
from cluster_discovery_agent.objects import PEERS, SWARM_POOLS, KindObjects
from cluster_discovery_operator.kube import KubeClient, Resource
from cluster_discovery_operator.settings import KubeSettings
from kubernetes import client

from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration

CRD = Path(__file__).resolve().parents[3] / "config" / "crd" / "bases"
GROUP, VERSION = "peerdiscovery.irt-saintexupery.com", "v1alpha1"


def identity(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Identity",
        "metadata": {"name": name},
        "spec": {"name": name, "swarms": [{"namespace": "x", "swarmPool": "p", "swarm": "s"}]},
    }


def kind_in_namespaces(
    control_plane: ControlPlane, plural: str, prefixes: tuple[str, ...]
) -> tuple[list[str], client.ApiClient, client.CustomObjectsApi]:
    """The product's CRD of ``plural`` established, a new namespace per prefix, and a client to write objects."""
    control_plane.kubectl("apply", "-f", str(CRD / f"{GROUP}_{plural}.yaml"))
    control_plane.wait_established(f"{plural}.{GROUP}")
    namespaces = [control_plane.create_namespace(prefix) for prefix in prefixes]
    api = control_plane.api_client()
    return namespaces, api, client.CustomObjectsApi(api)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_watch_namespace_is_read_as_operator_sdk_reads_it() -> None:
    assert watch_namespaces("team-a, team-b,,team-a") == ["team-a", "team-b", "team-a"]
    assert watch_namespaces("") == watch_namespaces(None) == []


def test_several_watched_namespaces_are_each_listed_and_watched_and_no_other(control_plane: ControlPlane) -> None:
    (first, second, other), api, custom = kind_in_namespaces(control_plane, "identities", ("wa", "wb", "wc"))
    for namespace in (first, second, other):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "identities", identity("before"))

    kube = KubeClient(KubeSettings(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name))
    watched = Watched(kube, watch_namespaces(f"{first},{second},{first}"), plural="identities")
    changes: list[tuple[ObjectRef, bool]] = []
    lock = threading.Lock()

    def on_change(ref: ObjectRef, obj: dict[str, Any] | None) -> None:
        with lock:
            changes.append((ref, obj is not None))

    stop = threading.Event()
    runner = threading.Thread(target=watched.run, args=(on_change, stop), daemon=True)
    runner.start()
    try:
        refs = lambda: {ObjectRef(o["metadata"]["namespace"], o["metadata"]["name"]) for o in watched.snapshot()}  # noqa: E731
        wait_until(lambda: refs() == {ObjectRef(first, "before"), ObjectRef(second, "before")}, "both listings")

        for namespace in (second, other):
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "identities", identity("after"))
        custom.delete_namespaced_custom_object(GROUP, VERSION, first, "identities", "before")
        wait_until(lambda: refs() == {ObjectRef(second, "before"), ObjectRef(second, "after")}, "the watched changes")
        with lock:
            assert (ObjectRef(first, "before"), False) in changes
            assert (ObjectRef(second, "after"), True) in changes
            assert not [ref for ref, _present in changes if ref.namespace == other]
    finally:
        stop.set()
        runner.join(timeout=10)
        api.close()
    assert not runner.is_alive(), "the watches did not end when told to stop"


class CountingKindObjects(KindObjects):
    """The API server's reads, counted: what the cache saves."""

    def __init__(self, kube: KubeClient, resource: Resource) -> None:
        super().__init__(kube, resource)
        self.asked: list[tuple[str, str]] = []

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.asked.append((namespace, name))
        return super().get(name, namespace)

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.asked.append((namespace, f"list {label_selector}"))
        return super().list(namespace, label_selector=label_selector)


def swarm_pool(name: str, annotation: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SwarmPool",
        "metadata": {"name": name, "annotations": {"example.com/mark": annotation}},
        "spec": {
            "swarms": [
                {
                    "name": "s",
                    "network": {"loadBalancer": {"loadBalancerIP": "auto"}, "swarmPort": 4001, "apiPort": 5001},
                }
            ]
        },
    }


def test_swarm_pools_are_read_from_the_watch_where_it_covers_the_namespace(control_plane: ControlPlane) -> None:
    (watched_namespace, other), api, custom = kind_in_namespaces(control_plane, "swarmpools", ("cw", "cx"))
    for namespace in (watched_namespace, other):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "swarmpools", swarm_pool("pool", "one"))

    kube = KubeClient(KubeSettings(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name))
    watched = Watched(kube, [watched_namespace], plural="swarmpools")
    asked = CountingKindObjects(kube, SWARM_POOLS)
    pools = CacheFirst(watched, asked)

    def mark(namespace: str) -> str | None:
        pool = pools.get("pool", namespace)
        return None if pool is None else str(pool["metadata"]["annotations"]["example.com/mark"])

    # Before the watch has listed, the cache knows nothing: the API server is asked.
    assert mark(watched_namespace) == "one"
    assert asked.asked == [(watched_namespace, "pool")]

    stop = threading.Event()
    runner = threading.Thread(target=watched.run, args=(None, stop), daemon=True)
    runner.start()
    try:
        wait_until(lambda: watched.covers(watched_namespace), "the SwarmPools listed")
        asked.asked.clear()
        assert mark(watched_namespace) == "one"
        assert pools.get("absent", watched_namespace) is None
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            watched_namespace,
            "swarmpools",
            "pool",
            {"metadata": {"annotations": {"example.com/mark": "two"}}},
        )
        wait_until(lambda: mark(watched_namespace) == "two", "the change seen through the watch")
        assert asked.asked == [], "a watched namespace's SwarmPools were read from the API server"

        # A namespace the agent does not watch (a SwarmPool that admits the Identity's namespace) is asked.
        assert mark(other) == "one"
        assert asked.asked == [(other, "pool")]
    finally:
        stop.set()
        runner.join(timeout=10)
        api.close()


def peer(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Peer",
        "metadata": {"name": name, "labels": labels},
        "spec": {"name": name},
    }


def test_only_equality_selectors_are_answered_from_the_cache() -> None:
    assert equality_labels("b=2,a=1") == {"a": "1", "b": "2"}
    assert equality_labels("") == equality_labels(None) == {}
    for asked_of_the_api_server in ("a!=1", "a==1", "a in (1,2)", "a notin (1)", "a", "!a", "a=1,b"):
        assert equality_labels(asked_of_the_api_server) is None, asked_of_the_api_server
    # The fast path's own selector (peer_sync.selector) is one the cache answers, with the Scope's labels.
    scope = Scope("id", "id-ns", None, "pool-ns", "pool", "main")
    assert equality_labels(selector(scope)) == scope.labels


def test_peers_are_listed_from_the_watch_with_their_label_selector(control_plane: ControlPlane) -> None:
    (watched_namespace, other), api, custom = kind_in_namespaces(control_plane, "peers", ("pw", "px"))
    mine, theirs = {"example.com/identity": "mine", "example.com/swarm": "s"}, {"example.com/identity": "theirs"}
    for namespace in (watched_namespace, other):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "peers", peer("one", mine))
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "peers", peer("two", theirs))

    kube = KubeClient(KubeSettings(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name))
    watched = Watched(kube, [watched_namespace], plural="peers")
    asked = CountingKindObjects(kube, PEERS)
    peers = CacheFirst(watched, asked)
    mine_selector = "example.com/identity=mine,example.com/swarm=s"

    def names(namespace: str, label_selector: str | None = mine_selector) -> list[str]:
        return sorted(item["metadata"]["name"] for item in peers.list(namespace, label_selector=label_selector))

    stop = threading.Event()
    runner = threading.Thread(target=watched.run, args=(None, stop), daemon=True)
    runner.start()
    try:
        wait_until(lambda: watched.covers(watched_namespace), "the Peers listed")
        assert names(watched_namespace) == ["one"]
        assert names(watched_namespace, None) == ["one", "two"]
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, watched_namespace, "peers", "two", {"metadata": {"labels": mine}}
        )
        wait_until(lambda: names(watched_namespace) == ["one", "two"], "the relabelled Peer seen through the watch")
        assert asked.asked == [], "a watched namespace's Peers were listed by the API server"

        # What the cache cannot answer, the API server does: a set-based selector, a namespace not watched.
        assert names(watched_namespace, "example.com/identity in (theirs)") == []
        assert names(other) == ["one"]
        assert asked.asked == [
            (watched_namespace, "list example.com/identity in (theirs)"),
            (other, f"list {mine_selector}"),
        ]
    finally:
        stop.set()
        runner.join(timeout=10)
        api.close()
