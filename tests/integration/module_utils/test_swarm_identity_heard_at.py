"""A discovery round says when each member was last heard: a Peer turning Offline shows it as lastSeen (issue 20).

Real: two kubo v0.43.1 nodes of one private swarm; the watcher's heard.json,
as its agent's listener writes it, holds the member's announcement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import utc_time
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    SwarmIdentity,
    results,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("silent_for", [0.0, 600.0])
def test_a_round_reports_when_each_member_was_last_heard(kubo_node: Callable[..., Any], silent_for: float) -> None:
    key = generate()
    member = kubo_node(key.text, name="member")
    with KuboClient(member.api_url) as kubo:
        outcome = SwarmIdentity(kubo, key.key).publish(
            owner="ns/member",
            document=IdentityDocument(publisher="", sequence=0, issued_at="", name="Member", url="https://127.0.0.1:1"),
            kubeconfig=None,
        )
    assert outcome.published is not None
    announce = Announce(member.peer_id, outcome.published.cid, outcome.published.sequence)
    watcher = kubo_node(key.text, name="watcher", bootstrap=[member.swarm_addr])
    heard_at = time.time() - silent_for
    with KuboClient(watcher.api_url) as kubo:
        swarm = SwarmIdentity(kubo, key.key)
        swarm.remember([announce], heard_at={member.peer_id: heard_at})
        found, live = swarm.discover(window=0, quiet=0, fresh_within=90, listen=False)
    [entry] = results(found, live)["identities"]
    assert entry["peer_id"] == member.peer_id and entry["name"] == "Member"
    assert entry["live"] is (silent_for == 0.0)
    assert entry["heard_at"] == utc_time(heard_at)
