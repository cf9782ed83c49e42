"""The bounds of one node's identity state and discovery rounds, on real kubo nodes (issue 14, hostile input).

- 2,000 publishers announcing (each a member's signed message, as many as a
  member with many keys could send) leave heard.json readable and at most
  MAX_HEARD_MEMBERS entries: before, the file outgrew its reader's limit and
  discovery failed for good.
- A heard.json that somebody else wrote past that limit is rebuilt, not fatal.
- Documents that no node serves (announced, then gone) cost one round at most
  ROUND_DEADLINE_SECONDS and are refused, not waited on 30 s three times each.

Real: kubo v0.43.1 nodes of the test bed; the state lives in the node's MFS.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    MAX_HEARD_MEMBERS,
    MAX_STATE_BYTES,
    ROUND_DEADLINE_SECONDS,
    SwarmIdentity,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate

pytestmark = pytest.mark.integration

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def fake_peer_id(rng: random.Random) -> str:
    return "12D3KooW" + "".join(rng.choice(_BASE58) for _ in range(44))


def test_a_flood_of_2000_publishers_leaves_heard_json_bounded_and_readable(kubo_node: Callable[..., Any]) -> None:
    key = generate()
    node = kubo_node(key.text, name="flooded")
    rng = random.Random(14)
    with KuboClient(node.api_url) as kubo:
        swarm = SwarmIdentity(kubo, key.key)
        cid = kubo.add(b"any document", cid_version=1)
        for batch in range(20):
            swarm.remember([Announce(fake_peer_id(rng), cid, batch) for _ in range(100)])
        raw = kubo.files_read(f"{swarm.folder}/heard.json", max_bytes=MAX_STATE_BYTES)
        assert raw is not None and len(raw) <= MAX_STATE_BYTES
        heard = swarm.heard()
        assert len(heard) == MAX_HEARD_MEMBERS
        assert len(json.loads(raw)) == MAX_HEARD_MEMBERS


def test_a_heard_json_past_the_limit_is_rebuilt(kubo_node: Callable[..., Any]) -> None:
    key = generate()
    node = kubo_node(key.text, name="overwritten")
    with KuboClient(node.api_url) as kubo:
        swarm = SwarmIdentity(kubo, key.key)
        kubo.files_write(f"{swarm.folder}/heard.json", b"{" + b" " * (MAX_STATE_BYTES + 10) + b"}")
        assert swarm.heard() == {}
        cid = kubo.add(b"a member's document", cid_version=1)
        member = fake_peer_id(random.Random(1))
        assert swarm.remember([Announce(member, cid, 1)]) is True
        assert set(swarm.heard()) == {member}


def test_documents_nobody_serves_cost_one_round_deadline_at_most(kubo_node: Callable[..., Any]) -> None:
    key = generate()
    node = kubo_node(key.text, name="waiting")
    elsewhere = kubo_node(name="elsewhere")  # another swarm: what it holds, node cannot fetch
    rng = random.Random(7)
    with KuboClient(elsewhere.api_url) as kubo:
        gone = [kubo.add(f"document {n}".encode(), cid_version=1) for n in range(6)]
    with KuboClient(node.api_url) as kubo:
        swarm = SwarmIdentity(kubo, key.key)
        members = [fake_peer_id(rng) for _ in gone]
        swarm.remember([Announce(member, cid, 1) for member, cid in zip(members, gone, strict=True)])
        started = time.monotonic()
        found, _ = swarm.discover(window=0, quiet=0, fresh_within=90, listen=False)
        elapsed = time.monotonic() - started
    assert found.identities == {}
    assert {rejection.sender for rejection in found.rejected} == set(members)
    # One deadline for the round, plus the last fetch's own timeout and its retries' slack.
    assert elapsed < ROUND_DEADLINE_SECONDS + 12, f"the round took {elapsed:.1f} s"
