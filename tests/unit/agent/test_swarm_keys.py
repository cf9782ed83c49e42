"""A fast-path pass reads a swarm's key Secret only for a topic it has no key of (issue 20).

At 50 members that read was 30-300 ms of each update. A key kept for a topic is that swarm's key, since the topic
is derived from it; a Secret given a new key makes a new topic, whose first pass reads it again.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import topic_for
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate
from cluster_discovery_agent.swarms import SwarmKeys, SwarmRefused, resolve

PEER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"


class Objects:
    """A namespace's objects by name, counting reads."""

    def __init__(self, **objects: dict[str, Any]) -> None:
        self.objects = objects
        self.reads = 0

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.objects.get(name)


def pool(*, admits: str = "") -> dict[str, Any]:
    annotations = {"peerdiscovery.irt-saintexupery.com/admit-identity-namespaces": admits} if admits else {}
    return {
        "metadata": {"name": "pool", "namespace": "ns", "annotations": annotations},
        "spec": {"swarms": [{"name": "main", "swarmDefinition": {"bootstrapNodeAddresses": []}}]},
        "status": {"status": {"main": {"API": "http://10.0.0.5:5001", "Peer Id": PEER}}},
    }


def key_secret(text: str) -> dict[str, Any]:
    return {"data": {"swarm-key": base64.b64encode(text.encode()).decode()}}


def test_the_key_secret_is_read_once_per_topic() -> None:
    first, second = generate(), generate()
    pools, secrets, keys = Objects(pool=pool()), Objects(**{"pool-main-swarm-key": key_secret(first.text)}), SwarmKeys()
    where = {"identity_namespace": "ns", "namespace": "ns", "pool": "pool", "swarm": "main", "keys": keys}
    for _ in range(3):
        assert resolve(pools, secrets, topic=topic_for(first.key), **where).key == first.key
    assert secrets.reads == 1

    # The Secret is given a new key: the Identity's status then names the new key's topic.
    secrets.objects["pool-main-swarm-key"] = key_secret(second.text)
    assert resolve(pools, secrets, topic=topic_for(second.key), **where).key == second.key
    assert resolve(pools, secrets, topic=topic_for(second.key), **where).key == second.key
    assert secrets.reads == 2


def test_a_key_kept_does_not_skip_the_admission_check() -> None:
    """Only the Secret read is saved: the SwarmPool (from the watch's cache) is judged at every pass."""
    key = generate()
    pools, secrets, keys = Objects(pool=pool()), Objects(**{"pool-main-swarm-key": key_secret(key.text)}), SwarmKeys()
    where = {"namespace": "ns", "pool": "pool", "swarm": "main", "topic": topic_for(key.key), "keys": keys}
    resolve(pools, secrets, identity_namespace="ns", **where)
    with pytest.raises(SwarmRefused):
        resolve(pools, secrets, identity_namespace="other", **where)
    pools.objects["pool"] = pool(admits="other")
    node = resolve(pools, secrets, identity_namespace="other", **where)
    assert (node.key, secrets.reads) == (key.key, 1)
