# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Filters through which the roles apply the rules of SECURITY.md, each written once in module_utils.

ownership.py (which account objects are an Identity's), swarm_access.py (which
SwarmPools serve an Identity; the RPC API token of a node), member_kubeconfig.py
(the one kubeconfig shape members accept). Each filter is documented in the
YAML file of its name beside this one (ansible-doc -t filter).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    api_token_secret,
    identity_owner,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.ownership import (
    account_object_names,
    in_the_way,
    owned,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import (
    admits,
    authorization,
    served_swarm,
)


def identity_objects_in_the_way(existing, identity_name, identity_uid=""):
    return in_the_way(existing, identity_name=identity_name, identity_uid=identity_uid or "")


def identity_objects_owned(existing, identity_name, identity_uid=""):
    return owned(existing, identity_name=identity_name, identity_uid=identity_uid or "")


def swarm_pool_admits(pool, identity_namespace):
    return admits(pool or {}, identity_namespace)


def node_api_token_secret(pool, swarm):
    return api_token_secret(pool, swarm)


def node_api_authorization(secret):
    """The Authorization header a node's RPC API asks for, from its token Secret ('' without one)."""
    return authorization(secret or {}) or ""


def swarm_served(pool, swarm):
    served = served_swarm(pool or {}, swarm)
    return {
        "spec": dict(served.spec),
        "status": dict(served.status),
        "key_secret": served.key_secret,
        "ready": served.ready,
    }


def member_kubeconfig(text):
    """``text`` in the canonical form of the one kubeconfig shape members accept; fails naming the fault."""
    try:
        return parse_kubeconfig(text).to_text()
    except KubeconfigError as err:
        raise AnsibleFilterError(f"the kubeconfig members would get is refused: {err}") from None


def identity_account_names(identity_name):
    return account_object_names(str(identity_name))


class FilterModule:
    def filters(self):
        return {
            "identity_account_names": identity_account_names,
            "identity_objects_in_the_way": identity_objects_in_the_way,
            "identity_objects_owned": identity_objects_owned,
            "swarm_pool_admits": swarm_pool_admits,
            "swarm_served": swarm_served,
            "identity_owner": identity_owner,
            "member_kubeconfig": member_kubeconfig,
            "node_api_token_secret": node_api_token_secret,
            "node_api_authorization": node_api_authorization,
        }
