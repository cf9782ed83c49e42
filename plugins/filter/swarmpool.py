# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the swarmpool role: which kubo release a node runs, the status hash of a SwarmPool's spec, and the
name of a node's start-up ConfigMap (which the identity role reads too).

The rules live in module_utils (kubo_release.py, swarm_access.py); each filter is documented in
the YAML file of its name beside this one (ansible-doc -t filter).
"""

from __future__ import annotations

import base64
import hashlib
import json

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo_release import (
    MalformedRelease,
    choose,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import node_config_map


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


class FilterModule:
    def filters(self):
        return {
            "kubo_release": kubo_release,
            "swarmpool_spec_hash": swarmpool_spec_hash,
            "node_config_map": node_config_map,
        }
