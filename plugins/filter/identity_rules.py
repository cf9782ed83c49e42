# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the identity role: which account objects are the Identity's (module_utils/ownership.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: identity_objects_in_the_way
short_description: The account objects of an Identity's names that the product did not make for it
version_added: 0.1.0
author:
  - cluster-discovery contributors
description:
  - Takes a mapping of the Identity's account objects as read from the cluster (keys C(account), C(role), C(binding),
    C(token), C(kubeconfig); an absent object is C({})) and returns C(Kind name) for each one that exists and was not
    made by cluster-discovery for this Identity (its labels and, when the uid is given, its owner reference).
  - The companion filter C(identity_objects_owned) returns minimal definitions of those that are the Identity's, for
    deletion; C(swarm_pool_admits(identity_namespace)) tells whether a SwarmPool object admits Identities of a
    namespace (its own, or those its C(peerdiscovery.irt-saintexupery.com/admit-identity-namespaces) annotation
    names); C(member_kubeconfig) returns a kubeconfig in the canonical text of the one shape members accept, and
    fails naming the fault for any other.
options:
  _input:
    description: The account objects by key.
    type: dict
    required: true
  identity_name:
    description: The Identity's name.
    type: str
    required: true
  identity_uid:
    description: The Identity's uid; empty when the role runs without the object.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Refuse to take over objects that are not the Identity's
  ansible.builtin.fail:
    msg: "{{ objects | peerdiscovery.cluster_discovery.identity_objects_in_the_way(identity_name, uid) | join(', ') }}"
"""

RETURN = r"""
_value:
  description: C(Kind name) of each object in the way.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.ownership import in_the_way, owned
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_access import admits


def identity_objects_in_the_way(existing, identity_name, identity_uid=""):
    return in_the_way(existing, identity_name=identity_name, identity_uid=identity_uid or "")


def identity_objects_owned(existing, identity_name, identity_uid=""):
    return owned(existing, identity_name=identity_name, identity_uid=identity_uid or "")


def swarm_pool_admits(pool, identity_namespace):
    return admits(pool or {}, identity_namespace)


def member_kubeconfig(text):
    """``text`` in the canonical form of the one kubeconfig shape members accept; fails naming the fault."""
    try:
        return parse_kubeconfig(text).to_text()
    except KubeconfigError as err:
        raise AnsibleFilterError(f"the kubeconfig members would get is refused: {err}") from None


class FilterModule:
    def filters(self):
        return {
            "identity_objects_in_the_way": identity_objects_in_the_way,
            "identity_objects_owned": identity_objects_owned,
            "swarm_pool_admits": swarm_pool_admits,
            "member_kubeconfig": member_kubeconfig,
        }
