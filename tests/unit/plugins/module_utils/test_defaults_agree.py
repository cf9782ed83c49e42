"""The defaults that the agent, the modules, their documentation and the identity role each state, agree.

The numbers live in module_utils (peer_sync.DEFAULT_OFFLINE_AFTER and DEFAULT_FORGET_AFTER,
swarm_identity.DEFAULT_FRESH_WITHIN); the role's defaults file and the modules' DOCUMENTATION cannot import
them, so this test holds them to the same values.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    DEFAULT_FORGET_AFTER,
    DEFAULT_OFFLINE_AFTER,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync_task import argspec
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    DEFAULT_FRESH_WITHIN,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.modules import ipfs_identity, peer_sync

ROOT = Path(__file__).resolve().parents[4]


def test_offline_and_forget_thresholds_agree_everywhere() -> None:
    role = yaml.safe_load((ROOT / "roles" / "identity" / "defaults" / "main.yml").read_text())
    documented = yaml.safe_load(peer_sync.DOCUMENTATION)["options"]
    assert role["identity_offline_after"] == documented["offline_after"]["default"] == DEFAULT_OFFLINE_AFTER
    assert role["identity_forget_after"] == documented["forget_after"]["default"] == DEFAULT_FORGET_AFTER
    assert argspec()["offline_after"]["default"] == DEFAULT_OFFLINE_AFTER
    assert argspec()["forget_after"]["default"] == DEFAULT_FORGET_AFTER


def test_fresh_within_agrees_with_its_documentation() -> None:
    documented = yaml.safe_load(ipfs_identity.DOCUMENTATION)["options"]["fresh_within"]["default"]
    assert documented == DEFAULT_FRESH_WITHIN == ipfs_identity.argspec()["fresh_within"]["default"]
