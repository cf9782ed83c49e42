"""The Python the module tests' playbooks run their modules with: the operator's module zygote.

A module run by a plain Python imports ansible's module_utils and the
Kubernetes client, and compiles every file of its AnsiballZ payload anew: about
half a CPU-second before its first request, for a few hundred module runs in
these files. The zygote (cluster_discovery_operator.zygote) is how the operator
runs every module of its roles: ansible builds and sends the same payload, and
the collection's own code still comes from it (nothing of the collection is
preloaded); only the start is forked from a process that imported ansible and
the client once. The plain interpreter of a user's control node stays covered
by the federation and deploy playbooks, and here by the swarm_key test of the
``kubeconfig`` option.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cluster_discovery_operator.zygote import SOCKET_VARIABLE, Zygote
from playbook_runs import ModulePython


@pytest.fixture(scope="session")
def module_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModulePython]:
    """The zygote's client as ``ansible_python_interpreter``, with the socket it reaches; stopped at session end."""
    with Zygote(tmp_path_factory.mktemp("module-zygote")) as zygote:
        yield ModulePython(os.fspath(zygote.client_path), {SOCKET_VARIABLE: os.fspath(zygote.socket_path)})
