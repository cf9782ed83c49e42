"""What Ansible hides in peer_sync's output: the members' kubeconfigs, and nothing a user needs to read.

AnsibleModule replaces every value of a ``no_log`` option wherever it occurs in the module's output, substrings
included. With all of ``identities`` secret, a member's name, URL or Kubernetes version (``v1.37.2``) was masked in
any message that quoted it (issue 19: ``Kubernetes ********.37.2``).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync_task import argspec
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import results

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n# the member's token would be here\n"


def discovered() -> dict[str, Any]:
    return {
        "peer_id": "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        "cid": "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq",
        "sequence": 3,
        "issued_at": "2026-11-30T12:00:00Z",
        "name": "Cluster 2",
        "description": "I'm cluster 2",
        "url": "https://203.0.113.7:6443",
        "categories": ["computing"],
        "addresses": ["/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"],
        "kubernetes_version": "v1.37.2",
        "kubeconfig": KUBECONFIG,
        "live": True,
        "heard_at": "2026-11-30T12:00:05Z",
    }


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> basic.AnsibleModule:
    args = {
        "namespace": "ns",
        "identity_name": "cluster1",
        "identity_namespace": "ns",
        "swarm_pool": "pool",
        "swarm": "swarm",
        "identities": [discovered(), {**discovered(), "kubeconfig": None, "live": False}],
    }
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    return basic.AnsibleModule(argument_spec=argspec(), supports_check_mode=True)


def test_only_the_kubeconfigs_are_hidden(module: basic.AnsibleModule) -> None:
    assert module.no_log_values == {KUBECONFIG}


def test_identities_take_exactly_what_ipfs_identity_returns() -> None:
    document = SimpleNamespace(
        sequence=3,
        issued_at="2026-11-30T12:00:00Z",
        name="Cluster 2",
        description="",
        url="",
        categories=(),
        addresses=(),
        kubernetes_version="v1.37.2",
    )
    item = SimpleNamespace(cid="QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq", document=document, kubeconfig=None)
    found = SimpleNamespace(identities={"12D3KooW": item}, removed={}, rejected=[], heard_at={})
    [entry] = results(found, set())["identities"]  # type: ignore[arg-type]
    assert set(entry) == set(argspec()["identities"]["options"]) == set(discovered())
