"""A SwarmPool made anew under the same name: its node asks for a new RPC API token, at the same address.

The agent's listener read the token once, when it started listening: after that, the node refused its
subscription and every write, and the agent heard nothing on that swarm until it was restarted (a known limit of
SECURITY.md). Real kubo nodes: the listening one asks for a token, as a SwarmPool's node does; a light member on
the other publishes, and publishes again after the listening node was given a new token.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import topic_for
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate
from cluster_discovery_agent.swarms import NodeTokens

from testbed.collection import activate

pytestmark = pytest.mark.integration

MEMBER = Path(sys.executable).parent / "cluster-discovery-member"


class TokenSecret:
    """The SwarmPool's `<pool>-<swarm>-api-token` Secret, as the agent reads it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        return {"data": {"token": base64.b64encode(self.token.encode()).decode()}}


def publish(light: Any, key_file: Path, description: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(MEMBER), "--api-url", light.api_url, "--swarm-key-file", str(key_file), "--name", "Light 1",
            "--description", description, "--announce-period", "2",
        ],
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(activate())),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "member.log", "ab"),
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


def test_the_listener_hears_again_once_its_node_asks_for_a_new_token(
    kubo_node: Callable[..., Any], tmp_path: Path
) -> None:
    key = generate()
    key_file = tmp_path / "swarm.key"
    key_file.write_text(key.text)
    light = kubo_node(key.text, name="light")
    whole = kubo_node(key.text, name="whole", bootstrap=[light.swarm_addr])
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
    member = publish(light, key_file, "first", tmp_path)
    try:
        wait_until(lambda: any(light.peer_id in known for known in news), "the member's first news", timeout=30)
        first = max(known[light.peer_id] for known in news if light.peer_id in known)

        # The SwarmPool is made anew: the same node and address, a new token in its Secret.
        whole.stop()
        whole.require_token("new")
        secret.token = "new"
        whole.start()
        stop(member)
        member = publish(light, key_file, "second", tmp_path)
        wait_until(
            lambda: any(known.get(light.peer_id, -1) > first for known in news),
            "news of the member's new sequence, heard through the node that now asks for the new token",
            timeout=45,
        )
        assert client.authorization == "Bearer new"
    finally:
        stop(member)
        ended.set()
        thread.join(timeout=10)
        client.close()
