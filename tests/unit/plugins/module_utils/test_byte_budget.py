# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The byte budget that bounds what the agent keeps of what members publish."""

from __future__ import annotations

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.byte_budget import ByteBudget


def test_drops_the_least_recently_used_once_over_budget() -> None:
    kept: ByteBudget[str, str] = ByteBudget(max_bytes=10)
    kept.put("a", "A", size=4)
    kept.put("b", "B", size=4)
    assert kept.get("a") == "A"  # "a" is now the most recently used
    kept.put("c", "C", size=4)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == ("A", None, "C")
    assert (len(kept), kept.size) == (2, 8)


def test_a_new_value_for_a_key_replaces_its_size() -> None:
    kept: ByteBudget[str, str] = ByteBudget(max_bytes=10)
    kept.put("a", "A", size=4)
    kept.put("a", "A2", size=6)
    assert (kept.get("a"), len(kept), kept.size) == ("A2", 1, 6)


def test_an_entry_larger_than_the_budget_is_not_kept_nor_its_older_value() -> None:
    kept: ByteBudget[str, str] = ByteBudget(max_bytes=10)
    kept.put("a", "A", size=4)
    kept.put("a", "huge", size=11)
    kept.put("b", "huge", size=11)
    assert (kept.get("a"), kept.get("b"), len(kept), kept.size) == (None, None, 0, 0)


def test_one_entry_may_fill_the_budget_exactly() -> None:
    kept: ByteBudget[str, str] = ByteBudget(max_bytes=10)
    kept.put("a", "A", size=4)
    kept.put("b", "B", size=10)
    assert (kept.get("a"), kept.get("b"), kept.size) == (None, "B", 10)
