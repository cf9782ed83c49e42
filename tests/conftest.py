"""Shared test set-up: the collection on the import path, and the test bed's fixtures."""

from testbed.collection import activate

activate()

pytest_plugins = ["testbed.pytest_plugin"]
