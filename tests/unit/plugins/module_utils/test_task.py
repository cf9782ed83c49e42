"""run_as_module: a Kubernetes task in a module process reports failures as its action plugin does.

Covered: the task's result is the module's; a CollectionError gives its message and fields; an unexpected error
gives the task's failure prefix and its message, no traceback in ``msg`` (ansible-core adds the traceback when asked
to show tracebacks); a missing library is named before the task runs. The module runs in this process with its
arguments patched in, as ansible-core's own module tests do.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import (
    k8s_task_argspec,
    run_as_module,
)


def argspec() -> dict[str, Any]:
    return k8s_task_argspec({"name": {"type": "str", "required": True}})


def run(execute: Callable[[Any, Any], dict[str, Any]], **options: Any) -> dict[str, Any]:
    out = io.StringIO()
    with patch_module_args({"name": "w"}), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        run_as_module(argspec, execute, failure="Failed to do it", **options)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_the_tasks_result_is_the_modules() -> None:
    result = run(lambda module, make_client: {"changed": True, "named": module.params["name"]})
    assert (result.get("failed", False), result["changed"], result["named"]) == (False, True, "w")


def test_a_collection_error_gives_its_message_and_fields() -> None:
    def execute(module: Any, make_client: Any) -> dict[str, Any]:
        raise CollectionError("kubo at node-0 did not answer", endpoint="/api/v0/id")

    result = run(execute)
    assert (result["failed"], result["msg"], result["endpoint"]) == (
        True,
        "kubo at node-0 did not answer",
        "/api/v0/id",
    )


def test_an_unexpected_error_is_named_with_the_tasks_failure_not_a_traceback() -> None:
    def execute(module: Any, make_client: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    result = run(execute)
    assert (result["failed"], result["msg"]) == (True, "Failed to do it: boom")


def test_a_missing_library_is_named_before_the_task_runs() -> None:
    ran: list[bool] = []

    def execute(module: Any, make_client: Any) -> dict[str, Any]:
        ran.append(True)
        return {"changed": False}

    result = run(execute, missing=("PyYAML and cryptography", "ModuleNotFoundError: yaml"))
    assert result["failed"] is True
    assert "PyYAML and cryptography" in result["msg"]
    assert ran == []
