"""Faults a federation lives through, each once, on two whole test-bed clusters (issue 20).

Clusters A and B share one private swarm, each publishing an Identity; each shows the other as an Online Peer.
Then, one fault at a time, each test checks that the federation heals by itself and that changes made during or
after the fault still reach the other member:

- A's kubo node is killed (SIGKILL, as a crash or the OOM killer): the kubelet restarts it on its repository, and
  changes flow both ways again;
- A's operator is killed (SIGKILL) and A's Identity deleted while it is down: its module zygote goes with it;
  A's agent retracts the identity without it (B removes the Peer), the finalizer holds the Identity and its account
  until the operator, started again, completes the deletion; the Identity created again is seen again;
- B's etcd is killed and started again: the API server, B's operator and agent recover their connections and
  watches, and changes flow both ways again.

A member whose node stops answering for longer than the Offline threshold and comes back is the walkthrough's
(tests/e2e: MemberOffline fires and resolves; the member is Online again as soon as it is heard).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testbed import proctree
from testbed.controlplane import KubectlError
from testbed.federation import Cluster, Federation, form_swarm, identity, peers_by_name

NS = "faults"
POOL = "pool"
NODE_POD = f"{POOL}-{POOL}-ss-0"
TIMEOUT = 300


@dataclass
class Members:
    a: Cluster
    b: Cluster

    def identity(self, cluster: Cluster, description: str) -> dict[str, Any]:
        name = cluster.name.rsplit("-", 1)[-1]  # faults-a -> a
        return identity(
            name, NS, swarm_pool=POOL, swarm=POOL, display_name=name.upper(), description=description,
            url=cluster.control_plane.server, categories=["faults"],
        )  # fmt: skip

    def peer(self, viewer: Cluster, name: str) -> dict[str, Any] | None:
        """``viewer``'s Peer of the member that published ``name``; None while the API server does not answer."""
        try:
            return peers_by_name(viewer, NS).get(name)
        except KubectlError:
            return None

    def shows(self, viewer: Cluster, name: str, description: str) -> None:
        """Wait until ``viewer`` shows ``name`` Online with ``description``."""

        def shown() -> bool:
            peer = self.peer(viewer, name) or {}
            return (peer.get("status") or {}).get("status") == "Online" and peer["spec"].get(
                "description"
            ) == description

        viewer.wait_for(shown, f"{viewer.name} shows {name} Online as {description!r}", timeout=TIMEOUT, interval=0.5)

    def publish(self, cluster: Cluster, description: str) -> None:
        cluster.apply([self.identity(cluster, description)])

    def both_ways(self, tag: str) -> None:
        """Each member changes its description; the other shows the change."""
        self.publish(self.a, f"A {tag}")
        self.publish(self.b, f"B {tag}")
        self.shows(self.b, "A", f"A {tag}")
        self.shows(self.a, "B", f"B {tag}")


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Members]:
    with Federation(tmp_path_factory.mktemp("faults")) as federation:
        fed = Members(federation.add_cluster("faults-a"), federation.add_cluster("faults-b"))
        form_swarm([fed.a, fed.b], NS, pool=POOL)
        fed.both_ways("first")
        yield fed


def node_pid(cluster: Cluster) -> int:
    assert cluster.kubelet is not None
    pod = cluster.kubelet.pod(NS, NODE_POD)
    assert pod is not None and pod.pid is not None, f"{cluster.name}'s node runs no process"
    return pod.pid


def test_a_crashed_kubo_node_is_restarted_and_changes_flow_both_ways_again(members: Members) -> None:
    a = members.a
    assert a.kubelet is not None
    first = a.kubelet.pod(NS, NODE_POD)
    assert first is not None and first.pid is not None
    os.kill(first.pid, signal.SIGKILL)  # the node's own process, started by this test's kubelet stand-in

    def restarted() -> bool:
        pod = a.kubelet.pod(NS, NODE_POD) if a.kubelet is not None else None
        return pod is not None and pod.ready and pod.pid not in (None, first.pid)

    a.wait_for(restarted, "A's node runs again", timeout=TIMEOUT)
    restarted_pod = a.kubelet.pod(NS, NODE_POD)
    assert restarted_pod is not None
    assert restarted_pod.peer_id == first.peer_id, "the node keeps its identity (its repository is on the volume)"
    members.both_ways("after A's node crashed")


def zygotes_of(cluster: Cluster) -> list[int]:
    """The operator's module and playbook zygotes (their servers, not their clients)."""
    assert cluster.operator is not None
    return [
        *proctree.children_running(cluster.operator.pid, proctree.MODULE_ZYGOTE),
        *proctree.children_running(cluster.operator.pid, proctree.PLAYBOOK_ZYGOTE),
    ]


def test_a_deletion_made_while_the_operator_is_killed_completes_once_it_is_started_again(members: Members) -> None:
    a, b = members.a, members.b
    assert a.operator is not None
    zygotes = zygotes_of(a)
    assert len(zygotes) == 2, f"the operator runs one module zygote and one playbook zygote: {zygotes}"

    a.operator.stop(crash=True)
    a.kubectl("delete", "identity", "a", "-n", NS, "--wait=false")
    deadline = time.monotonic() + 30
    while any(proctree.alive(zygote) for zygote in zygotes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(proctree.alive(zygote) for zygote in zygotes), "the killed operator's zygotes outlived it"
    # The retraction does not wait for the operator: A's agent publishes the tombstone, and B removes its Peer.
    b.wait_for(lambda: members.peer(b, "A") is None, "B removed its Peer of A", timeout=TIMEOUT)
    # The rest of the deletion does: the finalizer holds the Identity, and its account stays.
    time.sleep(3)
    assert (a.get("identity", "a", namespace=NS) or {}).get("metadata", {}).get("deletionTimestamp")
    assert a.get("serviceaccount", "a", namespace=NS) is not None

    a.operator.start()
    a.wait_for(lambda: a.get("identity", "a", namespace=NS) is None, "A's Identity is deleted", timeout=TIMEOUT)
    a.wait_for(lambda: a.get("serviceaccount", "a", namespace=NS) is None, "A's account is gone", timeout=TIMEOUT)
    assert len(zygotes_of(a)) == 2, "the operator started again runs its two zygotes"

    members.publish(a, "A again")
    members.shows(b, "A", "A again")
    members.both_ways("after A's operator was killed")


def test_an_etcd_crash_is_survived_by_the_api_server_the_operator_and_the_agent(members: Members) -> None:
    b = members.b
    assert b.operator is not None and b.agent is not None
    pids = (b.operator.pid, b.agent.pid)
    b.control_plane.restart_etcd(down_for=5)
    members.both_ways("after B's etcd crashed")
    assert (b.operator.pid, b.agent.pid) == pids and b.operator.running() and b.agent.running(), (
        "the operator and the agent recovered without a restart"
    )
