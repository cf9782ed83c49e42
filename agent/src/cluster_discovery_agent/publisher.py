"""Publish a local Identity's change at once: the sending half of the agent's fast path.

The identity role publishes on its reconcile, after an ansible-playbook start and
the account's checks: seconds. The agent sees the same watch event and
publishes the same document within milliseconds, with the role's own code
(``SwarmIdentity.publish`` and ``retract``), so a member hears a new, changed
or deleted Identity about as fast as the network carries it:

- a new or changed spec (a new ``metadata.generation``) is published with the
  kubeconfig the role keeps in ``<identity>-kubeconfig``; before that Secret
  exists (a brand-new Identity) the kubeconfig of the previous document is
  kept, or none is sent until the role publishes it moments later;
- a deletion (``deletionTimestamp`` with the operator's finalizer pending) is
  retracted with a tombstone, before the finalizer even starts.

The role stays the authority: it publishes the same content, which the node
recognises as unchanged (same CID, same sequence), validates the spec and
reports in status. The agent only acts on what it can publish as is and logs
the rest, which the role then reports.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    draft_document,
    identity_kubeconfig_secret,
    identity_owner,
    published_fields,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    DocumentError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.ownership import (
    is_identitys,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from cluster_discovery_operator.kube import KubeClient
from cluster_discovery_operator.logs import fields

from .channels import IdentityRef
from .objects import SECRETS, SWARM_POOLS, KindObjects
from .swarms import NodeTokens, SwarmNotReady, resolve

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, kube: KubeClient, *, kubernetes_version: str, tokens: NodeTokens | None = None) -> None:
        self._pools = KindObjects(kube, SWARM_POOLS)
        self._secrets = KindObjects(kube, SECRETS)
        self._tokens = tokens if tokens is not None else NodeTokens(self._secrets)
        self._version = kubernetes_version
        self._lock = threading.Lock()
        self._done: dict[IdentityRef, tuple[Any, bool]] = {}
        # Why each Identity was last left to the operator: every status write of the role or the runner is a
        # watch event, and the same refusal must not be logged at each (once per change of reason).
        self._left: dict[IdentityRef, str] = {}

    def __call__(self, ref: IdentityRef, identity: dict[str, Any] | None) -> None:
        """React to one watch event of a local Identity (None: it is gone)."""
        if identity is None:
            self._done.pop(ref, None)
            self._left.pop(ref, None)
            return
        metadata = identity.get("metadata") or {}
        state = (metadata.get("generation"), bool(metadata.get("deletionTimestamp")))
        if self._done.get(ref) == state:
            return  # this generation (or this deletion) was handled already
        with self._lock:
            started = time.monotonic()
            try:
                for entry in (identity.get("spec") or {}).get("swarms") or []:
                    self._publish_on(ref, identity, entry, deleting=state[1])
            except (CollectionError, DocumentError, SwarmNotReady, ValueError) as err:
                # The role publishes on its reconcile and reports why in the Identity's status.
                reason = str(err)
                level = logging.DEBUG if self._left.get(ref) == reason else logging.INFO
                self._left[ref] = reason
                log.log(
                    level,
                    "left %s/%s to the operator: %s",
                    ref.namespace,
                    ref.name,
                    reason,
                    extra=fields(kind="Identity", namespace=ref.namespace, name=ref.name),
                )
                return
            self._done[ref] = state
            self._left.pop(ref, None)
            log.info(
                "%s Identity %s/%s in %.0f ms",
                "retracted" if state[1] else "published",
                ref.namespace,
                ref.name,
                (time.monotonic() - started) * 1000,
                extra=fields(kind="Identity", namespace=ref.namespace, name=ref.name),
            )

    def _publish_on(self, ref: IdentityRef, identity: dict[str, Any], entry: dict[str, Any], *, deleting: bool) -> None:
        node = resolve(
            self._pools,
            self._secrets,
            identity_namespace=ref.namespace,
            namespace=str(entry.get("namespace")),
            pool=str(entry.get("swarmPool")),
            swarm=str(entry.get("swarm")),
        )
        owner = identity_owner(ref.namespace, ref.name)
        with self._tokens.client(
            node.api_url,
            namespace=str(entry.get("namespace")),
            pool=str(entry.get("swarmPool")),
            swarm=str(entry.get("swarm")),
            timeout=30,
            retries=1,
        ) as client:
            swarm_node = SwarmIdentity(client, node.key)
            if deleting:
                outcome = swarm_node.retract(owner=owner)
            else:
                document = draft_document(
                    published_fields(identity.get("spec") or {}),
                    publisher=swarm_node.peer_id,
                    addresses=node.addresses,
                    kubernetes_version=self._version,
                )
                kubeconfig_secret = self._secrets.get(identity_kubeconfig_secret(ref.name), ref.namespace) or {}
                if kubeconfig_secret and not is_identitys(
                    kubeconfig_secret,
                    identity_name=ref.name,
                    identity_uid=str((identity.get("metadata") or {}).get("uid") or ""),
                    key="kubeconfig",
                ):
                    # Not the role's: the role refuses the Identity and says why.
                    raise ValueError(f"the Secret {ref.namespace}/{ref.name}-kubeconfig was not made for this Identity")
                kubeconfig_b64 = (kubeconfig_secret.get("data") or {}).get("config")
                kubeconfig = base64.b64decode(kubeconfig_b64).decode() if kubeconfig_b64 else None
                outcome = swarm_node.publish(
                    owner=owner, document=document, kubeconfig=kubeconfig, keep_kubeconfig=True
                )
            if outcome.changed and outcome.published is not None:
                swarm_node.announce(outcome.published)
