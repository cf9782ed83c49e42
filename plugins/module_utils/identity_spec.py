# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""What an Identity's spec must hold, and when a reconcile renews its account and publication.

Private to the collection: may change without notice.

The identity role asks both through filters (``identity_spec_problem``,
``identity_needs_full_sync``), so these decisions are made, and tested, here.
The URL rule is the one members apply to the document it becomes
(identity.validate), so nothing the role accepts is refused on the swarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    DocumentError,
    check_url,
)

SWARM_KEYS = ("namespace", "swarm_pool", "swarm")
"""What each entry of ``spec.swarms`` names, as the operator passes it (snake_case)."""
FULL_SYNC_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""The form of ``status.lastFullSync``."""


def spec_problem(name: object, url: object, swarms: object, categories: object) -> str:
    """The first fault of an Identity's spec, worded for its Failure condition; ``''`` when it has none."""
    if not isinstance(name, str) or not name.strip():
        return "spec.name must not be empty"
    if not isinstance(url, str):
        return "spec.URL must be an http or https URL (the API server members will use)"
    if url:
        try:
            check_url(url)
        except DocumentError:
            return "spec.URL must be an http or https URL (the API server members will use)"
    if not isinstance(swarms, Sequence) or isinstance(swarms, str) or not swarms:
        return "spec.swarms must list at least one swarm to publish on"
    if not isinstance(categories, Sequence) or isinstance(categories, str):
        return "spec.categories must be a list"
    if any(not isinstance(category, Mapping) or "name" not in category for category in categories):
        return "every category needs a name"
    if any(not isinstance(entry, Mapping) or any(key not in entry for key in SWARM_KEYS) for entry in swarms):
        return "every entry of spec.swarms needs namespace, swarmPool and swarm"
    return ""


def needs_full_sync(
    identity: Mapping[str, Any], full_sync_seconds: float, swarm_count: int, now: datetime | None = None
) -> bool:
    """Whether this reconcile renews the account and the publication, not only discovery.

    It does when the spec changed since the last full sync (the generation), when there never was one, when
    ``full_sync_seconds`` passed since it, or when not every swarm of the spec is published.
    """
    status = identity.get("status") or {}
    generation = (identity.get("metadata") or {}).get("generation", 0)
    if status.get("fullSyncGeneration", -1) != generation:
        return True
    last = status.get("lastFullSync")
    try:
        last_time = datetime.strptime(str(last), FULL_SYNC_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return True
    if ((now or datetime.now(UTC)) - last_time).total_seconds() >= float(full_sync_seconds):
        return True
    published = [
        entry for entry in status.get("swarms") or [] if isinstance(entry, Mapping) and entry.get("published") is True
    ]
    return len(published) != swarm_count
