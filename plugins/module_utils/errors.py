# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The collection's base error, CollectionError: what module_utils raise, whatever the cause (kubo, Kubernetes,
multiaddrs, documents).

Private to the collection: may change without notice.

Deep code raises; only a module's ``main()`` turns an error into ``fail_json``
(as community.crypto's ``_acme/errors.py`` does). Every error carries a message
written for the user (what failed, on which object, why) and a dict of
structured fields that the module returns beside ``msg`` (endpoint, node, HTTP
status, ...), so a playbook or the operator can branch on them without parsing
the text.
"""

from __future__ import annotations

from typing import Any


class CollectionError(Exception):
    """Base of every error raised by this collection's module_utils."""

    def __init__(self, msg: str, **fields: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.fields: dict[str, Any] = {key: value for key, value in fields.items() if value is not None}

    def fail_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``module.fail_json``: ``msg`` plus the structured fields."""
        return {"msg": self.msg, **self.fields}

    def __str__(self) -> str:
        return self.msg
