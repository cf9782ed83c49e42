"""What the agent's listener (SwarmIdentity.serve) reports as news, on two real kubo nodes of one private swarm.

A new member or a higher sequence is news. A member heard again after a silence is news too (issue 19): its
Peer may have gone Offline meanwhile, and the fast path marks it Online as soon as the agent is told, instead
of at the identity role's next round.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce, topic_for
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate

pytestmark = pytest.mark.integration

ANNOUNCE_EVERY = 1.0  # the listener's own period; a member silent for two of them is "heard again"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_member_heard_again_after_a_silence_is_news_and_a_repeat_within_it_is_not(
    kubo_node: Callable[..., Any],
) -> None:
    key = generate()
    listener_node = kubo_node(key.text, name="listener")
    member_node = kubo_node(key.text, name="member", bootstrap=[listener_node.swarm_addr])
    topic = topic_for(key.key)
    news: list[dict[str, int]] = []
    stop = threading.Event()
    with KuboClient(listener_node.api_url) as listening, KuboClient(member_node.api_url) as member:
        member.swarm_connect(listener_node.swarm_addr)
        listener = SwarmIdentity(listening, key.key)
        thread = threading.Thread(
            target=listener.serve,
            kwargs={"stop": stop, "announce_every": ANNOUNCE_EVERY, "on_news": news.append, "refresh_every": 0.5},
            daemon=True,
        )
        thread.start()
        try:
            wait_until(lambda: topic in listener_node.pubsub_topics(), "the subscription")
            wait_until(lambda: listener_node.peer_id in member_node.pubsub_peers(topic), "the topic to spread")
            cid = member.add(b"the member's document", cid_version=1)
            announce = Announce(member_node.peer_id, cid, 5).encode()

            member.pubsub_pub(topic, announce)
            wait_until(lambda: len(news) == 1, "the first announcement to be news")
            member.pubsub_pub(topic, announce)  # the member's next announcement, on time
            time.sleep(1.0)
            assert len(news) == 1, "a repeat within the member's period was reported as news"

            time.sleep(2 * ANNOUNCE_EVERY + 0.5)  # the member falls silent, as when its node stops
            member.pubsub_pub(topic, announce)
            wait_until(lambda: len(news) == 2, "the member heard again after its silence to be news")
            assert news[-1] == {member_node.peer_id: 5}
        finally:
            stop.set()
            thread.join(timeout=10)
