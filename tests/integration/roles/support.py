"""What the role tests share: manifests, kubo's RPC API, and reading the runner's conditions.

Nothing here stands in for anything: the RPC calls go to the real kubo
processes the kubelet stand-in runs, and the conditions are the ones the
operator wrote on the real API server.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import requests
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import topic_for
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    api_token_secret,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import (
    authorization,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

from testbed.federation import Cluster, identity, swarm_pool

API_GROUP = "peerdiscovery.irt-saintexupery.com"
API_VERSION = f"{API_GROUP}/v1alpha1"
# A reconcile takes 5-40 s on an idle 2-core machine, but several minutes when other test sessions share it
# (a first SwarmPool run took over 3 minutes at a load average of 27): waits are generous, polls frequent.
TIMEOUT = 300
POLL = 1.0


def rpc_call(
    api_url: str, command: str, *args: str, timeout: float = 30, authorization: str | None = None, **params: str
) -> requests.Response:
    """POST /api/v0/<command> with each of ``args`` as an ``arg``; the raw response.

    ``authorization``: what a node of a SwarmPool asks for (node_authorization); a bare test node asks for nothing.
    """
    query = [("arg", arg) for arg in args] + list(params.items())
    headers = {"Authorization": authorization} if authorization else {}
    return requests.post(f"{api_url}/api/v0/{command}", params=query, headers=headers, timeout=timeout)


def rpc(api_url: str, command: str, *args: str, authorization: str | None = None, **params: str) -> Any:
    """The JSON answer of a call that must succeed."""
    response = rpc_call(api_url, command, *args, authorization=authorization, **params)
    assert response.status_code == 200, (
        f"kubo at {api_url} answered {command} with {response.status_code}: {response.text}"
    )
    return response.json()


def connected_peer_ids(api_url: str, *, authorization: str | None = None) -> set[str]:
    return {peer["Peer"] for peer in rpc(api_url, "swarm/peers", authorization=authorization).get("Peers") or []}


def node_authorization(cluster: Cluster, namespace: str, pool: str, swarm: str) -> str:
    """The Authorization header the RPC API of ``pool``'s node for ``swarm`` asks for (from its token Secret)."""
    secret = cluster.get("secret", api_token_secret(pool, swarm), namespace=namespace)
    value = authorization(secret)
    assert value is not None, f"no RPC API token Secret for {namespace}/{pool}/{swarm}"
    return value


@dataclass
class Swarm:
    """The running SwarmPool the Identities publish on, as its status and key Secret describe it."""

    namespace: str
    pool: str
    swarm: str
    api_url: str
    peer_id: str
    addresses: list[str]
    key: bytes
    authorization: str

    @property
    def topic(self) -> str:
        return topic_for(self.key)

    def identity(
        self,
        name: str,
        namespace: str,
        *,
        url: str,
        display_name: str | None = None,
        description: str = "",
        categories: list[str] | None = None,
    ) -> dict[str, Any]:
        """An Identity of ``namespace`` published on this swarm."""
        return identity(
            name,
            namespace,
            swarm_pool=self.pool,
            swarm=self.swarm,
            swarm_namespace=self.namespace,
            display_name=display_name or name,
            description=description,
            url=url,
            categories=categories or [],
        )

    def published(self) -> dict[str, Any] | None:
        """The node's record of what it last published on this swarm (its MFS state file)."""
        response = rpc_call(
            self.api_url,
            "files/read",
            f"/cluster-discovery/v1/{self.topic.rsplit('/', 1)[-1]}/published.json",
            authorization=self.authorization,
        )
        if response.status_code != 200 and "does not exist" in response.text:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())


def running_swarm(cluster: Cluster, namespace: str, *, pool: str = "pool", swarm: str = "main") -> Swarm:
    """A SwarmPool of one swarm with a generated key in ``namespace``, once the operator reports it serving."""
    cluster.apply([swarm_pool(pool, namespace, swarm=swarm, key_secret="swarm-key")])

    def serving() -> dict[str, Any] | None:
        obj = cluster.get("swarmpool", pool, namespace=namespace)
        status = ((obj or {}).get("status") or {}).get("status", {}).get(swarm, {})
        return (
            status
            if status.get("Addresses") and conditions(obj).get("Successful", {}).get("status") == "True"
            else None
        )

    status = cluster.wait_for(serving, "the SwarmPool serves", timeout=TIMEOUT, interval=POLL)
    key = parse(base64.b64decode(cluster.get("secret", "swarm-key", namespace=namespace)["data"]["swarm-key"])).key
    return Swarm(
        namespace,
        pool,
        swarm,
        status["API"],
        status["Peer Id"],
        list(status["Addresses"]),
        key,
        node_authorization(cluster, namespace, pool, swarm),
    )


# -- the runner's conditions ----------------------------------------------------------


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def run_marker(obj: dict[str, Any] | None) -> str | None:
    """Identifies the last finished run: the completion time the runner put in its result condition."""
    current = conditions(obj)
    running = current.get("Running", {})
    if running.get("status") == "True" and running.get("reason") == "Running":
        return None  # a run is going on
    for kind in ("Successful", "Failure"):
        if current.get(kind, {}).get("status") == "True":
            result = current["Running" if kind == "Successful" else "Failure"].get("ansibleResult") or {}
            return f"{kind} {result.get('completion')} {current[kind].get('lastTransitionTime')}"
    return None


def wait_for_run(
    cluster: Cluster, kind: str, name: str, namespace: str, *, after: str | None = None, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """The object once a run finished (successfully or not) other than the one ``after`` identifies."""

    def finished() -> dict[str, Any] | None:
        obj = cluster.get(kind, name, namespace=namespace)
        marker = run_marker(obj)
        return obj if marker is not None and marker != after else None

    return cluster.wait_for(
        finished, f"a new run of {kind} {namespace}/{name} finished", timeout=timeout, interval=POLL
    )


def describe_says_why(cluster: Cluster, kind: str, name: str, namespace: str, message: str) -> str:
    """``kubectl describe`` of a failed object, once it says why in words twice: in the Failure condition under
    Status and in a ReconcileFailed Warning Event (the Event is written after the condition). Whitespace aside.
    """
    said = " ".join(message.split())

    def described() -> str | None:
        text = " ".join(cluster.kubectl("describe", kind, name, "-n", namespace).stdout.split())
        return text if text.count(said) >= 2 and "Warning ReconcileFailed" in text else None

    return str(
        cluster.wait_for(
            described, f"kubectl describe {kind} {namespace}/{name} says why it failed", timeout=TIMEOUT, interval=POLL
        )
    )


def force_reconcile(cluster: Cluster, kind: str, name: str, namespace: str) -> str:
    """Change an annotation (an input of the skip rule) so the role runs again; returns the previous marker.

    A run may be under way (a dependent's change started it): its end is the run to compare with.
    """
    marker = str(
        cluster.wait_for(
            lambda: run_marker(cluster.get(kind, name, namespace=namespace)),
            f"{kind} {namespace}/{name} has a finished run to compare with",
            timeout=TIMEOUT,
            interval=POLL,
        )
    )
    cluster.kubectl(
        "annotate", kind, name, "-n", namespace, f"test.{API_GROUP}/reconcile={secrets.token_hex(4)}", "--overwrite"
    )
    return marker


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """The controller owner reference the roles put on what they create."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
