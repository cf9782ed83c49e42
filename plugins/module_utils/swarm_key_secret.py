# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The Kubernetes Secret that holds a swarm key under ``swarm-key``.

Private to the collection: may change without notice.

Split as community.crypto splits its key modules: :func:`plan_present` and
:func:`plan_absent` decide from the existing Secret and the wanted state alone
(pure, unit-tested without a cluster); :class:`SecretService` is the only code
here that talks to the API server, through kubernetes.core's ``K8SClient`` (so
check mode is kubernetes.core's server-side dry run).

The keep-or-replace rule is the ``regenerate`` option:

- ``fail`` (default): keep a valid stored key; a malformed one, or one that
  differs from the ``key`` given, is an error and is left untouched.
- ``never``: keep whatever is stored, even malformed or different (a warning
  says so).
- ``always``: write a new key on every run (or ``key`` when given; then only
  if the stored one differs).

Other data keys, labels and owner references already on the Secret are never
removed: wanted labels and owner references are merged in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import ResourceService
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import (
    ENCODING_BASE16,
    HEADER,
    OTHER_PSK_ENCODINGS,
    SwarmKey,
    SwarmKeyError,
    from_secret_value,
    generate,
)

DATA_KEY = "swarm-key"
_FORMAT_LINES = frozenset({HEADER, ENCODING_BASE16, *OTHER_PSK_ENCODINGS})
REGENERATE_CHOICES = ("never", "fail", "always")
_OWNER_REFERENCE_FIELDS = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")


class SecretError(CollectionError):
    """The Secret cannot be brought to the wanted state; nothing was written."""


@dataclass(frozen=True)
class Wanted:
    name: str
    namespace: str
    key: SwarmKey | None = None
    regenerate: str = "fail"
    labels: Mapping[str, str] = field(default_factory=dict)
    owner_references: Sequence[Mapping[str, Any]] = ()

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class SecretPlan:
    """What to do with the Secret, and what the module reports."""

    action: str
    """``create``, ``patch``, ``delete`` or ``none``."""
    existing_key: SwarmKey | None = None
    write_key: SwarmKey | None = None
    generated: bool = False
    patch: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sensitive: set[str] = field(default_factory=set)
    """Every string that would reveal stored or written key material (for ``no_log_values``)."""

    @property
    def changed(self) -> bool:
        return self.action != "none"

    @property
    def result_key(self) -> SwarmKey | None:
        """The key the Secret holds once the plan is applied (None: none, or a malformed one kept)."""
        return self.write_key if self.write_key is not None else self.existing_key

    def hide(self, key: SwarmKey | None) -> None:
        if key is not None:
            self.sensitive.update(key.sensitive_values())


def owner_reference(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference in the API's field names from the module's snake_case suboptions."""
    names = {
        "api_version": "apiVersion",
        "kind": "kind",
        "name": "name",
        "uid": "uid",
        "controller": "controller",
        "block_owner_deletion": "blockOwnerDeletion",
    }
    return {api: spec[option] for option, api in names.items() if spec.get(option) is not None}


def _summary(
    *, exists: bool, fingerprint: str | None, labels: Mapping[str, str], owner_references: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What diff mode shows of a Secret: never data, only the key's fingerprint."""
    if not exists:
        return {}
    return {
        "fingerprint": fingerprint,
        "labels": dict(sorted(labels.items())),
        "owner_references": [
            {name: ref[name] for name in _OWNER_REFERENCE_FIELDS if name in ref} for ref in owner_references
        ],
    }


def _stored_key(existing: Mapping[str, Any]) -> tuple[SwarmKey | None, SwarmKeyError | None, set[str]]:
    """The stored key (or why it is malformed) and the raw forms of the stored value to hide."""
    value = (existing.get("data") or {}).get(DATA_KEY)
    if value is None:
        return None, None, set()
    raw = {str(value)}
    try:
        text = base64.b64decode(value).decode("utf-8", "replace")
        raw.add(text)
        # Each line may be key material, except the format's own fixed lines:
        # masking those would blank them out of every message that names them.
        raw.update(
            line.strip() for line in text.splitlines() if len(line.strip()) >= 8 and line.strip() not in _FORMAT_LINES
        )
    except ValueError:
        pass
    try:
        return from_secret_value(value), None, raw
    except SwarmKeyError as err:
        return None, err, raw


def plan_present(
    existing: Mapping[str, Any] | None, wanted: Wanted, *, new_key: Callable[[], SwarmKey] = generate
) -> SecretPlan:
    """Decide how to make the Secret hold a valid key with the wanted metadata.

    Raises SecretError when ``regenerate=fail`` forbids touching a stored key.
    """
    wanted_refs = [dict(ref) for ref in wanted.owner_references]
    if existing is None:
        key = wanted.key if wanted.key is not None else new_key()
        created = SecretPlan(
            action="create",
            write_key=key,
            generated=wanted.key is None,
            before={},
            after=_summary(
                exists=True, fingerprint=key.fingerprint, labels=wanted.labels, owner_references=wanted_refs
            ),
        )
        created.hide(key)
        return created

    metadata = existing.get("metadata") or {}
    labels: dict[str, str] = dict(metadata.get("labels") or {})
    refs: list[dict[str, Any]] = [dict(ref) for ref in metadata.get("ownerReferences") or []]
    stored, problem, raw = _stored_key(existing)
    has_value = (existing.get("data") or {}).get(DATA_KEY) is not None
    plan = SecretPlan(action="none", existing_key=stored, sensitive=raw)
    plan.hide(stored)
    plan.hide(wanted.key)
    plan.before = _summary(
        exists=True, fingerprint=stored.fingerprint if stored else None, labels=labels, owner_references=refs
    )

    write: SwarmKey | None = None
    if not has_value:
        write = wanted.key if wanted.key is not None else new_key()
        plan.generated = wanted.key is None
    elif problem is not None:
        if wanted.regenerate == "always":
            write = wanted.key if wanted.key is not None else new_key()
            plan.generated = wanted.key is None
        elif wanted.regenerate == "never":
            plan.warnings.append(
                f"Secret {wanted.ref} holds a malformed swarm key under {DATA_KEY} ({problem.msg});"
                " kept as is because regenerate=never"
            )
        else:
            raise SecretError(
                f"Secret {wanted.ref} holds a malformed swarm key under {DATA_KEY}: {problem.msg}."
                " It was left unchanged; fix or delete it, or set regenerate=always to replace it",
                secret={"name": wanted.name, "namespace": wanted.namespace},
                line=problem.line,
                rule=problem.rule,
            )
    elif stored is not None and wanted.key is not None and stored.key != wanted.key.key:
        if wanted.regenerate == "always":
            write = wanted.key
        elif wanted.regenerate == "never":
            plan.warnings.append(
                f"Secret {wanted.ref} holds swarm key {stored.fingerprint}, not the given {wanted.key.fingerprint};"
                " kept because regenerate=never"
            )
        else:
            raise SecretError(
                f"Secret {wanted.ref} holds swarm key {stored.fingerprint}, not the given key"
                f" {wanted.key.fingerprint}. It was left unchanged; delete it, or set regenerate=always to replace it",
                secret={"name": wanted.name, "namespace": wanted.namespace},
            )
    elif wanted.regenerate == "always" and wanted.key is None:
        write = new_key()
        plan.generated = True

    patch: dict[str, Any] = {}
    if write is not None:
        patch["data"] = {DATA_KEY: write.secret_value()}
        plan.write_key = write
        plan.hide(write)
    label_changes = {name: value for name, value in wanted.labels.items() if labels.get(name) != value}
    if label_changes:
        patch.setdefault("metadata", {})["labels"] = label_changes
        labels.update(label_changes)
    ref_changes = [ref for ref in wanted_refs if not _has_reference(refs, ref)]
    if ref_changes:
        # Strategic merge patches merge ownerReferences by uid.
        patch.setdefault("metadata", {})["ownerReferences"] = ref_changes
        refs = [ref for ref in refs if ref.get("uid") not in {change["uid"] for change in ref_changes}] + ref_changes
    if patch:
        plan.action = "patch"
        plan.patch = patch
    result_key = write if write is not None else stored
    plan.after = _summary(
        exists=True, fingerprint=result_key.fingerprint if result_key else None, labels=labels, owner_references=refs
    )
    return plan


def _has_reference(refs: Sequence[Mapping[str, Any]], wanted: Mapping[str, Any]) -> bool:
    return any(
        ref.get("uid") == wanted.get("uid") and all(ref.get(name) == value for name, value in wanted.items())
        for ref in refs
    )


def plan_absent(existing: Mapping[str, Any] | None, wanted: Wanted) -> SecretPlan:
    if existing is None:
        return SecretPlan(action="none")
    metadata = existing.get("metadata") or {}
    stored, _problem, raw = _stored_key(existing)
    deleted = SecretPlan(
        action="delete",
        existing_key=stored,
        sensitive=raw,
        before=_summary(
            exists=True,
            fingerprint=stored.fingerprint if stored else None,
            labels=metadata.get("labels") or {},
            owner_references=metadata.get("ownerReferences") or [],
        ),
        after={},
    )
    deleted.hide(stored)
    return deleted


def manifest(wanted: Wanted, key: SwarmKey) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": wanted.name, "namespace": wanted.namespace}
    if wanted.labels:
        metadata["labels"] = dict(wanted.labels)
    if wanted.owner_references:
        metadata["ownerReferences"] = [dict(ref) for ref in wanted.owner_references]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {DATA_KEY: key.secret_value()},
    }


class SecretService(ResourceService):
    """Secrets through kubernetes.core's K8SClient (which adds dryRun=All in check mode).

    Patches are strategic merges, so owner references merge by uid.
    """

    def __init__(self, client: Any) -> None:
        super().__init__(client, "Secret", "v1")

    def patch(
        self,
        name: str,
        namespace: str,
        patch: dict[str, Any],
        *,
        content_type: str = "application/strategic-merge-patch+json",
    ) -> dict[str, Any]:
        return super().patch(name, namespace, patch, content_type=content_type)


@dataclass
class Outcome:
    plan: SecretPlan
    secret: dict[str, str]


def ensure(
    service: SecretService,
    wanted: Wanted,
    *,
    state: str,
    hide: Callable[[set[str]], None],
    new_key: Callable[[], SwarmKey] = generate,
) -> Outcome:
    """Read the Secret, plan, and write what the plan says (the service dry-runs in check mode).

    ``hide`` receives every string that reveals key material as soon as it is
    known, before any write that could fail and print something.
    """
    existing = service.get(wanted.name, wanted.namespace)
    if state == "absent":
        plan = plan_absent(existing, wanted)
        hide(plan.sensitive)
        if plan.action == "delete":
            service.delete(wanted.name, wanted.namespace)
    else:
        try:
            plan = plan_present(existing, wanted, new_key=new_key)
        except SecretError:
            if existing is not None:
                hide(_stored_key(existing)[2])
            raise
        hide(plan.sensitive)
        if plan.action == "create":
            if plan.write_key is None:
                raise AssertionError("a create plan always carries the key it writes")
            service.create(manifest(wanted, plan.write_key))
        elif plan.action == "patch":
            service.patch(wanted.name, wanted.namespace, plan.patch)
    return Outcome(plan=plan, secret={"name": wanted.name, "namespace": wanted.namespace})
