"""The PEERS column counted from the agent's watches on a real API server (cluster_discovery_agent.peer_counts).

At 50 members a newcomer's agent creates 49 Peers in a row; counting each time from the API server listed
1 + 2 + ... + 49 Peers (with their status writes, about half of the fast path's time in a profile of the scale
benchmark, issue 20). The count now follows the Peer watch: a Peer that appears or goes asks for a count, on a
thread of its own, from the cache, and requests that arrive while one count runs are counted once after it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import Scope
from cluster_discovery_agent.kube import CacheFirst, ObjectRef, Watched
from cluster_discovery_agent.objects import PEERS
from cluster_discovery_agent.peer_counts import PeerCounts
from cluster_discovery_operator.kube import KubeClient
from cluster_discovery_operator.settings import KubeSettings

from testbed.controlplane import ControlPlane
from tests.integration.agent.test_watched import (
    CRD,
    GROUP,
    VERSION,
    CountingKindObjects,
    kind_in_namespaces,
    wait_until,
)

pytestmark = pytest.mark.integration


class CountedWrites(Watched):
    """The Identity watch, with its status writes counted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0

    def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.writes += 1
        return super().patch_status(ref, patch)


def test_peers_that_appear_and_go_are_counted_from_the_watch_not_listed_again(control_plane: ControlPlane) -> None:
    (namespace,), api, custom = kind_in_namespaces(control_plane, "identities", ("pc",))
    control_plane.kubectl("apply", "-f", str(CRD / f"{GROUP}_peers.yaml"))
    control_plane.wait_established(f"peers.{GROUP}")
    scope = Scope("counted", namespace, None, namespace, "pool", "main")
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "identities",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Identity",
            "metadata": {"name": "counted"},
            "spec": {"name": "counted", "swarms": [{"namespace": namespace, "swarmPool": "pool", "swarm": "main"}]},
        },
    )
    entry = {"namespace": namespace, "swarmPool": "pool", "swarm": "main", "published": True, "peers": 0}
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "identities", "counted", {"status": {"swarms": [entry], "peerCounts": "main=0"}}
    )

    kube = KubeClient(KubeSettings(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name))
    identities = CountedWrites(kube, [namespace], plural="identities")
    peers = Watched(kube, [namespace], plural="peers")
    asked = CountingKindObjects(kube, PEERS)
    counts = PeerCounts(identities, CacheFirst(peers, asked))
    stop = threading.Event()
    threads = [
        threading.Thread(target=identities.run, args=(lambda ref, obj: counts.request(ref), stop), daemon=True),
        threading.Thread(target=peers.run, args=(counts.peer_changed, stop), daemon=True),
        threading.Thread(target=counts.run, args=(stop,), daemon=True),
    ]
    for thread in threads:
        thread.start()

    def column() -> str:
        return str((identities.get(ObjectRef(namespace, "counted")) or {}).get("status", {}).get("peerCounts"))

    try:
        wait_until(lambda: peers.covers(namespace) and column() == "main=0", "the watches listed")
        asked.asked.clear()  # a count before the Peer watch had listed asked the API server, as it should
        for index in range(20):
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "peers", peer(f"m{index}", scope))
        wait_until(lambda: column() == "main=20", "the PEERS column counting 20 Peers")
        for index in range(5):
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "peers", f"m{index}")
        wait_until(lambda: column() == "main=15", "the PEERS column counting the 5 Peers deleted")

        # A round of the role that planned before those Peers existed writes its older count: counted again.
        stale = {**entry, "peers": 3}
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "identities", "counted", {"status": {"swarms": [stale], "peerCounts": "main=3"}}
        )
        wait_until(lambda: column() == "main=15", "the role's older count corrected")

        assert asked.asked == [], "the Peers of a watched namespace were listed by the API server"
        assert identities.writes <= 25 + 1, f"{identities.writes} status writes for 25 changes and one stale round"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        api.close()


def peer(name: str, scope: Scope) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Peer",
        "metadata": {"name": name, "labels": scope.labels},
        "spec": {"name": name},
    }
