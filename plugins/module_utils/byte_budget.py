# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""A thread-safe map that keeps its most recently used entries within a budget of bytes.

Private to the collection: may change without notice.

What the agent keeps between discovery passes (documents by CID, conclusions
on them) comes from the swarm, so its size is set by members, not by us: the
budget counts bytes each entry stands for, never entries, and an entry larger
than the whole budget is not kept at all.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByteBudget(Generic[K, V]):
    """Entries by key, least recently used dropped first once their sizes add up to more than ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[K, tuple[V, int]] = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V, *, size: int) -> None:
        """Keep ``value`` as the most recently used, in place of what ``key`` held; dropped if ``size`` is too large."""
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self._size -= replaced[1]
            if size > self.max_bytes:
                return
            self._entries[key] = (value, size)
            self._size += size
            while self._size > self.max_bytes:
                self._size -= self._entries.popitem(last=False)[1][1]

    @property
    def size(self) -> int:
        """The bytes the kept entries stand for."""
        with self._lock:
            return self._size

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
