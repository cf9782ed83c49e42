"""cluster-discovery-member (issue 20): a kubo node that announces an identity with the product's own code, no
control plane. Another node of the swarm discovers it, live and without a kubeconfig; its retraction is heard; and
a whole cluster's listener keeps hearing it when its own node is made anew with a new RPC API token."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    Announce,
    Ask,
    decode,
    topic_for,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import SwarmKey, generate
from cluster_discovery_agent.swarms import NodeTokens

from testbed.collection import activate

pytestmark = pytest.mark.integration

MEMBER = Path(sys.executable).parent / "cluster-discovery-member"


def member(*args: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(activate()))
    return subprocess.Popen(
        [str(MEMBER), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "member.log", "a"),
        text=True,
    )


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def light_and_whole(kubo_node: Callable[..., Any], tmp_path: Path) -> tuple[SwarmKey, Path, Any, Any]:
    """A new private swarm: its key and key file, the light member's node and a whole cluster's."""
    key = generate()
    key_file = tmp_path / "swarm.key"
    key_file.write_text(key.text)
    light = kubo_node(key.text, name="light")
    return key, key_file, light, kubo_node(key.text, name="whole", bootstrap=[light.swarm_addr])


def test_a_light_member_is_discovered_live_without_a_kubeconfig_and_its_retraction_is_heard(
    kubo_node: Callable[..., Any], tmp_path: Path
) -> None:
    key, key_file, light, whole = light_and_whole(kubo_node, tmp_path)
    common = ["--api-url", light.api_url, "--swarm-key-file", str(key_file), "--log-format", "json"]
    process = member(
        *common, "--name", "Light 1", "--description", "found, consumes nothing", "--category", "edge",
        "--announce-period", "1", tmp_path=tmp_path,
    )  # fmt: skip
    try:
        with KuboClient(whole.api_url) as client:
            client.swarm_connect(light.swarm_addr)
            listener = SwarmIdentity(client, key.key)

            def heard() -> dict[str, Any] | None:
                found, live = listener.discover(window=2, quiet=0.5, fresh_within=90)
                item = found.identities.get(light.peer_id)
                return {"item": item, "live": light.peer_id in live} if item is not None else None

            seen = wait_until(heard, "the light member's identity")
            document = seen["item"].document
            assert (document.name, document.description, document.categories) == (
                "Light 1", "found, consumes nothing", ("edge",),
            )  # fmt: skip
            assert seen["live"] and seen["item"].kubeconfig is None
            assert document.addresses and all(a.endswith(f"/p2p/{light.peer_id}") for a in document.addresses)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, (tmp_path / "member.log").read_text()

    # The whole cluster's agent listens meanwhile, as it always does.
    stop = threading.Event()
    with KuboClient(whole.api_url) as client:
        listener = SwarmIdentity(client, key.key)
        agent = threading.Thread(target=listener.serve, kwargs={"stop": stop, "announce_every": 1.0}, daemon=True)
        agent.start()
        try:
            time.sleep(1.0)  # subscribed
            retracted = member(*common, "--name", "Light 1", "--retract", "--announce-period", "1", tmp_path=tmp_path)
            assert retracted.wait(timeout=30) == 0, (tmp_path / "member.log").read_text()
            wait_until(
                lambda: light.peer_id in listener.discover(window=0, quiet=0, fresh_within=90, listen=False)[0].removed,
                "the tombstone",
            )
        finally:
            stop.set()
            agent.join(timeout=10)


def test_a_bad_swarm_key_file_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "swarm.key"
    bad.write_text("not a key\n")
    process = member(
        "--api-url", "http://127.0.0.1:9", "--swarm-key-file", str(bad), "--name", "x", tmp_path=tmp_path
    )  # fmt: skip
    assert process.wait(timeout=30) == 2
    log = (tmp_path / "member.log").read_text()
    assert "Traceback" not in log and "swarm" in log.lower()


def test_a_light_member_announces_and_answers_but_never_asks(kubo_node: Callable[..., Any], tmp_path: Path) -> None:
    """Issue 20: every member answers an ask, N answers that each reach N nodes; at 50 members that burst, set off by
    each light member (re)starting, delayed news by seconds, and a member that consumes nothing has nothing to learn."""
    key, key_file, light, whole = light_and_whole(kubo_node, tmp_path)
    with KuboClient(whole.api_url) as client:
        client.swarm_connect(light.swarm_addr)
        listener = SwarmIdentity(client, key.key)
        sent: list[Any] = []
        with client.subscribe(listener.topic, duration=8) as subscription:
            process = member(
                "--api-url", light.api_url, "--swarm-key-file", str(key_file), "--name", "Light 1",
                "--announce-period", "30", tmp_path=tmp_path,
            )  # fmt: skip
            try:
                for message in subscription:
                    if message.sender == light.peer_id:
                        sent.append(decode(message.data))
                    if len(sent) == 1 and message.sender == light.peer_id:
                        listener.ask()  # a member asks: the light member answers
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=15) == 0, (tmp_path / "member.log").read_text()
    assert not any(isinstance(m, Ask) for m in sent), sent
    announces = [m for m in sent if isinstance(m, Announce)]
    assert len(announces) >= 2, f"announced on start and answered the ask: {sent}"


def test_a_light_member_keeps_no_record_of_what_members_announce(kubo_node: Callable[..., Any], tmp_path: Path) -> None:
    """Issue 20: a member that consumes nothing has no use for heard.json. Writing it cost each light member's node
    a file write for every member's news and every 10 s, and at 50 members on one machine each update's burst of
    50 writes was most of the agent's wait for the cores."""
    key, key_file, light, whole = light_and_whole(kubo_node, tmp_path)
    process = member(
        "--api-url", light.api_url, "--swarm-key-file", str(key_file), "--name", "Light 1",
        "--announce-period", "30", tmp_path=tmp_path,
    )  # fmt: skip
    try:
        with KuboClient(whole.api_url) as client, KuboClient(light.api_url) as light_client:
            client.swarm_connect(light.swarm_addr)
            whole_node, light_node = SwarmIdentity(client, key.key), SwarmIdentity(light_client, key.key)
            wait_until(lambda: light_node.published(), "the light member's identity published")
            wait_until(lambda: client.pubsub_peers(whole_node.topic), "the light member on the topic")
            document = IdentityDocument(publisher=whole_node.peer_id, sequence=0, issued_at="", name="Whole")
            for name in ("Whole", "Whole, renamed"):
                outcome = whole_node.publish(owner="test", document=replace(document, name=name), kubeconfig=None)
                assert outcome.published is not None
                for _ in range(6):  # news, then the same announcement again: liveness only
                    whole_node.announce(outcome.published)
                    time.sleep(0.5)
            heard_path = f"{light_node.folder}/heard.json"
            assert light_client.files_read(heard_path) is None, "the light member wrote what it heard to its node"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, (tmp_path / "member.log").read_text()
    assert "Traceback" not in (tmp_path / "member.log").read_text()


class TokenSecret:
    """The SwarmPool's `<pool>-<swarm>-api-token` Secret, as the agent reads it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        return {"data": {"token": base64.b64encode(self.token.encode()).decode()}}


def test_the_listener_hears_again_once_its_node_asks_for_a_new_token(
    kubo_node: Callable[..., Any], tmp_path: Path
) -> None:
    """A SwarmPool made anew under the same name: its node asks for a new token, at the same address. The agent's
    listener read the token once, when it started: the node then refused its subscription and every write, and the
    agent heard nothing on that swarm until it was restarted."""
    key, key_file, light, whole = light_and_whole(kubo_node, tmp_path)
    whole.stop()
    whole.require_token("old")
    whole.start()
    secret = TokenSecret("old")
    # As the agent makes a channel's listener (cli.make_serve).
    client = NodeTokens(secret).client(whole.api_url, namespace="ns", pool="pool", swarm="s", timeout=30, retries=1)
    listener = SwarmIdentity(client, None, topic=topic_for(key.key))
    news: list[dict[str, int]] = []
    ended = threading.Event()
    thread = threading.Thread(
        target=listener.serve,
        kwargs={"stop": ended, "announce_every": 30.0, "on_news": news.append, "retry_after": 0.5},
        daemon=True,
    )
    thread.start()
    common = ["--api-url", light.api_url, "--swarm-key-file", str(key_file), "--name", "Light 1"]
    process = member(*common, "--description", "first", "--announce-period", "2", tmp_path=tmp_path)
    try:
        wait_until(lambda: any(light.peer_id in known for known in news), "the member's first news")
        first = max(known[light.peer_id] for known in news if light.peer_id in known)

        # The SwarmPool is made anew: the same node and address, a new token in its Secret.
        whole.stop()
        whole.require_token("new")
        secret.token = "new"
        whole.start()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        process = member(*common, "--description", "second", "--announce-period", "2", tmp_path=tmp_path)
        wait_until(
            lambda: any(known.get(light.peer_id, -1) > first for known in news),
            "news of the member's new sequence, heard through the node that now asks for the new token",
            timeout=45,
        )
        assert client.authorization == "Bearer new"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        ended.set()
        thread.join(timeout=10)
        client.close()
