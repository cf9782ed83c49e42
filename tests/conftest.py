"""Shared test set-up: the collection on the import path, the test bed's fixtures, and the order files run in."""

from __future__ import annotations

import pytest

from testbed.collection import activate

activate()

pytest_plugins = ["testbed.pytest_plugin"]

# The files that take longest, longest first (each over two minutes in `make test` on 2 cores, stop 46).
# `make test` runs each file whole on one worker (--dist loadfile) and hands files out in collection
# order (--no-loadscope-reorder: xdist would otherwise sort them by their number of tests, which
# started the longest files last, after 15 minutes, and left one of them running alone at the end).
# The rest follow in testpaths' order, the quick unit tests last, filling the workers' gaps. Order
# only: a file missing here or listed out of date still runs, only perhaps later than it should.
LONGEST_FIRST = (
    "tests/e2e/test_walkthrough.py",
    "tests/integration/roles/test_trust_boundaries.py",
    "tests/integration/roles/test_swarm_members.py",
    "tests/integration/deploy/test_molecule_testbed.py",
    "tests/integration/playbooks/test_federation_playbooks.py",
    "tests/integration/runner/test_operator.py",
    "tests/integration/deploy/test_deploy_install.py",
    "tests/integration/roles/test_swarmpool_role.py",
    "tests/integration/modules/test_ipfs_swarm_module.py",
    "tests/integration/roles/test_identity_role.py",
    "tests/integration/deploy/test_operator_image.py",
    "tests/integration/faults/test_federation_faults.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: position for position, path in enumerate(LONGEST_FIRST)}
    # sort() is stable: within a file, and among the files not listed, the collected order stays.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
