# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin for osdk_metric: builds the metric request without starting a module process.

The request is pure data (the operator reads it from the task result in the
run's event stream), so there is nothing to execute on the target: doing the
work here saves a Python start, the AnsiballZ payload and its imports, about a
third of a CPU-second per object and run. With ``address`` the module runs as
usual and POSTs the request, as operator_sdk.util.osdk_metric does. Options,
validation and result are the module's (plugins/modules/osdk_metric.py).
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import (
    build_metric,
    metric_argspec,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    # Pure data and no output: the runner's cdo_linear strategy runs it in its own process, without a worker.
    RUNS_WITHOUT_WORKER = True
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=metric_argspec())
        if params.get("address"):
            result.update(self._execute_module(module_args=self._task.args, task_vars=task_vars))
            return result
        try:
            metric = build_metric(params)
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=False, metric=metric)
        return result
