# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""What a task's logic needs of the module running it, whether AnsibleModule or the action plugins' stand-in.

Private to the collection: may change without notice.

The Kubernetes modules' ``execute(module, make_client)`` functions live in
module_utils so that both the module (a process on the target) and its action
plugin (on the controller, plugin_utils/local_module_action.py) import them
from here, and neither imports the other.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC


class TaskModule(Protocol):
    """The parts of AnsibleModule the tasks use."""

    params: dict[str, Any]
    check_mode: bool
    _diff: bool

    def fail_json(self, **fields: Any) -> NoReturn: ...

    def warn(self, warning: str) -> None: ...


MakeClient = Callable[[], Any]
"""Builds kubernetes.core's client from the task's authentication options."""


def k8s_task_argspec(options: Mapping[str, Any]) -> dict[str, Any]:
    """kubernetes.core's authentication options and the task's own, deep-copied so no caller changes another's."""
    args: dict[str, Any] = copy.deepcopy(AUTH_ARG_SPEC)
    args.update(copy.deepcopy(dict(options)))
    return args
