"""Shared test set-up: the collection on the import path, the test bed's fixtures, and the order files run in."""

from __future__ import annotations

import pytest

from testbed.collection import activate

activate()

pytest_plugins = ["testbed.pytest_plugin"]

# The files that take longest, longest first (each over 14 s in `make test` on 2 cores, stop 53: the mean of
# two runs' durations, the file's tests' set-up, call and tear-down). `make test` runs each file whole on one
# worker (--dist loadfile) and hands files out in collection order (--no-loadscope-reorder: xdist would
# otherwise sort them by their number of tests, which started the longest files last, after 15 minutes, and
# left one of them running alone at the end). Longest first down to the short ones, so that what is left when
# the first workers run out of files is seconds of work: with only the files over two minutes listed, the
# 35 s of test_zygote.py came last and ran alone for 24 s. The rest follow in testpaths' order, each under
# 14 s. Order only: a file missing here or listed out of date still runs, only perhaps later than it should.
LONGEST_FIRST = (
    "tests/e2e/test_walkthrough.py",
    "tests/integration/roles/test_trust_boundaries.py",
    "tests/integration/deploy/test_molecule_testbed.py",
    "tests/integration/roles/test_swarm_members.py",
    "tests/integration/runner/test_operator.py",
    "tests/integration/playbooks/test_federation_playbooks.py",
    "tests/integration/faults/test_federation_faults.py",
    "tests/integration/roles/test_swarmpool_role.py",
    "tests/integration/deploy/test_deploy_install.py",
    "tests/integration/roles/test_identity_role.py",
    "tests/integration/modules/test_ipfs_swarm_module.py",
    "tests/integration/module_utils/test_swarm_identity_serve.py",
    "tests/integration/modules/test_ipfs_identity_module.py",
    "tests/integration/deploy/test_operator_image.py",
    "tests/integration/testbed/test_testbed_control_plane.py",
    "tests/integration/testbed/test_testbed_kubo_containers.py",
    "tests/integration/agent/test_light_member.py",
    "tests/unit/runner/test_zygote.py",
    "tests/integration/testbed/test_testbed_kubelet.py",
    "tests/integration/modules/test_swarm_key_module.py",
    "tests/unit/runner/test_cdo_linear.py",
    "tests/integration/runner/test_role_modules.py",
    "tests/unit/runner/test_running_ansible.py",
    "tests/integration/roles/test_peer_role.py",
    "tests/integration/deploy/test_deploy_crds_apply.py",
    "tests/integration/testbed/test_testbed_kubo.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: position for position, path in enumerate(LONGEST_FIRST)}
    # sort() is stable: within a file, and among the files not listed, the collected order stays.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
