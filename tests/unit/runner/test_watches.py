"""watches.yaml: operator-sdk's schema, defaults, environment overrides and strict validation.

Covered: defaults (operator-sdk's), every field's parsing, ``${VAR}``
substitution, per-kind environment overrides, role resolution (FQCN in a
collection root, roles/ beside the file, absolute paths), the repository's own
watches.yaml, and one error case per field, each of which must name the file,
the entry and the field. Not covered here: what a run does with these values
(test_running, test_reconciling).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_discovery_operator.watches import (
    MAX_RUNNER_ARTIFACTS_DEFAULT,
    GroupVersionKind,
    WatchesError,
    load,
    parse,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
GROUP = "peerdiscovery.irt-saintexupery.com"


def _parse(text: str, tmp_path: Path, **kwargs: object) -> list:  # type: ignore[type-arg]
    return parse(text, path=tmp_path / "watches.yaml", check_paths=False, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_operator_sdks(tmp_path: Path) -> None:
    """An entry with only group/version/kind/role gets operator-sdk's defaults."""
    (watch,) = _parse(f"- {{group: {GROUP}, version: v1alpha1, kind: SwarmPool, role: swarmpool}}", tmp_path)
    assert watch.gvk == GroupVersionKind(GROUP, "v1alpha1", "SwarmPool")
    assert watch.manage_status is True
    assert watch.watch_dependent_resources is True
    assert watch.snake_case_parameters is True
    assert watch.watch_cluster_scoped_resources is False
    assert watch.watch_annotations_changes is False
    assert watch.mark_unsafe is False
    assert watch.reconcile_period == 0.0
    assert watch.max_runner_artifacts == MAX_RUNNER_ARTIFACTS_DEFAULT == 20
    assert watch.finalizer is None
    assert watch.vars == {}
    assert not watch.selector
    assert watch.ansible_verbosity == 2


def test_every_field_is_read(tmp_path: Path) -> None:
    """Each operator-sdk field lands in the Watch."""
    text = f"""
- group: {GROUP}
  version: v1alpha1
  kind: Identity
  playbook: identity.yml
  vars: {{state: present, retries: 3}}
  maxRunnerArtifacts: 5
  reconcilePeriod: 1m30s
  manageStatus: false
  watchDependentResources: false
  watchClusterScopedResources: true
  snakeCaseParameters: false
  watchAnnotationsChanges: true
  markUnsafe: true
  blacklist:
    - {{group: apps, version: v1, kind: StatefulSet}}
  finalizer:
    name: {GROUP}/finalizer
    vars: {{state: absent}}
  selector:
    matchLabels: {{tier: gold}}
    matchExpressions:
      - {{key: zone, operator: In, values: [a, b]}}
      - {{key: legacy, operator: DoesNotExist}}
"""
    (watch,) = _parse(text, tmp_path)
    assert watch.playbook == "identity.yml"
    assert watch.vars == {"state": "present", "retries": 3}
    assert watch.max_runner_artifacts == 5
    assert watch.reconcile_period == 90.0
    assert (watch.manage_status, watch.watch_dependent_resources) == (False, False)
    assert (watch.watch_cluster_scoped_resources, watch.watch_annotations_changes, watch.mark_unsafe) == (
        True,
        True,
        True,
    )
    assert watch.snake_case_parameters is False
    assert watch.blacklist == (GroupVersionKind("apps", "v1", "StatefulSet"),)
    assert watch.finalizer is not None and watch.finalizer.name == f"{GROUP}/finalizer"
    assert watch.finalizer.vars == {"state": "absent"}
    assert watch.finalizer_target == ("", "identity.yml")
    assert watch.selector.to_query() == "tier=gold,zone in (a,b),!legacy"


def test_environment_references_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``${VAR}`` and ``$VAR`` take the environment's value; unset references stay as written."""
    monkeypatch.setenv("CDO_TEST_ROLE", "swarmpool")
    monkeypatch.setenv("CDO_TEST_PERIOD", "45s")
    monkeypatch.delenv("CDO_TEST_UNSET", raising=False)
    text = f"""
- group: {GROUP}
  version: v1alpha1
  kind: SwarmPool
  role: ${{CDO_TEST_ROLE}}
  reconcilePeriod: $CDO_TEST_PERIOD
  vars: {{kept: "${{CDO_TEST_UNSET}}"}}
"""
    (watch,) = _parse(text, tmp_path)
    assert watch.role == "swarmpool"
    assert watch.reconcile_period == 45.0
    assert watch.vars == {"kept": "${CDO_TEST_UNSET}"}


def test_per_kind_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP> and ANSIBLE_VERBOSITY_<KIND>_<GROUP> beat the defaults."""
    suffix = "SWARMPOOL_PEERDISCOVERY_IRT-SAINTEXUPERY_COM"
    monkeypatch.setenv(f"MAX_CONCURRENT_RECONCILES_{suffix}", "7")
    monkeypatch.setenv(f"ANSIBLE_VERBOSITY_{suffix}", "4")
    text = f"""
- {{group: {GROUP}, version: v1alpha1, kind: SwarmPool, role: swarmpool}}
- {{group: {GROUP}, version: v1alpha1, kind: Peer, role: peer}}
"""
    pool, peer = _parse(text, tmp_path, default_workers=3, default_verbosity=1)
    assert (pool.max_concurrent_reconciles, pool.ansible_verbosity) == (7, 4)
    assert (peer.max_concurrent_reconciles, peer.ansible_verbosity) == (3, 1)


def test_deprecated_worker_variable_still_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKER_<KIND>_<GROUP> is operator-sdk's older name for the same override."""
    monkeypatch.setenv("WORKER_PEER_PEERDISCOVERY_IRT-SAINTEXUPERY_COM", "5")
    (peer,) = _parse(f"- {{group: {GROUP}, version: v1alpha1, kind: Peer, role: peer}}", tmp_path)
    assert peer.max_concurrent_reconciles == 5


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        pytest.param("{version: v1, kind: A, role: r, colour: blue}", "colour", "unknown field", id="unknown-key"),
        pytest.param("{kind: A, role: r}", "version", "is required", id="missing-version"),
        pytest.param("{version: v1, role: r}", "kind", "is required", id="missing-kind"),
        pytest.param("{version: v1, kind: a-b, role: r}", "kind", "is not a Kind", id="bad-kind"),
        pytest.param("{version: one, kind: A, role: r}", "version", "not an API version", id="bad-version"),
        pytest.param("{version: v1, kind: A}", "role", "one of role or playbook", id="no-role-or-playbook"),
        pytest.param("{version: v1, kind: A, role: r, playbook: p.yml}", "role", "not both", id="role-and-playbook"),
        pytest.param("{version: v1, kind: A, role: 3}", "role", "must be a string", id="role-not-string"),
        pytest.param("{version: v1, kind: A, role: r, vars: [1]}", "vars", "must be a mapping", id="vars-list"),
        pytest.param(
            "{version: v1, kind: A, role: r, manageStatus: 'yes'}", "manageStatus", "true or false", id="bool-as-string"
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, reconcilePeriod: 30}",
            "reconcilePeriod",
            "duration string",
            id="period-number",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, reconcilePeriod: 5x}",
            "reconcilePeriod",
            "invalid duration",
            id="period-unit",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, reconcilePeriod: -5s}", "reconcilePeriod", "negative", id="period-negative"
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, maxRunnerArtifacts: -1}",
            "maxRunnerArtifacts",
            "positive integer",
            id="artifacts-negative",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, finalizer: {role: r}}",
            "finalizer.name",
            "is required",
            id="finalizer-without-name",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, finalizer: {name: 'not valid!', vars: {a: 1}}}",
            "finalizer.name",
            "qualified name",
            id="finalizer-bad-name",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, finalizer: {name: x.io/f}}",
            "finalizer",
            "needs a role, a playbook or vars",
            id="finalizer-empty",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, finalizer: {name: x.io/f, vars: {}, extra: 1}}",
            "finalizer.extra",
            "unknown field",
            id="finalizer-unknown-key",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, selector: {matchExpressions: [{key: k, operator: Near}]}}",
            "selector.matchExpressions[0].operator",
            "must be one of",
            id="selector-operator",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, selector: {matchExpressions: [{key: k, operator: In}]}}",
            "selector.matchExpressions[0].values",
            "must not be empty",
            id="selector-in-without-values",
        ),
        pytest.param(
            "{version: v1, kind: A, role: r, blacklist: [{group: apps}]}",
            "blacklist[0].version",
            "is required",
            id="blacklist-incomplete",
        ),
    ],
)
def test_each_bad_field_is_named_with_its_entry(tmp_path: Path, entry: str, field: str, fragment: str) -> None:
    """A bad value stops the load with a message naming the file, the entry and the field."""
    text = f"- {{version: v1, kind: Good, role: good}}\n- {entry}\n"
    with pytest.raises(WatchesError) as caught:
        _parse(text, tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "watches.yaml") in message
    assert "entry 2" in message
    assert f"field '{field}'" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("[]", "lists no entries", id="empty-list"),
        pytest.param("kind: A", "must be a YAML list", id="mapping"),
        pytest.param("- just a string", "entry 1: must be a mapping", id="scalar-entry"),
        pytest.param("- {version: v1, kind: A, role: r\n", "not valid YAML at line", id="broken-yaml"),
        pytest.param(
            "- {version: v1, kind: A, role: r}\n- {version: v1, kind: A, role: s}",
            "duplicate of entry 1",
            id="duplicate",
        ),
    ],
)
def test_file_level_problems_are_explained(tmp_path: Path, text: str, fragment: str) -> None:
    """Problems with the file as a whole get one clear line too."""
    with pytest.raises(WatchesError, match=fragment):
        _parse(text, tmp_path)


def test_unreadable_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    """A missing file is reported as such."""
    with pytest.raises(WatchesError, match="cannot be read"):
        load(tmp_path / "absent.yaml")


def _collection_with_role(root: Path, role: str) -> Path:
    path = root / "ansible_collections" / "peerdiscovery" / "cluster_discovery" / "roles" / role / "tasks"
    path.mkdir(parents=True)
    (path / "main.yml").write_text("- ansible.builtin.debug: {msg: hi}\n")
    return root


def test_roles_resolve_by_fqcn_name_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An FQCN found in a collection root stays an FQCN; a role beside the file or a path becomes absolute."""
    collections = _collection_with_role(tmp_path / "collections", "swarmpool")
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(collections))
    monkeypatch.delenv("ANSIBLE_ROLES_PATH", raising=False)
    (tmp_path / "roles" / "local" / "tasks").mkdir(parents=True)
    (tmp_path / "elsewhere" / "tasks").mkdir(parents=True)
    (tmp_path / "site.yml").write_text("- hosts: localhost\n  tasks: []\n")
    text = f"""
- {{version: v1, kind: A, role: peerdiscovery.cluster_discovery.swarmpool}}
- {{version: v1, kind: B, role: local}}
- {{version: v1, kind: C, role: {tmp_path / "elsewhere"}}}
- {{version: v1, kind: D, playbook: site.yml, finalizer: {{name: x.io/f, role: local}}}}
"""
    path = tmp_path / "watches.yaml"
    path.write_text(text)
    a, b, c, d = load(path)
    assert a.role == "peerdiscovery.cluster_discovery.swarmpool"
    assert b.role == str((tmp_path / "roles" / "local").resolve())
    assert c.role == str((tmp_path / "elsewhere").resolve())
    assert d.playbook == str((tmp_path / "site.yml").resolve())
    assert d.finalizer is not None and d.finalizer.role == b.role


def test_missing_role_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A role that is nowhere is reported with the places searched."""
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path / "none"))
    path = tmp_path / "watches.yaml"
    path.write_text("- {version: v1, kind: A, role: peerdiscovery.cluster_discovery.nothing}\n")
    with pytest.raises(WatchesError, match=r"entry 1 \(kind A\): field 'role': role 'peerdiscovery"):
        load(path)


def test_the_repositorys_watches_file_is_valid() -> None:
    """watches.yaml at the root maps the three kinds, Identity with its finalizer rerunning the role."""
    pool, identity, peer = load(REPO_ROOT / "watches.yaml", check_paths=False)
    assert [w.gvk for w in (pool, identity, peer)] == [
        GroupVersionKind(GROUP, "v1alpha1", kind) for kind in ("SwarmPool", "Identity", "Peer")
    ]
    assert [w.role for w in (pool, identity, peer)] == [
        f"peerdiscovery.cluster_discovery.{name}" for name in ("swarmpool", "identity", "peer")
    ]
    assert pool.finalizer is None and peer.finalizer is None
    assert identity.finalizer is not None
    assert identity.finalizer.name == f"{GROUP}/finalizer"
    assert identity.finalizer.vars == {"state": "absent"}
    assert identity.finalizer_target == ("peerdiscovery.cluster_discovery.identity", "")
    # Custom resources hold what namespace users and swarm members wrote: never evaluated as Jinja.
    assert [w.mark_unsafe for w in (pool, identity, peer)] == [True, True, True]
