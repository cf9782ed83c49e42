# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The product's conventions, in one place: what the roles, the modules and the agent must agree on.

Private to the collection: may change without notice.

- the API group and the labels and annotations the product reads or writes;
- every name it gives an object (a swarm's key, token and start-up Secrets,
  its node's StatefulSet, an Identity's account and kubeconfig Secret, a
  Peer and its kubeconfig Secret) and the owner string an Identity signs with;
- the document an Identity's spec becomes on the swarm;
- the shape of a SwarmPool's ``status.status[<swarm>]`` entry, which the
  swarmpool role and the agent write and the identity role and the agent
  read, and when it says the node is ready;
- the defaults of the Offline and forget rules.

A rename here is a rename everywhere: the roles reach these through filters,
the modules and the agent import them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument

# -- the API ------------------------------------------------------------------------------------------------------

GROUP = "peerdiscovery.irt-saintexupery.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KUBECONFIG_ANNOTATION = "clusterdiscovery/kubeconfig-secret"
"""The annotation of a Peer naming the Secret that holds its member's kubeconfig (the original's name)."""
KUBECONFIG_DIGEST_ANNOTATION = f"{GROUP}/kubeconfig-sha256"
"""The annotation of a Peer with the SHA-256 of the kubeconfig in its Secret: the Peer changes when the kubeconfig
does, so the peer role checks a new kubeconfig at once, and a Peer without one need not be checked periodically."""
ADMIT_ANNOTATION = f"{GROUP}/admit-identity-namespaces"
"""The annotation of a SwarmPool listing the other namespaces whose Identities may publish through it."""
LABEL_IDENTITY = f"{GROUP}/identity"
LABEL_IDENTITY_NAMESPACE = f"{GROUP}/identity-namespace"
LABEL_SWARM = f"{GROUP}/swarm"
CATEGORY_LABEL_PREFIX = f"category.{GROUP}/"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "cluster-discovery-operator"

# -- names --------------------------------------------------------------------------------------------------------

API_TOKEN_KEY = "token"
"""The key of the RPC API token in its Secret (kubo's API.Authorizations ask for it)."""


def swarm_key_secret(pool: str, swarm: str, reference: str | None = None) -> str:
    """The Secret holding the swarm's key: the swarm's ``swarmKeySecretRef``, else ``<pool>-<swarm>-swarm-key``."""
    return reference or f"{pool}-{swarm}-swarm-key"


def api_token_secret(pool: str, swarm: str) -> str:
    """The Secret holding the RPC API token of ``pool``'s node for ``swarm``."""
    return f"{pool}-{swarm}-api"


def node_config_map(pool: str, swarm: str) -> str:
    """The start-up ConfigMap of ``pool``'s node for ``swarm``; the identity role reads its bootstrap nodes there."""
    return f"{pool}-{swarm}-config"


def statefulset_name(pool: str, swarm: str) -> str:
    """The StatefulSet that runs ``pool``'s node for ``swarm``."""
    return f"{pool}-{swarm}-ss"


def identity_kubeconfig_secret(identity: str) -> str:
    """The Secret beside an Identity holding the kubeconfig it publishes."""
    return f"{identity}-kubeconfig"


def identity_token_secret(identity: str) -> str:
    """The ServiceAccount token Secret of an Identity's account (the account, Role and RoleBinding take its name)."""
    return f"{identity}-token"


def identity_owner(namespace: str, name: str) -> str:
    """How an Identity signs what it publishes through a node (ipfs_identity's ``owner``)."""
    return f"Identity {namespace}/{name}"


def peer_name(peer_id: str) -> str:
    """The Peer of the member whose node has ``peer_id`` (object names are lower case)."""
    return peer_id.lower()


def peer_kubeconfig_secret(peer: str) -> str:
    """The Secret holding the kubeconfig a member published, beside its Peer ``peer``."""
    return f"{peer}-kubeconfig"


# -- defaults -----------------------------------------------------------------------------------------------------

DEFAULT_FRESH_WITHIN = 90.0
"""The Offline time: seconds for which a member heard announcing counts as live without answering again
(ipfs_identity's fresh_within, the identity role's identity_offline_after_seconds, the agent's --offline-after).
Three announcement periods of 30 s: one lost message does not make a member Offline."""
DEFAULT_OFFLINE_AFTER = 1
"""Rounds in which a member was silent for longer than the Offline time before its Peer is Offline.

One: the Offline time already waits out three missed announcements; counting rounds on top made Offline
depend on the reconcile period.
"""
DEFAULT_FORGET_AFTER = 720
"""Rounds after which an unheard member's Peer is deleted (the identity role's identity_forget_after): a day at
the operator's Identity reconcilePeriod of 2 minutes."""

# -- the document an Identity's spec becomes ----------------------------------------------------------------------


class PublishedFields(TypedDict):
    """What of an Identity's spec members read, under the document's names."""

    name: str
    description: str
    url: str
    categories: list[str]


def published_fields(spec: Mapping[str, Any]) -> PublishedFields:
    """The fields of an Identity's ``spec`` (as stored: ``URL``, ``categories[].name``) that go on the swarm."""
    categories = spec.get("categories") or []
    return PublishedFields(
        name=str(spec.get("name") or ""),
        description=str(spec.get("description") or ""),
        url=str(spec.get("URL") or ""),
        categories=[str(category.get("name")) for category in categories if isinstance(category, Mapping)],
    )


def draft_document(
    fields: PublishedFields, *, publisher: str, addresses: Sequence[str], kubernetes_version: str
) -> IdentityDocument:
    """The document to publish; swarm_identity gives it its sequence and time when it publishes it."""
    return IdentityDocument(
        publisher=publisher,
        sequence=0,
        issued_at="",
        name=fields["name"],
        description=fields["description"],
        url=fields["url"],
        categories=tuple(fields["categories"]),
        addresses=tuple(addresses),
        kubernetes_version=kubernetes_version,
    )


# -- a SwarmPool's status entry for one swarm ----------------------------------------------------------------------

STATUS_NAME = "Name"
STATUS_API = "API"
"""Where the operator reached the node's RPC API; the identity role and the agent use it."""
STATUS_PEER_ID = "Peer Id"
STATUS_ADDRESSES = "Addresses"
STATUS_BOOTSTRAPS = "Number of bootstraps"
STATUS_CONNECTED = "Number of connected peers"
STATUS_ERROR = "Error"
STATUS_IPFS_VERSION = "IPFS Version"


def node_address(host: str, port: int | str, peer_id: str) -> str:
    """The address other members dial: ``/ip4|ip6|dns/<host>/tcp/<port>/p2p/<peer id>``."""
    try:
        protocol = "ip6" if ipaddress.ip_address(host).version == 6 else "ip4"
    except ValueError:
        protocol = "dns"
    return f"/{protocol}/{host}/tcp/{port}/p2p/{peer_id}"


def swarm_status(
    name: str,
    *,
    api_url: str = "",
    peer_id: str = "",
    external_host: str = "",
    external_port: int | str = 0,
    counters: Mapping[str, int] | None = None,
    error: str = "",
) -> dict[str, Any]:
    """A swarm's entry of ``status.status``: the original's fields (seed 000) and where the RPC API is.

    A node that is not serving (no ``peer_id``) reports empty addresses and zero counters; ``error`` says why a
    swarm does not serve, or why members cannot reach it yet.
    """
    entry: dict[str, Any] = {
        STATUS_NAME: name,
        STATUS_ADDRESSES: [node_address(external_host, external_port, peer_id)] if external_host and peer_id else [],
        STATUS_PEER_ID: peer_id,
        STATUS_BOOTSTRAPS: int((counters or {}).get(STATUS_BOOTSTRAPS, 0)),
        STATUS_CONNECTED: int((counters or {}).get(STATUS_CONNECTED, 0)),
    }
    if api_url:
        entry[STATUS_API] = api_url
    if error:
        entry[STATUS_ERROR] = error
    return entry


def node_ready(entry: Mapping[str, Any]) -> bool:
    """Whether a swarm's status entry says its node serves: the RPC API was reached and gave its peer id."""
    return bool(entry.get(STATUS_API)) and bool(entry.get(STATUS_PEER_ID))


# -- what kubectl get prints ---------------------------------------------------------------------------------------

STATUS_CONNECTED_PEERS = "connectedPeers"
"""A SwarmPool's printer column: :func:`connected_peers` of its ``status.status``."""


def per_swarm(counts: Iterable[tuple[str, int]]) -> str:
    """``swarm=count`` pairs by swarm name, comma-separated, for a printer column.

    A printer column shows only the first value its JSONPath matches (the API server's table convertor), so a
    column over ``status.status.*`` or ``status.swarms[*]`` would hide every swarm but one: the status carries
    this one string instead.
    """
    return ",".join(f"{swarm}={count}" for swarm, count in sorted(counts))


def peer_counts(report: Iterable[Mapping[str, Any]]) -> str:
    """``status.peerCounts`` of an Identity: the Peers of each swarm it is published on (``status.swarms``)."""
    return per_swarm(
        (str(entry["swarm"]), int(entry.get("peers") or 0))
        for entry in report or []
        if entry.get("published") and entry.get("swarm")
    )


def connected_peers(entries: Mapping[str, Any]) -> str:
    """The ``Number of connected peers`` of each swarm's entry of a SwarmPool's ``status.status``."""
    return per_swarm(
        (str(swarm), int(entry.get(STATUS_CONNECTED) or 0))
        for swarm, entry in entries.items()
        if isinstance(entry, Mapping)
    )
