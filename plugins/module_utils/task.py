# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""What a task's logic needs of the module running it, whether AnsibleModule or the action plugins' stand-in.

Private to the collection: may change without notice.

The Kubernetes modules' ``execute(module, make_client)`` functions live in
module_utils so that both the module (a process on the target,
:func:`run_as_module`) and its action plugin (on the controller,
plugin_utils/local_module_action.py) import them from here, and neither imports
the other. Both report a failure the same way.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError


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


def run_as_module(
    argspec: Callable[[], dict[str, Any]],
    execute: Callable[[Any, MakeClient], dict[str, Any]],
    *,
    failure: str,
    missing: tuple[str, str | None] | None = None,
) -> None:
    """Run a Kubernetes task in this module process and exit with its result.

    ``failure`` prefixes the message of an unexpected error, as the action plugin's does; ``missing`` names the
    libraries the task lacks and the import's traceback, when one did not import.
    """
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True)
    if missing is not None:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
    try:
        module.exit_json(**execute(module, lambda: get_api_client(module)))
    except CollectionError as err:
        module.fail_json(exception=traceback.format_exc(), **err.fail_kwargs())
    except CoreException as err:
        module.fail_from_exception(err)
    except Exception as err:  # the traceback goes in `exception`, never in `msg`
        module.fail_json(msg=f"{failure}: {err}", exception=traceback.format_exc())
