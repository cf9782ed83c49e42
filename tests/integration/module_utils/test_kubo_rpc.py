"""The kubo RPC client against real kubo nodes (the test bed's kubo v0.43.1 in private swarms).

Covers what plugins/module_utils/kubo.py claims about kubo itself: the
response shapes of id, swarm connect and peers, bootstrap add and list, config
(get, set with JSON), peering, add/cat (across two nodes, with the size limit),
the MFS files the identity module keeps its state in (write, read, replace,
missing, size limit); kubo's own error documents mapped to
KuboError; and the pubsub round trip (multibase topics, multipart data,
decoded messages) with the subscription's stop conditions, including kubo
ending the stream at the deadline.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient, KuboError

from testbed.procs import wait_for

pytestmark = pytest.mark.integration


def client(node: Any) -> KuboClient:
    return KuboClient(node.api_url, timeout=30)


@pytest.fixture
def pair(kubo_node: Any) -> tuple[Any, Any]:
    """Two connected nodes of one private swarm."""
    first = kubo_node(name="rpc-a")
    second = kubo_node(first.swarm_key, name="rpc-b")
    with client(second) as kubo:
        assert kubo.swarm_connect(first.swarm_addr) == [f"connect {first.peer_id} success"]
    return first, second


def test_id_describes_the_node(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-id")
    with client(node) as kubo:
        info = kubo.id()
        assert info["ID"] == node.peer_id
        assert node.swarm_addr in (info["Addresses"] or [])
        assert info["AgentVersion"].startswith("kubo/0.43.1")


def test_swarm_connect_and_peers(pair: tuple[Any, Any]) -> None:
    first, second = pair
    with client(second) as kubo:
        peers = kubo.swarm_peers()
        assert [(conn["Peer"], conn["Addr"]) for conn in peers] == [
            (first.peer_id, f"/ip4/127.0.0.1/tcp/{first.swarm_port}")
        ]


def test_bootstrap_add_and_list(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-bootstrap")
    far_a = "/ip4/10.255.0.1/tcp/4001/p2p/QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq"
    far_b = "/ip4/10.255.0.2/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"
    with client(node) as kubo:
        assert kubo.bootstrap_add(far_a, far_b) == [far_a, far_b]
        assert sorted(kubo.bootstrap_list()) == sorted([far_a, far_b])
        # kubo echoes every peer given, already listed or not, and lists each once.
        assert kubo.bootstrap_add(far_a) == [far_a]
        assert sorted(kubo.bootstrap_list()) == sorted([far_a, far_b])


def test_config_get_and_set_json(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-config")
    entry = {"ID": "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq", "Addrs": ["/ip4/10.255.0.1/tcp/4001"]}
    with client(node) as kubo:
        assert kubo.config_get("Peering.Peers") is None
        assert kubo.config_set("Peering.Peers", [entry]) == [entry]
        assert kubo.config_get("Peering.Peers") == [entry]
        assert kubo.config_set("Peering.Peers", None) is None
        assert kubo.config_get("Peering.Peers") is None
        with pytest.raises(KuboError) as caught:
            kubo.config_get("No.Such.Key")
        assert caught.value.status == 500
        assert caught.value.endpoint == "/api/v0/config"
        assert "not found" in (caught.value.kubo_message or "")


def test_peering_add_ls_rm_is_the_running_nodes_alone(pair: tuple[Any, Any]) -> None:
    first, second = pair
    with client(second) as kubo:
        added = kubo.peering_add(first.swarm_addr)
        assert added == [{"ID": first.peer_id, "Status": "success"}]
        assert kubo.peering_ls() == [{"ID": first.peer_id, "Addrs": [f"/ip4/127.0.0.1/tcp/{first.swarm_port}"]}]
        assert kubo.config_get("Peering.Peers") is None  # kubo keeps swarm/peering in memory only
        assert kubo.peering_rm(first.peer_id) == [{"ID": first.peer_id, "Status": "success"}]
        assert kubo.peering_ls() == []


def test_content_added_on_one_node_is_read_on_the_other_within_a_size_limit(pair: tuple[Any, Any]) -> None:
    first, second = pair
    payload = b"identity document \x00\xff" * 100
    with client(first) as writer, client(second) as reader:
        cid = writer.add(payload)
        assert reader.cat(cid, max_bytes=len(payload)) == payload
        with pytest.raises(KuboError, match="larger than the limit"):
            reader.cat(cid, max_bytes=len(payload) - 1)
        assert writer.add(payload, pin=False) == cid


def test_mfs_files_are_written_replaced_read_and_kept_and_missing_ones_read_as_none(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-files")
    path = "/cluster-discovery/v1/test/state.json"
    with client(node) as kubo:
        assert kubo.files_read(path) is None
        kubo.files_write(path, b'{"sequence": 1, "padding": "' + b"x" * 100 + b'"}')
        kubo.files_write(path, b'{"sequence": 2}')
        assert kubo.files_read(path) == b'{"sequence": 2}'
        with pytest.raises(KuboError, match="larger than the limit of 4 bytes"):
            kubo.files_read(path, max_bytes=4)
        assert kubo.files_read(path + ".missing") is None
        kubo.files_write(path, b"kept")
    node.restart()
    with client(node) as kubo:
        assert kubo.files_read(path) == b"kept"


def test_kubos_refusals_become_kubo_errors_with_its_message(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-errors")
    with client(node) as kubo:
        with pytest.raises(KuboError) as caught:
            kubo.swarm_connect("garbage")
        error = caught.value
        assert (error.status, error.endpoint, error.node) == (500, "/api/v0/swarm/connect", node.api_url)
        assert "failed to parse multiaddr" in (error.kubo_message or "")
        assert error.msg.startswith(f"kubo at {node.api_url} answered /api/v0/swarm/connect with HTTP 500:")
        with pytest.raises(KuboError) as missing:
            kubo.request("no/such/command", idempotent=True)
        assert missing.value.status == 404


def test_pubsub_round_trip_between_two_members_of_a_private_swarm(pair: tuple[Any, Any]) -> None:
    first, second = pair
    topic = "cluster-discovery/v1/identities/round-trip ?&/ünïcode"
    payload = b"\x00announce\xffQmSomething\n"
    with client(first) as publisher, client(second) as subscriber:
        with subscriber.subscribe(topic, duration=60, max_messages=1) as subscription:
            assert topic in second.pubsub_topics()
            wait_for(
                lambda: second.peer_id in first.pubsub_peers(topic),
                timeout=30,
                what="the publisher to see the subscriber on the topic",
            )
            publisher.pubsub_pub(topic, payload)
            received = list(subscription)
        assert subscription.closed
        assert len(received) == 1
        message = received[0]
        assert message.data == payload
        assert message.sender == first.peer_id
        assert message.topics == (topic,)
        assert len(message.seqno) == 8
        wait_for(lambda: topic not in second.pubsub_topics(), timeout=10, what="closing to unsubscribe")


def test_a_subscription_stops_at_the_first_message_its_predicate_accepts(pair: tuple[Any, Any]) -> None:
    first, second = pair
    topic = "predicate"
    with client(first) as publisher, client(second) as subscriber:
        subscription = subscriber.subscribe(topic, duration=60, until=lambda m: m.data == b"stop")
        wait_for(lambda: second.peer_id in first.pubsub_peers(topic), timeout=30, what="the subscription to spread")

        def publish() -> None:
            for data in (b"one", b"stop", b"after"):
                publisher.pubsub_pub(topic, data)
                time.sleep(0.1)

        sender = threading.Thread(target=publish)
        sender.start()
        assert [message.data for message in subscription] == [b"one", b"stop"]
        sender.join(10)


def test_kubo_ends_a_quiet_subscription_at_its_deadline(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-deadline")
    with client(node) as kubo:
        began = time.monotonic()
        assert list(kubo.subscribe("nobody-talks-here", duration=1.5)) == []
        elapsed = time.monotonic() - began
        assert 1.0 <= elapsed < 10


def test_closing_a_subscription_from_another_thread_ends_a_blocked_read_at_once(kubo_node: Any) -> None:
    node = kubo_node(name="rpc-close")
    with client(node) as kubo:
        subscription = kubo.subscribe("nobody-talks-here-either", duration=60)
        received: list[Any] = []
        reader = threading.Thread(target=lambda: received.extend(subscription))
        began = time.monotonic()
        reader.start()
        time.sleep(0.3)
        subscription.close()
        reader.join(timeout=5)
        assert not reader.is_alive()
        assert received == []
        assert time.monotonic() - began < 3
        # kubo cancels the subscription when its handler notices the closed
        # connection, which happens after close() returns, not within it.
        wait_for(lambda: "nobody-talks-here-either" not in node.pubsub_topics(), timeout=10, what="kubo to cancel it")
