"""Many members in one swarm: one whole test-bed cluster W and light members (issue 20).

W is a whole cluster of the test bed (control plane, kubelet stand-in running
kubo, operator and discovery agent) with a SwarmPool and an Identity. The other
members are light members (``cluster-discovery-member``: a real kubo node
bootstrapped from W's node, publishing an identity with the product's own
code), added in steps up to each size N. For each N it prints:

- join: seconds from starting the step's new members until W shows N Peers Online;
- newcomer: W's Identity deleted and created again, seconds until it shows N Peers Online
  (what a cluster joining last waits for);
- of an update, the part until W's node received the member's announcement (the swarm's part; the rest
  is W's agent and API server);
- creation, update and deletion p50/p95 (``--trials`` each): seconds from a member's publication
  (the time its ``publishing`` or ``retracted`` log line says) until a watch on W's Peers sees
  it: a new member's Peer Online, a new description (the member's process restarted with it),
  the Peer of a member that retracted deleted;
- steady state, nothing changing for ``--steady`` seconds: CPU seconds per minute and RSS of
  W's operator (CPU with its ansible processes and its playbook zygote, whose RSS has a column
  of its own), its module zygote (with the modules it forked),
  its agent and its kubo node; Kubernetes writes per minute seen on Peers,
  Identities and SwarmPools of W (watch events that changed an object); pubsub messages per
  minute on the swarm's topic, as one node receives them (every node receives each once);
- the wall time of W's last Identity reconcile (the operator's "ansible run finished").

Asserts nothing.

    python -m bench.scale_bench [--members 10,25,50] [--steady 120] [--trials 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    Announce,
    MessageError,
    decode,
    topic_for,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import api_token_secret
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import authorization
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

from bench.figures import log_time, measure, percentile, work_folder
from testbed.collection import activate
from testbed.federation import Cluster, Federation, ProductProcess, identity, namespace, swarm_node, swarm_pool
from testbed.kube import Watcher
from testbed.kubo import KuboNode, KuboNodes
from testbed.proctree import MODULE_ZYGOTE, PLAYBOOK_ZYGOTE, child_running, cpu_seconds, rss_mib, tree_cpu_seconds

NS = "bench-scale"
GROUP, VERSION = "peerdiscovery.irt-saintexupery.com", "v1alpha1"
MEMBER = Path(sys.executable).parent / "cluster-discovery-member"


@dataclass
class LightMember:
    node: KuboNode
    process: subprocess.Popen[bytes]
    number: int
    """Names its kubo repository, its log and its display name; never reused, since a stopped member's stay."""


class Members:
    """Light members: a kubo node and a cluster-discovery-member process each."""

    def __init__(self, base_dir: Path, swarm_key: str, bootstrap: str) -> None:
        self.nodes = KuboNodes(base_dir / "kubo")
        self.base_dir = base_dir
        self.swarm_key = swarm_key
        self.bootstrap = bootstrap
        self.key_file = base_dir / "swarm.key"
        self.key_file.write_text(swarm_key)
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(activate()))
        self.members: list[LightMember] = []
        self._numbered = 0

    def _process(self, node: KuboNode, number: int, description: str, *extra: str) -> subprocess.Popen[bytes]:
        log = self.log_path(number).open("ab")
        try:
            return subprocess.Popen(
                [
                    str(MEMBER), "--api-url", node.api_url, "--swarm-key-file", str(self.key_file),
                    "--name", self.name(number), "--description", description, "--category", "bench", *extra,
                ],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )  # fmt: skip
        finally:
            log.close()

    def log_path(self, number: int) -> Path:
        return self.base_dir / f"member-{number}.log"

    def logged_at(self, index: int, msg: str, *, since: float, timeout: float = 60) -> float:
        """The wall time member ``index``'s log says ``msg`` at or after ``since`` (seconds since the epoch)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_path(self.members[index].number).read_text().splitlines():
                event = json.loads(line) if line.startswith("{") else {}
                if event.get("msg") == msg and (at := log_time(event["ts"])) >= since:
                    return at
            time.sleep(0.05)
        raise TimeoutError(f"member {index} did not log {msg!r} within {timeout:.0f} s")

    def published_sequence(self, index: int) -> int:
        """The sequence of the document member ``index``'s node holds as published (-1: none yet)."""
        with KuboClient(self.members[index].node.api_url) as client:
            record = SwarmIdentity(client, parse(self.swarm_key).key).published()
        return -1 if record is None else record.sequence

    @staticmethod
    def name(number: int) -> str:
        """The display name light member ``number`` publishes."""
        return f"Light {number}"

    def add(self, count: int) -> None:
        for _ in range(count):
            number, self._numbered = self._numbered, self._numbered + 1
            node = self.nodes(self.swarm_key, name=f"light-{number}", bootstrap=[self.bootstrap])
            self.members.append(LightMember(node, self._process(node, number, "first"), number))

    def republish(self, index: int, description: str) -> float:
        """Restarts member ``index`` with a new description; when it published it."""
        member = self.members[index]
        member.process.send_signal(signal.SIGTERM)
        member.process.wait(timeout=30)
        since = time.time()
        member.process = self._process(member.node, member.number, description)
        return self.logged_at(index, "publishing", since=since)

    def join(self) -> tuple[int, float]:
        """Adds one member; its index and when it published."""
        since = time.time()
        self.add(1)
        index = len(self.members) - 1
        return index, self.logged_at(index, "publishing", since=since)

    def retract(self, index: int) -> float:
        """Member ``index`` retracts its identity (its process replaced by a ``--retract`` one); when it did."""
        member = self.members[index]
        member.process.send_signal(signal.SIGTERM)
        member.process.wait(timeout=30)
        since = time.time()
        member.process = self._process(member.node, member.number, "retracting", "--retract")
        return self.logged_at(index, "retracted", since=since)

    def drop_last(self, count: int) -> None:
        """Stops the last ``count`` members and their nodes."""
        for _ in range(count):
            member = self.members.pop()
            member.process.send_signal(signal.SIGTERM)
            try:
                member.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                member.process.kill()
            member.node.stop()

    def close(self) -> None:
        for member in self.members:
            member.process.send_signal(signal.SIGTERM)
        for member in self.members:
            try:
                member.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                member.process.kill()
        self.nodes.close()


class WriteCounter:
    """Watch events that changed a Peer, Identity or SwarmPool of W's namespace."""

    def __init__(self, cluster: Cluster) -> None:
        api = kubernetes.client.CustomObjectsApi(cluster.control_plane.api_client())
        self.counts = {"peers": 0, "identities": 0, "swarmpools": 0}
        self._stopping = threading.Event()
        self._watchers = [
            Watcher(
                f"count {plural}", api.list_namespaced_custom_object, self._counter(plural), self._stopping,
                group=GROUP, version=VERSION, namespace=NS, plural=plural,
            )
            for plural in self.counts
        ]  # fmt: skip
        for watcher in self._watchers:
            watcher.start()

    def _counter(self, plural: str) -> Callable[[str, dict[str, Any]], None]:
        def count(kind: str, _obj: dict[str, Any]) -> None:
            if kind in ("MODIFIED", "ADDED", "DELETED"):  # not SYNC: what a (re)list found
                self.counts[plural] += 1

        return count

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    def close(self) -> None:
        self._stopping.set()
        for watcher in self._watchers:
            watcher.interrupt()


class PeerEvents:
    """Every event on W's Peers (a relist's SYNC among them), with the wall time it arrived."""

    def __init__(self, cluster: Cluster) -> None:
        api = kubernetes.client.CustomObjectsApi(cluster.control_plane.api_client())
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher = Watcher(
            "peer events", api.list_namespaced_custom_object, self._record, self._stopping,
            group=GROUP, version=VERSION, namespace=NS, plural="peers",
        )  # fmt: skip
        self._watcher.start()

    def close(self) -> None:
        self._stopping.set()
        self._watcher.interrupt()

    def _record(self, kind: str, peer: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((time.time(), kind, peer))

    def seen(self, matches: PeerEvent, *, since: float, timeout: float = 300) -> float:
        """The wall time of the first event since ``since`` that ``matches(type, peer)``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = next((at for at, kind, peer in self.events if at >= since and matches(kind, peer)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"no matching Peer event within {timeout:.0f} s")


PeerEvent = Callable[[str, dict[str, Any]], bool]
"""Whether a watch event (its type and the Peer) is the one awaited."""


def applying_pass(agent_log: Path, peer_id: str, *, since: float, timeout: float = 10) -> dict[str, Any] | None:
    """The agent's first fast-path pass at or after ``since`` that updated ``peer_id``'s Peer: its log fields,
    with when it started and ended (seconds since the epoch). The pass logs after its writes, which a watch may
    see first."""
    name = f"'{peer_id.lower()}'"
    deadline = time.monotonic() + timeout
    while True:
        for line in agent_log.read_text(errors="replace").splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            message = str(event.get("msg", ""))
            if not message.startswith("applied news"):
                continue
            if name not in message.split("updated", 1)[-1].split("deleted")[0]:
                continue
            ended = log_time(event["ts"])
            took = float(message.split(" in ", 1)[1].split(" ms", 1)[0]) / 1000
            if ended - took >= since - 1:
                return {**event, "started": ended - took, "ended": ended}
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def where_the_time_went(total: float, published: float, heard: float | None, applied: dict[str, Any] | None) -> str:
    """One update's propagation, split: the swarm's part, the wait for the agent's pass, the pass, the watch."""
    if heard is None or applied is None:
        return f"{total:.2f} s (not split: {'no pass logged' if applied is None else 'not heard'})"
    return (
        f"{total:.2f} s = heard {heard - published:.2f} + waited {applied['started'] - heard:.2f}"
        f" + pass {applied['ended'] - applied['started']:.2f} (resolve {applied.get('ms_resolve')} ms,"
        f" discover {applied.get('ms_discover')} ms of which {applied.get('fetches')} fetches"
        f" {applied.get('ms_fetch')} ms, list {applied.get('ms_list')} ms, write {applied.get('ms_write')} ms)"
        f" + seen {published + total - applied['ended']:.2f}"
    )


def peer_named(peer: dict[str, Any], peer_id: str) -> bool:
    return bool((peer.get("metadata") or {}).get("name") == peer_id.lower())


def describes(peer_id: str, text: str) -> PeerEvent:
    return lambda kind, peer: peer_named(peer, peer_id) and (peer.get("spec") or {}).get("description") == text


def online(peer_id: str) -> PeerEvent:
    return lambda kind, peer: peer_named(peer, peer_id) and (peer.get("status") or {}).get("status") == "Online"


def deleted(peer_id: str) -> PeerEvent:
    return lambda kind, peer: kind == "DELETED" and peer_named(peer, peer_id)


class Arrivals:
    """When W's node receives each member's announcements, so a propagation splits into the swarm's part (member's
    publication -> W's node) and W's own (-> the Peer written)."""

    def __init__(self, api_url: str, topic: str, authorization: str | None) -> None:
        self.heard: list[tuple[float, str, int]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        subscribed = threading.Event()

        def listen() -> None:
            with KuboClient(api_url, authorization=authorization) as client:
                while not self.stop.is_set():
                    with client.subscribe(topic, duration=60) as subscription:
                        subscribed.set()
                        for message in subscription:
                            if self.stop.is_set():
                                return
                            try:
                                announced = decode(message.data)
                            except MessageError:
                                continue
                            if isinstance(announced, Announce):
                                with self.lock:
                                    self.heard.append((time.time(), message.sender, announced.sequence))

        threading.Thread(target=listen, daemon=True).start()
        subscribed.wait(30)

    def first(self, sender: str, *, above: int, timeout: float = 60) -> float | None:
        """The wall time W's node first received an announcement of ``sender`` with a sequence above ``above``.

        By sequence, not by time: the member's log line that dates its publication may come after its announcement,
        and an announcement of its previous document may arrive just before it; either way a time window misplaced
        the announcement (negative splits at N = 10). None if it did not arrive.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = next((at for at, who, sequence in self.heard if who == sender and sequence > above), None)
            if found is not None:
                return found
            time.sleep(0.05)
        return None


def count_messages(api_url: str, topic: str, seconds: float) -> list[int]:
    """Counts the messages one node receives on ``topic`` for ``seconds`` (run on a thread; the count is [0])."""
    count = [0]

    def listen() -> None:
        with KuboClient(api_url) as client, client.subscribe(topic, duration=seconds) as subscription:
            for _ in subscription:
                count[0] += 1

    threading.Thread(target=listen, daemon=True).start()
    return count


def online_peers(w: Cluster) -> list[dict[str, Any]]:
    return [p for p in w.get("peers", namespace=NS) or [] if (p.get("status") or {}).get("status") == "Online"]


def steady_cpu(parts: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by each of W's operator, zygote, agent and kubo node.

    Whole trees, running processes included: a window gets the ansible runs and the modules (the zygote's
    children) within it, not the runs that happened to end in it. The operator's tree leaves out the zygote's,
    which has a column of its own.
    """
    zygote = parts["zygote"]
    return {
        "operator": tree_cpu_seconds(parts["operator"], exclude=[zygote] if zygote else []),
        "zygote": tree_cpu_seconds(zygote),
        "agent": tree_cpu_seconds(parts["agent"]),
        "kubo": cpu_seconds(parts["kubo"], children=False),
    }


def last_identity_run_seconds(w: Cluster) -> float | None:
    seconds = None
    for line in (w.base_dir / "operator.log").read_text().splitlines():
        if '"ansible run finished"' in line and '"Identity"' in line:
            seconds = json.loads(line).get("seconds")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="10,25,50", help="sizes, comma separated (light members at each)")
    parser.add_argument("--steady", type=float, default=120.0, help="seconds of steady state measured per size")
    parser.add_argument("--trials", type=int, default=5, help="creation, update and deletion trials per size")
    args = parser.parse_args()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (or SIGINT where a shell ignores it) stops every member and cluster

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    sizes = sorted(int(n) for n in args.members.split(","))
    rows: list[dict[str, Any]] = []
    with work_folder("bench-scale-") as base, Federation(base) as federation:
        w = federation.add_cluster("scale-w")
        w.apply([namespace(NS), swarm_pool("pool", NS, swarm="pool", key_secret="swarm")])
        address = w.wait_for(
            lambda: (swarm_node(w, "pool", NS).get("Addresses") or [None])[0], "W's node is up", timeout=300
        )
        w_node_api = str(swarm_node(w, "pool", NS)["API"])
        key = base64.b64decode(w.get("secret", "swarm", namespace=NS)["data"]["swarm-key"]).decode()
        w_identity = identity(
            "w", NS, swarm_pool="pool", swarm="pool", display_name="W", description="W",
            url=w.control_plane.server, categories=[],
        )  # fmt: skip
        w.apply([w_identity])
        members = Members(base, key, address)
        topic = topic_for(parse(key).key)
        try:
            for size in sizes:

                def all_online(n: int = size) -> bool:
                    return len(online_peers(w)) >= n

                began = time.monotonic()
                members.add(size - len(members.members))
                join = time.monotonic() - began + measure(all_online, timeout=900, interval=0.5)
                print(f"N={size}: W shows {size} Peers Online {join:.1f} s after the step began", flush=True)

                # Its finalizer retracts the identity and removes every Peer: minutes on a saturated machine,
                # longer than one kubectl call may wait.
                w.delete("identity", "w", namespace=NS)
                w.wait_for(
                    lambda: w.get("identity", "w", namespace=NS) is None and not w.get("peers", namespace=NS),
                    "W's Identity and Peers are gone",
                    timeout=900,
                    interval=2,
                )
                began = time.monotonic()
                w.apply([w_identity])
                newcomer = measure(all_online, timeout=900, interval=0.5)
                print(f"N={size}: a new Identity on W shows {size} Peers Online after {newcomer:.1f} s", flush=True)
                # Propagation is timed on a settled W: its new Identity's first rounds (publication, asks) done.
                time.sleep(30)

                events = PeerEvents(w)
                token = w.get("secret", api_token_secret("pool", "pool"), namespace=NS)
                arrivals = Arrivals(w_node_api, topic, authorization(token))
                updates, swarm_parts, splits = [], [], []
                assert w.agent is not None
                agent_log = w.agent.log_path
                for trial in range(args.trials):
                    index = trial % size
                    node = members.members[index].node
                    text = f"update {size}-{trial}"
                    sequence_before = members.published_sequence(index)
                    published = members.republish(index, text)
                    seen = events.seen(describes(node.peer_id, text), since=published)
                    updates.append(seen - published)
                    heard = arrivals.first(node.peer_id, above=sequence_before)
                    if heard is not None:
                        swarm_parts.append(heard - published)
                    applied = applying_pass(agent_log, node.peer_id, since=published)
                    splits.append(where_the_time_went(seen - published, published, heard, applied))
                arrivals.stop.set()
                print(f"N={size}: updates {', '.join(f'{u:.2f}' for u in updates)} s", flush=True)
                print(
                    f"N={size}: of which until W's node heard the announcement"
                    f" {', '.join(f'{h:.2f}' for h in swarm_parts)} s",
                    flush=True,
                )
                for split in splits:
                    print(f"N={size}: update {split}", flush=True)
                creations, deletions, joined = [], [], []
                for _ in range(args.trials):
                    index, published = members.join()
                    node = members.members[index].node
                    seen = events.seen(online(node.peer_id), since=published)
                    creations.append(seen - published)
                    joined.append(index)
                print(f"N={size}: creations {', '.join(f'{c:.2f}' for c in creations)} s", flush=True)
                for index in joined:
                    node = members.members[index].node
                    retracted = members.retract(index)
                    seen = events.seen(deleted(node.peer_id), since=retracted)
                    deletions.append(seen - retracted)
                print(f"N={size}: deletions {', '.join(f'{d:.2f}' for d in deletions)} s", flush=True)
                members.drop_last(len(joined))
                events.close()

                # The trials' own writes settle: the next Identity round (2 minutes) counts the members that left.
                time.sleep(135)
                # CPU is read from the processes: the bench runs the product as host processes.
                assert isinstance(w.operator, ProductProcess) and isinstance(w.agent, ProductProcess)
                operator_pid = w.operator.process.pid if w.operator.process else None
                agent_pid = w.agent.process.pid if w.agent.process else None
                zygote_pid = child_running(operator_pid, MODULE_ZYGOTE)
                playbook_zygote_pid = child_running(operator_pid, PLAYBOOK_ZYGOTE)
                assert w.kubelet is not None
                pod = w.kubelet.pod(NS, "pool-pool-ss-0")
                kubo_pid = pod.pid if pod else None
                parts = {"operator": operator_pid, "zygote": zygote_pid, "agent": agent_pid, "kubo": kubo_pid}
                counter = WriteCounter(w)
                time.sleep(2)
                before = steady_cpu(parts)
                writes_before = counter.snapshot()
                messages = count_messages(members.members[0].node.api_url, topic, args.steady)
                time.sleep(args.steady)
                after = steady_cpu(parts)
                writes = {k: v - writes_before[k] for k, v in counter.snapshot().items()}
                counter.close()
                minutes = args.steady / 60
                rows.append(
                    {
                        "N": size,
                        "join": join,
                        "newcomer": newcomer,
                        "creation p50": percentile(creations, 0.5),
                        "creation p95": percentile(creations, 0.95),
                        "update p50": percentile(updates, 0.5),
                        "update p95": percentile(updates, 0.95),
                        "update heard p50": percentile(swarm_parts, 0.5) if swarm_parts else None,
                        "update heard p95": percentile(swarm_parts, 0.95) if swarm_parts else None,
                        "deletion p50": percentile(deletions, 0.5),
                        "deletion p95": percentile(deletions, 0.95),
                        **{f"cpu {k}": (after[k] - before[k]) / minutes for k in parts},
                        **{f"rss {k}": rss_mib(pid) for k, pid in parts.items()},
                        "rss playbook zygote": rss_mib(playbook_zygote_pid),
                        **{f"writes {k}": v / minutes for k, v in writes.items()},
                        "pubsub messages": messages[0] / minutes,
                        "identity run": last_identity_run_seconds(w),
                    }
                )
                print(json.dumps(rows[-1], default=str), flush=True)
        finally:
            members.close()
    print(f"\nW plus N light members; steady state over {args.steady:.0f} s (per minute):")
    columns = list(rows[0]) if rows else []
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    for row in rows:
        operator_agent = row["cpu operator"] + row["cpu zygote"] + row["cpu agent"]
        rss = row["rss operator"] + row["rss zygote"] + row["rss playbook zygote"] + row["rss agent"]
        writes = row["writes peers"] + row["writes identities"] + row["writes swarmpools"]
        print(
            f"N={row['N']}: operator+zygotes+agent {operator_agent:.2f} CPU-s/min and {rss:.0f} MiB RSS;"
            f" {writes:.1f} writes/min while nothing changed"
        )


if __name__ == "__main__":
    main()
