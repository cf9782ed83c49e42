# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin for requeue_after: validates and returns the period without starting a module process.

The result is all the operator needs (it reads ``period`` from the run's event
stream), so nothing runs on the target; options, validation and result are the
module's (plugins/modules/requeue_after.py).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import (
    duration_seconds,
    requeue_argspec,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    # Pure data and no output: the runner's cdo_linear strategy runs it in its own process, without a worker.
    RUNS_WITHOUT_WORKER = True
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=requeue_argspec())
        period = params["time"].strip()
        try:
            seconds = duration_seconds(period)
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=False, period=period, seconds=seconds)
        return result
