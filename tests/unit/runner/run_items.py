"""The RunItem the controller would build for one object, for tests that call AnsibleRunner.run directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster_discovery_operator.running import RunItem, make_parameters
from cluster_discovery_operator.watches import Watch


def run_item(watch: Watch, root: Path, obj: dict[str, Any]) -> RunItem:
    """A first, non-finalizer run of ``obj`` with its private_data_dir under ``root/objects``."""
    return RunItem(
        obj=obj,
        parameters=make_parameters(obj, watch=watch, finalizer_run=False),
        finalizer_run=False,
        verbosity=0,
        max_artifacts=watch.max_runner_artifacts,
        private_dir=root / "objects" / obj["metadata"]["name"],
        reconcile_id=f"run-{obj['metadata']['name']}",
    )
