"""The swarm key Secret's decisions: create, keep, replace, merge metadata, delete.

Covers the pure part of plugins/module_utils/swarm_key_secret.py: what
``plan_present``/``plan_absent`` decide for each stored state and each
``regenerate`` policy, the patch they produce (only what changes), the diff
summary (fingerprints, never key material), the values handed to no_log, and
the manifest of a new Secret. The API calls are covered against a real
kube-apiserver in tests/integration/modules/test_swarm_key.py.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import SwarmKey, parse
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key_secret import (
    DATA_KEY,
    SecretError,
    Wanted,
    manifest,
    owner_reference,
    plan_absent,
    plan_present,
)

STORED = SwarmKey(bytes(range(32)))
GIVEN = SwarmKey(bytes(range(100, 132)))
NEW = SwarmKey(bytes(range(200, 232)))
OWNER = {
    "apiVersion": "peerdiscovery.irt-saintexupery.com/v1alpha1",
    "kind": "SwarmPool",
    "name": "pool",
    "uid": "0b6f0e8e-5f4c-4a39-9d3c-2f0f6a1c1a11",
    "controller": True,
}


def new_key() -> SwarmKey:
    return NEW


def secret(
    value: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    refs: list[dict[str, Any]] | None = None,
    other: dict[str, str] | None = None,
) -> dict[str, Any]:
    data = dict(other or {})
    if value is not None:
        data[DATA_KEY] = value
    metadata: dict[str, Any] = {"name": "swarm", "namespace": "ns"}
    if labels is not None:
        metadata["labels"] = labels
    if refs is not None:
        metadata["ownerReferences"] = refs
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": data}


def wanted(**changes: Any) -> Wanted:
    fields: dict[str, Any] = {"name": "swarm", "namespace": "ns"}
    fields.update(changes)
    return Wanted(**fields)


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


MALFORMED = encoded("/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 31)


def assert_no_key_material(value: object, *keys: SwarmKey) -> None:
    text = repr(value)
    for key in keys:
        for form in key.sensitive_values():
            assert form not in text


# -- create -------------------------------------------------------------------------


def test_a_missing_secret_is_created_with_a_generated_key() -> None:
    plan = plan_present(None, wanted(), new_key=new_key)
    assert (plan.action, plan.generated, plan.write_key) == ("create", True, NEW)
    assert plan.before == {}
    assert plan.after["fingerprint"] == NEW.fingerprint
    assert NEW.sensitive_values() <= plan.sensitive


def test_a_missing_secret_is_created_with_the_given_key() -> None:
    plan = plan_present(None, wanted(key=GIVEN), new_key=new_key)
    assert (plan.action, plan.generated, plan.write_key) == ("create", False, GIVEN)


def test_the_manifest_of_a_new_secret_holds_the_key_labels_and_owner() -> None:
    body = manifest(wanted(labels={"app": "cd"}, owner_references=[OWNER]), GIVEN)
    assert body["type"] == "Opaque"
    assert body["metadata"] == {"name": "swarm", "namespace": "ns", "labels": {"app": "cd"}, "ownerReferences": [OWNER]}
    assert parse(base64.b64decode(body["data"][DATA_KEY])) == GIVEN


# -- keep ----------------------------------------------------------------------------


@pytest.mark.parametrize("regenerate", ["fail", "never"])
def test_a_valid_stored_key_is_kept(regenerate: str) -> None:
    plan = plan_present(secret(STORED.secret_value()), wanted(regenerate=regenerate), new_key=new_key)
    assert plan.action == "none"
    assert not plan.changed
    assert plan.result_key == STORED
    assert plan.before == plan.after
    assert STORED.sensitive_values() <= plan.sensitive


def test_a_stored_key_equal_to_the_given_key_is_kept() -> None:
    plan = plan_present(secret(STORED.secret_value()), wanted(key=STORED), new_key=new_key)
    assert not plan.changed


def test_a_stored_key_written_with_a_trailing_newline_is_the_same_key() -> None:
    plan = plan_present(secret(encoded(STORED.text + "\n")), wanted(key=STORED), new_key=new_key)
    assert not plan.changed


# -- a different key ------------------------------------------------------------------


def test_a_different_given_key_fails_by_default_naming_both_fingerprints_only() -> None:
    with pytest.raises(SecretError) as caught:
        plan_present(secret(STORED.secret_value()), wanted(key=GIVEN), new_key=new_key)
    message = caught.value.msg
    assert STORED.fingerprint in message and GIVEN.fingerprint in message
    assert "regenerate=always" in message
    assert_no_key_material(caught.value, STORED, GIVEN)


def test_a_different_given_key_is_kept_out_with_regenerate_never_and_a_warning() -> None:
    plan = plan_present(secret(STORED.secret_value()), wanted(key=GIVEN, regenerate="never"), new_key=new_key)
    assert not plan.changed
    assert plan.result_key == STORED
    assert len(plan.warnings) == 1
    assert_no_key_material(plan.warnings, STORED, GIVEN)


def test_a_different_given_key_replaces_the_stored_one_with_regenerate_always() -> None:
    plan = plan_present(secret(STORED.secret_value()), wanted(key=GIVEN, regenerate="always"), new_key=new_key)
    assert plan.action == "patch"
    assert plan.patch == {"data": {DATA_KEY: GIVEN.secret_value()}}
    assert (plan.before["fingerprint"], plan.after["fingerprint"]) == (STORED.fingerprint, GIVEN.fingerprint)


def test_regenerate_always_without_a_key_writes_a_new_key_every_time() -> None:
    plan = plan_present(secret(STORED.secret_value()), wanted(regenerate="always"), new_key=new_key)
    assert (plan.action, plan.generated, plan.write_key) == ("patch", True, NEW)


# -- a malformed key --------------------------------------------------------------------


def test_a_malformed_stored_key_fails_by_default_and_is_not_overwritten() -> None:
    with pytest.raises(SecretError) as caught:
        plan_present(secret(MALFORMED), wanted(), new_key=new_key)
    error = caught.value
    assert "Secret ns/swarm holds a malformed swarm key" in error.msg
    assert "line 3 (length)" in error.msg
    assert "left unchanged" in error.msg
    assert (error.fields["line"], error.fields["rule"]) == (3, "length")
    assert "ab" * 31 not in error.msg


def test_a_malformed_stored_key_is_kept_with_regenerate_never_and_a_warning() -> None:
    plan = plan_present(secret(MALFORMED), wanted(regenerate="never"), new_key=new_key)
    assert not plan.changed
    assert plan.result_key is None
    assert plan.after["fingerprint"] is None
    assert "line 3 (length)" in plan.warnings[0]


def test_a_malformed_stored_key_is_replaced_with_regenerate_always() -> None:
    plan = plan_present(secret(MALFORMED), wanted(regenerate="always"), new_key=new_key)
    assert plan.action == "patch"
    assert plan.patch["data"] == {DATA_KEY: NEW.secret_value()}
    assert plan.before["fingerprint"] is None


def test_a_malformed_stored_value_is_handed_to_no_log_without_the_formats_fixed_lines() -> None:
    plan = plan_present(secret(MALFORMED), wanted(regenerate="never"), new_key=new_key)
    assert MALFORMED in plan.sensitive
    assert "ab" * 31 in plan.sensitive
    assert "/base16/" not in plan.sensitive
    assert "/key/swarm/psk/1.0.0/" not in plan.sensitive


# -- other data and metadata ------------------------------------------------------------


def test_a_secret_without_a_swarm_key_gets_one_and_keeps_its_other_data() -> None:
    plan = plan_present(secret(other={"ca.crt": "Y2E="}), wanted(), new_key=new_key)
    assert plan.action == "patch"
    assert plan.patch == {"data": {DATA_KEY: NEW.secret_value()}}
    assert plan.generated


def test_wanted_labels_are_merged_and_only_the_changed_ones_patched() -> None:
    stored = secret(STORED.secret_value(), labels={"keep": "me", "app": "old"})
    plan = plan_present(stored, wanted(labels={"app": "cd", "keep": "me"}), new_key=new_key)
    assert plan.patch == {"metadata": {"labels": {"app": "cd"}}}
    assert plan.after["labels"] == {"app": "cd", "keep": "me"}


def test_labels_already_present_change_nothing() -> None:
    stored = secret(STORED.secret_value(), labels={"app": "cd", "other": "x"})
    assert not plan_present(stored, wanted(labels={"app": "cd"}), new_key=new_key).changed


def test_a_missing_owner_reference_is_added_and_a_present_one_changes_nothing() -> None:
    other = {**OWNER, "uid": "another", "name": "other"}
    plan = plan_present(secret(STORED.secret_value(), refs=[other]), wanted(owner_references=[OWNER]), new_key=new_key)
    assert plan.patch == {"metadata": {"ownerReferences": [OWNER]}}
    assert [ref["uid"] for ref in plan.after["owner_references"]] == ["another", OWNER["uid"]]
    again = plan_present(secret(STORED.secret_value(), refs=[other, OWNER]), wanted(owner_references=[OWNER]))
    assert not again.changed


def test_owner_reference_options_become_api_field_names() -> None:
    options = {
        "api_version": "v1",
        "kind": "ConfigMap",
        "name": "x",
        "uid": "u",
        "controller": None,
        "block_owner_deletion": True,
    }
    assert owner_reference(options) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "x",
        "uid": "u",
        "blockOwnerDeletion": True,
    }


def test_the_diff_summary_never_holds_key_material() -> None:
    plan = plan_present(secret(STORED.secret_value()), wanted(key=GIVEN, regenerate="always"), new_key=new_key)
    assert_no_key_material((plan.before, plan.after), STORED, GIVEN)
    assert set(plan.after) == {"fingerprint", "labels", "owner_references"}


# -- absent ------------------------------------------------------------------------------


def test_absent_deletes_an_existing_secret_and_shows_what_it_held() -> None:
    plan = plan_absent(secret(STORED.secret_value()), wanted())
    assert plan.action == "delete"
    assert plan.before["fingerprint"] == STORED.fingerprint
    assert plan.after == {}
    assert STORED.sensitive_values() <= plan.sensitive


def test_absent_with_no_secret_changes_nothing() -> None:
    assert not plan_absent(None, wanted()).changed
