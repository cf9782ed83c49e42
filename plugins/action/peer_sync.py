# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin for peer_sync: the module's own logic, on the controller, when the task is local.

See plugins/plugin_utils/local_module_action.py for why and when.
"""

from __future__ import annotations

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import peer_sync_task
from ansible_collections.peerdiscovery.cluster_discovery.plugins.plugin_utils.local_module_action import (
    LocalModuleAction,
)


class ActionModule(LocalModuleAction):
    argspec = staticmethod(peer_sync_task.argspec)
    execute = staticmethod(peer_sync_task.execute)
    failure = "Failed to synchronize Peers"
