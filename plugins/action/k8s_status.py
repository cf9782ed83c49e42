# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin for k8s_status: the module's own logic, on the controller, when the connection is local.

A module process pays a Python start, the AnsiballZ payload and the import of
the Kubernetes client (about a CPU-second) on every call, and roles set their
status on every run. Ansible's linear strategy imports an action plugin once in
the controller (to look up its class) before forking a worker per host, so the
imports at the top of this file are paid once per ansible-playbook process and
every call only does its API requests. Behaviour, options, check and diff mode
and results are the module's (plugins/modules/k8s_status.py): same functions,
same kubernetes.core client and authentication (arguments, then ``K8S_AUTH_*``
variables). When the task does not run locally, or sets ``environment`` (which
only a module process would see), the module runs as usual.
"""

from __future__ import annotations

import traceback
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.peerdiscovery.cluster_discovery.plugins.modules import k8s_status


class _Failed(Exception):
    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields.get("msg", "failed"))
        self.fields = fields


class _ModuleFacade:
    """The parts of AnsibleModule that k8s_status.execute uses."""

    def __init__(self, params: dict[str, Any], *, check_mode: bool, diff: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self._diff = diff

    def fail_json(self, **fields: Any) -> None:
        raise _Failed(fields)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _runs_locally(self) -> bool:
        environment = self._task.environment
        entries = environment if isinstance(environment, list) else [environment]
        # The task's `environment` (a list of mappings, empty ones by default) reaches only a module process.
        return getattr(self._connection, "transport", "") == "local" and not any(entries)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        if not self._runs_locally():
            result.update(self._execute_module(module_args=self._task.args, task_vars=task_vars))
            return result
        _, params = self.validate_argument_spec(argument_spec=k8s_status.argspec())
        facade = _ModuleFacade(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        auth = {key: params.get(key) for key in AUTH_ARG_SPEC}
        try:
            result.update(k8s_status.execute(facade, lambda: get_api_client(**auth)))
        except _Failed as exc:
            result.update(failed=True, **exc.fields)
        except CoreException as exc:
            result.update(failed=True, msg=str(exc))
        except Exception as exc:  # the traceback goes in `exception`, never in `msg`
            result.update(failed=True, msg=f"Failed to set status: {exc}", exception=traceback.format_exc())
        return result
