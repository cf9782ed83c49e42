"""Where a swarm of a SwarmPool runs, and its key: what both halves of the fast path need.

The identity role's resolution (swarm_access.served_swarm, which its
find_swarm.yml reads through a filter): the SwarmPool's status gives the
node's RPC API, peer id and addresses, its spec the swarm key Secret
(``swarmKeySecretRef``, else ``<pool>-<swarm>-swarm-key``), and a SwarmPool of
another namespace than the Identity's serves it only if it admits that
namespace (module_utils/swarm_access.py, the rule the role applies too).

:class:`NodeReader` reads a node's status counters for nodestatus.py, with the
node's RPC API token and the swarmpool role's own counting code.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    api_token_secret,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import Resources
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient, KuboError
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


@dataclass(frozen=True)
class SwarmNode:
    api_url: str
    addresses: tuple[str, ...]
    key: bytes
    authorization: str | None
    """What the node's RPC API asks for in the Authorization header."""


def node_authorization(secrets: Resources, *, namespace: str, pool: str, swarm: str) -> str | None:
    return authorization(secrets.get(api_token_secret(pool, swarm), namespace))


def resolve(
    pools: Resources,
    secrets: Resources,
    *,
    identity_namespace: str,
    namespace: str,
    pool: str,
    swarm: str,
) -> SwarmNode:
    obj = pools.get(pool, namespace) or {}
    if obj and not admits(obj, identity_namespace):
        raise SwarmRefused(refusal(namespace, pool, identity_namespace))
    served = served_swarm(obj, swarm)
    if not served.ready:
        raise SwarmNotReady(f"swarm {namespace}/{pool}/{swarm} has no running node yet")
    node = served.status
    secret_name = served.key_secret
    value = ((secrets.get(secret_name, namespace) or {}).get("data") or {}).get("swarm-key")
    if not value:
        raise SwarmNotReady(f"the swarm key Secret {namespace}/{secret_name} has no swarm-key")
    return SwarmNode(
        api_url=str(node["API"]),
        addresses=tuple(node.get("Addresses") or ()),
        key=parse(base64.b64decode(value)).key,
        authorization=node_authorization(secrets, namespace=namespace, pool=pool, swarm=swarm),
    )


class NodeReader:
    """Read a node's status counters over its RPC API, with the token of its SwarmPool's Secret.

    The token is read once per swarm, and again when the node refuses it (a SwarmPool made anew has a new one).
    """

    def __init__(self, secrets: Resources) -> None:
        self._secrets = secrets
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], str | None] = {}

    def __call__(self, node: NodeRef) -> Counters:
        key = (node.namespace, node.pool, node.swarm)
        try:
            with KuboClient(
                node.api_url,
                timeout=READ_TIMEOUT,
                connect_timeout=CONNECT_TIMEOUT,
                retries=0,
                authorization=self._authorization(key),
            ) as kubo:
                counted: Counters = counters(kubo.bootstrap_list(), kubo.swarm_peers())
                return counted
        except KuboError as err:
            if err.status in (401, 403):
                with self._lock:
                    self._tokens.pop(key, None)
            raise

    def _authorization(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            if key in self._tokens:
                return self._tokens[key]
        namespace, pool, swarm = key
        value = node_authorization(self._secrets, namespace=namespace, pool=pool, swarm=swarm)
        with self._lock:
            self._tokens[key] = value
        return value
