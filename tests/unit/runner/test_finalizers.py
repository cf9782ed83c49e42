"""Finalizer rules as pure functions (operator-sdk's reconcile.go)."""

from __future__ import annotations

from typing import Any

from cluster_discovery_operator.finalizers import (
    adding_patch,
    has_finalizer,
    is_finalizer_run,
    is_terminated_without_us,
    needs_adding,
    removing_patch,
)

F = "x.io/finalizer"


def _obj(finalizers: list[str], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "w", "resourceVersion": "7", "finalizers": finalizers}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def test_a_live_object_without_the_finalizer_needs_it_before_its_first_run() -> None:
    assert needs_adding(_obj([]), F)
    assert not needs_adding(_obj([F]), F)
    assert not needs_adding(_obj([], deleting=True), F), "never re-added to an object being deleted"
    assert not needs_adding(_obj([]), None), "watches without a finalizer add nothing"


def test_a_deleted_object_runs_the_finalizer_only_if_it_carries_ours() -> None:
    assert is_finalizer_run(_obj([F, "other"], deleting=True), F)
    assert not is_finalizer_run(_obj([F]), F)
    assert is_terminated_without_us(_obj(["other"], deleting=True), F)
    assert is_terminated_without_us(_obj([], deleting=True), None)
    assert not is_terminated_without_us(_obj([F], deleting=True), F)


def test_patches_keep_other_finalizers_and_carry_the_resource_version() -> None:
    """The whole list plus the resourceVersion: a concurrent change yields 409, never a lost finalizer."""
    assert adding_patch(_obj(["other"]), F) == {"metadata": {"finalizers": ["other", F], "resourceVersion": "7"}}
    assert removing_patch(_obj(["a", F, "b"]), F) == {"metadata": {"finalizers": ["a", "b"], "resourceVersion": "7"}}
    assert has_finalizer(_obj([F]), F) and not has_finalizer({}, F)
