"""What a fast-path pass keeps between passes so that it does not ask again: the node's RPC API token.

At 50 members each piece of news cost the agent three API reads before any
discovery (issue 20); the token it keeps instead must still follow a SwarmPool
made anew, whose node asks for a new one.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboError
from cluster_discovery_agent.channels import Channel
from cluster_discovery_agent.fastpath import FastPath
from cluster_discovery_agent.kube import Watched
from cluster_discovery_agent.objects import IDENTITIES, PEERS, SWARM_POOLS
from cluster_discovery_agent.swarms import NodeTokens
from cluster_discovery_operator.kube import KubeClient

CHANNEL = Channel(namespace="ns", swarm_pool="pool", swarm="main", api_url="http://127.0.0.1:5001", topic="t")
ENTRY = {"namespace": "ns", "swarmPool": "pool", "swarm": "main"}


class TokenSecrets:
    """The SwarmPool's token Secret, which a SwarmPool made anew replaces."""

    def __init__(self) -> None:
        self.token = "b2xk"  # base64 of "old"
        self.reads = 0

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.reads += 1
        return {"data": {"token": self.token}}


class FakeWatched:
    def __init__(self, resource: Any) -> None:
        self.resource = resource


def fast_path(tokens: NodeTokens) -> FastPath:
    return FastPath(
        cast(KubeClient, object()),
        cast(Watched, FakeWatched(IDENTITIES)),
        cast(Watched, FakeWatched(SWARM_POOLS)),
        cast(Watched, FakeWatched(PEERS)),
        offline_after=90,
        tokens=tokens,
    )


def refused(status: int) -> KuboError:
    return KuboError("refused", endpoint="id", node=CHANNEL.api_url, status=status)


def test_the_token_is_read_once_and_again_after_the_node_refused_it(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = TokenSecrets()
    tokens = NodeTokens(secrets)
    path = fast_path(tokens)
    accepted = ["Bearer old"]
    seen: list[str | None] = []

    def apply(identity: dict[str, Any], entry: dict[str, Any], channel: Channel) -> None:
        authorization = tokens.authorization(namespace="ns", pool="pool", swarm="main")
        seen.append(authorization)
        if authorization not in accepted:
            raise refused(401)

    monkeypatch.setattr(path, "_apply", apply)
    path._apply_once_authorized({}, ENTRY, CHANNEL)
    path._apply_once_authorized({}, ENTRY, CHANNEL)
    assert (secrets.reads, seen) == (1, ["Bearer old", "Bearer old"])

    secrets.token, accepted[0] = "bmV3", "Bearer new"  # base64 of "new": the SwarmPool was made anew
    seen.clear()
    path._apply_once_authorized({}, ENTRY, CHANNEL)
    assert (secrets.reads, seen) == (2, ["Bearer old", "Bearer new"])


@pytest.mark.parametrize(
    ("status", "passes"),
    [
        (500, 1),  # a node that fails otherwise is not asked again, and the token is kept
        (403, 2),  # a token still refused once read again is reported after that one more try
    ],
)
def test_a_pass_that_keeps_failing_is_reported(monkeypatch: pytest.MonkeyPatch, status: int, passes: int) -> None:
    secrets = TokenSecrets()
    tokens = NodeTokens(secrets)
    path = fast_path(tokens)
    calls: list[str | None] = []

    def apply(identity: dict[str, Any], entry: dict[str, Any], channel: Channel) -> None:
        calls.append(tokens.authorization(namespace="ns", pool="pool", swarm="main"))
        raise refused(status)

    monkeypatch.setattr(path, "_apply", apply)
    with pytest.raises(KuboError):
        path._apply_once_authorized({}, ENTRY, CHANNEL)
    assert (calls, secrets.reads) == (["Bearer old"] * passes, passes)
