"""The defaults that the agent, the modules, their documentation and the identity role each state, agree.

The numbers live in module_utils (conventions.DEFAULT_OFFLINE_AFTER, DEFAULT_FORGET_AFTER and
DEFAULT_FRESH_WITHIN); the role's defaults file and the modules' DOCUMENTATION cannot import
them, so this test holds them to the same values.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    DEFAULT_FORGET_AFTER,
    DEFAULT_FRESH_WITHIN,
    DEFAULT_OFFLINE_AFTER,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync_task import argspec
from ansible_collections.peerdiscovery.cluster_discovery.plugins.modules import ipfs_identity, peer_sync

ROOT = Path(__file__).resolve().parents[4]


def test_offline_and_forget_thresholds_agree_everywhere() -> None:
    role = yaml.safe_load((ROOT / "roles" / "identity" / "defaults" / "main.yml").read_text())
    documented = yaml.safe_load(peer_sync.DOCUMENTATION)["options"]
    assert documented["offline_after"]["default"] == DEFAULT_OFFLINE_AFTER
    assert role["identity_forget_after"] == documented["forget_after"]["default"] == DEFAULT_FORGET_AFTER
    assert argspec()["offline_after"]["default"] == DEFAULT_OFFLINE_AFTER
    assert argspec()["forget_after"]["default"] == DEFAULT_FORGET_AFTER


def test_the_offline_time_agrees_everywhere() -> None:
    """Role, module, agent, chart and kustomize config: one Offline time, no more than two minutes (issue 19)."""
    documented = yaml.safe_load(ipfs_identity.DOCUMENTATION)["options"]["fresh_within"]["default"]
    assert documented == DEFAULT_FRESH_WITHIN == ipfs_identity.argspec()["fresh_within"]["default"]
    role = yaml.safe_load((ROOT / "roles" / "identity" / "defaults" / "main.yml").read_text())
    assert role["identity_offline_after_seconds"] == DEFAULT_FRESH_WITHIN
    chart = yaml.safe_load((ROOT / "charts" / "cluster-discovery" / "values.yaml").read_text())
    assert chart["offlineAfter"] == DEFAULT_FRESH_WITHIN
    manager = (ROOT / "config" / "manager" / "manager.yaml").read_text()
    assert f"--offline-after={DEFAULT_FRESH_WITHIN:g}" in manager
    from cluster_discovery_agent import cli as agent_cli

    assert agent_cli.DEFAULT_OFFLINE_AFTER == DEFAULT_FRESH_WITHIN
    assert agent_cli.parse_args([]).offline_after == DEFAULT_FRESH_WITHIN
    assert DEFAULT_FRESH_WITHIN <= 120


def test_the_identity_role_knows_how_often_the_operator_reconciles_an_identity() -> None:
    """Which rounds renew the account and the publication follows from the period (identity_spec.needs_full_sync)."""
    from cluster_discovery_operator.durations import parse_duration

    role = yaml.safe_load((ROOT / "roles" / "identity" / "defaults" / "main.yml").read_text())
    for watches in (ROOT / "watches.yaml", ROOT / "charts" / "cluster-discovery" / "files" / "watches.yaml"):
        (identity,) = [entry for entry in yaml.safe_load(watches.read_text()) if entry["kind"] == "Identity"]
        assert parse_duration(identity["reconcilePeriod"]) == role["identity_round_seconds"], watches
    assert role["identity_full_sync_seconds"] > role["identity_round_seconds"]
