"""The CRDs and the seed's samples, checked offline.

Covered: the CRDs' shape (group, version, scope, status subresource, printer
columns, descriptions, list semantics), every sample in config/samples against
its CRD (unknown or miscased fields count as errors, since the server would
drop them), the status the original product and operator-sdk write, and the
invalid variants the server must refuse. Not covered here: what the real API
server does with the same objects (tests/integration/deploy/test_deploy_crds_apply.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from deploy_support import (
    API_VERSION,
    CEL_RULES,
    GROUP,
    PLURALS,
    crd_files,
    custom_resource_samples,
    defaulted,
    load_crds,
    sample_documents,
    schema_of,
    validate,
    version_of,
)

CRDS = load_crds()

# The status of seed 000's `kubectl get swarmpool cluster2-private -o json | jq .status`.
SEED_SWARMPOOL_STATUS = {
    "hash": "nuiP9lBR/hBS9FxxkTyzeQ==",
    "lastUpdate": "2020-10-09T15:38:26Z",
    "status": {
        "cluster2-private": {
            "Addresses": ["/ip4/34.78.69.228/tcp/4001/p2p/QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz"],
            "Name": "cluster2-private",
            "Number of bootstraps": 1,
            "Number of connected peers": 1,
            "Peer Id": "QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz",
        }
    },
}

# What operator-sdk's Ansible operator writes (internal/ansible/controller/status/types.go).
OPERATOR_SDK_CONDITIONS = [
    {
        "type": "Successful",
        "status": "True",
        "reason": "Successful",
        "message": "Awaiting next reconciliation",
        "lastTransitionTime": "2026-01-31T12:00:00Z",
        "ansibleResult": {
            "ok": 7,
            "changed": 0,
            "skipped": 2,
            "failures": 0,
            "completion": "2026-01-31T12:00:00.123+00:00",
        },
    },
    {
        "type": "Running",
        "status": "False",
        "reason": "Successful",
        "message": "Running reconciliation",
        "lastTransitionTime": "2026-01-31T11:59:58Z",
    },
]


def _sample(kind: str, name: str | None = None) -> dict[str, Any]:
    for doc in custom_resource_samples():
        if doc.body["kind"] == kind and (name is None or doc.body["metadata"]["name"] == name):
            return copy.deepcopy(doc.body)
    raise LookupError(f"no {kind} sample named {name}")


def _private_swarmpool() -> dict[str, Any]:
    return _sample("SwarmPool", "cluster1-private")


def test_the_three_kinds_are_served_and_stored_as_v1alpha1_namespaced_with_a_status_subresource() -> None:
    assert sorted(CRDS) == ["Identity", "Peer", "SwarmPool"]
    for kind, crd in CRDS.items():
        plural = PLURALS[kind]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
        assert crd["spec"]["group"] == GROUP
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["plural"] == plural
        assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [("v1alpha1", True, True)]
        assert version_of(crd)["subresources"] == {"status": {}}


def test_crd_file_names_follow_operator_sdk_group_plural_convention() -> None:
    assert [p.name for p in crd_files()] == [f"{GROUP}_{plural}.yaml" for plural in sorted(PLURALS.values())]


def test_peers_print_exactly_the_seed_columns_and_no_age() -> None:
    columns = version_of(CRDS["Peer"])["additionalPrinterColumns"]
    assert [(c["name"].upper(), c["jsonPath"]) for c in columns] == [
        ("PEERNAME", ".spec.name"),
        ("STATUS", ".status.status"),
        ("IP", ".spec.URL"),
        ("DESCRIPTION", ".spec.description"),
    ]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param("SwarmPool", ["SWARMS", "READY", "AGE"], id="swarmpool"),
        pytest.param("Identity", ["IDENTITYNAME", "URL", "PUBLISHED", "AGE"], id="identity"),
    ],
)
def test_printer_columns(kind: str, expected: list[str]) -> None:
    assert [c["name"].upper() for c in version_of(CRDS[kind])["additionalPrinterColumns"]] == expected


def _spec_properties(schema: dict[str, Any], path: str = "spec") -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, child in schema.get("properties", {}).items():
        found.append((f"{path}.{name}", child))
        found.extend(_spec_properties(child, f"{path}.{name}"))
    if "items" in schema:
        found.extend(_spec_properties(schema["items"], f"{path}[]"))
    return found


@pytest.mark.parametrize("kind", sorted(PLURALS))
def test_every_spec_field_is_described_and_typed(kind: str) -> None:
    spec = schema_of(CRDS[kind])["properties"]["spec"]
    undocumented = [path for path, node in _spec_properties(spec) if not node.get("description")]
    untyped = [
        path
        for path, node in _spec_properties(spec)
        if "type" not in node and not node.get("x-kubernetes-int-or-string")
    ]
    assert undocumented == []
    assert untyped == []


@pytest.mark.parametrize("kind", sorted(PLURALS))
def test_status_lists_its_fields_instead_of_preserving_unknown_ones(kind: str) -> None:
    status = schema_of(CRDS[kind])["properties"]["status"]
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert {"conditions", "observedGeneration"} <= set(status["properties"])


def test_every_cel_rule_has_a_python_equivalent_and_every_equivalent_is_used() -> None:
    rules = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            rules.update(" ".join(v["rule"].split()) for v in node.get("x-kubernetes-validations", []))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk([schema_of(crd) for crd in CRDS.values()])
    assert rules == set(CEL_RULES)


def test_the_samples_cover_every_manifest_of_the_seed() -> None:
    kinds = sorted((d.body["kind"], d.body["metadata"]["name"]) for d in sample_documents())
    assert kinds == sorted(
        [
            ("ClusterRole", "metrics-reader"),
            ("ClusterRoleBinding", "metrics-reader-binding"),
            ("Identity", "cluster1-identity"),
            ("Identity", "cluster1-identity"),  # and its update
            ("Identity", "cluster2-identity"),
            ("Namespace", "peer-configuration"),
            ("Namespace", "private-network-peer-configuration"),
            ("Namespace", "private-network-peer-configuration"),
            ("Namespace", "private-network-peer-configuration"),
            ("Peer", "qmpgihqyzm2hq9k7n2mrrfhjtauzmdhqnp8sbrgaw2mkd1"),
            ("Secret", "private-swarm-key"),
            ("SwarmPool", "cluster1"),
            ("SwarmPool", "cluster1-private"),
            ("SwarmPool", "cluster1-private"),  # traefik instead of a load balancer
            ("SwarmPool", "cluster2-private"),
        ]
    )


@pytest.mark.parametrize("doc", custom_resource_samples(), ids=lambda d: d.id)
def test_every_sample_validates_against_its_crd(doc: Any) -> None:
    assert validate(CRDS[doc.body["kind"]], doc.body) == []


def test_the_seed_swarmpool_status_and_operator_sdk_conditions_validate() -> None:
    pool = _private_swarmpool()
    pool["status"] = {**SEED_SWARMPOOL_STATUS, "conditions": OPERATOR_SDK_CONDITIONS, "observedGeneration": 1}
    assert validate(CRDS["SwarmPool"], pool) == []


def test_a_swarm_error_is_reported_in_status() -> None:
    pool = _private_swarmpool()
    pool["status"] = {
        "status": {"cluster1-private": {"Name": "cluster1-private", "Error": "IPFSVersion v0.1.0 is not supported"}}
    }
    assert validate(CRDS["SwarmPool"], pool) == []


def test_the_peer_status_the_operator_writes_validates() -> None:
    peer = _sample("Peer")
    peer["status"] = {
        "status": "Online",
        "missingCounter": 0,
        "lastSeen": "2026-01-31T12:00:00Z",
        "kubernetesVersion": "v1.37.2",
        "peerId": "QmPGiHQyZm2Hq9K7n2MrRfHJTaUzmDhQNP8SbRGaW2MKD1",
        "sequence": 1769860800,
        "swarm": {
            "namespace": "private-network-peer-configuration",
            "swarmPool": "cluster1-private",
            "swarm": "cluster1-private",
        },
        "identity": {"name": "cluster1-identity", "namespace": "private-network-peer-configuration"},
        "conditions": OPERATOR_SDK_CONDITIONS,
        "observedGeneration": 3,
    }
    assert validate(CRDS["Peer"], peer) == []


def test_the_identity_status_the_operator_writes_validates() -> None:
    identity = _sample("Identity", "cluster1-identity")
    identity["status"] = {
        "serviceAccount": "cluster1-identity",
        "kubeconfigSecret": "cluster1-identity-kubeconfig",
        "swarms": [
            {
                "namespace": "private-network-peer-configuration",
                "swarmPool": "cluster1-private",
                "swarm": "cluster1-private",
                "published": True,
                "peerId": "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx",
                "cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
                "sequence": 1769860800,
                "publishedAt": "2026-01-31T12:00:00Z",
                "peers": 1,
                "syncPeers": 1,
            },
        ],
        "conditions": OPERATOR_SDK_CONDITIONS,
        "observedGeneration": 2,
    }
    assert validate(CRDS["Identity"], identity) == []


def test_defaults_fill_what_the_seed_leaves_out() -> None:
    pool = _private_swarmpool()
    swarm = pool["spec"]["swarms"][0]
    del swarm["storage"], swarm["IPFSVersion"], swarm["network"]["swarmPort"], swarm["network"]["apiPort"]
    swarm["network"]["loadBalancer"] = {}
    stored = defaulted(CRDS["SwarmPool"], pool)["spec"]["swarms"][0]
    assert stored["storage"] == {"capacity": "1Gi"}
    assert stored["IPFSVersion"] == "v0.43.1"
    assert (stored["network"]["swarmPort"], stored["network"]["apiPort"]) == (4001, 5001)
    assert stored["network"]["loadBalancer"] == {"loadBalancerIP": "auto", "exposedAPI": False}


def _swarm(obj: dict[str, Any]) -> dict[str, Any]:
    swarm: dict[str, Any] = obj["spec"]["swarms"][0]
    return swarm


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        node = obj
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        node = obj
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


SWARM = ["spec", "swarms", 0]
NETWORK = [*SWARM, "network"]
TRAEFIK = {
    "traefikEntryPoint": "ipfs",
    "traefikLoadBalancerServiceName": "traefik",
    "traefikLoadBalancerNamespace": "traefik-v2",
}


def _duplicate_swarm(obj: dict[str, Any]) -> None:
    obj["spec"]["swarms"].append(copy.deepcopy(obj["spec"]["swarms"][0]))


# (kind, sample name, mutation, a fragment of the expected error). The same cases run against the real
# API server in tests/integration/deploy; keep the two lists in step.
INVALID_VARIANTS = [
    pytest.param("SwarmPool", _delete(["spec", "swarms"]), "swarms", id="swarmpool-without-swarms"),
    pytest.param("SwarmPool", _set(["spec", "swarms"], []), "swarms", id="swarmpool-with-empty-swarms"),
    pytest.param("SwarmPool", _set([*NETWORK, "swarmPort"], "4001x"), "swarmPort", id="non-integer-swarm-port"),
    pytest.param("SwarmPool", _set([*NETWORK, "apiPort"], 0), "apiPort", id="api-port-zero"),
    pytest.param("SwarmPool", _set([*NETWORK, "swarmPort"], 65536), "swarmPort", id="swarm-port-above-65535"),
    pytest.param(
        "SwarmPool",
        _set([*NETWORK, "traefik"], TRAEFIK),
        "exactly one of loadBalancer or traefik",
        id="both-loadbalancer-and-traefik",
    ),
    pytest.param(
        "SwarmPool",
        _delete([*NETWORK, "loadBalancer"]),
        "exactly one of loadBalancer or traefik",
        id="neither-loadbalancer-nor-traefik",
    ),
    pytest.param(
        "SwarmPool",
        _set([*NETWORK, "apiPort"], 4001),
        "swarmPort and apiPort must differ",
        id="same-swarm-and-api-port",
    ),
    pytest.param(
        "SwarmPool", _set([*NETWORK, "loadBalancer", "exposedAPI"], "no"), "exposedAPI", id="non-boolean-exposed-api"
    ),
    pytest.param("SwarmPool", _set([*NETWORK, "loadbalancer"], {}), "loadbalancer", id="miscased-field"),
    pytest.param("SwarmPool", _delete([*SWARM, "name"]), "name", id="swarm-without-name"),
    pytest.param("SwarmPool", _set([*SWARM, "name"], "Cluster_1"), "name", id="swarm-name-not-a-dns-label"),
    pytest.param("SwarmPool", _duplicate_swarm, "Duplicate value", id="duplicate-swarm-names"),
    pytest.param("SwarmPool", _set([*SWARM, "storage", "capacity"], "lots"), "capacity", id="capacity-not-a-quantity"),
    pytest.param("SwarmPool", _set([*SWARM, "IPFSVersion"], "latest"), "IPFSVersion", id="ipfs-version-not-a-release"),
    pytest.param(
        "SwarmPool",
        _set([*SWARM, "swarmDefinition", "bootstrapNodeAddresses"], ["104.155.27.210:4001"]),
        "bootstrapNodeAddresses",
        id="bootstrap-address-not-a-multiaddr",
    ),
    pytest.param(
        "SwarmPool",
        _set([*SWARM, "swarmDefinition", "swarmKeySecretRef"], "Private Swarm"),
        "swarmKeySecretRef",
        id="secret-ref-not-a-secret-name",
    ),
    pytest.param(
        "SwarmPool",
        _set([*NETWORK, "traefik"], {"traefikEntryPoint": "ipfs"}),
        "traefikLoadBalancerServiceName",
        id="traefik-without-its-service",
    ),
    pytest.param("Identity", _delete(["spec", "name"]), "name", id="identity-without-name"),
    pytest.param("Identity", _delete(["spec", "swarms"]), "swarms", id="identity-without-swarms"),
    pytest.param(
        "Identity", _delete(["spec", "swarms", 0, "swarmPool"]), "swarmPool", id="identity-swarm-without-pool"
    ),
    pytest.param("Identity", _set(["spec", "URL"], "35.240.24.118"), "URL", id="identity-url-without-scheme"),
    pytest.param(
        "Identity",
        _set(["spec", "categories"], [{"name": "computing"}, {"name": "computing"}]),
        "Duplicate value",
        id="identity-duplicate-categories",
    ),
    pytest.param(
        "Identity", _set(["spec", "categories"], ["computing"]), "categories", id="identity-category-not-an-object"
    ),
    pytest.param(
        "Peer", _set(["status"], {"status": "Unknown"}), "status", id="peer-status-neither-online-nor-offline"
    ),
    pytest.param(
        "Peer", _set(["status"], {"missingCounter": -1}), "missingCounter", id="peer-negative-missing-counter"
    ),
]


def _base(kind: str) -> dict[str, Any]:
    return {
        "SwarmPool": _private_swarmpool,
        "Identity": lambda: _sample("Identity", "cluster1-identity"),
        "Peer": lambda: _sample("Peer"),
    }[kind]()


@pytest.mark.parametrize(("kind", "mutate", "fragment"), INVALID_VARIANTS)
def test_invalid_variants_are_rejected(kind: str, mutate: Callable[[dict[str, Any]], None], fragment: str) -> None:
    obj = _base(kind)
    assert validate(CRDS[kind], obj) == []
    mutate(obj)
    errors = validate(CRDS[kind], obj)
    assert errors, f"{kind} variant was accepted"
    assert any(fragment in error for error in errors), errors


def test_a_lone_swarm_port_equal_to_the_default_api_port_is_rejected() -> None:
    pool = _private_swarmpool()
    network = _swarm(pool)["network"]
    del network["apiPort"]
    network["swarmPort"] = 5001
    assert "swarmPort and apiPort must differ" in " ".join(validate(CRDS["SwarmPool"], pool))


def test_a_swarm_without_network_is_accepted_for_in_cluster_use() -> None:
    pool = _private_swarmpool()
    del _swarm(pool)["network"]
    assert validate(CRDS["SwarmPool"], pool) == []


def test_capacity_accepts_an_integer_number_of_bytes() -> None:
    pool = _private_swarmpool()
    _swarm(pool)["storage"]["capacity"] = 1073741824
    assert validate(CRDS["SwarmPool"], pool) == []


def test_load_balancer_ip_accepts_a_static_address() -> None:
    pool = _private_swarmpool()
    _swarm(pool)["network"]["loadBalancer"]["loadBalancerIP"] = "104.155.27.210"
    assert validate(CRDS["SwarmPool"], pool) == []


def test_samples_use_this_api_version() -> None:
    assert {doc.body["apiVersion"] for doc in custom_resource_samples()} == {API_VERSION}
