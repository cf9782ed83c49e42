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

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    DocumentError,
    check_url,
)

SWARM_KEYS = ("namespace", "swarm_pool", "swarm")
"""What each entry of ``spec.swarms`` names, as the operator passes it (snake_case)."""
RENEWAL_WINDOW_ROUNDS = 1.25
"""How many round periods the renewal window of each ``full_sync_seconds`` lasts. A round comes every period plus
its own run time, so a window a quarter longer than the period holds at least one round (and at most two) while a
run takes less than a quarter of the period."""


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
    identity: Mapping[str, Any],
    full_sync_seconds: float,
    swarm_count: int,
    round_seconds: float,
    now: float | None = None,
) -> bool:
    """Whether this reconcile renews the account and the publication, not only discovery.

    It does when the spec changed since the last full sync (the generation), when not every swarm of the spec is
    published, and in the renewal window of each ``full_sync_seconds``: its first ``RENEWAL_WINDOW_ROUNDS`` round
    periods (``round_seconds``), offset per Identity (by uid) so that Identities do not all renew at once. Nothing
    records when the last renewal ran, so a steady Identity is never written only to move a timestamp (issue 20).
    """
    status = identity.get("status") or {}
    metadata = identity.get("metadata") or {}
    if status.get("fullSyncGeneration", -1) != metadata.get("generation", 0):
        return True
    published = [
        entry for entry in status.get("swarms") or [] if isinstance(entry, Mapping) and entry.get("published") is True
    ]
    if len(published) != swarm_count:
        return True
    return in_renewal_window(
        str(metadata.get("uid") or metadata.get("name") or ""),
        time.time() if now is None else now,
        every=full_sync_seconds,
        window=RENEWAL_WINDOW_ROUNDS * round_seconds,
    )


def in_renewal_window(key: str, now: float, *, every: float, window: float) -> bool:
    """Whether ``now`` (seconds since the epoch) falls in the first ``window`` seconds of one of ``key``'s slots of
    ``every`` seconds; always when the window is as long as the slot."""
    if window >= every:
        return True
    offset = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 1_000_003 / 1_000_003 * every
    return (now + offset) % every < window
