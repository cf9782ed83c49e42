"""Locate the installed collection so the agent runs the protocol code the modules run.

The collection is installed where Ansible finds collections (an entry of
ANSIBLE_COLLECTIONS_PATH, or Ansible's defaults); its module_utils import as
``ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils``
once that root is on ``sys.path`` (a namespace package, like the one the
`ansible` package ships, so both merge).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

COLLECTION = Path("ansible_collections") / "peerdiscovery" / "cluster_discovery"
DEFAULT_ROOTS = ("~/.ansible/collections", "/usr/share/ansible/collections")


class CollectionNotFoundError(RuntimeError):
    """The peerdiscovery.cluster_discovery collection is not installed where Ansible looks."""


def candidate_roots() -> list[Path]:
    configured = [entry for entry in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if entry]
    return [Path(entry).expanduser() for entry in [*configured, *DEFAULT_ROOTS]]


def make_importable() -> Path:
    """Put the collections root holding peerdiscovery.cluster_discovery on sys.path and return it."""
    for root in candidate_roots():
        if (root / COLLECTION / "plugins" / "module_utils" / "swarm_identity.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return root
    searched = ", ".join(str(root) for root in candidate_roots())
    raise CollectionNotFoundError(
        f"the peerdiscovery.cluster_discovery collection was not found in {searched}; install it"
        " (ansible-galaxy collection install) or set ANSIBLE_COLLECTIONS_PATH"
    )


def importable(log: logging.Logger) -> bool:
    """``make_importable``, a missing collection said in ``log``: what each entry point does first."""
    try:
        make_importable()
    except CollectionNotFoundError as err:
        log.error("%s", err)
        return False
    return True
