# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Swarm keys that everybody knows, under which no credential is ever published.

Private to the collection: may change without notice.

A swarm key admits to the swarm and opens every kubeconfig sealed on it. A key
printed in a manual or committed to a repository admits anybody, so a swarm
under it is a public place: clusters may still find each other's names there
(the default network exists for that), but a kubeconfig published there would
hand the Identity's rights to the world. Keys are listed by the SHA-256 of
their 32 bytes, so this file does not become one more place that prints them.
"""

from __future__ import annotations

import hashlib

PUBLIC_KEY_DIGESTS = {
    # The default network's built-in key (roles/swarmpool/defaults/main.yml):
    # sha256("cluster-discovery default network"), public by design.
    "f70e48483a0180c7673664da670fbac9ecc1d2dbf9a7a0340a0b9d911eb81ac8",
    # The key printed in the original manual's walkthrough (seed 000) and in
    # its sample manifests: every reader of the manual holds it.
    "90928755082680385eb8fac07e05cf9ad722f228c5e24f1142ca0475af31f2e9",
}


def digest(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def is_public(key: bytes) -> bool:
    """True when ``key`` (a swarm key's 32 bytes) is known to the world."""
    return digest(key) in PUBLIC_KEY_DIGESTS
