"""Churn and faults for a while, then check that every cluster shows exactly what the live identities say (issue 20).

Three whole test-bed clusters (A, B, C: control plane, kubelet stand-in running kubo, operator and discovery agent)
and ``--light`` light members (``cluster-discovery-member``) share one private swarm. For ``--minutes`` it keeps
doing, at random (``--seed``), every few seconds:

- a whole cluster's Identity gets a new description, or is deleted (and later created again);
- a light member republishes with a new description;
- a whole cluster's kubo node is killed (SIGKILL) and the kubelet stand-in restarts it;

and, once each during the run: C's operator is killed (SIGKILL) and started again 10 s later; B's etcd is killed
and started again 5 s later; a whole cluster's node is frozen for longer than the Offline threshold (every other
whole cluster must then show it not Online) and thawed.

At the end (deleted Identities created again, nothing changing), it waits until every whole cluster's Peers are
exactly the other live members, Online, with their last description: no lost, duplicate or stale Peer. Then it stops
one light member for good and checks that no cluster shows it Online once the threshold has passed. It prints the
actions taken, how long convergence took, the RSS and open files of each product process at the start and the end,
and the product processes on this machine at the start and the end (none leaked). Exit status 1 when a check fails.

    python -m bench.soak [--minutes 30] [--light 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.figures import work_folder
from bench.scale_bench import Members
from testbed import procs, proctree
from testbed.controlplane import KubectlError
from testbed.federation import Cluster, Federation, ProductProcess, form_swarm, identity, peers_by_name, swarm_node

NS = "soak"
POOL = "pool"
NODE_POD = f"{POOL}-{POOL}-ss-0"
OFFLINE_AFTER = yaml.safe_load((Path(__file__).parent.parent / "roles/identity/defaults/main.yml").read_text())[
    "identity_offline_after_seconds"
]
CONVERGENCE_TIMEOUT = 600.0
# What runs on this machine for the product: counted at the start and the end, so a process left behind shows.
PRODUCT_PROCESSES = {
    "operator": b"cluster-discovery-operator",
    "zygote": b"cluster_discovery_operator.zygote",
    "agent": b"cluster-discovery-agent",
    "light member": b"cluster-discovery-member",
    "kubo": b"ipfs\x00daemon",
}


def process(part: object) -> ProductProcess:
    """The operator or agent of a cluster of the process runtime (the one this benchmark starts)."""
    assert isinstance(part, ProductProcess)
    return part


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def product_processes() -> Counter[str]:
    """The product's processes running on this machine, by kind: the least of three looks a second apart, so that
    a zygote's short-lived forks (they carry its command line) are not counted."""
    looks: list[Counter[str]] = []
    for _ in range(3):
        found: Counter[str] = Counter()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and proctree.alive(int(entry)):
                line = proctree.cmdline(int(entry))
                kind = next((kind for kind, marker in PRODUCT_PROCESSES.items() if marker in line), None)
                if kind is not None:
                    found[kind] += 1
        looks.append(found)
        time.sleep(1)
    return Counter({kind: min(look[kind] for look in looks) for kind in PRODUCT_PROCESSES})


class Soak:
    def __init__(self, clusters: dict[str, Cluster], members: Members, rng: random.Random) -> None:
        self.clusters = clusters
        self.members = members
        self.rng = rng
        # What each member last published: display name -> description; None while its Identity is deleted.
        self.published: dict[str, str | None] = {}
        self.actions: Counter[str] = Counter()
        self.failures: list[str] = []
        self.serial = 0
        self.frozen: str | None = None

    # -- the members' identities --------------------------------------------------------------------------------

    def publish(self, name: str, description: str) -> None:
        cluster = self.clusters[name]
        manifest = identity(
            name.lower(), NS, swarm_pool=POOL, swarm=POOL, display_name=name, description=description,
            url=cluster.control_plane.server, categories=["soak"],
        )  # fmt: skip
        cluster.apply([manifest])
        self.published[name] = description

    def next_description(self, name: str) -> str:
        self.serial += 1
        return f"{name} #{self.serial}"

    # -- actions ------------------------------------------------------------------------------------------------

    def update(self) -> str:
        name = self.rng.choice([n for n in self.clusters if self.published.get(n) is not None])
        self.publish(name, self.next_description(name))
        return f"{name}'s Identity updated"

    def delete_or_create(self) -> str:
        deleted = [n for n in self.clusters if self.published.get(n) is None]
        if deleted:
            name = deleted[0]
            self.publish(name, self.next_description(name))
            return f"{name}'s Identity created again"
        name = self.rng.choice([n for n in self.clusters if n != self.frozen])
        self.clusters[name].kubectl("delete", "identity", name.lower(), "-n", NS, "--wait=false")
        self.published[name] = None
        return f"{name}'s Identity deleted"

    def republish_light(self) -> str:
        index = self.rng.randrange(len(self.members.members))
        name = Members.name(self.members.members[index].number)
        description = self.next_description(name)
        self.members.republish(index, description)
        self.published[name] = description
        return f"{name} republished"

    def kill_node(self) -> str:
        name = self.rng.choice([n for n in self.clusters if n != self.frozen])
        kubelet = self.clusters[name].kubelet
        assert kubelet is not None
        pod = kubelet.pod(NS, NODE_POD)
        if pod is None or pod.pid is None:
            return f"{name}'s node was not running (skipped)"
        os.kill(pod.pid, signal.SIGKILL)  # a kubo process this benchmark's kubelet stand-in started
        return f"{name}'s kubo node killed"

    def kill_operator(self, name: str) -> str:
        operator = process(self.clusters[name].operator)
        operator.stop(crash=True)
        time.sleep(10)
        operator.start()
        return f"{name}'s operator killed and started again 10 s later"

    def restart_etcd(self, name: str) -> str:
        self.clusters[name].control_plane.restart_etcd(down_for=5)
        return f"{name}'s etcd killed and started again 5 s later"

    def freeze(self, name: str) -> Callable[[], str]:
        """Freeze ``name``'s node; returns what thaws it, after checking every other cluster shows it not Online."""
        kubelet = self.clusters[name].kubelet
        assert kubelet is not None
        kubelet.freeze_pod(NS, NODE_POD)
        self.frozen = name

        def thaw() -> str:
            for viewer, cluster in self.clusters.items():
                if viewer == name or self.published.get(viewer) is None:
                    continue
                peer = self.peers(cluster).get(name)
                if peer is not None and (peer.get("status") or {}).get("status") == "Online":
                    self.failures.append(f"{viewer} showed {name} Online after its node was frozen {OFFLINE_AFTER}+ s")
            kubelet.thaw_pod(NS, NODE_POD)
            self.frozen = None
            return f"{name}'s node thawed"

        return thaw

    # -- checks -------------------------------------------------------------------------------------------------

    def peers(self, cluster: Cluster) -> dict[str, dict[str, Any]]:
        try:
            return peers_by_name(cluster, NS)
        except KubectlError:
            return {}

    def differences(self) -> list[str]:
        """What each live whole member shows that the live identities do not say."""
        wrong: list[str] = []
        for viewer, cluster in self.clusters.items():
            if self.published.get(viewer) is None:
                continue
            try:
                listed = cluster.get("peers", namespace=NS) or []
            except KubectlError as err:
                wrong.append(f"{viewer}: {err}")
                continue
            names = Counter(str(peer["spec"].get("name")) for peer in listed)
            wrong.extend(f"{viewer}: {count} Peers named {n}" for n, count in names.items() if count > 1)
            shown = {str(peer["spec"].get("name")): peer for peer in listed}
            expected = {n: d for n, d in self.published.items() if n != viewer and d is not None}
            for name in sorted(set(shown) | set(expected)):
                peer = shown.get(name)
                if name not in expected:
                    wrong.append(f"{viewer}: a Peer of {name}, which published nothing")
                elif peer is None:
                    wrong.append(f"{viewer}: no Peer of {name}")
                elif (peer.get("status") or {}).get("status") != "Online":
                    wrong.append(f"{viewer}: {name} is {(peer.get('status') or {}).get('status')}")
                elif peer["spec"].get("description") != expected[name]:
                    wrong.append(f"{viewer}: {name} says {peer['spec'].get('description')!r}, not {expected[name]!r}")
        return wrong


def sample(clusters: dict[str, Cluster]) -> dict[str, tuple[int | None, float, Counter[str]]]:
    """PID, RSS (MiB) and open files (what each is, counted) of each product process of each cluster."""
    figures: dict[str, tuple[int | None, float, Counter[str]]] = {}
    for name, cluster in clusters.items():
        operator_pid = process(cluster.operator).pid
        zygote = proctree.child_running(operator_pid, proctree.MODULE_ZYGOTE)
        playbooks = proctree.child_running(operator_pid, proctree.PLAYBOOK_ZYGOTE)
        pod = cluster.kubelet.pod(NS, NODE_POD) if cluster.kubelet is not None else None
        for part, pid in (
            ("operator", operator_pid),
            ("zygote", zygote),
            ("pb zygote", playbooks),
            ("agent", process(cluster.agent).pid),
            ("kubo", pod.pid if pod is not None else None),
        ):
            figures[f"{name} {part}"] = (pid, proctree.rss_mib(pid), proctree.open_files(pid))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--light", type=int, default=3, help="light members besides the three whole clusters")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    procs.interrupt_on(signal.SIGTERM)  # a SIGTERM stops every member and cluster, as Ctrl-C does
    rng = random.Random(args.seed)
    before_processes = product_processes()
    # A failed check keeps the clusters' logs: work_folder keeps its folder when the body raises.
    with work_folder("bench-soak-") as base:
        with Federation(base) as federation:
            clusters = {name: federation.add_cluster(f"soak-{name.lower()}") for name in ("A", "B", "C")}
            form_swarm(list(clusters.values()), NS, pool=POOL)
            first = clusters["A"]
            key = base64.b64decode(first.get("secret", "swarm", namespace=NS)["data"]["swarm-key"]).decode()
            members = Members(base, key, swarm_node(first, POOL, NS)["Addresses"][0])
            soak = Soak(clusters, members, rng)
            try:
                for name in clusters:
                    soak.publish(name, soak.next_description(name))
                members.add(args.light)
                for member in members.members:
                    soak.published[Members.name(member.number)] = "first"
                began = time.monotonic()
                first.wait_for(
                    lambda: not soak.differences(), "everyone sees everyone", timeout=CONVERGENCE_TIMEOUT, interval=2
                )
                took = time.monotonic() - began
                log(f"set up: every cluster shows the {len(soak.published) - 1} others after {took:.0f} s")
                time.sleep(30)
                start_figures = sample(clusters)
                during_processes = product_processes()

                minutes = args.minutes * 60
                began = time.monotonic()
                # (when, in seconds from the start; what it is, for the count; the action)
                once: list[tuple[float, str, Callable[[], str]]] = [
                    (minutes * 0.25, "kill_operator", lambda: soak.kill_operator("C")),
                    (minutes * 0.5, "restart_etcd", lambda: soak.restart_etcd("B")),
                ]
                frozen = rng.choice(list(clusters))

                def start_freeze() -> str:
                    thaw = soak.freeze(frozen)
                    once.append((time.monotonic() - began + OFFLINE_AFTER + 30, "thaw", thaw))
                    return f"{frozen}'s node frozen for {OFFLINE_AFTER + 30} s"

                once.append((minutes * 0.6, "freeze", start_freeze))
                weighted: list[tuple[Callable[[], str], int]] = [
                    (soak.update, 4),
                    (soak.delete_or_create, 1),
                    (soak.republish_light, 2),
                    (soak.kill_node, 1),
                ]
                while time.monotonic() - began < minutes or once:
                    elapsed = time.monotonic() - began
                    due = [entry for entry in once if entry[0] <= elapsed]
                    for entry in due:
                        once.remove(entry)
                        _, label, fault = entry
                        soak.actions[label] += 1
                        log(fault())
                    if elapsed < minutes:
                        action = rng.choices([a for a, _ in weighted], weights=[w for _, w in weighted])[0]
                        try:
                            what = action()
                        except KubectlError as err:  # an API server without its etcd: try something else later
                            what = f"(refused: {err})"
                        soak.actions[action.__name__] += 1
                        log(what)
                    time.sleep(rng.uniform(5, 15))

                for name in clusters:
                    if soak.published.get(name) is None:
                        soak.publish(name, soak.next_description(name))
                settled = time.monotonic()
                try:
                    first.wait_for(lambda: not soak.differences(), "every cluster shows what the live identities say",
                                   timeout=CONVERGENCE_TIMEOUT, interval=2)  # fmt: skip
                    log(f"converged {time.monotonic() - settled:.0f} s after the churn ended")
                except AssertionError:
                    soak.failures.extend(soak.differences())

                # A light member that stops for good is not shown Online once the threshold has passed.
                stopped = members.members[0]
                gone = Members.name(stopped.number)
                stopped.process.send_signal(signal.SIGTERM)
                stopped.process.wait(timeout=30)
                stopped.node.stop()
                time.sleep(OFFLINE_AFTER + 30)
                for viewer, cluster in clusters.items():
                    peer = soak.peers(cluster).get(gone)
                    if peer is not None and (peer.get("status") or {}).get("status") == "Online":
                        soak.failures.append(f"{viewer} shows {gone} Online {OFFLINE_AFTER + 30} s after it stopped")
                end_figures = sample(clusters)
                end_processes = product_processes()
            finally:
                members.close()

        print()
        print(
            f"soak: {args.minutes:g} min, {len(clusters)} whole clusters + {args.light} light members, seed {args.seed}"
        )
        print("actions:", ", ".join(f"{what} x{count}" for what, count in sorted(soak.actions.items())))
        print()
        print(f"{'process':<16} {'RSS start':>10} {'RSS end':>10} {'growth':>8} {'files start':>12} {'files end':>10}")
        grown: list[str] = []
        for part, (pid, rss, opened) in start_figures.items():
            end_pid, end_rss, end_opened = end_figures.get(part, (None, 0.0, Counter()))
            files, end_files = opened.total(), end_opened.total()
            note = "" if pid == end_pid else "  (restarted during the run)"
            print(f"{part:<16} {rss:>9.0f}M {end_rss:>9.0f}M {end_rss - rss:>+7.0f}M {files:>12} {end_files:>10}{note}")
            if pid == end_pid and end_opened != opened:
                # Which files: a connection pool that grew to its size is not a leak; files or pipes that pile up are.
                change = [f"+{n} {what}" for what, n in (end_opened - opened).items()]
                change += [f"-{n} {what}" for what, n in (opened - end_opened).items()]
                grown.append(f"{part}: " + ", ".join(sorted(change)))
            if pid == end_pid and part.endswith(("operator", "agent")) and end_files > files + 20:
                soak.failures.append(f"{part} holds {end_files} open files, {files} at the start")
        if grown:
            print()
            print("open files that changed, by what they are:")
            for line in grown:
                print(f"  {line}")
        print()
        print(
            "product processes on this machine: before "
            + ", ".join(f"{k} {v}" for k, v in sorted(before_processes.items()))
            + "; during: "
            + ", ".join(f"{k} {v}" for k, v in sorted(during_processes.items()))
            + "; at the end, one light member stopped: "
            + ", ".join(f"{k} {v}" for k, v in sorted(end_processes.items()))
        )
        expected_end = during_processes.copy()
        expected_end["light member"] -= 1
        expected_end["kubo"] -= 1
        if +expected_end != +end_processes:
            soak.failures.append(f"product processes: {dict(end_processes)}, expected {dict(+expected_end)}")
        leftover = product_processes()
        if +leftover != +before_processes:
            soak.failures.append(f"left running after the soak: {dict(leftover - before_processes)}")
        print()
        for failure in soak.failures:
            print(f"FAILED: {failure}")
        print("soak: every check passed" if not soak.failures else f"soak: {len(soak.failures)} check(s) failed")
        if soak.failures:
            raise SystemExit(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
