"""The swarmpool role's filters (plugins/filter/swarmpool.py) and the kubo release rule behind one of them."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.filter.swarmpool import FilterModule
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo_release import (
    RELEASE_PATTERN,
    TESTED_RELEASE,
    MalformedRelease,
    choose,
)

from testbed import binaries

FILTER_DIR = Path(__file__).resolve().parents[4] / "plugins" / "filter"
CRD = Path(__file__).resolve().parents[4] / "config" / "crd" / "bases"
FILTERS = FilterModule().filters()


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_is_documented_under_its_own_name(name: str) -> None:
    doc = yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == name
    assert f"peerdiscovery.cluster_discovery.{name}" in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]


@pytest.mark.parametrize("requested", ["v0.43.0", "v0.43.1", "v0.43.7", "v0.43.0-rc1"])
def test_a_release_of_the_tested_series_runs_as_asked(requested: str) -> None:
    assert FILTERS["kubo_release"](requested, "s") == {
        "requested": requested,
        "run": requested,
        "substituted": False,
        "message": "",
        "error": "",
    }


@pytest.mark.parametrize("requested", ["v0.8.0", "v0.4.23", "v0.36.0", "v0.42.9", "v0.44.0", "v1.0.0", "v0.44.0-rc1"])
def test_any_other_release_runs_the_tested_one_and_says_so(requested: str) -> None:
    decision = FILTERS["kubo_release"](requested, "cluster1-private")
    assert decision == {
        "requested": requested,
        "run": TESTED_RELEASE,
        "substituted": True,
        "message": (
            f"swarm cluster1-private: IPFSVersion {requested} is not a release this operator runs (kubo v0.43.x);"
            f" the node runs kubo {TESTED_RELEASE} instead"
        ),
        "error": "",
    }


@pytest.mark.parametrize("requested", ["latest", "0.8.0", "v0.8", "v0.8.0 ", "", None, 8, "v0.43.1; rm -rf /"])
def test_only_a_value_that_is_no_release_tag_is_refused(requested: object) -> None:
    decision = FILTERS["kubo_release"](requested)
    assert decision["error"].startswith(f"IPFSVersion {requested!r} is not a release tag such as {TESTED_RELEASE}")
    assert (decision["run"], decision["substituted"]) == ("", False)
    with pytest.raises(MalformedRelease):
        choose(requested)


def test_the_tested_release_is_the_one_the_test_bed_builds_and_the_crd_defaults_to() -> None:
    assert binaries.kubo_version() == TESTED_RELEASE
    crd = yaml.safe_load((CRD / "peerdiscovery.irt-saintexupery.com_swarmpools.yaml").read_text())
    swarm = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["swarms"]
    version = swarm["items"]["properties"]["IPFSVersion"]
    assert (version["default"], version["pattern"]) == (TESTED_RELEASE, RELEASE_PATTERN)


def test_the_spec_hash_is_the_md5_of_the_canonical_json_in_base64_as_the_original_wrote_it() -> None:
    swarms = [{"name": "cluster1", "network": {"swarm_port": 4001, "api_port": 5001}}]
    digest = FILTERS["swarmpool_spec_hash"](swarms)
    canonical = b'[{"name":"cluster1","network":{"api_port":5001,"swarm_port":4001}}]'
    assert digest == base64.b64encode(hashlib.md5(canonical).digest()).decode()
    assert len(digest) == 24 and digest.endswith("==")
    reordered = [{"network": {"api_port": 5001, "swarm_port": 4001}, "name": "cluster1"}]
    assert FILTERS["swarmpool_spec_hash"](reordered) == digest
    assert FILTERS["swarmpool_spec_hash"]([{"name": "cluster2"}]) != digest


def test_the_node_config_map_is_named_once_for_both_roles() -> None:
    # The swarmpool role writes it, the identity role reads the node's bootstrap nodes from it.
    name = FILTERS["node_config_map"]("cluster1-private", "cluster1-private")
    assert name == "cluster1-private-cluster1-private-config"


PEER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"


def _swarm(**overrides: object) -> dict[str, object]:
    """One spec.swarms entry as the role sees it: snake_case keys, its defaults merged in."""
    swarm: dict[str, object] = {
        "name": "cluster1-private",
        "ip_fs_version": "v0.8.0",
        "network": {"swarm_port": 4001, "api_port": 5001, "load_balancer": {"load_balancer_ip": "auto"}},
        "swarm_definition": {
            "swarm_key_secret_ref": "",
            "bootstrap_node_addresses": [f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}"],
        },
        "storage": {"capacity": "1Gi"},
    }
    swarm.update(overrides)
    return swarm


def test_a_swarm_of_the_originals_manifests_has_no_problem() -> None:
    assert FILTERS["swarmpool_swarm_problem"](_swarm(), "cluster1") == ""
    assert FILTERS["node_statefulset"]("cluster1", "cluster1-private") == "cluster1-cluster1-private-ss"


@pytest.mark.parametrize(
    ("overrides", "pool", "problem"),
    [
        pytest.param({"name": "Private"}, "p", "the swarm name must be a DNS label", id="uppercase-name"),
        pytest.param({"name": "private\n"}, "p", "the swarm name must be a DNS label", id="trailing-newline"),
        pytest.param({"name": None}, "p", "the swarm name must be a DNS label", id="no-name"),
        pytest.param({"name": "s" * 25}, "p" * 24, "must not exceed 48 characters", id="names-too-long"),
        pytest.param({"ip_fs_version": "latest"}, "p", "latest", id="not-a-release"),
        pytest.param(
            {"network": {"swarm_port": 4001, "api_port": 5001}},
            "p",
            "exactly one of loadBalancer and traefik",
            id="none",
        ),
        pytest.param(
            {"network": {"swarm_port": 4001, "api_port": 5001, "load_balancer": {}, "traefik": {}}},
            "p",
            "exactly one of loadBalancer and traefik",
            id="both",
        ),
        pytest.param(
            {"network": {"swarm_port": 4001, "api_port": 4001, "traefik": {}}}, "p", "two different ports", id="same"
        ),
        pytest.param(
            {"network": {"swarm_port": 0, "api_port": 5001, "traefik": {}}}, "p", "two different ports", id="zero"
        ),
        pytest.param(
            {"network": {"swarm_port": True, "api_port": 5001, "traefik": {}}}, "p", "two different ports", id="bool"
        ),
        pytest.param(
            {"network": {"swarm_port": "4001x", "api_port": 5001, "traefik": {}}}, "p", "two different ports", id="text"
        ),
    ],
)
def test_each_fault_of_a_swarm_entry_is_named(overrides: dict[str, object], pool: str, problem: str) -> None:
    assert problem in FILTERS["swarmpool_swarm_problem"](_swarm(**overrides), pool)


@pytest.mark.parametrize(
    "address",
    [
        f"/ip4/10.0.0.1/udp/4001/quic-v1/p2p/{PEER}",
        "/ip4/10.0.0.1/tcp/4001",
        f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}\n",
        f"/ip4/10.0.0.300/tcp/4001/p2p/{PEER}",
        "/ip4/10.0.0.1/tcp/4001/p2p/not-a-peer-id",
        f"/p2p/{PEER}",
        42,
    ],
)
def test_a_bootstrap_address_that_is_not_a_tcp_peer_address_is_refused_by_name(address: object) -> None:
    swarm = _swarm(swarm_definition={"swarm_key_secret_ref": "", "bootstrap_node_addresses": [address]})
    problem = FILTERS["swarmpool_swarm_problem"](swarm, "p")
    assert problem.startswith(f"bootstrap address {address} must be a TCP multiaddr ending in /p2p/<peer id>")


@pytest.mark.parametrize(
    "address",
    [
        f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}",
        f"/dns4/node.example.org/tcp/4001/ipfs/{PEER}",
        f"/ip6/::1/tcp/1/p2p/{PEER}",
    ],
)
def test_tcp_peer_addresses_by_ip_or_dns_are_accepted(address: str) -> None:
    swarm = _swarm(swarm_definition={"swarm_key_secret_ref": "", "bootstrap_node_addresses": [address]})
    assert FILTERS["swarmpool_swarm_problem"](swarm, "p") == ""


def test_the_first_waiting_container_says_why_the_pod_waits() -> None:
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "init", "state": {"running": {}}},
                {"name": "ipfs", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}}},
                {"name": "other", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]
        }
    }
    assert FILTERS["pod_waiting_reason"](pod) == "ImagePullBackOff Back-off pulling"
    assert FILTERS["pod_waiting_reason"]({"status": {"containerStatuses": [{"state": {"waiting": {}}}]}}) == ""
    assert FILTERS["pod_waiting_reason"]({}) == ""
    assert FILTERS["pod_waiting_reason"]({"status": {}}) == ""
