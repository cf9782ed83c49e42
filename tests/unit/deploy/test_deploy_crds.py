"""The CRDs and the seed's samples, checked offline.

Covered: the CRDs' shape (group, version, scope, status subresource, printer
columns, descriptions, list semantics), every sample in config/samples against
its CRD (unknown or miscased fields count as errors, since the server would
drop them), the status the original product and operator-sdk write, and the
invalid variants the server must refuse. Not covered here: what the real API
server does with the same objects (tests/integration/deploy/test_deploy_crds_apply.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deploy.deploy_support import (
    API_VERSION,
    CEL_RULES,
    GROUP,
    INVALID_VARIANTS,
    PLURALS,
    Variant,
    base_object,
    crd_files,
    custom_resource_samples,
    defaulted,
    load_crds,
    sample_documents,
    sample_object,
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

# What the swarmpool role writes (roles/swarmpool/tasks/node.yml): the seed's fields plus API.
ROLE_SWARMPOOL_STATUS = {
    "hash": "5d41402abc4b2a76b9719d911017c592",
    "lastUpdate": "2026-01-31T12:00:00Z",
    "status": {
        "cluster1-private": {
            "Name": "cluster1-private",
            "API": "http://10.244.0.7:5001",
            "Peer Id": "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp",
            "Addresses": ["/ip4/104.155.27.210/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"],
            "Number of bootstraps": 0,
            "Number of connected peers": 0,
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


def _private_swarmpool() -> dict[str, Any]:
    return base_object("SwarmPool")


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
        pytest.param("SwarmPool", ["CONNECTED", "READY", "AGE"], id="swarmpool"),
        pytest.param("Identity", ["IDENTITYNAME", "URL", "PUBLISHED", "PEERS", "AGE"], id="identity"),
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
    rules: set[str] = set()

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


def test_the_status_the_swarmpool_role_writes_validates() -> None:
    """Nothing the role writes may be pruned: the identity role reads API back."""
    pool = _private_swarmpool()
    pool["status"] = ROLE_SWARMPOOL_STATUS
    assert validate(CRDS["SwarmPool"], pool) == []


def test_a_swarm_error_is_reported_in_status() -> None:
    pool = _private_swarmpool()
    pool["status"] = {
        "status": {"cluster1-private": {"Name": "cluster1-private", "Error": "IPFSVersion v0.1.0 is not supported"}}
    }
    assert validate(CRDS["SwarmPool"], pool) == []


def test_the_peer_status_the_operator_writes_validates() -> None:
    peer = sample_object("Peer")
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
    identity = sample_object("Identity", "cluster1-identity")
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


@pytest.mark.parametrize("variant", INVALID_VARIANTS, ids=lambda v: v.id)
def test_invalid_variants_are_rejected(variant: Variant) -> None:
    obj = base_object(variant.kind)
    assert validate(CRDS[variant.kind], obj) == []
    variant.mutate(obj)
    errors = validate(CRDS[variant.kind], obj)
    assert errors, f"{variant.kind} variant was accepted"
    assert any(variant.fragment in error for error in errors), errors


def test_a_lone_swarm_port_equal_to_the_default_api_port_is_rejected() -> None:
    pool = _private_swarmpool()
    network = _swarm(pool)["network"]
    del network["apiPort"]
    network["swarmPort"] = 5001
    assert "swarmPort and apiPort must differ" in " ".join(validate(CRDS["SwarmPool"], pool))


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
