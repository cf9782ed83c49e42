# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Which objects of an Identity's names the product may change or delete.

Private to the collection: may change without notice.

An Identity's account objects are named after it (the ServiceAccount, Role
and RoleBinding ``<identity>``, the Secrets ``<identity>-token`` and
``<identity>-kubeconfig``), so a user who names an Identity after an existing
ServiceAccount could otherwise make the operator mint a token for it, publish
it to the swarm, and delete it with the Identity. An object is the Identity's
only when the product made it for that Identity: it carries the product's
``managed-by`` label and the Identity's label, and, when the Identity's uid is
known, is controlled by it. The token Secret carries no owner reference (the
token controller fills it right after creation, which would wake the
operator), so it is the Identity's when labelled so and bound to the
Identity's own ServiceAccount. Anything else of those names is in the way:
the role refuses to touch it and says so, and deletion leaves it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    LABEL_IDENTITY,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    identity_kubeconfig_secret,
    identity_token_secret,
)

SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def _same_name(identity: str) -> str:
    return identity


# The account objects of an Identity, by the key the identity role reads them under.
ACCOUNT_OBJECTS: dict[str, tuple[str, str, Callable[[str], str]]] = {
    # key: (apiVersion, kind, name from the Identity's name)
    "account": ("v1", "ServiceAccount", _same_name),
    "role": ("rbac.authorization.k8s.io/v1", "Role", _same_name),
    "binding": ("rbac.authorization.k8s.io/v1", "RoleBinding", _same_name),
    "token": ("v1", "Secret", identity_token_secret),
    "kubeconfig": ("v1", "Secret", identity_kubeconfig_secret),
}


def account_object_names(identity_name: str) -> dict[str, str]:
    """The names of an Identity's account objects, by key."""
    return {key: name(identity_name) for key, (_api_version, _kind, name) in ACCOUNT_OBJECTS.items()}


DELETION_ORDER = ("kubeconfig", "token", "binding", "role", "account")


def is_identitys(obj: Mapping[str, Any], *, identity_name: str, identity_uid: str = "", key: str = "") -> bool:
    """True when ``obj`` was made by the product for the Identity ``identity_name`` (uid ``identity_uid``)."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or labels.get(LABEL_IDENTITY) != identity_name[:63]:
        return False
    if key == "token":
        return (metadata.get("annotations") or {}).get(SERVICE_ACCOUNT_NAME_ANNOTATION) == identity_name
    if not identity_uid:
        return True  # run by a playbook without the object: the labels are all there is
    return any(
        ref.get("uid") == identity_uid and ref.get("kind") == "Identity"
        for ref in metadata.get("ownerReferences") or []
    )


def in_the_way(existing: Mapping[str, Any], *, identity_name: str, identity_uid: str = "") -> list[str]:
    """``Kind name`` of every existing account object (by key, ``{}`` when absent) that is not the Identity's."""
    blocking = []
    for key, obj in existing.items():
        if key not in ACCOUNT_OBJECTS or not obj:
            continue
        if not is_identitys(obj, identity_name=identity_name, identity_uid=identity_uid, key=key):
            blocking.append(f"{ACCOUNT_OBJECTS[key][1]} {(obj.get('metadata') or {}).get('name', '')}")
    return blocking


def owned(existing: Mapping[str, Any], *, identity_name: str, identity_uid: str = "") -> list[dict[str, Any]]:
    """Minimal definitions (apiVersion, kind, name, namespace) of the account objects that are the Identity's."""
    result = []
    # Secrets first and the ServiceAccount last: deleting the account makes the
    # token controller delete its token Secret, which would then be missing.
    for key in DELETION_ORDER:
        obj = existing.get(key)
        if obj and is_identitys(obj, identity_name=identity_name, identity_uid=identity_uid, key=key):
            api_version, kind, _name = ACCOUNT_OBJECTS[key]
            metadata = obj.get("metadata") or {}
            result.append(
                {
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
                }
            )
    return result
