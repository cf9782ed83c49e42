# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the swarmpool role: what is wrong with a swarm entry, which kubo release a node runs, the status hash
of a SwarmPool's spec, the connected peers kubectl prints, the names of a node's StatefulSet and start-up ConfigMap
(which the identity role reads too), and why a node's Pod waits.

The rules live in module_utils (swarmpool_spec.py, kubo_release.py, swarm_access.py); each filter is documented in
the YAML file of its name beside this one (ansible-doc -t filter).
"""

from __future__ import annotations

import base64
import hashlib
import json

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    connected_peers,
    node_config_map,
    statefulset_name,
    swarm_key_secret,
    swarm_status,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo_release import (
    MalformedRelease,
    choose,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarmpool_spec import (
    swarm_problem,
)


def kubo_release(requested, swarm=""):
    """``{requested, run, substituted, message, error}`` for an IPFSVersion; a malformed one only sets ``error``."""
    try:
        release = choose(requested)
    except MalformedRelease as err:
        return {"requested": requested, "run": "", "substituted": False, "message": "", "error": str(err)}
    return {
        "requested": release.requested,
        "run": release.run,
        "substituted": release.substituted,
        "message": release.message(swarm),
        "error": "",
    }


def swarmpool_spec_hash(swarms):
    """The MD5 of the swarms' canonical JSON, in base64: the form of the original's ``status.hash``."""
    canonical = json.dumps(swarms, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(hashlib.md5(canonical.encode(), usedforsecurity=False).digest()).decode()


def pod_waiting_reason(pod):
    """Why the first waiting container of ``pod`` waits (``<reason> <message>``), ``''`` when none waits."""
    for container in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting is not None:
            return " ".join(part for part in (waiting.get("reason"), waiting.get("message")) if part)
    return ""


class FilterModule:
    def filters(self):
        return {
            "kubo_release": kubo_release,
            "swarmpool_spec_hash": swarmpool_spec_hash,
            "node_config_map": node_config_map,
            "swarm_key_secret": swarm_key_secret,
            "node_statefulset": statefulset_name,
            "pod_waiting_reason": pod_waiting_reason,
            "swarmpool_swarm_problem": swarm_problem,
            "swarm_status": swarm_status,
            "swarmpool_connected_peers": connected_peers,
        }
