# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Argument specs shared by the collection's modules.

Private to the collection: may change without notice.

Each spec here pairs with a documentation fragment in ``plugins/doc_fragments``
of the same name (``KUBO_ARG_SPEC`` with ``kubo``), as kubernetes.core pairs
``AUTH_ARG_SPEC`` with ``k8s_auth_options``; a unit test checks that every
module's documented options match its argument spec. Kubernetes access does not
live here: modules use kubernetes.core's own ``AUTH_ARG_SPEC`` so kubeconfig,
context and ``K8S_AUTH_*`` behave exactly as in kubernetes.core.
"""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    DEFAULT_API_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    KuboClient,
)

KUBO_ARG_SPEC: dict[str, dict[str, Any]] = {
    "api_url": {"type": "str", "default": DEFAULT_API_URL},
    "api_authorization": {"type": "str", "no_log": True},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
    "connect_timeout": {"type": "float", "default": DEFAULT_CONNECT_TIMEOUT},
    "retries": {"type": "int", "default": DEFAULT_RETRIES},
}


def kubo_arg_spec() -> dict[str, dict[str, Any]]:
    """A deep copy, so a module adding to it never changes another's."""
    return copy.deepcopy(KUBO_ARG_SPEC)


def kubo_client(params: dict[str, Any]) -> KuboClient:
    """The client for a module's kubo connection options."""
    return KuboClient(
        params["api_url"],
        timeout=params["timeout"],
        connect_timeout=params["connect_timeout"],
        retries=params["retries"],
        authorization=params.get("api_authorization"),
    )
