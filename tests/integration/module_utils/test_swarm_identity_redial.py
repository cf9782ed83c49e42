"""A member whose node is connected but does not serve its document gets one redial per round (issue 20).

At 50 members on one machine, a node sometimes connected to a member without a
working bitswap stream to it (the connection's protocol identification raced
under load): every ``cat`` of that member's document waited its full timeout,
round after round, and the member never became a Peer. Closing the connection
and dialling again brings the stream back; a discovery round now does that
once per publisher whose document timed out while its node is connected, and
fetches again.

Real: two kubo v0.43.1 nodes of one private swarm; the stalled stream is
stood in for by a client whose first ``cat`` times out, since the race itself
cannot be produced on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient, KuboTimeout
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate

pytestmark = pytest.mark.integration


class StallingClient(KuboClient):
    """A real client whose first ``stalls`` fetches of a document time out, as over a stream that never opened."""

    def __init__(self, api_url: str, *, stalls: int) -> None:
        super().__init__(api_url)
        self.stalls = stalls
        self.calls: list[str] = []

    def cat(self, path: str, **kwargs: Any) -> bytes:
        self.calls.append(f"cat {path}")
        if self.stalls > 0:
            self.stalls -= 1
            raise KuboTimeout(f"kubo at {self.node} did not answer cat", endpoint="/api/v0/cat", node=self.node)
        return super().cat(path, **kwargs)

    def swarm_disconnect(self, *addresses: str, **kwargs: Any) -> list[str]:
        self.calls.append(f"disconnect {' '.join(addresses)}")
        return super().swarm_disconnect(*addresses, **kwargs)

    def swarm_connect(self, *addresses: str, **kwargs: Any) -> list[str]:
        self.calls.append(f"connect {' '.join(addresses)}")
        return super().swarm_connect(*addresses, **kwargs)


def published_member(
    kubo_node: Callable[..., Any], key_text: str, key: bytes, *, name: str = "member"
) -> tuple[Any, Announce]:
    node = kubo_node(key_text, name=name)
    with KuboClient(node.api_url) as kubo:
        swarm = SwarmIdentity(kubo, key)
        outcome = swarm.publish(
            owner="ns/member",
            document=IdentityDocument(publisher="", sequence=0, issued_at="", name="Member", url="https://127.0.0.1:1"),
            kubeconfig=None,
        )
    assert outcome.published is not None
    return node, Announce(node.peer_id, outcome.published.cid, outcome.published.sequence)


def stalled_round(kubo_node: Callable[..., Any], *, stalls: int, connected: bool = True) -> tuple[Any, Announce, Any]:
    """A watcher's discovery round over a member's announcement, its first ``stalls`` fetches timing out.

    Returns the member's node, its announcement and what the round found, with the watcher's calls, and whether
    the watcher is connected to the member afterwards.
    """
    key = generate()
    member, announce = published_member(kubo_node, key.text, key.key)
    watcher = kubo_node(key.text, name="watcher", bootstrap=[member.swarm_addr] if connected else [])
    with StallingClient(watcher.api_url, stalls=stalls) as kubo:
        assert (member.peer_id in {peer["Peer"] for peer in kubo.swarm_peers()}) == connected
        swarm = SwarmIdentity(kubo, key.key)
        swarm.remember([announce])
        found, _ = swarm.discover(window=0, quiet=0, fresh_within=90, listen=False)
        still_connected = member.peer_id in {peer["Peer"] for peer in kubo.swarm_peers()}
    return member, announce, (found, kubo.calls, still_connected)


def test_a_connected_member_whose_document_stalls_is_redialled_once_and_then_found(
    kubo_node: Callable[..., Any],
) -> None:
    member, announce, (found, calls, connected) = stalled_round(kubo_node, stalls=1)
    assert set(found.identities) == {member.peer_id}, found.rejected
    assert found.identities[member.peer_id].document.name == "Member"
    assert calls == [
        f"cat {announce.cid}",
        f"disconnect /p2p/{member.peer_id}",
        f"connect /p2p/{member.peer_id}",
        f"cat {announce.cid}",
    ]
    assert connected, "the redial connected again"


def test_a_member_that_stalls_again_after_the_redial_is_refused_for_this_round_without_a_second_redial(
    kubo_node: Callable[..., Any],
) -> None:
    member, _, (found, calls, _) = stalled_round(kubo_node, stalls=10)
    assert found.identities == {}
    assert [rejection.sender for rejection in found.rejected] == [member.peer_id]
    assert [call.split()[0] for call in calls] == ["cat", "disconnect", "connect", "cat"]


def test_a_member_whose_node_is_not_connected_is_not_dialled_by_discovery(kubo_node: Callable[..., Any]) -> None:
    """Reaching members is the bootstrap list's and the swarm's work; discovery only restarts a stalled connection."""
    member, announce, (found, calls, _) = stalled_round(kubo_node, stalls=1, connected=False)
    assert found.identities == {}
    assert calls == [f"cat {announce.cid}", f"disconnect /p2p/{member.peer_id}"]


class MeetingClient(KuboClient):
    """A real client whose first fetch of each document waits until every other document's fetch has begun.

    Fetched one after another, the first fetch never sees the second begin: it times out (and the round redials).
    """

    def __init__(self, api_url: str, *, documents: int) -> None:
        super().__init__(api_url)
        self.meeting = threading.Barrier(documents, timeout=20)
        self.calls: list[str] = []
        self._waited: set[str] = set()
        self._lock = threading.Lock()

    def cat(self, path: str, **kwargs: Any) -> bytes:
        with self._lock:
            self.calls.append(f"cat {path}")
            first = path not in self._waited
            self._waited.add(path)
        if first:
            try:
                self.meeting.wait()
            except threading.BrokenBarrierError:
                raise KuboTimeout("no other fetch began", endpoint="/api/v0/cat", node=self.node) from None
        return super().cat(path, **kwargs)

    def swarm_disconnect(self, *addresses: str, **kwargs: Any) -> list[str]:
        self.calls.append(f"disconnect {' '.join(addresses)}")
        return super().swarm_disconnect(*addresses, **kwargs)


def test_a_round_fetches_the_members_documents_at_once_so_one_that_does_not_come_holds_no_other(
    kubo_node: Callable[..., Any],
) -> None:
    key = generate()
    members = [published_member(kubo_node, key.text, key.key, name=f"member{index}") for index in range(3)]
    watcher = kubo_node(key.text, name="watcher", bootstrap=[node.swarm_addr for node, _ in members])
    with MeetingClient(watcher.api_url, documents=len(members)) as kubo:
        swarm = SwarmIdentity(kubo, key.key)
        swarm.remember([announce for _, announce in members])
        found, _ = swarm.discover(window=0, quiet=0, fresh_within=90, listen=False)
    assert set(found.identities) == {node.peer_id for node, _ in members}, found.rejected
    assert sorted(kubo.calls) == sorted(f"cat {announce.cid}" for _, announce in members), "no redial, no refetch"
