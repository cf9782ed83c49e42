"""The agent's bookkeeping of listeners: which channels the Identities need, started and stopped once each.

Covers agent/src/cluster_discovery_agent/channels.py without a node: the
listener body is a function of the test that records its calls. The listeners
against real kubo nodes run in the end-to-end walkthrough.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import LABEL_SWARM
from cluster_discovery_agent.channels import Channel, Channels, IdentityRef, NewsPasses, PeerArrivals, channels_of

A = Channel(api_url="http://127.0.0.2:5001", topic="cluster-discovery/v1/identities/aa")
B = Channel(api_url="http://127.0.0.3:5001", topic="cluster-discovery/v1/identities/bb")
ONE, TWO = IdentityRef("ns", "one"), IdentityRef("ns", "two")


def identity(*entries: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "one", "namespace": "ns"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    return {"metadata": metadata, "status": {"swarms": list(entries)}}


def test_an_identitys_channels_come_from_the_status_the_role_wrote() -> None:
    assert channels_of(identity({"apiUrl": A.api_url, "topic": A.topic}, {"apiUrl": "", "topic": B.topic})) == {A}
    assert channels_of({"metadata": {}}) == set()
    assert channels_of(identity({"apiUrl": A.api_url, "topic": A.topic}, deleting=True)) == set()


class Recorder:
    def __init__(self) -> None:
        self.started: list[Channel] = []
        self.stopped: list[Channel] = []
        self.hooks: dict[Channel, Callable[[dict[str, int]], None]] = {}

    def make_serve(self, channel: Channel) -> Callable[..., None]:
        def serve(*, stop: threading.Event, on_news: Callable[[dict[str, int]], None]) -> None:
            self.started.append(channel)
            self.hooks[channel] = on_news
            stop.wait()
            self.stopped.append(channel)

        return serve


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_one_listener_per_channel_shared_by_identities_and_stopped_when_unneeded() -> None:
    recorder = Recorder()
    news: list[tuple[Channel, list[IdentityRef]]] = []
    channels: Channels

    def on_news(channel: Channel) -> None:
        news.append((channel, channels.identities_on(channel)))

    channels = Channels(make_serve=recorder.make_serve, on_news=on_news)
    try:
        channels.set_identity(ONE, {A})
        channels.set_identity(TWO, {A, B})
        wait_until(lambda: sorted(recorder.started) == [A, B])
        assert channels.listening() == [A, B]

        recorder.hooks[A]({"12D3KooWpeer": 5})
        wait_until(lambda: news == [(A, [ONE, TWO])])

        channels.set_identity(TWO, set())
        wait_until(lambda: recorder.stopped == [B])
        assert channels.listening() == [A]
        assert channels.identities() == {ONE}
    finally:
        channels.close()
    assert sorted(recorder.stopped) == [A, B]


def test_a_listener_that_died_is_started_again_at_the_next_sync() -> None:
    calls: list[Channel] = []

    def make_serve(channel: Channel) -> Callable[..., None]:
        def serve(*, stop: threading.Event, on_news: Any) -> None:
            calls.append(channel)
            if len(calls) == 1:
                raise RuntimeError("the node went away")
            stop.wait()

        return serve

    channels = Channels(make_serve=make_serve, on_news=lambda channel: None)
    try:
        channels.set_identity(ONE, {A})
        wait_until(lambda: len(calls) == 1 and not channels._listeners[A].thread.is_alive())
        channels.sync()
        wait_until(lambda: len(calls) == 2)
        assert channels.listening() == [A]
    finally:
        channels.close()


def test_news_arriving_during_a_pass_costs_one_more_pass_not_one_each() -> None:
    """Issue 20: forty members joining at once were forty passes, one after another."""
    release = threading.Event()
    passes: list[int] = []

    def apply() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            release.wait(timeout=10)

    stop = threading.Event()
    news = NewsPasses(apply, stop, name="test")
    news.thread.start()
    try:
        news.poke()
        wait_until(lambda: passes == [0])
        for _ in range(40):
            news.poke()  # forty members' news while the first pass runs
        release.set()
        wait_until(lambda: passes == [0, 1])
        time.sleep(0.3)
        assert passes == [0, 1]
    finally:
        stop.set()
        news.thread.join(timeout=5)


def test_a_peer_that_appears_brings_a_pass_on_the_channels_of_its_swarm_once() -> None:
    """A stale round of the role may write back a retracted member's Peer: the pass that follows deletes it."""
    main = Channel(api_url=A.api_url, topic=A.topic, namespace="ns", swarm_pool="pool", swarm="main")
    other = Channel(api_url=B.api_url, topic=B.topic, namespace="ns", swarm_pool="pool", swarm="other")
    elsewhere = Channel(
        api_url="http://127.0.0.4:5001", topic=A.topic, namespace="ns2", swarm_pool="pool", swarm="main"
    )
    passes: list[Channel] = []
    channels = Channels(make_serve=Recorder().make_serve, on_news=passes.append)
    try:
        channels.set_identity(ONE, {main, other, elsewhere})
        wait_until(lambda: len(channels.listening()) == 3)
        arrivals = PeerArrivals(channels)
        peer = {"metadata": {"name": "m", "namespace": "ns", "labels": {LABEL_SWARM: "main"}}}
        arrivals(IdentityRef("ns", "m"), peer)
        wait_until(lambda: passes == [main])
        arrivals(IdentityRef("ns", "m"), peer)  # a change of a Peer already known: no pass
        arrivals(IdentityRef("ns", "unlabelled"), {"metadata": {"name": "unlabelled", "namespace": "ns"}})
        time.sleep(1.2)
        assert passes == [main]
        arrivals(IdentityRef("ns", "m"), None)  # deleted, then written back: a pass again
        arrivals(IdentityRef("ns", "m"), peer)
        wait_until(lambda: passes == [main, main])
    finally:
        channels.close()
