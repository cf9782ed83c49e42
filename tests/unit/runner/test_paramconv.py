"""snake_case conversion: operator-sdk's paramconv.ToSnake, case for case.

Covers every case of operator-sdk's own ``paramconv_test.go`` (TestToSnake and
TestMapToSnake), the product's CRD keys, and recursion through nested maps and
lists. The expected values are operator-sdk's outputs, not what a "nicer"
converter would give (``IPFSVersion`` becomes ``ip_fs_version``).
"""

from __future__ import annotations

import pytest
from cluster_discovery_operator.paramconv import map_to_snake, to_snake

OPERATOR_SDK_CASES = [
    ("var", "var"),
    ("888", "888"),
    ("k8s_var", "k8s_var"),
    ("_k8s_var", "_k8s_var"),
    ("k8s var", "k8s_var"),
    ("ThisShouldHaveUnderscores", "_this_should_have_underscores"),
    ("sizeK8sBuckets", "size_k8s_buckets"),
    ("_CanYou_Handle_mixedVars", "_can_you_handle_mixed_vars"),
    ("this_should_be_a_noop", "this_should_be_a_noop"),
    ("egressIPs", "egress_ips"),
    ("egressIPsEgress", "egress_ips_egress"),
    ("egressIPsegress", "egress_ips_egress"),
    ("IPsegress", "_ips_egress"),
    ("egressIP", "egress_ip"),
    ("egressIPEgress", "egress_ip_egress"),
    ("egressIPegress", "egress_ip_egress"),
    ("URLegressIPEgressHTTP", "url_egress_ip_egress_http"),
    ("URLsegressIPsEgressHTTPs", "_urls_egress_ips_egress_https"),
    ("THIS_IS_SKIP_NOT_SK_IP", "_this_is_skip_not_sk_ip"),
]

PRODUCT_CASES = [
    ("IPFSVersion", "ip_fs_version"),
    ("URL", "url"),
    ("swarmKeySecretRef", "swarm_key_secret_ref"),
    ("bootstrapNodeAddresses", "bootstrap_node_addresses"),
    ("peerID", "peer_id"),
    ("kubeconfigSecretRef", "kubeconfig_secret_ref"),
]


@pytest.mark.parametrize(("key", "expected"), [pytest.param(k, e, id=k) for k, e in OPERATOR_SDK_CASES])
def test_to_snake_matches_operator_sdk(key: str, expected: str) -> None:
    """Each case of operator-sdk's TestToSnake gives operator-sdk's answer."""
    assert to_snake(key) == expected


@pytest.mark.parametrize(("key", "expected"), [pytest.param(k, e, id=k) for k, e in PRODUCT_CASES])
def test_product_keys_convert_as_operator_sdk_would(key: str, expected: str) -> None:
    """The product's spec keys get the names its roles' defaults use."""
    assert to_snake(key) == expected


def test_map_to_snake_keeps_operator_sdk_noops() -> None:
    """operator-sdk's TestMapToSnake: already-snake keys and numbers are unchanged."""
    given = {"var": "value", "var_var": "value", "size_k8s_test": "value", "888": "value"}
    assert map_to_snake(given) == given


def test_map_to_snake_recurses_into_maps_and_lists_but_not_values() -> None:
    """Keys are converted at every depth, inside lists too; string values are left alone."""
    spec = {
        "swarmKeySecretRef": {"secretName": "keyName"},
        "swarms": [{"bootstrapNodeAddresses": ["/ip4/1.2.3.4/tcp/4001"], "peerID": "QmPeerID"}],
    }
    assert map_to_snake(spec) == {
        "swarm_key_secret_ref": {"secret_name": "keyName"},
        "swarms": [{"bootstrap_node_addresses": ["/ip4/1.2.3.4/tcp/4001"], "peer_id": "QmPeerID"}],
    }


def test_empty_key_stays_empty() -> None:
    """Go's ToSnake panics on an empty key; ours returns it unchanged."""
    assert to_snake("") == ""
