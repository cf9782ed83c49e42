# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Which kubo release a swarm's node runs, given the SwarmPool's ``IPFSVersion``.

Private to the collection: may change without notice.

The original product ran ``ipfs/go-ipfs:v0.8.0`` and its manifests all say so;
they must keep applying. The node's start-up script and the modules are written
for, and tested against, one kubo release series (:data:`SUPPORTED_SERIES`):
the script sets configuration keys whose names and meaning moved between
releases (``AutoConf``, ``Routing.Type``, pubsub), and the modules speak the
RPC API of that series (multibase pubsub topics). So any well-formed release
outside the series is not refused but *substituted*: the node runs
:data:`TESTED_RELEASE`, the nearest release known to work, and the SwarmPool
says so. Only a value that is not a release tag at all is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TESTED_RELEASE = "v0.43.1"
"""The release the test bed builds and runs; what a substituted node runs."""
SUPPORTED_SERIES = (0, 43)
"""``(major, minor)`` of the releases a node runs as asked (any patch, pre-releases included)."""

# The CRD's pattern for IPFSVersion, so the API server and this rule agree.
RELEASE_PATTERN = r"^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$"
_RELEASE = re.compile(r"v([0-9]+)\.([0-9]+)\.([0-9]+)(-[0-9A-Za-z.-]+)?")


class MalformedRelease(ValueError):
    """The value is not a release tag such as v0.43.1."""


@dataclass(frozen=True)
class KuboRelease:
    requested: str
    run: str
    """The ipfs/kubo image tag the node runs."""

    @property
    def substituted(self) -> bool:
        return self.run != self.requested

    def message(self, swarm: str) -> str:
        """What the SwarmPool's condition and Event say about ``swarm`` ('' when nothing was substituted)."""
        if not self.substituted:
            return ""
        major, minor = SUPPORTED_SERIES
        return (
            f"swarm {swarm}: IPFSVersion {self.requested} is not a release this operator runs "
            f"(kubo v{major}.{minor}.x); the node runs kubo {self.run} instead"
        )


def choose(requested: object) -> KuboRelease:
    """The release to run for ``requested``; raises MalformedRelease for anything but a release tag."""
    if not isinstance(requested, str) or not (match := _RELEASE.fullmatch(requested)):
        raise MalformedRelease(
            f"IPFSVersion {requested!r} is not a release tag such as {TESTED_RELEASE} (v<major>.<minor>.<patch>)"
        )
    series = (int(match.group(1)), int(match.group(2)))
    return KuboRelease(requested=requested, run=requested if series == SUPPORTED_SERIES else TESTED_RELEASE)
