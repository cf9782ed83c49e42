"""Who owns an Identity's account objects (ownership.py) and which SwarmPools serve an Identity (swarm_access.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    ADMIT_ANNOTATION,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.ownership import (
    account_object_names,
    in_the_way,
    is_identitys,
    owned,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import (
    admits,
)

UID = "uid-of-cluster1-identity"
LABELS = {
    "app.kubernetes.io/managed-by": "cluster-discovery-operator",
    "peerdiscovery.irt-saintexupery.com/identity": "cluster1-identity",
}
MINE = [{"apiVersion": "peerdiscovery.irt-saintexupery.com/v1alpha1", "kind": "Identity", "uid": UID}]


def obj(name: str, *, labels: dict[str, str] | None = None, refs: Any = (), annotations: Any = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns", "labels": labels or {}, "ownerReferences": list(refs)}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata}


def test_objects_the_product_made_for_the_identity_are_its_own() -> None:
    token = obj(
        "cluster1-identity-token",
        labels=LABELS,
        annotations={"kubernetes.io/service-account.name": "cluster1-identity"},
    )
    existing = {"account": obj("cluster1-identity", labels=LABELS, refs=MINE), "role": {}, "token": token}
    assert in_the_way(existing, identity_name="cluster1-identity", identity_uid=UID) == []
    # Deletion order: the token Secret before the ServiceAccount whose deletion removes it.
    assert [d["kind"] for d in owned(existing, identity_name="cluster1-identity", identity_uid=UID)] == [
        "Secret",
        "ServiceAccount",
    ]


def test_an_existing_account_of_the_same_name_is_in_the_way_and_never_deleted() -> None:
    existing = {
        "account": obj("builder"),  # a ServiceAccount someone else made
        "role": obj("builder", labels=LABELS, refs=[{"kind": "Identity", "uid": "another-uid"}]),
        "token": obj("builder-token", labels=LABELS, annotations={"kubernetes.io/service-account.name": "admin"}),
    }
    assert in_the_way(existing, identity_name="cluster1-identity", identity_uid=UID) == [
        "ServiceAccount builder",
        "Role builder",
        "Secret builder-token",
    ]
    assert owned(existing, identity_name="cluster1-identity", identity_uid=UID) == []


def test_forged_labels_without_the_owner_reference_do_not_make_an_object_the_identitys() -> None:
    assert not is_identitys(
        obj("cluster1-identity", labels=LABELS), identity_name="cluster1-identity", identity_uid=UID
    )


def pool(namespace: str, annotation: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "pool", "namespace": namespace}
    if annotation is not None:
        metadata["annotations"] = {ADMIT_ANNOTATION: annotation}
    return {"metadata": metadata}


def test_a_swarm_pool_serves_its_own_namespace_and_those_it_admits_by_name() -> None:
    assert admits(pool("team-a"), "team-a")
    assert not admits(pool("team-a"), "team-b")
    assert admits(pool("team-a", "team-b, team-c"), "team-b")
    assert not admits(pool("team-a", "team-bb"), "team-b")
    assert not admits(pool("team-a", "*"), "team-b")


def test_the_account_objects_are_named_once_for_the_role_and_the_agent() -> None:
    assert account_object_names("cluster1-identity") == {
        "account": "cluster1-identity",
        "role": "cluster1-identity",
        "binding": "cluster1-identity",
        "token": "cluster1-identity-token",
        "kubeconfig": "cluster1-identity-kubeconfig",
    }
