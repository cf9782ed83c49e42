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

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import (
    build_metric,
    metric_argspec,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.plugin_utils.data_action import DataAction


def _metric(params: dict[str, Any]) -> dict[str, Any]:
    return {"metric": build_metric(params)}


class ActionModule(DataAction):
    argspec = staticmethod(metric_argspec)
    compute = staticmethod(_metric)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self._task.args.get("address"):
            return super().run(tmp, task_vars)
        # With an address the module POSTs the metric: that is work for a module process.
        result: dict[str, Any] = super(DataAction, self).run(tmp, task_vars)
        result.update(self._execute_module(module_args=self._task.args, task_vars=task_vars))
        return result
