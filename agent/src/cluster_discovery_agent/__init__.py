"""The discovery agent: keeps each cluster's identity heard on its swarms.

Pubsub delivers only to subscribers present at the moment, and an Ansible
module run is short. The agent is the long-lived subscriber an operator needs
beside its short runs: for every swarm a local Identity publishes on, it holds
a subscription on the node, answers members' asks with this cluster's
identity, re-announces it on a schedule, and remembers what members announce
in the node's own files (where the ipfs_identity module reads it).

Both ends of a change take the agent's fast path, with the identity role's own
code: when a local Identity is created, changed or deleted, the agent
publishes (or retracts) it within milliseconds of the watch event
(publisher.py); when a member announces something new, the agent applies it
at once (fastpath.py: discovery from what was heard, then peer_sync's writes,
without counting misses). A Peer so appears about a second after its Identity
changes, instead of after two Ansible runs. The role's reconciles stay the
authority: they publish the same content (which the node recognises as
unchanged), ask the swarm, count misses, turn silent members Offline, keep
peering, status and metrics.

The agent also keeps each SwarmPool's node counters ("Number of bootstraps",
"Number of connected peers") true between the swarmpool role's reconciles
(nodestatus.py): it reads every serving node each ``--node-status-period``
seconds and patches only the counters that changed.
"""
