"""Finalizers: a handful of pure functions, as in kopf's ``structs/finalizers.py``.

The rules are operator-sdk's (``controller/reconcile.go``):

- the finalizer is added before the first run of an object that is not being
  deleted, so a deletion always waits for the finalizer role;
- an object being deleted that does not carry our finalizer is left alone
  ("Resource is terminated, skipping reconciliation");
- an object being deleted that carries it gets the finalizer run; only after a
  successful run is the finalizer removed, so a failing finalizer keeps the
  object (and reports why in its status and an Event).

Patches name the whole finalizers list together with the resourceVersion it was
computed from, so a concurrent change by another controller makes the API server
answer 409 instead of silently dropping that controller's finalizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bodies import finalizers_of, is_deleting, resource_version_of


def has_finalizer(obj: Mapping[str, Any], name: str) -> bool:
    return name in finalizers_of(obj)


def needs_adding(obj: Mapping[str, Any], name: str | None) -> bool:
    return bool(name) and not is_deleting(obj) and not has_finalizer(obj, str(name))


def is_finalizer_run(obj: Mapping[str, Any], name: str | None) -> bool:
    return bool(name) and is_deleting(obj) and has_finalizer(obj, str(name))


def is_terminated_without_us(obj: Mapping[str, Any], name: str | None) -> bool:
    """Deleted and nothing of ours to run: operator-sdk skips such objects."""
    return is_deleting(obj) and not (name and has_finalizer(obj, name))


def adding_patch(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {"metadata": {"finalizers": [*finalizers_of(obj), name], "resourceVersion": resource_version_of(obj)}}


def removing_patch(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    remaining = [item for item in finalizers_of(obj) if item != name]
    return {"metadata": {"finalizers": remaining, "resourceVersion": resource_version_of(obj)}}
