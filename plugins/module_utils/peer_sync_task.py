# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The peer_sync task: one discovery round's identities applied to the Peers of an Identity and swarm.

Private to the collection: may change without notice.

Shared by the peer_sync module and its action plugin. The round's plan and
its writes are peer_sync.py's, which the discovery agent's fast path uses too.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    API_VERSION,
    DEFAULT_FORGET_AFTER,
    DEFAULT_OFFLINE_AFTER,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import ResourceService, utc_now
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    Scope,
    apply,
    gauges,
    last_heard,
    plan,
    selector,
    tombstones,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import (
    MakeClient,
    TaskModule,
    k8s_task_argspec,
)

ARG_SPEC: dict[str, Any] = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "namespace": {"type": "str", "required": True},
    "identity_name": {"type": "str", "required": True},
    "identity_namespace": {"type": "str", "required": True},
    "identity_uid": {"type": "str"},
    "swarm_pool": {"type": "str", "required": True},
    "swarm": {"type": "str", "required": True},
    # Only the kubeconfigs are secret: Ansible masks a no_log value wherever it occurs in the output, so a whole
    # secret list would mask the members' names, URLs and versions in every message that quotes them.
    "identities": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "peer_id": {"type": "str", "required": True},
            "cid": {"type": "str"},
            "sequence": {"type": "int", "required": True},
            "issued_at": {"type": "str"},
            "name": {"type": "str"},
            "description": {"type": "str"},
            "url": {"type": "str"},
            "categories": {"type": "list", "elements": "str"},
            "addresses": {"type": "list", "elements": "str"},
            "kubernetes_version": {"type": "str"},
            "kubeconfig": {"type": "str", "no_log": True},
            "live": {"type": "bool", "default": True},
            "heard_at": {"type": "str"},
        },
    },
    "removed": {"type": "list", "elements": "raw", "default": []},
    "rejected": {"type": "list", "elements": "raw", "default": []},
    "offline_after": {"type": "int", "default": DEFAULT_OFFLINE_AFTER},
    "forget_after": {"type": "int", "default": DEFAULT_FORGET_AFTER},
}


def argspec() -> dict[str, Any]:
    return k8s_task_argspec(ARG_SPEC)


def execute(module: TaskModule, make_client: MakeClient) -> dict[str, Any]:
    """The whole task; ``module.fail_json`` must not return."""
    params = module.params
    if params["offline_after"] < 1 or params["forget_after"] <= params["offline_after"]:
        module.fail_json(msg="offline_after must be at least 1 and forget_after larger than offline_after")
    scope = Scope(
        identity_name=params["identity_name"],
        identity_namespace=params["identity_namespace"],
        identity_uid=params["identity_uid"],
        namespace=params["namespace"],
        swarm_pool=params["swarm_pool"],
        swarm=params["swarm"],
    )
    client = make_client()
    peers = ResourceService(client, "Peer", API_VERSION)
    secrets = ResourceService(client, "Secret", "v1")
    existing = peers.list(scope.namespace, label_selector=selector(scope))
    try:
        removed = tombstones(params["removed"])
    except ValueError as err:
        module.fail_json(msg=str(err))
    if params["state"] == "absent":
        discovered: list[dict[str, Any]] = []
        removed = {peer["metadata"]["name"]: None for peer in existing}
    else:
        # Ansible fills the suboptions a caller left out with None; the plan reads absent ones as empty.
        discovered = [
            {key: value for key, value in identity.items() if value is not None}
            for identity in params["identities"]
            if identity.get("live", True)
        ]
    rejected = [item["peer_id"] if isinstance(item, dict) else str(item) for item in params["rejected"]]
    decided = plan(
        scope,
        existing=existing,
        discovered=discovered,
        removed=removed,
        refused=rejected,
        now=utc_now(),
        offline_after=params["offline_after"],
        forget_after=params["forget_after"],
        last_heard=last_heard(params["identities"]),
    )
    for warning in decided.warnings:
        module.warn(warning)
    done = apply(decided, scope, peers=peers, secrets=secrets, check_mode=module.check_mode)
    for failure in done.failed:
        module.warn(f"Peer {scope.namespace}/{failure}; left as it was")
    return {
        "changed": done.changed,
        "created": done.created,
        "updated": done.updated,
        "deleted": done.deleted,
        "online": decided.online,
        "offline": decided.offline,
        "synchronized": decided.synchronized,
        "gauges": gauges(scope, decided, refused=len(set(rejected))),
    }
