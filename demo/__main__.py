"""Run seed 000's walkthrough on this machine: three clusters discover each other.

Three real control planes (etcd, kube-apiserver, kube-controller-manager), each
with the test bed's kubelet stand-in running its kubo pods as real kubo
processes, and each with the product's operator and discovery agent. The
federation is then bootstrapped by the same playbook users run on real
clusters (playbooks/federation_bootstrap.yml) across the three kube contexts,
and each cluster's `kubectl get peers -A` and SwarmPool status are shown.

    python -m demo            # run, show, tear everything down
    python -m demo --keep     # leave it running until Ctrl-C or a SIGTERM (prints a kubeconfig to explore with)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed import binaries, procs
from testbed.collection import REPO_ROOT, activate
from testbed.federation import Federation, WaitTimeout

NAMESPACE = "private-network-peer-configuration"
CLUSTERS = {
    "cluster1": {
        "name": "Cluster 1",
        "description": "I'm cluster 1",
        "categories": ["computing", "EO data", "IOT data"],
    },
    "cluster2": {"name": "Cluster 2", "description": "I'm cluster 2", "categories": ["computing", "sentinel S3A"]},
    "cluster3": {"name": "Cluster 3", "description": "I'm cluster 3", "categories": ["weather forecast"]},
}
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def merged_kubeconfig(federation: Federation, path: Path) -> Path:
    files = os.pathsep.join(str(c.control_plane.kubeconfig) for c in federation.clusters.values())
    view = subprocess.run(
        [str(binaries.kubernetes("kubectl")), "config", "view", "--flatten"],
        env={**os.environ, "KUBECONFIG": files},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path.write_text(view)
    path.chmod(0o600)
    return path


def bootstrap(kubeconfig: Path, contexts: list[str]) -> None:
    extra = {
        "federation_contexts": contexts,
        "federation_kubeconfig": str(kubeconfig),
        "federation_namespace": NAMESPACE,
        "federation_ipfs_version": binaries.kubo_version(),
        "federation_identities": {
            context: {**info, "categories": [{"name": c} for c in info["categories"]]}
            for context, info in CLUSTERS.items()
        },
    }
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(REPO_ROOT / "playbooks" / "federation_bootstrap.yml"),
        "-e",
        json.dumps(extra),
    ]
    say(
        'running: ansible-playbook playbooks/federation_bootstrap.yml -e \'{"federation_contexts": '
        + json.dumps(contexts)
        + ", ...}'"
    )
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(activate()), "ANSIBLE_NOCOLOR": "1"}
    subprocess.run(command, env=env, check=True)


def show(federation: Federation) -> None:
    for name, cluster in federation.clusters.items():
        print(f"\n===== {name}: kubectl get peers -A", flush=True)
        print(cluster.table("peers", "-A"), end="")
        print(f"===== {name}: kubectl get swarmpools -n {NAMESPACE} -o json | jq .items[0].status", flush=True)
        pools = cluster.get("swarmpools", namespace=NAMESPACE)
        status = pools[0].get("status", {}) if pools else {}
        print(json.dumps({key: status.get(key) for key in ("hash", "lastUpdate", "status")}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clusters running until Ctrl-C")
    args = parser.parse_args(argv)
    # `kill` or a closed terminal stops everything as Ctrl-C does, not only this process.
    procs.interrupt_on(signal.SIGTERM, signal.SIGHUP)
    base = Path(tempfile.mkdtemp(prefix="cluster-discovery-demo-"))
    say(f"working folder {base}")
    try:
        with Federation(base) as federation:
            for name in CLUSTERS:
                say(f"starting cluster {name}: control plane, kubelet stand-in, operator and discovery agent ...")
                federation.add_cluster(name)
            kubeconfig = merged_kubeconfig(federation, base / "kubeconfig")
            say(f"three clusters up; their contexts are in {kubeconfig}")
            bootstrap(kubeconfig, list(CLUSTERS))
            say("federation bootstrapped; waiting until every cluster sees the two others Online ...")
            for name, cluster in federation.clusters.items():
                cluster.wait_for(
                    lambda cluster=cluster: (
                        sum(
                            1
                            for p in cluster.get("peers", namespace=NAMESPACE)
                            if p.get("status", {}).get("status") == "Online"
                        )
                        == len(CLUSTERS) - 1
                    ),
                    "two Online peers",
                    timeout=300,
                )
                say(f"{name} sees its two peers")
            say("waiting until each SwarmPool status counts the two others as connected ...")
            for cluster in federation.clusters.values():
                # Members that joined through the same bootstrap node dial each other once the identity role
                # protects them (its next round, within a minute); the agent shows it in the status within 15 s.
                cluster.wait_for(
                    lambda cluster=cluster: all(
                        node.get("Number of connected peers") == len(CLUSTERS) - 1
                        for pool in cluster.get("swarmpools", namespace=NAMESPACE)
                        for node in ((pool.get("status") or {}).get("status") or {}).values()
                    ),
                    "its SwarmPool status counts the two others as connected",
                    timeout=150,
                )
            show(federation)
            if args.keep:
                say(
                    f"running; explore with: KUBECONFIG={kubeconfig} kubectl --context cluster1 get peers -A"
                    " (Ctrl-C stops)"
                )
                while True:
                    time.sleep(3600)
    except WaitTimeout as err:
        print(err, file=sys.stderr)
        say(f"everything stopped; the clusters' logs are kept in {base}")
        return 1
    except KeyboardInterrupt:
        pass
    # The clusters are gone: their etcd data, admin keys and logs go with them.
    shutil.rmtree(base, ignore_errors=True)
    say("everything stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
