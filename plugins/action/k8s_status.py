# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin for k8s_status: the module's own logic, on the controller, when the task is local.

Roles set their status on every run; see plugins/plugin_utils/local_module_action.py for why and when
this runs in the controller instead of a module process.
"""

from __future__ import annotations

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import status_writer
from ansible_collections.peerdiscovery.cluster_discovery.plugins.plugin_utils.local_module_action import (
    LocalModuleAction,
)


class ActionModule(LocalModuleAction):
    # A read and a patch, no output: the runner's cdo_linear strategy runs it in its own process, without a
    # worker, where the Kubernetes client kubernetes.core caches per process serves every host of the play.
    RUNS_WITHOUT_WORKER = True
    argspec = staticmethod(status_writer.argspec)
    execute = staticmethod(status_writer.execute)
    failure = "Failed to set status"
