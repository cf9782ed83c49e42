"""Where a swarm of a SwarmPool runs, and its key: what both halves of the fast path need.

The identity role's resolution (swarm_access.served_swarm, which its
find_swarm.yml reads through a filter): the SwarmPool's status gives the
node's RPC API, peer id and addresses, its spec the swarm key Secret
(``swarmKeySecretRef``, else ``<pool>-<swarm>-swarm-key``), and a SwarmPool of
another namespace than the Identity's serves it only if it admits that
namespace (module_utils/swarm_access.py, the rule the role applies too).

:class:`NodeTokens` keeps each node's RPC API token, read once and again when
the node refuses it, and makes every client of a node (listener, fast path,
publisher, status reader); :class:`NodeReader` reads a node's status counters
for nodestatus.py with one, and the swarmpool role's own counting code.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import topic_for
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    STATUS_ADDRESSES,
    STATUS_API,
    api_token_secret,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    DEFAULT_CONNECT_TIMEOUT,
    KuboClient,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm import counters
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import (
    admits,
    authorization,
    refusal,
    served_swarm,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

from .nodestatus import CONNECT_TIMEOUT, READ_TIMEOUT, Counters, NodeRef


class SwarmNotReady(Exception):
    """The SwarmPool has no running node for the swarm, or no key yet: the role takes over once it has."""


class SwarmRefused(SwarmNotReady):
    """The SwarmPool does not serve the Identity's namespace: the role reports it in the Identity's status."""


class Readable(Protocol):
    """Where objects of one kind are read: the API server (objects.KindObjects) or a watch's cache first."""

    def get(self, name: str, namespace: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class SwarmNode:
    api_url: str
    addresses: tuple[str, ...]
    key: bytes


def node_authorization(secrets: Readable, *, namespace: str, pool: str, swarm: str) -> str | None:
    return authorization(secrets.get(api_token_secret(pool, swarm), namespace))


class NodeTokens:
    """Each swarm node's RPC API token, read once from its SwarmPool's Secret, and again when the node refuses it.

    A SwarmPool made anew has a new token: its node then refuses the old one (401 or 403), and the client made
    by :meth:`client` reads the Secret again and repeats the refused request once.
    """

    def __init__(self, secrets: Readable) -> None:
        self._secrets = secrets
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], str | None] = {}

    def authorization(self, *, namespace: str, pool: str, swarm: str) -> str | None:
        with self._lock:
            if (namespace, pool, swarm) in self._tokens:
                return self._tokens[(namespace, pool, swarm)]
        return self._read(namespace=namespace, pool=pool, swarm=swarm)

    def _read(self, *, namespace: str, pool: str, swarm: str) -> str | None:
        """The token as its Secret holds it now, kept from now on."""
        value = node_authorization(self._secrets, namespace=namespace, pool=pool, swarm=swarm)
        with self._lock:
            self._tokens[(namespace, pool, swarm)] = value
        return value

    def client(
        self,
        api_url: str,
        *,
        namespace: str,
        pool: str,
        swarm: str,
        timeout: float,
        retries: int,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> KuboClient:
        """A client of that node with its token, which reads the token again when the node refuses the one kept.

        Every caller of a node of a SwarmPool (listener, fast-path pass, publisher, status reader) gets its client
        here, so a SwarmPool made anew under the same name is followed by all of them alike.
        """
        try:
            held = self.authorization(namespace=namespace, pool=pool, swarm=swarm)
        except CollectionError:  # the API server is away: the node refuses the call, which reads the Secret again
            held = None
        return KuboClient(
            api_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            authorization=held,
            reauthorize=lambda: self.read_again(namespace=namespace, pool=pool, swarm=swarm),
        )

    def read_again(self, *, namespace: str, pool: str, swarm: str) -> str | None:
        """The token as its Secret holds it now, kept from now on; the one kept when the Secret cannot be read."""
        try:
            return self._read(namespace=namespace, pool=pool, swarm=swarm)
        except CollectionError:  # the API server is away: the refusal stands, and the next refusal reads again
            with self._lock:
                return self._tokens.get((namespace, pool, swarm))


class SwarmKeys:
    """Swarm keys by the discovery topic each gives (announcement.topic_for), as their Secrets held them.

    A fast-path pass on a channel needs the key of the channel's topic. A key kept for that topic is that swarm's
    key (the topic is derived from it); a Secret given another key gives another topic, hence a new channel, whose
    first pass reads the Secret. That saves an API read per pass: 30-300 ms of each update at 50 members.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}

    def for_topic(self, topic: str) -> bytes | None:
        with self._lock:
            return self._keys.get(topic)

    def keep(self, key: bytes) -> None:
        with self._lock:
            self._keys[topic_for(key)] = key


def resolve(
    pools: Readable,
    secrets: Readable,
    *,
    identity_namespace: str,
    namespace: str,
    pool: str,
    swarm: str,
    topic: str | None = None,
    keys: SwarmKeys | None = None,
) -> SwarmNode:
    """The node serving ``swarm`` of that SwarmPool to an Identity of ``identity_namespace``, and the swarm's key.

    With ``keys``, the key kept for ``topic`` if any (else the Secret's, kept from now on).
    """
    obj = pools.get(pool, namespace) or {}
    if obj and not admits(obj, identity_namespace):
        raise SwarmRefused(refusal(namespace, pool, identity_namespace))
    served = served_swarm(obj, swarm)
    if not served.ready:
        raise SwarmNotReady(f"swarm {namespace}/{pool}/{swarm} has no running node yet")
    node = served.status
    key = keys.for_topic(topic) if keys is not None and topic else None
    if key is None:
        secret_name = served.key_secret
        value = ((secrets.get(secret_name, namespace) or {}).get("data") or {}).get("swarm-key")
        if not value:
            raise SwarmNotReady(f"the swarm key Secret {namespace}/{secret_name} has no swarm-key")
        key = parse(base64.b64decode(value)).key
        if keys is not None:
            keys.keep(key)
    return SwarmNode(api_url=str(node[STATUS_API]), addresses=tuple(node.get(STATUS_ADDRESSES) or ()), key=key)


class NodeReader:
    """Read a node's status counters over its RPC API, with the token its SwarmPool's Secret holds."""

    def __init__(self, tokens: NodeTokens) -> None:
        self._tokens = tokens

    def __call__(self, node: NodeRef) -> Counters:
        with self._tokens.client(
            node.api_url,
            namespace=node.namespace,
            pool=node.pool,
            swarm=node.swarm,
            timeout=READ_TIMEOUT,
            connect_timeout=CONNECT_TIMEOUT,
            retries=0,
        ) as kubo:
            counted: Counters = counters(kubo.bootstrap_list(), kubo.swarm_peers())
            return counted
