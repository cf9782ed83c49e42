"""How fast a cluster's Identity reaches another cluster: creation, update, deletion.

Two clusters of the real test bed (control plane, kubelet stand-in running real
kubo, operator and discovery agent each), joined in one private swarm as in
seed 000's walkthrough. B publishes its own Identity once; then, for each trial,
A's Identity is created, updated and deleted, and the time is taken from the
`kubectl apply`/`delete` on A to the moment B's API server shows the result
(the Peer Online with the new spec, the new description, the Peer gone).

Then, for Online and Offline (issue 19), A's Identity stays and A's kubo node is
frozen (SIGSTOP: the process stays, it neither sends nor answers, as behind a
network cut) until B shows A's Peer Offline, then let go on (SIGCONT) until B
shows it Online again: time-to-Offline is taken from the freeze, time-back-Online
from the moment the node goes on.

Prints p50, p95 and max per operation. Asserts nothing.

    python -m bench.discovery_bench [--trials 20] [--offline-trials 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from bench.figures import measure, percentile, work_folder
from testbed.federation import Cluster, Federation, identity, namespace, secret, swarm_node, swarm_pool

NS = "bench-discovery"
# The Offline time the test bed's operator and agent apply: the identity role's default (the agent's agrees).
OFFLINE_AFTER = yaml.safe_load((Path(__file__).parent.parent / "roles/identity/defaults/main.yml").read_text())[
    "identity_offline_after_seconds"
]
GROUP, VERSION = "peerdiscovery.irt-saintexupery.com", "v1alpha1"


def reconciled(cluster: Cluster, name: str) -> bool:
    """The operator is done with the Identity's current generation (its run ended, successfully)."""
    obj = cluster.get("identity", name, namespace=NS) or {}
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    running = conditions.get("Running") or {}
    return (
        status.get("fullSyncGeneration") == (obj.get("metadata") or {}).get("generation")
        and running.get("reason") == "Successful"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--offline-trials", type=int, default=3)
    args = parser.parse_args()
    with work_folder("bench-discovery-") as base, Federation(base) as federation:
        a, b = federation.add_cluster("bench-a"), federation.add_cluster("bench-b")
        a.apply([namespace(NS), swarm_pool("pool-a", NS, swarm="pool-a", key_secret="swarm")])
        address = a.wait_for(lambda: swarm_node(a, "pool-a", NS).get("Addresses"), "A's node is up", timeout=300)
        key = a.get("secret", "swarm", namespace=NS)["data"]["swarm-key"]
        b.apply(
            [
                namespace(NS),
                secret("swarm", NS, {"swarm-key": key}),
                swarm_pool("pool-b", NS, swarm="pool-b", key_secret="swarm", bootstrap=address),
            ]
        )
        b.wait_for(
            lambda: swarm_node(b, "pool-b", NS).get("Number of connected peers", 0) >= 1, "B joined", timeout=300
        )
        b.apply(
            [
                identity(
                    "b",
                    NS,
                    swarm_pool="pool-b",
                    swarm="pool-b",
                    display_name="B",
                    description="B",
                    url=b.control_plane.server,
                    categories=[],
                )
            ]
        )
        b.wait_for(
            lambda: (
                ((b.get("identity", "b", namespace=NS) or {}).get("status") or {}).get("swarms", [{}])[0].get("topic")
            ),
            "B's identity is published",
            timeout=300,
        )
        a_peer = swarm_node(a, "pool-a", NS)["Peer Id"].lower()
        peers = kubernetes.client.CustomObjectsApi(b.control_plane.api_client())

        def peer_on_b() -> dict[str, Any] | None:
            try:
                return peers.get_namespaced_custom_object(GROUP, VERSION, NS, "peers", a_peer)  # type: ignore[no-any-return]
            except kubernetes.client.ApiException as err:
                if err.status == 404:
                    return None
                raise

        def shows(description: str) -> bool:
            peer = peer_on_b()
            return bool(
                peer
                and peer["spec"].get("description") == description
                and (peer.get("status") or {}).get("status") == "Online"
            )

        figures: dict[str, list[float]] = {"creation": [], "update": [], "deletion": []}
        for trial in range(args.trials):
            manifest = identity(
                "a",
                NS,
                swarm_pool="pool-a",
                swarm="pool-a",
                display_name="A",
                description=f"trial {trial}",
                url=a.control_plane.server,
                categories=["bench"],
            )
            began = time.monotonic()
            a.apply([manifest])
            figures["creation"].append(time.monotonic() - began + measure(functools.partial(shows, f"trial {trial}")))
            a.wait_for(lambda: reconciled(a, "a"), "A's first reconcile is over", timeout=300)
            manifest["spec"]["description"] = f"trial {trial}, updated"
            began = time.monotonic()
            a.apply([manifest])
            figures["update"].append(
                time.monotonic() - began + measure(functools.partial(shows, f"trial {trial}, updated"))
            )
            began = time.monotonic()
            a.delete("identity", "a", namespace=NS)
            figures["deletion"].append(time.monotonic() - began + measure(lambda: peer_on_b() is None))
            a.wait_for(lambda: a.get("identity", "a", namespace=NS) is None, "A's Identity is gone", timeout=300)
            print(
                f"trial {trial + 1:2d}/{args.trials}: creation {figures['creation'][-1]:.2f} s,"
                f" update {figures['update'][-1]:.2f} s, deletion {figures['deletion'][-1]:.2f} s",
                flush=True,
            )
        liveness = measure_liveness(a, a_peer, peer_on_b, manifest, trials=args.offline_trials)
        print(f"\nIdentity on cluster A -> Peer on cluster B, {args.trials} trials (seconds):")
        print(f"{'operation':<16} {'p50':>6} {'p95':>6} {'max':>6} {'mean':>6}")
        for operation, values in [*figures.items(), *liveness.items()]:
            if not values:
                continue
            print(
                f"{operation:<16} {percentile(values, 0.5):6.2f} {percentile(values, 0.95):6.2f}"
                f" {max(values):6.2f} {statistics.mean(values):6.2f}"
            )
        print(f"({len(liveness['to Offline'])} freeze trials; the Offline time is {OFFLINE_AFTER:g} s)")


def measure_liveness(
    a: Cluster,
    a_peer: str,
    peer_on_b: Callable[[], dict[str, Any] | None],
    manifest: dict[str, Any],
    *,
    trials: int,
) -> dict[str, list[float]]:
    """Freeze A's node until B shows A Offline, let it go on until B shows A Online: the two times per trial."""

    def state() -> str:
        return str(((peer_on_b() or {}).get("status") or {}).get("status") or "")

    a.apply([manifest])
    measure(lambda: state() == "Online", timeout=300)
    figures: dict[str, list[float]] = {"to Offline": [], "back Online": []}
    for trial in range(trials):
        assert a.kubelet is not None
        pod = a.kubelet.pod(NS, "pool-a-pool-a-ss-0")
        assert pod is not None and pod.pid is not None, "A's node runs"
        began = time.monotonic()
        os.kill(pod.pid, signal.SIGSTOP)
        try:
            figures["to Offline"].append(measure(lambda: state() == "Offline", timeout=600, interval=0.5))
        finally:
            os.kill(pod.pid, signal.SIGCONT)
        figures["back Online"].append(measure(lambda: state() == "Online", timeout=600, interval=0.1))
        print(
            f"freeze {trial + 1}/{trials}: Offline {figures['to Offline'][-1]:.1f} s after A's node froze,"
            f" Online {figures['back Online'][-1]:.1f} s after it went on"
            f" ({time.monotonic() - began:.0f} s in all)",
            flush=True,
        )
        time.sleep(5)  # a few announcements before the next freeze
    return figures


if __name__ == "__main__":
    main()
