"""``cluster-discovery-member``: a light member, a kubo node that announces an identity and consumes nothing.

For a cluster (or any service) whose admin wants it to be found on a swarm
without running the operator: it publishes an identity document with the
product's own code (``SwarmIdentity``) through a kubo node's RPC API, then
answers members' asks and re-announces the identity every ``--announce-period``
seconds until SIGTERM or SIGINT. It never asks (it consumes nothing, and every
member answers an ask), and keeps no record of what members announce. It
writes nothing to Kubernetes and publishes
no kubeconfig, so members get a Peer without a kubeconfig Secret. ``--retract``
publishes a tombstone instead, announces it for two periods and exits: members
delete its Peer.

It is also what lets one machine hold a swarm of fifty members for
``bench/`` (issue 20): a light member costs one kubo node and this process.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import IdentityDocument
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import KuboClient
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import SwarmIdentity
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse
from cluster_discovery_operator import logs

log = logging.getLogger("cluster_discovery_agent.member")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cluster-discovery-member", description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", required=True, help="the kubo node's RPC API, e.g. http://127.0.0.1:5001")
    parser.add_argument("--api-token-file", type=Path, help="file holding the RPC API's bearer token, if it has one")
    parser.add_argument("--swarm-key-file", type=Path, required=True, help="the swarm's key (swarm.key, PSK v1)")
    parser.add_argument("--name", required=True, help="the identity's display name")
    parser.add_argument("--description", default="")
    parser.add_argument("--url", default="", help="https URL of the member's API, if it has one (default: none)")
    parser.add_argument("--category", action="append", default=[], dest="categories", help="repeat for several")
    parser.add_argument(
        "--address",
        action="append",
        default=[],
        dest="addresses",
        help="an address members dial, ending in /p2p/<the node's id>; repeat for several (default: the node's own)",
    )
    parser.add_argument("--owner", default="", help="who publishes, recorded on the node (default: member/<name>)")
    parser.add_argument("--announce-period", type=float, default=30.0, help="seconds between announcements")
    parser.add_argument(
        "--retract", action="store_true", help="publish a tombstone, announce it for two periods and exit"
    )
    parser.add_argument("--log-format", choices=("json", "keyvalue"), default="json")
    parser.add_argument("--log-level", type=str.lower, choices=("debug", "info", "warning", "error"), default="info")
    args = parser.parse_args(argv)
    if args.announce_period <= 0:
        parser.error("--announce-period must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(level=args.log_level, fmt=args.log_format)
    try:
        key = parse(args.swarm_key_file.read_text())
        token = args.api_token_file.read_text().strip() if args.api_token_file else None
    except (OSError, CollectionError, ValueError) as err:
        log.error("%s", err)
        return 2
    owner = args.owner or f"member/{args.name}"
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with KuboClient(args.api_url, timeout=30, retries=1, authorization=f"Bearer {token}" if token else None) as client:
        try:
            node = SwarmIdentity(client, key.key)
            if args.retract:
                node.retract(owner=owner)
                # Announced, and answered to asks, for two periods: one message alone may reach nobody.
                linger = 2 * args.announce_period
                timer = threading.Timer(linger, stop.set)
                timer.daemon = True
                timer.start()
                log.info("retracted", extra=logs.fields(peer_id=node.peer_id, topic=node.topic, linger=linger))
                node.serve(stop=stop, announce_every=args.announce_period, ask=False, remember=False)
                return 0
            addresses = tuple(args.addresses) or tuple(
                f"{address}/p2p/{node.peer_id}" if "/p2p/" not in address else address
                for address in client.id().get("Addresses") or []
            )
            document = IdentityDocument(
                publisher=node.peer_id,
                sequence=0,
                issued_at="",
                name=args.name,
                description=args.description,
                url=args.url,
                categories=tuple(args.categories),
                addresses=addresses,
            )
            outcome = node.publish(owner=owner, document=document, kubeconfig=None)
        except (CollectionError, ValueError) as err:
            log.error("%s", err)
            return 1
        log.info(
            "publishing",
            extra=logs.fields(
                peer_id=node.peer_id, topic=node.topic, changed=outcome.changed, announce_period=args.announce_period
            ),
        )
        node.serve(stop=stop, announce_every=args.announce_period, ask=False, remember=False)
    log.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
