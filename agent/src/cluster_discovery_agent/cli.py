"""``cluster-discovery-agent``: the long-lived listener beside the operator.

Flags mirror the operator's where they mean the same thing (``--namespace``,
``--kubeconfig``, ``--log-format``, ``--log-level``); ``WATCH_NAMESPACE`` is
honoured as operator-sdk's is. Kubernetes is watched with the operator's own
client and informers, and logs are the operator's: one JSON (or key=value)
event per line. SIGTERM and SIGINT stop every listener and
exit 0. Several agents may run at once (one per operator replica): they
announce the same identity and converge on the same Peers, so they need no
leader election.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    DEFAULT_FRESH_WITHIN,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    Heard,
    SwarmIdentity,
)
from cluster_discovery_operator import logs
from cluster_discovery_operator.kube import ConfigurationError, KubeClient, KubeError
from cluster_discovery_operator.probes import ProbeServer
from cluster_discovery_operator.settings import KubeSettings, ProbeSettings, parse_bind_address

from .channels import Channel, Channels, IdentityRef, PeerArrivals, channels_of
from .fastpath import FastPath
from .kube import ObjectRef, Watched
from .nodestatus import DEFAULT_PERIOD, NodeStatus
from .objects import SECRETS, KindObjects
from .publisher import Publisher
from .role_metrics import RoleMetrics
from .swarms import NodeReader, NodeTokens

DEFAULT_OFFLINE_AFTER = DEFAULT_FRESH_WITHIN

log = logging.getLogger("cluster_discovery_agent")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cluster-discovery-agent", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--namespace",
        default=os.environ.get("WATCH_NAMESPACE") or None,
        help="watch Identities and SwarmPools of these namespaces only, comma separated"
        " (default: all, or $WATCH_NAMESPACE)",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    parser.add_argument(
        "--announce-period",
        type=float,
        default=30.0,
        help="seconds between two announcements of each identity (default: 30)",
    )
    parser.add_argument(
        "--offline-after",
        type=float,
        default=DEFAULT_OFFLINE_AFTER,
        help="seconds a member may stay silent before its Peer is Offline; keep it equal to the identity role's"
        f" identity_offline_after_seconds (default: {DEFAULT_OFFLINE_AFTER:g})",
    )
    parser.add_argument(
        "--node-status-period",
        type=float,
        default=DEFAULT_PERIOD,
        help="seconds between two reads of each SwarmPool node's counters, written to the SwarmPool's status when"
        f" they changed (default: {DEFAULT_PERIOD:g})",
    )
    parser.add_argument(
        "--role-metrics-socket",
        default=None,
        help="the operator's --role-metrics-socket: after each pass, the identity role's peer gauges are set there,"
        " so they follow the Peers between rounds (default: none, the rounds set them)",
    )
    parser.add_argument(
        "--health-probe-bind-address",
        default=":8082",
        help="address of /healthz and /readyz, or 0 to disable (default: :8082)",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "keyvalue"),
        default="json",
        help="one log event per line, as the operator writes them (default: json)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="(default: info)",
    )
    args = parser.parse_args(argv)
    try:
        parse_bind_address(args.health_probe_bind_address)
    except ValueError as err:
        parser.error(f"--health-probe-bind-address: {err}")
    if args.announce_period <= 0:
        parser.error("--announce-period must be positive")
    if args.offline_after <= args.announce_period:
        parser.error("--offline-after must be longer than --announce-period, or every member flaps Offline")
    if args.node_status_period <= 0:
        parser.error("--node-status-period must be positive")
    return args


def watch_namespaces(value: str | None) -> list[str]:
    """The namespaces of ``--namespace``/``WATCH_NAMESPACE``, comma separated as operator-sdk reads it; [] is all."""
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def thread_health(threads: list[threading.Thread]) -> tuple[bool, str]:
    """Healthy while every long-lived thread runs: a dead watch would leave the agent deaf for good."""
    dead = [thread.name for thread in threads if not thread.is_alive()]
    return (not dead, "ok" if not dead else f"stopped: {', '.join(dead)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(level=args.log_level, fmt=args.log_format)

    try:
        kube = KubeClient(KubeSettings(kubeconfig=args.kubeconfig))
        kubernetes_version = kube.server_version()
    except (ConfigurationError, KubeError) as err:
        log.error("%s", err)
        return 2
    namespaces = watch_namespaces(args.namespace)
    identities = Watched(kube, namespaces, plural="identities")
    pools = Watched(kube, namespaces, plural="swarmpools")
    peers = Watched(kube, namespaces, plural="peers")
    secrets = KindObjects(kube, SECRETS)
    tokens = NodeTokens(secrets)
    # Each channel's listening node, whose last write of heard.json a pass on that channel reads from memory;
    # weakly held, so a listener that ended takes its node and connections with it.
    listening: weakref.WeakValueDictionary[Channel, SwarmIdentity] = weakref.WeakValueDictionary()

    def heard_on(channel: Channel) -> dict[str, Heard] | None:
        node = listening.get(channel)
        return None if node is None else node.heard_as_written()

    fast_path = FastPath(
        kube,
        identities,
        pools,
        peers,
        offline_after=args.offline_after,
        tokens=tokens,
        heard_on=heard_on,
        role_metrics=RoleMetrics(args.role_metrics_socket),
    )
    publisher = Publisher(kube, kubernetes_version=kubernetes_version, tokens=tokens)
    node_status = NodeStatus(pools, read=NodeReader(tokens), period=args.node_status_period)

    def make_serve(channel: Channel) -> Callable[..., None]:
        client = tokens.client(
            channel.api_url,
            namespace=channel.namespace,
            pool=channel.swarm_pool,
            swarm=channel.swarm,
            timeout=30,
            retries=1,
        )
        node = SwarmIdentity(client, None, topic=channel.topic)
        listening[channel] = node  # the latest listener of the channel

        def serve(*, stop: threading.Event, on_news: Callable[[dict[str, int]], None]) -> None:
            node.serve(
                stop=stop, announce_every=args.announce_period, on_news=on_news, offline_after=args.offline_after
            )

        return serve

    channels: Channels

    def on_news(channel: Channel) -> None:
        fast_path(channel, channels.identities_on(channel))

    channels = Channels(make_serve=make_serve, on_news=on_news)
    stop = threading.Event()

    def on_change(ref: IdentityRef, obj: dict[str, Any] | None) -> None:
        publisher(ref, obj)
        channels.set_identity(ref, channels_of(obj) if obj is not None else set())
        if obj is not None:
            fast_path.count_peers.request(ref)  # a round of the role may have written counts older than its Peers

    arrivals = PeerArrivals(channels)

    def on_peer(ref: ObjectRef, peer: dict[str, Any] | None) -> None:
        arrivals(ref, peer)
        fast_path.count_peers.peer_changed(ref, peer)

    threads = [
        threading.Thread(target=identities.run, args=(on_change, stop), name="watch identities", daemon=True),
        threading.Thread(target=pools.run, args=(None, stop), name="watch swarmpools", daemon=True),
        threading.Thread(target=peers.run, args=(on_peer, stop), name="watch peers", daemon=True),
        threading.Thread(target=fast_path.count_peers.run, args=(stop,), name="peer counts", daemon=True),
        threading.Thread(target=node_status.run, args=(stop,), name="node status", daemon=True),
    ]
    health = ProbeServer(
        ProbeSettings(bind_address=args.health_probe_bind_address),
        readiness=lambda: thread_health(threads),
        liveness=lambda: thread_health(threads),
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info(
        "starting: namespaces=%s announce_period=%s offline_after=%s node_status_period=%s",
        ",".join(namespaces) or "(all)",
        args.announce_period,
        args.offline_after,
        args.node_status_period,
    )
    for thread in threads:
        thread.start()
    health.start()
    while not stop.wait(10):
        channels.sync()  # restarts a listener whose thread died
    log.info("stopping")
    channels.close()
    health.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
