# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Who may use a SwarmPool's node: the Identities it serves, and the token its RPC API asks for.

Private to the collection: may change without notice.

A SwarmPool's node speaks on its swarm with the swarm key of its namespace; an
Identity that publishes through it speaks to that swarm and reads what its
members sealed. So an Identity publishes only through a SwarmPool of its own
namespace, unless the SwarmPool's owner admits other namespaces by name in
the annotation ``peerdiscovery.irt-saintexupery.com/admit-identity-namespaces``
(a comma-separated list). An annotation, not a spec field: the SwarmPool
manifests of the original controller apply unchanged, and only who may edit
the SwarmPool (its namespace's users) can admit anyone.

Each node's RPC API answers only requests bearing the token of the Secret
``api_token_secret(pool, swarm)`` (kubo's ``API.Authorizations``): the
swarmpool role makes it, and the roles and the agent read it here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    ADMIT_ANNOTATION,
    API_TOKEN_KEY,
    node_ready,
    swarm_key_secret,
)


@dataclass(frozen=True)
class ServedSwarm:
    """One swarm of a SwarmPool as its spec and status describe it."""

    spec: Mapping[str, Any]
    """The swarm's entry of ``spec.swarms`` (camelCase, as stored); empty when the SwarmPool has no such swarm."""
    status: Mapping[str, Any]
    """The swarm's entry of ``status.status``, as the swarmpool role and the agent report the node."""
    key_secret: str

    @property
    def ready(self) -> bool:
        """The node runs and has answered the role: it reported its RPC API and its peer id, and no error."""
        return bool(self.spec) and node_ready(self.status)


def served_swarm(pool: Mapping[str, Any], swarm: str) -> ServedSwarm:
    """Where ``swarm`` of SwarmPool ``pool`` (the object, or {} when there is none) is served."""
    metadata = pool.get("metadata") or {}
    specs = (pool.get("spec") or {}).get("swarms") or []
    spec = next((entry for entry in specs if isinstance(entry, Mapping) and entry.get("name") == swarm), {})
    status = ((pool.get("status") or {}).get("status") or {}).get(swarm) or {}
    reference = (spec.get("swarmDefinition") or {}).get("swarmKeySecretRef")
    return ServedSwarm(
        spec=spec,
        status=status if isinstance(status, Mapping) else {},
        key_secret=swarm_key_secret(str(metadata.get("name", "")), swarm, reference),
    )


def authorization(secret: Mapping[str, Any] | None) -> str | None:
    """The ``Authorization`` header value from that Secret, None when it has no token."""
    token = ((secret or {}).get("data") or {}).get(API_TOKEN_KEY)
    return f"Bearer {base64.b64decode(token).decode()}" if token else None


def admitted_namespaces(pool: Mapping[str, Any]) -> set[str]:
    metadata = pool.get("metadata") or {}
    text = (metadata.get("annotations") or {}).get(ADMIT_ANNOTATION) or ""
    return {name.strip() for name in str(text).split(",") if name.strip()}


def admits(pool: Mapping[str, Any], identity_namespace: str) -> bool:
    """True when an Identity of ``identity_namespace`` may publish through ``pool``."""
    metadata = pool.get("metadata") or {}
    return metadata.get("namespace") == identity_namespace or identity_namespace in admitted_namespaces(pool)


def refusal(pool_namespace: str, pool_name: str, identity_namespace: str) -> str:
    return (
        f"SwarmPool {pool_namespace}/{pool_name} does not admit Identities of namespace {identity_namespace}: an"
        f" Identity publishes through a SwarmPool of its own namespace, or of one whose {ADMIT_ANNOTATION}"
        f" annotation names {identity_namespace}"
    )
