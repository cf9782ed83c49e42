# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the identity role: what is wrong with an Identity's spec, whether a reconcile renews its account
and publication, and the peer counts it prints.

The rules live in module_utils/identity_spec.py; each filter is documented in the YAML file of its name beside
this one (ansible-doc -t filter).
"""

from __future__ import annotations

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    peer_counts,
    published_fields,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity_spec import (
    needs_full_sync,
    spec_problem,
)


def identity_spec_problem(name, url="", swarms=None, categories=None):
    return spec_problem(name, url, [] if swarms is None else swarms, [] if categories is None else categories)


def identity_needs_full_sync(identity, full_sync_seconds, swarm_count, round_seconds):
    return needs_full_sync(identity, float(full_sync_seconds), int(swarm_count), float(round_seconds))


def identity_published(spec):
    return dict(published_fields(spec or {}))


def identity_peer_counts(report):
    return peer_counts(report)


class FilterModule:
    def filters(self):
        return {
            "identity_spec_problem": identity_spec_problem,
            "identity_needs_full_sync": identity_needs_full_sync,
            "identity_published": identity_published,
            "identity_peer_counts": identity_peer_counts,
        }
