# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""An action whose result is computed from the task's arguments alone, without a module process.

Private to the collection: may change without notice.

osdk_metric and requeue_after return data the operator reads from the run's
event stream; nothing runs on the target, so computing it here saves a Python
start, the AnsiballZ payload and its imports (about a third of a CPU-second
per object and run). Options, validation and result stay the module's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.plugins.action import ActionBase


class DataAction(ActionBase):
    """Subclasses name the module's ``argspec`` and ``compute``, which raises ValueError for bad input."""

    TRANSFERS_FILES = False
    # Pure data and no output: the runner's cdo_linear strategy runs it in its own process, without a worker.
    RUNS_WITHOUT_WORKER = True
    _requires_connection = False
    argspec: Callable[[], dict[str, Any]]
    compute: Callable[[dict[str, Any]], dict[str, Any]]

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        cls = type(self)
        _validation, params = self.validate_argument_spec(argument_spec=cls.argspec())
        try:
            result.update(changed=False, **cls.compute(params))
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
        return result
