# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Run a Kubernetes module's own logic inside the controller when the task is local.

Private to the collection: may change without notice.

A module process pays a Python start, the AnsiballZ payload and the import of
the Kubernetes client (about a CPU-second) on every call, and the roles call
these modules on every reconcile. Ansible's linear strategy imports an action
plugin once in the controller before forking a worker per host, so the
imports are paid once per ansible-playbook process and every call only does
its API requests. Behaviour, options, check mode and results stay the
module's: the action calls the module's ``execute(module, make_client)`` with
a stand-in for AnsibleModule, and the same kubernetes.core client and
authentication (arguments, then ``K8S_AUTH_*`` variables). When the task does
not run locally, or sets ``environment`` (which only a module process would
see), the module runs as usual.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError


class ModuleFailed(Exception):
    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields.get("msg", "failed"))
        self.fields = fields


class ModuleFacade:
    """The parts of AnsibleModule the modules' ``execute`` functions use."""

    def __init__(self, params: dict[str, Any], *, check_mode: bool, diff: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings: list[str] = []

    def fail_json(self, **fields: Any) -> None:
        raise ModuleFailed(fields)

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)


class LocalModuleAction(ActionBase):
    """Subclasses name the module's ``argspec`` and ``execute`` and the message prefix of unexpected errors."""

    TRANSFERS_FILES = False
    argspec: Callable[[], dict[str, Any]]
    execute: Callable[[Any, Callable[[], Any]], dict[str, Any]]
    failure: str = "Failed"

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
        cls = type(self)
        _validation, params = self.validate_argument_spec(argument_spec=cls.argspec())
        facade = ModuleFacade(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        auth = {key: params.get(key) for key in AUTH_ARG_SPEC}
        try:
            result.update(cls.execute(facade, lambda: get_api_client(**auth)))
        except ModuleFailed as exc:
            result.update(failed=True, **exc.fields)
        except CollectionError as exc:
            result.update(failed=True, exception=traceback.format_exc(), **exc.fail_kwargs())
        except CoreException as exc:
            result.update(failed=True, msg=str(exc))
        except Exception as exc:  # the traceback goes in `exception`, never in `msg`
            result.update(failed=True, msg=f"{cls.failure}: {exc}", exception=traceback.format_exc())
        if facade.warnings:
            result["warnings"] = facade.warnings
        return result
