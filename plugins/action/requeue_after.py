# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin for requeue_after: validates and returns the period without starting a module process.

The result is all the operator needs (it reads ``period`` from the run's event
stream), so nothing runs on the target; options, validation and result are the
module's (plugins/modules/requeue_after.py).
"""

from __future__ import annotations

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import (
    requeue_argspec,
    requeue_request,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.plugin_utils.data_action import DataAction


class ActionModule(DataAction):
    argspec = staticmethod(requeue_argspec)
    compute = staticmethod(requeue_request)
