"""The CRDs and the seed's manifests on a real API server (the test bed's kube-apiserver, built from k8s.io/kubernetes).

Covered: the CRDs install as structural schemas whose CEL rules compile; every
sample of config/samples applies unchanged with kubectl (strict field
validation, so a miscased field fails instead of being pruned) and is stored
as written plus the schemas' defaults; the invalid variants shared with the
offline tests are refused with 422 (400 for an unknown field) naming the
field or rule; `kubectl get swarmpools,identities,peers -A` prints the seed's
columns. Not covered here: the operator reconciling them (roles' tests).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from testbed.controlplane import ControlPlane
from tests.unit.deploy.deploy_support import (
    CONFIG_DIR,
    GROUP,
    INVALID_VARIANTS,
    PLURALS,
    SAMPLES_DIR,
    VERSION,
    Variant,
    base_object,
    defaulted,
    load_crds,
    load_yaml_documents,
    sample_files,
)

pytestmark = pytest.mark.integration

CRDS = load_crds()
SEED_NAMESPACES = ("peer-configuration", "private-network-peer-configuration")

# The walkthrough's order: cluster 1's pools, cluster 2 joining, both
# Identities, cluster 1's update, then the traefik variant of cluster 1's
# pool (it replaces the load-balanced one, as a user switching would).
APPLY_ORDER = [
    "peerdiscovery_v1alpha1_swarmpool.yaml",
    "peerdiscovery_v1alpha1_swarmpool_private.yaml",
    "peerdiscovery_v1alpha1_swarmpool_join.yaml",
    "peerdiscovery_v1alpha1_identity.yaml",
    "peerdiscovery_v1alpha1_identity_cluster2.yaml",
    "peerdiscovery_v1alpha1_identity_update.yaml",
    "peerdiscovery_v1alpha1_swarmpool_private_traefik.yaml",
    "peerdiscovery_v1alpha1_peer.yaml",
    "metrics_reader_binding.yaml",
]


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The shared control plane with our CRDs installed; the seed's namespaces are removed afterwards."""
    control_plane.kubectl("apply", "-k", str(CONFIG_DIR / "crd"))
    control_plane.wait_established(*[f"{plural}.{GROUP}" for plural in PLURALS.values()])
    try:
        yield control_plane
    finally:
        control_plane.kubectl(
            "delete", "namespace", *SEED_NAMESPACES, "--ignore-not-found", "--wait=true", "--timeout=120s", check=False
        )
        control_plane.kubectl("delete", "-f", str(SAMPLES_DIR / "metrics_reader_binding.yaml"), "--ignore-not-found")


def _get(cp: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, Any]:
    out = cp.kubectl("get", f"{PLURALS[kind]}.{GROUP}", name, "-n", namespace, "-o", "json").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def test_the_crds_are_structural_and_established(cluster: ControlPlane) -> None:
    for kind, plural in PLURALS.items():
        crd = json.loads(cluster.kubectl("get", "crd", f"{plural}.{GROUP}", "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", kind
        assert conditions.get("NamesAccepted") == "True", kind
        assert "NonStructuralSchema" not in conditions, kind
        assert crd["status"]["acceptedNames"]["kind"] == kind


def test_the_apply_order_covers_every_sample() -> None:
    assert sorted(APPLY_ORDER) == sorted(p.name for p in sample_files())


@pytest.fixture(scope="module")
def applied(cluster: ControlPlane) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Apply every sample in the walkthrough's order; per file, each custom resource and how it was stored then."""
    stored: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for name in APPLY_ORDER:
        path = SAMPLES_DIR / name
        # Strict field validation (kubectl's default, stated): an unknown field fails instead of being dropped.
        cluster.kubectl("apply", "--validate=strict", "-f", str(path))
        stored[name] = [
            (doc, _get(cluster, doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]))
            for doc in load_yaml_documents(path)
            if doc["apiVersion"] == f"{GROUP}/{VERSION}"
        ]
    return stored


@pytest.mark.parametrize("name", APPLY_ORDER)
def test_every_sample_applies_unchanged_and_is_stored_as_written(
    applied: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]], name: str
) -> None:
    for doc, stored in applied[name]:
        assert stored["spec"] == defaulted(CRDS[doc["kind"]], doc)["spec"]


def test_the_samples_kustomization_applies(cluster: ControlPlane, applied: object) -> None:
    out = cluster.kubectl("apply", "--validate=strict", "-k", str(SAMPLES_DIR)).stdout
    assert "swarmpool.peerdiscovery.irt-saintexupery.com/cluster1" in out
    assert "identity.peerdiscovery.irt-saintexupery.com/cluster1-identity" in out


def test_the_server_fills_the_defaults_the_seed_leaves_out(cluster: ControlPlane) -> None:
    namespace = cluster.create_namespace("crd-defaults")
    pool = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SwarmPool",
        "metadata": {"name": "minimal", "namespace": namespace},
        "spec": {"swarms": [{"name": "minimal", "network": {"loadBalancer": {}}}]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pool))
    (swarm,) = _get(cluster, "SwarmPool", "minimal", namespace)["spec"]["swarms"]
    assert swarm == {
        "name": "minimal",
        "network": {
            "loadBalancer": {"loadBalancerIP": "auto", "exposedAPI": False},
            "swarmPort": 4001,
            "apiPort": 5001,
        },
        "storage": {"capacity": "1Gi"},
        "IPFSVersion": "v0.43.1",
    }
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def variants_namespace(cluster: ControlPlane) -> Iterator[str]:
    namespace = cluster.create_namespace("crd-invalid")
    yield namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.parametrize("variant", INVALID_VARIANTS, ids=lambda v: v.id)
def test_invalid_variants_are_refused_by_the_api_server(
    cluster: ControlPlane, variants_namespace: str, variant: Variant
) -> None:
    obj = base_object(variant.kind)
    # Short names, so that the SwarmPool rule on name lengths only fires where a variant means it to.
    obj["metadata"] = {"name": f"x-{variant.id}"[:24].rstrip("-"), "namespace": variants_namespace}
    with cluster.api_client() as client:
        api = kubernetes.client.CustomObjectsApi(client)
        plural = PLURALS[variant.kind]
        if variant.status_only:
            # Status is ignored on create; the server checks it when written through /status.
            api.create_namespaced_custom_object(GROUP, VERSION, variants_namespace, plural, obj)
            changed = copy.deepcopy(obj)
            variant.mutate(changed)
            with pytest.raises(ApiException) as refused:
                api.patch_namespaced_custom_object_status(
                    GROUP, VERSION, variants_namespace, plural, obj["metadata"]["name"], {"status": changed["status"]}
                )
        else:
            variant.mutate(obj)
            with pytest.raises(ApiException) as refused:
                api.create_namespaced_custom_object(
                    GROUP, VERSION, variants_namespace, plural, obj, field_validation="Strict"
                )
    assert refused.value.status == variant.http_status, refused.value.body
    assert variant.fragment in str(refused.value.body)


def test_an_invalid_sample_is_refused_by_kubectl_with_the_rule_message(
    cluster: ControlPlane, variants_namespace: str
) -> None:
    docs = load_yaml_documents(SAMPLES_DIR / "peerdiscovery_v1alpha1_swarmpool_private.yaml")
    pool = docs[1]
    pool["metadata"] = {"name": "both-exposures", "namespace": variants_namespace}
    pool["spec"]["swarms"][0]["network"]["traefik"] = {
        "traefikEntryPoint": "ipfs",
        "traefikLoadBalancerServiceName": "traefik",
        "traefikLoadBalancerNamespace": "traefik-v2",
    }
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(pool), check=False)
    assert result.returncode != 0
    assert "set exactly one of loadBalancer or traefik" in result.stderr


def _tables(output: str) -> dict[str, list[list[str]]]:
    """`kubectl get a,b,c` output as {resource prefix: rows split on runs of 2+ spaces}, header first."""
    tables: dict[str, list[list[str]]] = {}
    for block in output.strip().split("\n\n"):
        lines = block.strip().splitlines()
        rows = [[cell for cell in line.split("  ") if cell.strip()] for line in lines]
        rows = [[cell.strip() for cell in row] for row in rows]
        resource = rows[1][1].split("/")[0] if len(rows) > 1 else ""
        tables[resource] = rows
    return tables


def test_kubectl_get_prints_the_seed_columns(cluster: ControlPlane, applied: object) -> None:
    namespace = "private-network-peer-configuration"
    peer = "qmpgihqyzm2hq9k7n2mrrfhjtauzmdhqnp8sbrgaw2mkd1"
    now = "2026-01-31T12:00:00Z"
    cluster.kubectl(
        "patch", f"peers.{GROUP}", peer, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"status": "Online", "missingCounter": 0}}),
    )  # fmt: skip
    cluster.kubectl(
        "patch", f"identities.{GROUP}", "cluster1-identity", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"swarms": [
            {"namespace": namespace, "swarmPool": "cluster1-private", "swarm": "cluster1-private", "published": True,
             "peers": 2},
            {"namespace": namespace, "swarmPool": "cluster1-public", "swarm": "cluster1-public", "published": True,
             "peers": 0},
        ], "publishedOn": "cluster1-private,cluster1-public", "peerCounts": "cluster1-private=2,cluster1-public=0"}}),
    )  # fmt: skip
    cluster.kubectl(
        "patch", f"swarmpools.{GROUP}", "cluster1-private", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"conditions": [
            {"type": "Successful", "status": "True", "reason": "Successful",
             "message": "Awaiting next reconciliation", "lastTransitionTime": now},
        ], "connectedPeers": "cluster1-private=2"}}),
    )  # fmt: skip

    peers = cluster.kubectl("get", "peers", "-A").stdout
    header, *rows = peers.strip().splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "PEERNAME", "STATUS", "IP", "DESCRIPTION"]
    # The seed's line, whitespace aside.
    assert f"{namespace} {peer} Cluster 2 Online https://35.187.98.45 I'm cluster 2" in [
        " ".join(r.split()) for r in rows
    ]

    tables = _tables(cluster.kubectl("get", "swarmpools,identities,peers", "-A").stdout)
    assert tables[f"swarmpool.{GROUP}"][0] == ["NAMESPACE", "NAME", "CONNECTED", "READY", "AGE"]
    assert tables[f"identity.{GROUP}"][0] == ["NAMESPACE", "NAME", "IDENTITYNAME", "URL", "PUBLISHED", "PEERS", "AGE"]
    assert tables[f"peer.{GROUP}"][0] == ["NAMESPACE", "NAME", "PEERNAME", "STATUS", "IP", "DESCRIPTION"]
    pools = {row[1]: row for row in tables[f"swarmpool.{GROUP}"][1:]}
    assert pools[f"swarmpool.{GROUP}/cluster1-private"][2:4] == ["cluster1-private=2", "True"]
    identities = {row[1]: row for row in tables[f"identity.{GROUP}"][1:]}
    # Every swarm shows, not only the first: a column prints only the first value its JSONPath matches.
    assert identities[f"identity.{GROUP}/cluster1-identity"][2:6] == [
        "Cluster 1",
        "https://35.240.24.118",
        "cluster1-private,cluster1-public",
        "cluster1-private=2,cluster1-public=0",
    ]
