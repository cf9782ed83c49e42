"""A swarm node's RPC API token, kept between calls and read again when the node refuses it.

At 50 members each piece of news cost the agent three API reads before any
discovery (issue 20), so the token is read once; it must still follow a
SwarmPool made anew, whose node asks for a new one: the listener, a fast-path
pass, the publisher and the status reader all get their client from
:class:`NodeTokens`. The node is an HTTP stand-in answering as kubo's
API.Authorizations do (403, plain text).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import KubernetesError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboError
from cluster_discovery_agent.swarms import NodeTokens

from tests.unit.plugins.module_utils.http_stub import Recorded, Reply, Stub, http_stub, json_reply

WHERE = {"namespace": "ns", "pool": "pool", "swarm": "main"}


class TokenSecrets:
    """The SwarmPool's token Secret, which a SwarmPool made anew replaces."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.reads = 0
        self.away = False

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.away:
            raise KubernetesError("the API server is away")
        return {"data": {"token": base64.b64encode(self.token.encode()).decode()}}


class Node:
    """A node that accepts one token; ``token`` changes when its SwarmPool is made anew."""

    def __init__(self, token: str, status: int = 403) -> None:
        self.token = token
        self.status = status

    def __call__(self, recorded: Recorded) -> Reply:
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(status=self.status, body=b"403 - Forbidden\n", content_type="text/plain")
        return json_reply('{"ID": "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}')


def call(tokens: NodeTokens, stub: Stub) -> None:
    with tokens.client(stub.url, timeout=5, retries=0, **WHERE) as client:
        client.id()


def sent(stub: Stub) -> list[str | None]:
    return [recorded.headers.get("authorization") for recorded in stub.requests]


def test_the_token_is_read_once_and_again_after_the_node_refused_it() -> None:
    secrets, node = TokenSecrets("old"), Node("old")
    tokens = NodeTokens(secrets)
    with http_stub(node) as stub:
        call(tokens, stub)
        call(tokens, stub)
        assert (secrets.reads, sent(stub)) == (1, ["Bearer old", "Bearer old"])

        secrets.token = node.token = "new"  # the SwarmPool was made anew
        stub.requests.clear()
        call(tokens, stub)
        call(tokens, stub)
    assert (secrets.reads, sent(stub)) == (2, ["Bearer old", "Bearer new", "Bearer new"])


@pytest.mark.parametrize(
    ("status", "reads", "requests"),
    [
        (500, 1, 1),  # a node that fails otherwise is not asked again, and the token is kept
        (403, 2, 1),  # a token the Secret still holds is reported, not sent again to be refused again
        (401, 2, 1),
    ],
)
def test_a_call_that_keeps_failing_is_reported(status: int, reads: int, requests: int) -> None:
    secrets = TokenSecrets("old")
    tokens = NodeTokens(secrets)
    with http_stub(lambda _: Reply(status=status, body=b"no\n", content_type="text/plain")) as stub:
        with pytest.raises(KuboError) as caught:
            call(tokens, stub)
        assert (caught.value.status, secrets.reads, len(stub.requests)) == (status, reads, requests)


def test_a_secret_that_cannot_be_read_leaves_the_refusal_as_it_was() -> None:
    """An API server that is away while the node refuses: a KuboError for the caller, not the API's error."""
    secrets, node = TokenSecrets("old"), Node("new")
    tokens = NodeTokens(secrets)
    assert tokens.authorization(**WHERE) == "Bearer old"  # kept from before the SwarmPool was made anew
    secrets.token = "new"
    with http_stub(node) as stub:
        call(tokens, stub)  # refused with "old", reads "new"
        node.token = "newer"
        secrets.away = True
        with pytest.raises(KuboError) as caught:
            call(tokens, stub)
        assert caught.value.status == 403
        assert sent(stub) == ["Bearer old", "Bearer new", "Bearer new"], "not sent again with the same token"
        secrets.away = False
        secrets.token = "newer"
        call(tokens, stub)
    assert sent(stub)[-2:] == ["Bearer new", "Bearer newer"]


def test_a_client_is_made_while_the_secret_cannot_be_read() -> None:
    """The listener starts without a token then, and the node's first refusal reads the Secret again."""
    secrets, node = TokenSecrets("t"), Node("t")
    secrets.away = True
    tokens = NodeTokens(secrets)
    with http_stub(node) as stub, tokens.client(stub.url, timeout=5, retries=0, **WHERE) as client:
        secrets.away = False
        client.id()
    assert sent(stub) == [None, "Bearer t"]
