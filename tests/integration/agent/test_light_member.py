"""cluster-discovery-member (issue 20): a kubo node that announces an identity with the product's own code, no
control plane. Another node of the swarm discovers it, live and without a kubeconfig; its retraction is heard."""

from __future__ import annotations

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
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import Announce, Ask, decode
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import generate

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


def test_a_light_member_is_discovered_live_without_a_kubeconfig_and_its_retraction_is_heard(
    kubo_node: Callable[..., Any], tmp_path: Path
) -> None:
    key = generate()
    key_file = tmp_path / "swarm.key"
    key_file.write_text(key.text)
    light = kubo_node(key.text, name="light")
    whole = kubo_node(key.text, name="whole", bootstrap=[light.swarm_addr])
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
    key = generate()
    key_file = tmp_path / "swarm.key"
    key_file.write_text(key.text)
    light = kubo_node(key.text, name="light")
    whole = kubo_node(key.text, name="whole", bootstrap=[light.swarm_addr])
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
