"""cluster-discovery-operator: operator-sdk's Ansible-operator contract, in Python.

The package reads ``watches.yaml`` and reconciles each watched custom resource
by running its role or playbook through ansible-runner. Layers, from the top:

- ``cli``: flags, wiring, signals, shutdown.
- ``reconciling``: one controller per watched kind (finalizer, skip rule,
  Running, run, Successful/Failure, dependents).
- ``watching``, ``queueing``, ``running``, ``status``, ``finalizers``,
  ``skipping``, ``metrics``, ``probes``, ``leadership``: one concern each.
- ``kube``: the only code that talks to the Kubernetes API.
- ``settings``, ``watches``, ``bodies``, ``paramconv``, ``durations``, ``logs``:
  plain data and pure helpers.

Imports go downward only.
"""

__version__ = "0.1.0"
