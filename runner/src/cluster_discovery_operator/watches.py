"""watches.yaml: operator-sdk's schema, loaded strictly.

The file is a YAML list; each entry maps one group/version/kind to a role or a
playbook. Field names, defaults and meanings are operator-sdk's
(``internal/ansible/watches/watches.go``), so a file written for it works here:

==========================  ======================================================
field                       default
==========================  ======================================================
group, version, kind        version and kind required; group may be "" (core)
role | playbook             exactly one; role by FQCN, name or path
vars                        {} (merged into the extravars of every run)
reconcilePeriod             0 (no periodic run); a Go duration such as ``30s``
manageStatus                true
watchDependentResources     true
watchClusterScopedResources false
watchAnnotationsChanges     false (kept for compatibility: our skip rule already
                            treats annotation changes as input changes)
snakeCaseParameters         true
markUnsafe                  false
maxRunnerArtifacts          20
finalizer                   none; {name, role | playbook | vars}
selector                    {} (matchLabels / matchExpressions)
blacklist                   [] (group/version/kind never watched as dependents)
==========================  ======================================================

Where we are stricter than operator-sdk, on purpose: an unknown key, a value of
the wrong type, both ``role`` and ``playbook``, or a duplicate kind is an error
at start-up that names the entry and the field, instead of being ignored.
``${VAR}`` and ``$VAR`` are replaced by the environment variable's value when it
is set (operator-sdk's rule). Per kind, ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>``
(or the older ``WORKER_<KIND>_<GROUP>``) and ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``
override the command-line defaults. Relative role and playbook paths are
resolved against the folder of the watches file (operator-sdk uses its working
directory, which in its image is the same folder).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .durations import DurationError, parse_duration
from .logs import fields

log = logging.getLogger(__name__)

MAX_RUNNER_ARTIFACTS_DEFAULT = 20
_ENTRY_KEYS = frozenset(
    {
        "group",
        "version",
        "kind",
        "playbook",
        "role",
        "vars",
        "maxRunnerArtifacts",
        "reconcilePeriod",
        "manageStatus",
        "watchDependentResources",
        "watchClusterScopedResources",
        "snakeCaseParameters",
        "watchAnnotationsChanges",
        "markUnsafe",
        "blacklist",
        "finalizer",
        "selector",
    }
)
_FINALIZER_KEYS = frozenset({"name", "role", "playbook", "vars"})
_GVK_KEYS = frozenset({"group", "version", "kind"})
_SELECTOR_KEYS = frozenset({"matchLabels", "matchExpressions"})
_EXPRESSION_KEYS = frozenset({"key", "operator", "values"})
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# Kubernetes qualified names: an optional DNS-subdomain prefix and a name part.
_QUALIFIED_NAME = re.compile(
    r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION = re.compile(r"^v[0-9]+(?:(?:alpha|beta)[0-9]+)?$")


class WatchesError(ValueError):
    """watches.yaml is unusable; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.api_version}, Kind={self.kind}"

    @property
    def env_suffix(self) -> str:
        """``<KIND>_<GROUP>`` as operator-sdk builds its per-kind environment variable names."""
        return f"{self.kind}_{self.group}".upper().replace(".", "_")


@dataclass(frozen=True)
class LabelSelector:
    match_labels: dict[str, str] = field(default_factory=dict)
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.match_labels or self.match_expressions)

    def to_query(self) -> str:
        """The labelSelector query parameter the API server understands."""
        parts = [f"{key}={value}" for key, value in sorted(self.match_labels.items())]
        for key, operator, values in self.match_expressions:
            if operator == "In":
                parts.append(f"{key} in ({','.join(values)})")
            elif operator == "NotIn":
                parts.append(f"{key} notin ({','.join(values)})")
            elif operator == "Exists":
                parts.append(key)
            else:
                parts.append(f"!{key}")
        return ",".join(parts)


@dataclass(frozen=True)
class Finalizer:
    name: str
    role: str = ""
    playbook: str = ""
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Watch:
    """One entry of watches.yaml, with defaults applied and paths resolved."""

    gvk: GroupVersionKind
    role: str = ""
    """FQCN, role name or absolute path, as the generated playbook will name it."""
    playbook: str = ""
    """Absolute path of the playbook."""
    vars: dict[str, Any] = field(default_factory=dict)
    max_runner_artifacts: int = MAX_RUNNER_ARTIFACTS_DEFAULT
    reconcile_period: float = 0.0
    manage_status: bool = True
    watch_dependent_resources: bool = True
    watch_cluster_scoped_resources: bool = False
    snake_case_parameters: bool = True
    watch_annotations_changes: bool = False
    mark_unsafe: bool = False
    selector: LabelSelector = field(default_factory=LabelSelector)
    blacklist: tuple[GroupVersionKind, ...] = ()
    finalizer: Finalizer | None = None
    max_concurrent_reconciles: int = 1
    ansible_verbosity: int = 2

    @property
    def finalizer_target(self) -> tuple[str, str]:
        """(role, playbook) the finalizer runs: its own, else the watch's (operator-sdk's rule)."""
        if self.finalizer is not None and (self.finalizer.role or self.finalizer.playbook):
            return self.finalizer.role, self.finalizer.playbook
        return self.role, self.playbook


def _expand_environment(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = os.environ.get(name)
        return match.group(0) if value is None else value

    return _ENV_REFERENCE.sub(replace, text)


class _Entry:
    """Reads one raw entry, turning every problem into a WatchesError that says where."""

    def __init__(self, path: Path, index: int, raw: Mapping[str, Any]) -> None:
        self.path = path
        self.index = index
        self.raw = raw
        kind = raw.get("kind")
        self.label = f"entry {index}" + (f" (kind {kind})" if isinstance(kind, str) and kind else "")

    def error(self, field_name: str, problem: str) -> WatchesError:
        return WatchesError(f"{self.path}: {self.label}: field '{field_name}': {problem}")

    def string(
        self, name: str, *, required: bool = False, raw: Mapping[str, Any] | None = None, prefix: str = ""
    ) -> str:
        source = self.raw if raw is None else raw
        value = source.get(name)
        if value is None:
            if required:
                raise self.error(prefix + name, "is required")
            return ""
        if not isinstance(value, str):
            raise self.error(prefix + name, f"must be a string, not {type(value).__name__} {value!r}")
        if required and not value:
            raise self.error(prefix + name, "must not be empty")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {value!r}")
        return value

    def mapping(self, name: str, *, raw: Mapping[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
        source = self.raw if raw is None else raw
        value = source.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(prefix + name, f"must be a mapping, not {type(value).__name__}")
        for key in value:
            if not isinstance(key, str):
                raise self.error(prefix + name, f"keys must be strings, not {key!r}")
        return dict(value)

    def unknown_keys(self, raw: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
        for key in raw:
            if key not in allowed:
                raise self.error(f"{prefix}{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _parse_selector(entry: _Entry) -> LabelSelector:
    raw = entry.mapping("selector")
    entry.unknown_keys(raw, _SELECTOR_KEYS, prefix="selector.")
    labels = entry.mapping("matchLabels", raw=raw, prefix="selector.")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise entry.error(f"selector.matchLabels.{key}", f"must be a string, not {value!r}")
    expressions: list[tuple[str, str, tuple[str, ...]]] = []
    raw_expressions = raw.get("matchExpressions") or []
    if not isinstance(raw_expressions, list):
        raise entry.error("selector.matchExpressions", "must be a list")
    for position, item in enumerate(raw_expressions):
        where = f"selector.matchExpressions[{position}]"
        if not isinstance(item, Mapping):
            raise entry.error(where, "must be a mapping with key, operator and values")
        entry.unknown_keys(item, _EXPRESSION_KEYS, prefix=f"{where}.")
        key = entry.string("key", required=True, raw=item, prefix=f"{where}.")
        operator = entry.string("operator", required=True, raw=item, prefix=f"{where}.")
        if operator not in _OPERATORS:
            raise entry.error(f"{where}.operator", f"must be one of {', '.join(_OPERATORS)}, not {operator!r}")
        values = item.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise entry.error(f"{where}.values", "must be a list of strings")
        if operator in ("In", "NotIn") and not values:
            raise entry.error(f"{where}.values", f"must not be empty for operator {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise entry.error(f"{where}.values", f"must be empty for operator {operator}")
        expressions.append((key, operator, tuple(values)))
    return LabelSelector(match_labels=dict(labels), match_expressions=tuple(expressions))


def _parse_blacklist(entry: _Entry) -> tuple[GroupVersionKind, ...]:
    raw = entry.raw.get("blacklist") or []
    if not isinstance(raw, list):
        raise entry.error("blacklist", "must be a list of {group, version, kind}")
    result = []
    for position, item in enumerate(raw):
        where = f"blacklist[{position}]"
        if not isinstance(item, Mapping):
            raise entry.error(where, "must be a mapping with group, version and kind")
        entry.unknown_keys(item, _GVK_KEYS, prefix=f"{where}.")
        result.append(
            GroupVersionKind(
                group=entry.string("group", raw=item, prefix=f"{where}."),
                version=entry.string("version", required=True, raw=item, prefix=f"{where}."),
                kind=entry.string("kind", required=True, raw=item, prefix=f"{where}."),
            )
        )
    return tuple(result)


def _parse_finalizer(entry: _Entry) -> Finalizer | None:
    if entry.raw.get("finalizer") is None:
        return None
    raw = entry.mapping("finalizer")
    entry.unknown_keys(raw, _FINALIZER_KEYS, prefix="finalizer.")
    name = entry.string("name", required=True, raw=raw, prefix="finalizer.")
    if not _QUALIFIED_NAME.fullmatch(name):
        raise entry.error("finalizer.name", f"{name!r} is not a qualified name such as example.com/finalizer")
    role = entry.string("role", raw=raw, prefix="finalizer.")
    playbook = entry.string("playbook", raw=raw, prefix="finalizer.")
    variables = entry.mapping("vars", raw=raw, prefix="finalizer.")
    if role and playbook:
        raise entry.error("finalizer", "set either role or playbook, not both")
    if not (role or playbook or variables):
        raise entry.error("finalizer", "needs a role, a playbook or vars (vars alone rerun the watch's role)")
    return Finalizer(name=name, role=role, playbook=playbook, vars=variables)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        log.warning("ignoring a non-integer environment variable", extra=fields(variable=name, value=value))
        return None


def _max_concurrent_reconciles(gvk: GroupVersionKind, default: int) -> int:
    value = _env_int(f"MAX_CONCURRENT_RECONCILES_{gvk.env_suffix}")
    if value is None:
        value = _env_int(f"WORKER_{gvk.env_suffix}")
        if value is not None:
            log.warning(
                "WORKER_<KIND>_<GROUP> is deprecated, use MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>",
                extra=fields(variable=f"WORKER_{gvk.env_suffix}"),
            )
    if value is None:
        return default
    if value <= 0:
        log.warning("ignoring a non-positive worker count", extra=fields(kind=gvk.kind, value=value))
        return default
    return value


def _ansible_verbosity(gvk: GroupVersionKind, default: int) -> int:
    value = _env_int(f"ANSIBLE_VERBOSITY_{gvk.env_suffix}")
    if value is None:
        return default
    if not 0 <= value <= 7:
        log.warning("ignoring an ansible verbosity outside 0..7", extra=fields(kind=gvk.kind, value=value))
        return default
    return value


def collection_roots() -> list[Path]:
    """Where Ansible looks for collections: ANSIBLE_COLLECTIONS_PATH (or its default), then sys.path."""
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    if configured:
        roots = [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    else:
        roots = [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]
    roots.extend(Path(p) for p in sys.path if p)
    return roots


def role_candidates(role: str, base_dir: Path) -> list[Path]:
    """Where a role named in watches.yaml may live, in operator-sdk's order of preference."""
    if os.path.isabs(role):
        return [Path(role)]
    candidates: list[Path] = []
    parts = role.split(".")
    if len(parts) == 3 and all(parts):
        namespace, collection, name = parts
        candidates.extend(
            root / "ansible_collections" / namespace / collection / "roles" / name for root in collection_roots()
        )
    roles_path = os.environ.get("ANSIBLE_ROLES_PATH", "")
    for parent in filter(None, roles_path.split(os.pathsep)):
        candidates.append(Path(parent).expanduser() / role)
        candidates.append(Path(parent).expanduser() / "roles" / role)
    candidates.append(base_dir / "roles" / role)
    candidates.append(base_dir / role)
    return candidates


def resolve_role(role: str, base_dir: Path) -> str | None:
    """Return how the generated playbook should name the role, or None when it is nowhere.

    An FQCN stays an FQCN (Ansible then loads it with its collection's context,
    so the role's short module names resolve as their author meant); anything
    else becomes the absolute path that was found.
    """
    for candidate in role_candidates(role, base_dir):
        if candidate.is_dir():
            parts = role.split(".")
            if not os.path.isabs(role) and len(parts) == 3 and "ansible_collections" in candidate.parts:
                return role
            return str(candidate.resolve())
    return None


def _resolve_playbook(playbook: str, base_dir: Path) -> Path:
    path = Path(playbook)
    return path if path.is_absolute() else (base_dir / path)


def _parse_entry(
    entry: _Entry, *, base_dir: Path, check_paths: bool, default_workers: int, default_verbosity: int
) -> Watch:
    entry.unknown_keys(entry.raw, _ENTRY_KEYS)
    gvk = GroupVersionKind(
        group=entry.string("group"),
        version=entry.string("version", required=True),
        kind=entry.string("kind", required=True),
    )
    if not _KIND.fullmatch(gvk.kind):
        raise entry.error("kind", f"{gvk.kind!r} is not a Kind (letters and digits, starting with a letter)")
    if not _VERSION.fullmatch(gvk.version):
        raise entry.error("version", f"{gvk.version!r} is not an API version such as v1 or v1alpha1")
    role = entry.string("role")
    playbook = entry.string("playbook")
    if role and playbook:
        raise entry.error("role", "set either role or playbook, not both")
    if not role and not playbook:
        raise entry.error("role", "one of role or playbook is required")

    period_text = entry.raw.get("reconcilePeriod")
    period = 0.0
    if period_text is not None:
        if not isinstance(period_text, str):
            raise entry.error("reconcilePeriod", f"must be a duration string such as 30s or 1m, not {period_text!r}")
        try:
            period = parse_duration(period_text)
        except DurationError as exc:
            raise entry.error("reconcilePeriod", str(exc)) from None
        if period < 0:
            raise entry.error("reconcilePeriod", "must not be negative")

    artifacts = entry.raw.get("maxRunnerArtifacts")
    if artifacts is None or artifacts == 0:
        artifacts = MAX_RUNNER_ARTIFACTS_DEFAULT
    if not isinstance(artifacts, int) or isinstance(artifacts, bool) or artifacts < 0:
        raise entry.error("maxRunnerArtifacts", f"must be a positive integer, not {artifacts!r}")

    finalizer = _parse_finalizer(entry)
    if check_paths:
        if role:
            resolved = resolve_role(role, base_dir)
            if resolved is None:
                raise entry.error(
                    "role", f"role {role!r} was not found (looked in collections, roles paths and {base_dir})"
                )
            role = resolved
        if playbook:
            path = _resolve_playbook(playbook, base_dir)
            if not path.is_file():
                raise entry.error("playbook", f"playbook {str(path)!r} was not found")
            playbook = str(path.resolve())
        if finalizer is not None and finalizer.role:
            resolved = resolve_role(finalizer.role, base_dir)
            if resolved is None:
                raise entry.error("finalizer.role", f"role {finalizer.role!r} was not found")
            finalizer = Finalizer(name=finalizer.name, role=resolved, vars=finalizer.vars)
        if finalizer is not None and finalizer.playbook:
            path = _resolve_playbook(finalizer.playbook, base_dir)
            if not path.is_file():
                raise entry.error("finalizer.playbook", f"playbook {str(path)!r} was not found")
            finalizer = Finalizer(name=finalizer.name, playbook=str(path.resolve()), vars=finalizer.vars)

    return Watch(
        gvk=gvk,
        role=role,
        playbook=playbook,
        vars=entry.mapping("vars"),
        max_runner_artifacts=artifacts,
        reconcile_period=period,
        manage_status=entry.boolean("manageStatus", True),
        watch_dependent_resources=entry.boolean("watchDependentResources", True),
        watch_cluster_scoped_resources=entry.boolean("watchClusterScopedResources", False),
        snake_case_parameters=entry.boolean("snakeCaseParameters", True),
        watch_annotations_changes=entry.boolean("watchAnnotationsChanges", False),
        mark_unsafe=entry.boolean("markUnsafe", False),
        selector=_parse_selector(entry),
        blacklist=_parse_blacklist(entry),
        finalizer=finalizer,
        max_concurrent_reconciles=_max_concurrent_reconciles(gvk, default_workers),
        ansible_verbosity=_ansible_verbosity(gvk, default_verbosity),
    )


def parse(
    text: str,
    *,
    path: Path,
    check_paths: bool = True,
    default_workers: int = 1,
    default_verbosity: int = 2,
) -> list[Watch]:
    """Parse the content of a watches file (``path`` names it in errors and anchors relative paths)."""
    try:
        document = yaml.safe_load(_expand_environment(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise WatchesError(f"{path}: not valid YAML{where}: {problem}") from None
    if document is None:
        raise WatchesError(f"{path}: is empty; it must list at least one group/version/kind")
    if not isinstance(document, list):
        raise WatchesError(f"{path}: must be a YAML list of entries, not a {type(document).__name__}")
    watches: list[Watch] = []
    seen: dict[GroupVersionKind, int] = {}
    base_dir = path.resolve().parent
    for index, raw in enumerate(document, start=1):
        if not isinstance(raw, Mapping):
            raise WatchesError(f"{path}: entry {index}: must be a mapping, not {type(raw).__name__} {raw!r}")
        entry = _Entry(path, index, raw)
        watch = _parse_entry(
            entry,
            base_dir=base_dir,
            check_paths=check_paths,
            default_workers=default_workers,
            default_verbosity=default_verbosity,
        )
        if watch.gvk in seen:
            raise WatchesError(f"{path}: {entry.label}: duplicate of entry {seen[watch.gvk]} ({watch.gvk})")
        seen[watch.gvk] = index
        watches.append(watch)
    if not watches:
        raise WatchesError(f"{path}: lists no entries; it must list at least one group/version/kind")
    return watches


def load(path: Path, *, check_paths: bool = True, default_workers: int = 1, default_verbosity: int = 2) -> list[Watch]:
    """Read, validate and resolve a watches file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WatchesError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return parse(
        text,
        path=path,
        check_paths=check_paths,
        default_workers=default_workers,
        default_verbosity=default_verbosity,
    )
