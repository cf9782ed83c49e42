"""The test bed's kubo nodes are real private swarms: acceptance tests of issue 7.

Covered, against the real ``ipfs`` daemon built by testbed/build.py, through
its RPC API with plain ``requests``: nodes sharing a swarm key connect and a
node with another key never does, pubsub messages cross, content added on one
node is read on another, an IPNS name resolves across nodes, and a node
restarts on the same identity, ports and key.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from testbed.kubo import KuboNode, new_swarm_key
from testbed.procs import wait_for

pytestmark = pytest.mark.integration

NodeFactory = Callable[..., KuboNode]


def rpc(node: KuboNode, command: str, *args: str, timeout: float = 30, **params: Any) -> requests.Response:
    """POST /api/v0/<command> with ``arg`` parameters, as every kubo RPC call is made."""
    query: list[tuple[str, Any]] = [("arg", arg) for arg in args] + list(params.items())
    return requests.post(f"{node.api_url}/api/v0/{command}", params=query, timeout=timeout)


def peers(node: KuboNode) -> set[str]:
    reply = rpc(node, "swarm/peers")
    reply.raise_for_status()
    return {peer["Peer"] for peer in reply.json().get("Peers") or []}


def connect(node: KuboNode, other: KuboNode) -> requests.Response:
    return rpc(node, "swarm/connect", other.swarm_addr, timeout=60)


def multibase(text: str) -> str:
    """kubo's pubsub API takes topics (and returns data) multibase-encoded: "u" + unpadded base64url."""
    return "u" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_two_nodes_with_the_same_swarm_key_connect(kubo_node: NodeFactory):
    key = new_swarm_key()
    first = kubo_node(key, name="first")
    second = kubo_node(key, name="second")

    reply = connect(second, first)

    assert reply.status_code == 200, reply.text
    assert first.peer_id in peers(second)
    assert second.peer_id in peers(first)
    fingerprints = {line for node in (first, second) for line in node.log_path.read_text().splitlines()
                    if line.startswith("Swarm key fingerprint:")}  # fmt: skip
    assert len(fingerprints) == 1, "both daemons must say they run on the same private network"


def test_a_node_bootstrapped_with_a_member_address_joins_on_its_own(kubo_node: NodeFactory):
    key = new_swarm_key()
    member = kubo_node(key, name="member")
    joiner = kubo_node(key, name="joiner", bootstrap=[member.swarm_addr])

    wait_for(lambda: member.peer_id in peers(joiner), timeout=60, what="the bootstrap connection")


def test_a_node_with_another_swarm_key_never_connects(kubo_node: NodeFactory):
    key = new_swarm_key()
    first = kubo_node(key, name="first")
    second = kubo_node(key, name="second")
    assert connect(second, first).status_code == 200
    outsider = kubo_node(new_swarm_key(), name="outsider", bootstrap=[first.swarm_addr])

    attempts = [connect(outsider, first), connect(first, outsider), connect(second, outsider)]

    for reply in attempts:
        assert reply.status_code == 500
        assert "failed to dial" in reply.json()["Message"]
    time.sleep(2)  # long enough for the bootstrap attempt of the outsider to have run
    assert outsider.peer_id not in peers(first) | peers(second)
    assert peers(outsider) == set()


def test_a_pubsub_message_crosses_between_connected_nodes(kubo_node: NodeFactory):
    key = new_swarm_key()
    publisher = kubo_node(key, name="publisher")
    subscriber = kubo_node(key, name="subscriber")
    assert connect(subscriber, publisher).status_code == 200
    topic = multibase("cluster-discovery/testbed")
    received: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def subscribe() -> None:
        with requests.post(
            f"{subscriber.api_url}/api/v0/pubsub/sub", params={"arg": topic}, stream=True, timeout=(5, 60)
        ) as stream:
            subscribed.set()
            for line in stream.iter_lines():
                if line:
                    received.append(json.loads(line))
                    return

    listener = threading.Thread(target=subscribe, daemon=True)
    listener.start()
    subscribed.wait(10)
    # The message is only forwarded once the publisher knows the subscriber is in the topic's mesh.
    wait_for(
        lambda: subscriber.peer_id in (rpc(publisher, "pubsub/peers", topic).json().get("Strings") or []),
        timeout=30,
        what="the subscriber to appear among the topic's peers",
    )

    reply = requests.post(
        f"{publisher.api_url}/api/v0/pubsub/pub",
        params={"arg": topic},
        files={"file": ("data", b"hello from the publisher")},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    listener.join(30)

    assert len(received) == 1
    message = received[0]
    assert message["from"] == publisher.peer_id
    assert base64.urlsafe_b64decode(message["data"][1:] + "==") == b"hello from the publisher"


def test_content_added_on_one_node_is_read_with_cat_on_the_other(kubo_node: NodeFactory):
    key = new_swarm_key()
    adder = kubo_node(key, name="adder")
    reader = kubo_node(key, name="reader")
    assert connect(reader, adder).status_code == 200
    content = b"a federation of clusters\n" * 100

    added = requests.post(f"{adder.api_url}/api/v0/add", files={"file": ("doc.txt", content)}, timeout=30)
    cid = added.json()["Hash"]
    read = rpc(reader, "cat", cid, timeout=60)

    assert read.status_code == 200, read.text
    assert read.content == content


def test_an_ipns_name_published_on_one_node_resolves_on_the_other(kubo_node: NodeFactory):
    key = new_swarm_key()
    publisher = kubo_node(key, name="publisher")
    resolver = kubo_node(key, name="resolver")
    assert connect(resolver, publisher).status_code == 200
    cid = requests.post(
        f"{publisher.api_url}/api/v0/add", files={"file": ("identity.json", b'{"name": "cluster1"}')}, timeout=30
    ).json()["Hash"]

    published = rpc(publisher, "name/publish", f"/ipfs/{cid}", timeout=120)
    assert published.status_code == 200, published.text
    resolved = rpc(resolver, "name/resolve", published.json()["Name"], timeout=120)

    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["Path"] == f"/ipfs/{cid}"


def test_a_restarted_node_keeps_its_identity_ports_and_swarm_key(kubo_node: NodeFactory):
    node = kubo_node(name="restarted")
    before = (node.peer_id, node.api_url, node.swarm_addr, node.pid)
    fingerprint = (node.repo / "swarm.key").read_text()

    node.restart()

    assert (node.peer_id, node.api_url, node.swarm_addr) == before[:3]
    assert node.pid is not None and node.pid != before[3]
    assert rpc(node, "id").json()["ID"] == node.peer_id
    assert (node.repo / "swarm.key").read_text() == fingerprint == node.swarm_key


def test_a_stopped_node_leaves_no_process(kubo_node: NodeFactory):
    node = kubo_node(name="stopped")
    pid = node.pid
    assert pid is not None

    node.stop()

    assert node.pid is None
    assert not Path(f"/proc/{pid}").exists(), "the daemon was stopped and reaped"
    with pytest.raises(requests.ConnectionError):
        rpc(node, "id", timeout=5)
