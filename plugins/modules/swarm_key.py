#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_key
short_description: Ensure a Kubernetes Secret holds an IPFS swarm key
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - Ensures that the Secret O(name) in O(namespace) holds a private-swarm pre-shared key (PSK v1, the C(swarm.key) kubo
    reads) under the data key C(swarm-key), or that the Secret is absent.
  - When the Secret or its C(swarm-key) is missing, the module writes O(key), or generates a new key from 32 random
    bytes. When a key is stored, it is validated and kept; what happens to a malformed key, or to one that differs from
    O(key), is chosen by O(regenerate). Other data, labels and owner references on the Secret are kept.
  - The key never appears in the module's output, logs or diff, unless O(return_content=true). Results and diffs show
    its fingerprint, C(sha256:) and the first 16 hex characters of SHA-256 over the 32 key bytes.
  - Kubernetes access works exactly as in kubernetes.core (kubeconfig, context, C(K8S_AUTH_*) variables).
  - Supports check mode, through a server-side dry run as kubernetes.core does.
options:
  name:
    description:
      - Name of the Secret.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Secret.
    type: str
    required: true
  state:
    description:
      - V(present) ensures the Secret holds a valid key; V(absent) deletes the Secret, with any other data it holds.
    type: str
    choices: [present, absent]
    default: present
  key:
    description:
      - The swarm key to store, as the text of a C(swarm.key) file (C(/key/swarm/psk/1.0.0/), C(/base16/), then 64
        hexadecimal characters).
      - Use it to join an existing swarm with the key its members gave you. Without it a new key is generated when
        none is stored.
      - A malformed value fails the module with the line and rule it breaks; the value is never shown.
    type: str
  regenerate:
    description:
      - What to do when a key is already stored, as community.crypto's O(regenerate) options.
      - V(fail) keeps a valid stored key, and fails without writing when the stored key is malformed or differs from
        O(key).
      - V(never) keeps whatever is stored, even a malformed key or one that differs from O(key), with a warning.
      - V(always) writes a new key on every run (so the task always reports a change), or O(key) when given (then
        only when the stored key differs).
    type: str
    choices: [never, fail, always]
    default: fail
  labels:
    description:
      - Labels the Secret must carry; merged with the labels it has.
    type: dict
    default: {}
  owner_references:
    description:
      - Owner references the Secret must carry, for example the custom resource whose deletion should delete it;
        merged by C(uid) with the references it has.
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: API version of the owner.
        type: str
        required: true
        aliases: [apiVersion]
      kind:
        description: Kind of the owner.
        type: str
        required: true
      name:
        description: Name of the owner.
        type: str
        required: true
      uid:
        description: UID of the owner.
        type: str
        required: true
      controller:
        description: Whether the owner is the managing controller.
        type: bool
      block_owner_deletion:
        description: Whether the owner's foreground deletion waits for this Secret.
        type: bool
        aliases: [blockOwnerDeletion]
  return_content:
    description:
      - Return the key in RV(content).
      - The key is then left out of the module's list of values to hide, so that it can be returned; set C(no_log) on
        the task, or the key is printed with the result.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the key's fingerprint, labels and owner references, never the key.
  idempotent:
    support: partial
    details: Not with O(regenerate=always) and no O(key), which generates a new key on every run.
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
seealso:
  - module: peerdiscovery.cluster_discovery.ipfs_swarm
  - module: kubernetes.core.k8s
notes:
  - go-libp2p also reads C(/base64/) and C(/bin/) key bodies; this module reads and writes C(/base16/) only, so that
    one key has one text.
"""

EXAMPLES = r"""
- name: Ensure the swarm key Secret exists (a new key is generated the first time)
  peerdiscovery.cluster_discovery.swarm_key:
    name: private-swarm
    namespace: private-network-peer-configuration
  register: swarm_key

- name: Show which key the swarm uses
  ansible.builtin.debug:
    msg: "Swarm key {{ swarm_key.fingerprint }}"

- name: Store the key a member of the swarm gave us, owned by our SwarmPool
  peerdiscovery.cluster_discovery.swarm_key:
    name: private-swarm-key
    namespace: private-network-peer-configuration
    key: "{{ lookup('ansible.builtin.file', 'swarm.key') }}"
    labels:
      app.kubernetes.io/managed-by: cluster-discovery
    owner_references:
      - api_version: peerdiscovery.irt-saintexupery.com/v1alpha1
        kind: SwarmPool
        name: cluster2-private
        uid: "{{ swarmpool_uid }}"
        controller: true
        block_owner_deletion: true

- name: Replace a malformed stored key with a new one
  peerdiscovery.cluster_discovery.swarm_key:
    name: private-swarm
    namespace: private-network-peer-configuration
    regenerate: always

- name: Read the key to write a node's swarm.key (keep it out of the output)
  peerdiscovery.cluster_discovery.swarm_key:
    name: private-swarm
    namespace: private-network-peer-configuration
    return_content: true
  register: swarm_key
  no_log: true

- name: Remove the swarm key Secret
  peerdiscovery.cluster_discovery.swarm_key:
    name: private-swarm
    namespace: private-network-peer-configuration
    state: absent
"""

RETURN = r"""
fingerprint:
  description:
    - Fingerprint of the key the Secret holds after the run, C(sha256:) and 16 hex characters.
    - V(null) when the Secret is absent, when a malformed key is kept (O(regenerate=never)), and in check mode when a
      new key would be generated.
  returned: always
  type: str
  sample: sha256:3f1c0a6b2e9d4477
generated:
  description: Whether a new key was (or, in check mode, would be) generated.
  returned: always
  type: bool
  sample: true
secret:
  description: The Secret the module manages.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the Secret.
      type: str
      sample: private-swarm
    namespace:
      description: Namespace of the Secret.
      type: str
      sample: private-network-peer-configuration
content:
  description: The key's C(swarm.key) text.
  returned: when O(return_content=true) and the Secret holds a valid key
  type: str
  sample: "/key/swarm/psk/1.0.0/\n/base16/\n0849c7ce4cb89ef22842da52295d7f21072bf1243fb6b7e5506533392adaea0c"
diff:
  description: Fingerprint, labels and owner references of the Secret before and after.
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: The Secret before the run (empty when absent).
      type: dict
    after:
      description: The Secret after the run (empty when absent).
      type: dict
"""

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key_secret import (
    REGENERATE_CHOICES,
    SecretService,
    Wanted,
    ensure,
    owner_reference,
)

SWARM_KEY_ARG_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "key": {"type": "str", "no_log": True},
    "regenerate": {"type": "str", "choices": list(REGENERATE_CHOICES), "default": "fail"},
    "labels": {"type": "dict", "default": {}},
    "owner_references": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "api_version": {"type": "str", "required": True, "aliases": ["apiVersion"]},
            "kind": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "uid": {"type": "str", "required": True},
            "controller": {"type": "bool"},
            "block_owner_deletion": {"type": "bool", "aliases": ["blockOwnerDeletion"]},
        },
    },
    "return_content": {"type": "bool", "default": False},
}


def argspec():
    args = copy.deepcopy(AUTH_ARG_SPEC)
    args.update(copy.deepcopy(SWARM_KEY_ARG_SPEC))
    return args


def execute_module(module, client):
    params = module.params
    # AnsibleK8SModule does not proxy these two; they belong to the AnsibleModule it wraps.
    ansible_module = module._module
    return_content = params["return_content"]
    if return_content:
        # As community.crypto's openssl_privatekey_pipe: the key must leave
        # unmasked, so the invocation is kept out of the system log instead.
        ansible_module.no_log = True

    def hide(values):
        if not return_content:
            ansible_module.no_log_values.update(values)

    wanted = Wanted(
        name=params["name"],
        namespace=params["namespace"],
        key=parse(params["key"]) if params["key"] is not None else None,
        regenerate=params["regenerate"],
        labels={str(name): str(value) for name, value in params["labels"].items()},
        owner_references=[owner_reference(ref) for ref in params["owner_references"]],
    )
    outcome = ensure(SecretService(client), wanted, state=params["state"], hide=hide)
    plan = outcome.plan
    for warning in plan.warnings:
        module.warn(warning)

    # In check mode a generated key is a stand-in for the dry run; the real run
    # generates another, so its fingerprint would be a false promise.
    unknown = module.check_mode and plan.generated
    key = None if params["state"] == "absent" else plan.result_key
    result = {
        "changed": plan.changed,
        "fingerprint": None if unknown or key is None else key.fingerprint,
        "generated": plan.generated,
        "secret": outcome.secret,
    }
    if module._diff:
        after = dict(plan.after)
        if unknown and after:
            after["fingerprint"] = None
        result["diff"] = {"before": plan.before, "after": after}
    if return_content and key is not None and not unknown:
        ansible_module.no_log_values.discard(params["key"])
        result["content"] = key.text
    module.exit_json(**result)


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True)
    try:
        client = get_api_client(module)
        execute_module(module, client)
    except CollectionError as err:
        module.fail_json(exception=traceback.format_exc(), **err.fail_kwargs())
    except CoreException as err:
        module.fail_from_exception(err)


if __name__ == "__main__":
    main()
