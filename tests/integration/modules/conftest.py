"""What the module tests' playbooks start from: the operator's module and playbook zygotes.

A module run by a plain Python imports ansible's module_utils and the
Kubernetes client, and compiles every file of its AnsiballZ payload anew: about
half a CPU-second before its first request, for a few hundred module runs in
these files. The zygote (cluster_discovery_operator.zygote) is how the operator
runs every module of its roles: ansible builds and sends the same payload, and
the collection's own code still comes from it (nothing of the collection is
preloaded); only the start is forked from a process that imported ansible and
the client once. Each run's ansible-playbook is forked likewise from the
playbook zygote (a run whose ANSIBLE_* settings differ from the first one's gets
a process of its own, as in the operator). The plain interpreter of a user's control node stays covered
by the federation and deploy playbooks, and here by the swarm_key test of the
``kubeconfig`` option.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_discovery_operator.zygote import SOCKET_VARIABLE, Zygote
from playbook_runs import Zygotes


@pytest.fixture(scope="session")
def zygotes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygotes]:
    """The module zygote's client as ``ansible_python_interpreter``, with the socket it reaches, and the playbook
    zygote's folder for PATH; stopped at session end."""
    playbook = os.fspath(Path(sys.executable).with_name("ansible-playbook"))
    with (
        Zygote(tmp_path_factory.mktemp("module-zygote")) as modules,
        Zygote(tmp_path_factory.mktemp("playbook-zygote"), playbook=playbook) as playbooks,
    ):
        yield Zygotes(
            os.fspath(modules.client_path),
            {SOCKET_VARIABLE: os.fspath(modules.socket_path)},
            (os.fspath(playbooks.client_path.parent),),
        )
