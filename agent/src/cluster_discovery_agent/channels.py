"""One listener per (node, topic), shared by the Identities that publish through it.

A channel is a kubo node's RPC API and a swarm's discovery topic. Its thread
runs ``SwarmIdentity.serve`` (answer asks, re-announce, remember news) until
no Identity needs it any more; news on a channel is handed to ``on_news``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import LABEL_SWARM
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import label_value

from .kube import ObjectRef, Presence

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Channel:
    api_url: str
    topic: str
    namespace: str = ""
    """Where the node's SwarmPool is, so its RPC API token can be read."""
    swarm_pool: str = ""
    swarm: str = ""


# An Identity's (namespace, name): the watched cache's key for that kind.
IdentityRef = ObjectRef


class NewsPasses:
    """Runs ``apply`` once for every batch of news, on its own thread.

    Applying news reads everything the listener remembered, so news that arrives
    during a pass needs one more pass, not one each: forty members joining at
    once cost two passes instead of forty, one after another (issue 20). The
    listener, which only pokes, keeps reading its subscription meanwhile.
    """

    def __init__(self, apply: Callable[[], None], stop: threading.Event, *, name: str) -> None:
        self._apply = apply
        self._stop = stop
        self._news = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def poke(self) -> None:
        self._news.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._news.wait(timeout=1.0):
                continue
            self._news.clear()
            try:
                self._apply()
            except Exception:  # the next news gets a new pass
                log.exception("applying news failed")


class _Listener:
    def __init__(self, channel: Channel, serve: Callable[..., None], apply_news: Callable[[], None]) -> None:
        self.channel = channel
        self.stop = threading.Event()
        self.news = NewsPasses(apply_news, self.stop, name=f"news {channel.api_url}")
        self.thread = threading.Thread(target=self._run, args=(serve,), name=f"listen {channel.api_url}", daemon=True)

    def start(self) -> None:
        self.news.thread.start()
        self.thread.start()

    def _run(self, serve: Callable[..., None]) -> None:
        try:
            serve(stop=self.stop, on_news=lambda known: self.news.poke())
        except Exception:  # a listener must never die silently: log, and the next sync restarts it
            log.exception("listener for %s on %s stopped", self.channel.topic, self.channel.api_url)


class Channels:
    """The listeners the current Identities need; ``sync`` starts and stops them."""

    def __init__(
        self,
        *,
        make_serve: Callable[[Channel], Callable[..., None]],
        on_news: Callable[[Channel], None],
    ) -> None:
        self._make_serve = make_serve
        self._on_news = on_news
        self._lock = threading.Lock()
        self._wanted: dict[IdentityRef, set[Channel]] = {}
        self._listeners: dict[Channel, _Listener] = {}

    def set_identity(self, identity: IdentityRef, channels: set[Channel]) -> None:
        with self._lock:
            if channels:
                self._wanted[identity] = set(channels)
            else:
                self._wanted.pop(identity, None)
        self.sync()

    def identities(self) -> set[IdentityRef]:
        with self._lock:
            return set(self._wanted)

    def identities_on(self, channel: Channel) -> list[IdentityRef]:
        with self._lock:
            return sorted(ref for ref, channels in self._wanted.items() if channel in channels)

    def sync(self) -> None:
        """Start listeners that are wanted and missing (or died), stop those no longer wanted."""
        with self._lock:
            wanted: set[Channel] = set().union(*self._wanted.values()) if self._wanted else set()
            for channel, listener in list(self._listeners.items()):
                if channel not in wanted or not listener.thread.is_alive():
                    listener.stop.set()
                    del self._listeners[channel]
                    log.info("stopped listening on %s at %s", channel.topic, channel.api_url)
            for channel in sorted(wanted - set(self._listeners)):
                listener = _Listener(channel, self._make_serve(channel), self._news_for(channel))
                self._listeners[channel] = listener
                listener.start()
                log.info("listening on %s at %s", channel.topic, channel.api_url)

    def _news_for(self, channel: Channel) -> Callable[[], None]:
        def apply_news() -> None:
            self._on_news(channel)

        return apply_news

    def listening(self) -> list[Channel]:
        with self._lock:
            return sorted(self._listeners)

    def poke(self, where: Callable[[Channel], bool]) -> int:
        """Ask for a pass on each channel listened to that ``where`` accepts, as news would; return how many."""
        with self._lock:
            listeners = [listener for channel, listener in self._listeners.items() if where(channel)]
        for listener in listeners:
            listener.news.poke()
        return len(listeners)

    def close(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
            self._wanted.clear()
        for listener in listeners:
            listener.stop.set()
        for listener in listeners:
            listener.thread.join(timeout=5)
            listener.news.thread.join(timeout=5)


class PeerArrivals:
    """On a Peer's first appearance, a pass on the channels of its swarm: what they heard is applied again.

    A round of the identity role learns the members, then writes their Peers seconds later (tens of seconds
    under load). A member that retracted in between got its Peer back from that stale round, and kept it until
    the next news on the channel: 105 s in the walkthrough, with its kubeconfig Secret. The pass that follows
    the Peer's appearance deletes it again, from the tombstone its channel's listener remembers. The agent's
    own creations cost at most one more pass, which writes nothing: passes coalesce.
    """

    def __init__(self, channels: Channels) -> None:
        self._channels = channels
        self._presence = Presence()

    def __call__(self, ref: ObjectRef, peer: dict[str, Any] | None) -> None:
        if not self._presence.moved(ref, peer is not None) or peer is None:
            return
        swarm = ((peer.get("metadata") or {}).get("labels") or {}).get(LABEL_SWARM)
        if not isinstance(swarm, str) or not swarm:
            return

        def of_its_swarm(channel: Channel) -> bool:
            return channel.namespace == ref.namespace and label_value(channel.swarm) == swarm

        self._channels.poke(of_its_swarm)


def channels_of(identity: dict[str, Any]) -> set[Channel]:
    """The channels an Identity's status says it publishes through (written by the identity role)."""
    result: set[Channel] = set()
    if (identity.get("metadata") or {}).get("deletionTimestamp"):
        return result
    for entry in (identity.get("status") or {}).get("swarms") or []:
        api_url, topic = entry.get("apiUrl"), entry.get("topic")
        if isinstance(api_url, str) and isinstance(topic, str) and api_url and topic:
            result.add(
                Channel(
                    api_url=api_url,
                    topic=topic,
                    namespace=str(entry.get("namespace") or ""),
                    swarm_pool=str(entry.get("swarmPool") or ""),
                    swarm=str(entry.get("swarm") or ""),
                )
            )
    return result
