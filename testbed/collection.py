"""Make this checkout importable as the collection ``peerdiscovery.cluster_discovery``.

Ansible finds a collection at ``<root>/ansible_collections/<namespace>/<name>``.
Rather than copying the checkout (and testing a stale copy), we link it into a
collections root outside the repository and point ANSIBLE_COLLECTIONS_PATH at it.
kubernetes.core is found beside it through the `ansible` package's own
``ansible_collections`` folder on sys.path.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from testbed.build import cache_root

REPO_ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "peerdiscovery"
NAME = "cluster_discovery"


def collections_root() -> Path:
    """The collections root holding the link to this checkout (one per checkout)."""
    digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    return cache_root().parent / "collections" / digest


def ensure_linked() -> Path:
    """Create (or repair) the link and return the collections root."""
    root = collections_root()
    link = root / "ansible_collections" / NAMESPACE / NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == REPO_ROOT:
        return root
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    return root


def activate() -> Path:
    """Link the collection and make it visible to Ansible and to Python imports."""
    root = ensure_linked()
    paths = [str(root), *filter(None, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep))]
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


if __name__ == "__main__":
    print(ensure_linked())
