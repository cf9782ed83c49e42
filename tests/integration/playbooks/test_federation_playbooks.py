"""The federation playbooks (bootstrap, join, leave) run by ansible-playbook against two real clusters.

What runs for real: two clusters of the test bed, each a real control plane
(etcd, kube-apiserver, kube-controller-manager) with the CRDs, the kubelet
stand-in running the kubo pods of its StatefulSets as real kubo processes, and
the product's operator and discovery agent started as the manager Deployment
starts them (``testbed.federation``, exactly as ``python -m demo``). The
playbooks are run by this virtualenv's ``ansible-playbook`` with the
collection from this checkout and kubernetes.core, across the two kube
contexts of one merged kubeconfig, as a user runs them on real clusters;
results are read from the ``ansible.posix.json`` stdout callback.

What stands in: the container runtime and the pod network (local processes
on 127.0.0.x), the storage provisioner and the cloud load balancer (the
stand-in gives the pod's address); see testbed/README.md.

The scenario, in order (each test builds on the previous ones):
``federation_bootstrap.yml --check`` on [a] creates nothing; the real run
creates a's swarm (generated key Secret, node address reported) and a's
Identity, and a second run changes nothing; ``federation_join.yml`` joins b
with a's key and address, publishes b's Identity as ``federation_identities``
describes it, a and b see each other as Online Peers, and a second run changes
nothing; ``federation_leave.yml`` retracts b's Identity (its Peer disappears on
a) and removes b's SwarmPool and key Secret, and a second run changes nothing;
bad invocations fail on the playbooks' own assert messages.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

from demo.__main__ import merged_kubeconfig
from testbed import binaries
from testbed.collection import REPO_ROOT, activate
from testbed.federation import Cluster, Federation

pytestmark = pytest.mark.integration

NS = "private-network-peer-configuration"  # the playbooks' default federation_namespace
POOL = "federation"  # federation_swarm_pool and federation_swarm
KEY_SECRET = "federation-swarm-key"
IDENTITY = "federation-identity"
TIMEOUT = 180
POLL = 1.5
PLAYBOOK_TIMEOUT = 480  # one ansible-playbook run, on a loaded 2-core machine
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
IDENTITIES = {
    "a": {"name": "Cluster A", "description": "I'm cluster a", "categories": ["computing", "EO data"]},
    "b": {"name": "Cluster B", "description": "I'm cluster b", "categories": ["weather forecast"]},
}


@dataclass(repr=False)
class Run:
    """One ansible-playbook run and its JSON report; its repr is what an assertion shows."""

    command: list[str]
    rc: int
    stdout: str
    stderr: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, int]:
        return self.report.get("stats", {}).get("localhost", {})

    @property
    def tasks(self) -> list[tuple[str, dict[str, Any]]]:
        """(task name, localhost's result) of every task run, in order."""
        return [
            (task["task"]["name"], task["hosts"]["localhost"])
            for play in self.report.get("plays", [])
            for task in play["tasks"]
            if "localhost" in task["hosts"]
        ]

    def result(self, name: str) -> dict[str, Any]:
        found = [result for task, result in self.tasks if task == name]
        assert len(found) == 1, f"task {name!r} ran {len(found)} times\n{self}"
        return found[0]

    @property
    def failure_messages(self) -> list[str]:
        return [str(result.get("msg")) for _, result in self.tasks if result.get("failed")]

    @property
    def changed_tasks(self) -> list[str]:
        return [task for task, result in self.tasks if result.get("changed")]

    def __repr__(self) -> str:
        return (
            f"$ {' '.join(self.command[:2])} {' '.join(self.command[3:])}\nrc={self.rc} stats={self.stats}\n"
            f"changed: {self.changed_tasks}\nfailed: {self.failure_messages}\n"
            f"stderr (tail):\n{self.stderr[-3000:]}"
        )


class Bed:
    """The two clusters, their merged kubeconfig, and what the scenario learned along the way."""

    def __init__(self, federation: Federation, kubeconfig: Path) -> None:
        self.federation = federation
        self.kubeconfig = kubeconfig
        self.peer_ids: dict[str, str] = {}

    @property
    def a(self) -> Cluster:
        return self.federation.clusters["a"]

    @property
    def b(self) -> Cluster:
        return self.federation.clusters["b"]

    def playbook(self, name: str, *args: str, extra: dict[str, Any] | None = None) -> Run:
        extra_vars = {
            "federation_kubeconfig": str(self.kubeconfig),
            "federation_ipfs_version": binaries.kubo_version(),
            "federation_wait_seconds": TIMEOUT,
            "federation_identities": {
                context: {**info, "categories": [{"name": c} for c in info["categories"]]}
                for context, info in IDENTITIES.items()
            },
            **(extra or {}),
        }
        command = [str(ANSIBLE_PLAYBOOK), str(REPO_ROOT / "playbooks" / name), "-e", json.dumps(extra_vars), *args]
        env = {
            key: value
            for key, value in os.environ.items()
            if key != "KUBECONFIG" and not key.startswith(("K8S_AUTH_", "ANSIBLE_"))
        }
        env.update(
            {
                "ANSIBLE_COLLECTIONS_PATH": str(activate()),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCALHOST_WARNING": "0",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            }
        )
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT)
        run = Run(command, done.returncode, done.stdout, done.stderr)
        try:
            run.report = json.loads(done.stdout)
        except json.JSONDecodeError as err:
            message = f"ansible-playbook printed no JSON report ({err})\n{run}\nstdout:\n{done.stdout}"
            raise AssertionError(message) from err
        assert "Traceback" not in done.stdout + done.stderr, f"a traceback in the run's output\n{run}"
        return run

    def pool_status(self, cluster: Cluster) -> dict[str, Any]:
        pool = cluster.get("swarmpool", POOL, namespace=NS) or {}
        return ((pool.get("status") or {}).get("status") or {}).get(POOL) or {}

    def peers(self, cluster: Cluster) -> dict[str, dict[str, Any]]:
        return {peer["metadata"]["name"]: peer for peer in cluster.get("peers", namespace=NS)}

    def sees_online(self, viewer: Cluster, other: str) -> bool:
        peer = self.peers(viewer).get(self.peer_ids[other].lower())
        return (
            peer is not None
            and (peer.get("status") or {}).get("status") == "Online"
            and peer["spec"].get("name") == IDENTITIES[other]["name"]
        )

    def identity_spec_is_as_described(self, name: str) -> None:
        cluster = self.federation.clusters[name]
        identity = cluster.get("identity", IDENTITY, namespace=NS)
        assert identity is not None, f"{name} has no Identity {IDENTITY}"
        info = IDENTITIES[name]
        assert identity["spec"] == {
            "swarms": [{"namespace": NS, "swarmPool": POOL, "swarm": POOL}],
            "name": info["name"],
            "description": info["description"],
            "URL": cluster.control_plane.server,
            "categories": [{"name": c} for c in info["categories"]],
        }


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    base = tmp_path_factory.mktemp("federation-playbooks")
    with Federation(base) as federation:
        for name in ("a", "b"):
            federation.add_cluster(name)
        yield Bed(federation, merged_kubeconfig(federation, base / "kubeconfig"))


def test_bootstrap_in_check_mode_creates_nothing(bed: Bed) -> None:
    run = bed.playbook("federation_bootstrap.yml", "--check", extra={"federation_contexts": ["a"]})
    assert run.rc == 0 and run.stats["failures"] == 0, run
    assert run.result("Ensure the namespace exists on a")["changed"], f"no namespace to create, says --check\n{run}"
    assert bed.a.get("namespace", NS, namespace=NS) is None
    assert bed.a.get("swarmpools") == []
    assert bed.a.get("identities") == []
    assert bed.a.get("secrets", namespace=NS) == []


def test_bootstrap_creates_the_swarm_and_the_identity_and_a_second_run_changes_nothing(bed: Bed) -> None:
    run = bed.playbook("federation_bootstrap.yml", extra={"federation_contexts": ["a"]})
    assert run.rc == 0 and run.stats["failures"] == 0, run
    assert run.stats["changed"] > 0, run
    status = bed.pool_status(bed.a)
    assert status.get("Addresses"), f"a's SwarmPool reports no address: {status}"
    assert status["Number of bootstraps"] == 0
    assert status["Addresses"][0].endswith(f"/p2p/{status['Peer Id']}")
    bed.peer_ids["a"] = status["Peer Id"]
    key = bed.a.get("secret", KEY_SECRET, namespace=NS)
    assert key is not None, f"no generated swarm key Secret {KEY_SECRET} on a"
    assert parse(base64.b64decode(key["data"]["swarm-key"])).fingerprint
    bed.identity_spec_is_as_described("a")

    again = bed.playbook("federation_bootstrap.yml", extra={"federation_contexts": ["a"]})
    assert again.rc == 0 and again.stats["failures"] == 0, again
    assert again.stats["changed"] == 0, f"a second bootstrap changed {again.changed_tasks}\n{again}"


def test_join_brings_b_into_as_swarm_and_both_see_each_other_online(bed: Bed) -> None:
    key_b64 = bed.a.get("secret", KEY_SECRET, namespace=NS)["data"]["swarm-key"]
    a_addresses = bed.pool_status(bed.a)["Addresses"]
    run = bed.playbook("federation_join.yml", "-e", "federation_member=b", "-e", "federation_via=a")
    assert run.rc == 0 and run.stats["failures"] == 0, run
    assert key_b64 not in run.stdout + run.stderr, "the swarm key appears in the playbook's output"
    assert bed.b.get("secret", KEY_SECRET, namespace=NS)["data"]["swarm-key"] == key_b64
    pool = bed.b.get("swarmpool", POOL, namespace=NS)
    assert pool["spec"]["swarms"][0]["swarmDefinition"] == {
        "swarmKeySecretRef": KEY_SECRET,
        "bootstrapNodeAddresses": a_addresses,
    }
    status = bed.b.wait_for(
        lambda: bed.pool_status(bed.b).get("Number of connected peers", 0) >= 1 and bed.pool_status(bed.b),
        "b's node is connected to the swarm",
        timeout=TIMEOUT,
        interval=POLL,
    )
    assert status["Number of bootstraps"] == 1
    assert status["Peer Id"] != bed.peer_ids["a"]
    bed.peer_ids["b"] = status["Peer Id"]
    bed.identity_spec_is_as_described("b")

    bed.a.wait_for(lambda: bed.sees_online(bed.a, "b"), "a sees b as an Online Peer", timeout=TIMEOUT, interval=POLL)
    bed.b.wait_for(lambda: bed.sees_online(bed.b, "a"), "b sees a as an Online Peer", timeout=TIMEOUT, interval=POLL)
    assert set(bed.peers(bed.a)) == {bed.peer_ids["b"].lower()}
    assert set(bed.peers(bed.b)) == {bed.peer_ids["a"].lower()}

    again = bed.playbook("federation_join.yml", "-e", "federation_member=b", "-e", "federation_via=a")
    assert again.rc == 0 and again.stats["failures"] == 0, again
    assert again.stats["changed"] == 0, f"a second join changed {again.changed_tasks}\n{again}"


def test_leave_retracts_bs_identity_and_removes_its_node_and_key(bed: Bed) -> None:
    run = bed.playbook("federation_leave.yml", "-e", "federation_member=b")
    assert run.rc == 0 and run.stats["failures"] == 0, run
    # The playbook waits until each object is gone.
    assert bed.b.get("identity", IDENTITY, namespace=NS) is None
    assert bed.b.get("swarmpool", POOL, namespace=NS) is None
    assert bed.b.get("secret", KEY_SECRET, namespace=NS) is None
    bed.a.wait_for(
        lambda: bed.peer_ids["b"].lower() not in bed.peers(bed.a),
        "b's Peer is gone from a",
        timeout=TIMEOUT,
        interval=POLL,
    )
    bed.b.wait_for(
        lambda: bed.b.get("statefulsets", namespace=NS) == [] and bed.b.get("pods", namespace=NS) == [],
        "b's kubo node is gone",
        timeout=TIMEOUT,
        interval=POLL,
    )
    # a stays a working swarm of one, its Identity untouched.
    assert bed.pool_status(bed.a)["Peer Id"] == bed.peer_ids["a"]
    bed.identity_spec_is_as_described("a")

    again = bed.playbook("federation_leave.yml", "-e", "federation_member=b")
    assert again.rc == 0 and again.stats["failures"] == 0, again
    assert again.stats["changed"] == 0, f"a second leave changed {again.changed_tasks}\n{again}"


def test_bootstrap_without_contexts_fails_on_its_assert(bed: Bed) -> None:
    run = bed.playbook("federation_bootstrap.yml")
    assert run.rc != 0 and run.stats["failures"] == 1 and run.stats["changed"] == 0, run
    assert run.failure_messages == ['Give the kube contexts to federate, e.g. -e \'{"federation_contexts":["a","b"]}\'']


def test_join_via_a_cluster_with_no_swarm_fails_on_its_assert(bed: Bed) -> None:
    # b left in the previous test: it still has the namespace, but no key Secret and no SwarmPool.
    run = bed.playbook("federation_join.yml", "-e", "federation_member=a", "-e", "federation_via=b")
    assert run.rc != 0 and run.stats["failures"] == 1 and run.stats["changed"] == 0, run
    assert run.failure_messages == [f"b has no swarm key Secret {KEY_SECRET} or no running node yet"]
    # a is untouched.
    assert bed.pool_status(bed.a)["Peer Id"] == bed.peer_ids["a"]
    bed.identity_spec_is_as_described("a")
