"""The discovery agent: keeps each cluster's identity heard on its swarms.

Pubsub delivers only to subscribers present at the moment, and an Ansible
module run is short. The agent is the long-lived subscriber an operator needs
beside its short runs: for every swarm a local Identity publishes on, it holds
a subscription on the node, answers members' asks with this cluster's
identity, re-announces it on a schedule, and remembers what members announce
in the node's own files (where the ipfs_identity module reads it).

When a member announces something new, the agent applies it at once, with the
same code the identity role runs (discovery from what was heard, then
peer_sync's plan and writes, without counting misses): a Peer appears within
a second of its member publishing, instead of at the Identity's next
reconcile. The role's periodic reconcile stays the authority: it asks the
swarm, counts misses, turns silent members Offline, keeps peering and metrics.
"""
