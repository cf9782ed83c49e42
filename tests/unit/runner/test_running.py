"""The extravars contract and the reading of ansible-runner events, without starting ansible.

Covered: ``make_parameters`` against operator-sdk's documented example and its
``makeParameters`` rules (snake_case or not, markUnsafe, watch vars, finalizer
vars only on finalizer runs, spec-less objects), the generated role play, and
the event reader (failure messages, ignore_errors, unreachable hosts,
requeue_after and osdk_metric directives by short and FQCN names, owned objects
in kubernetes.core results). Real ansible runs are in test_running_ansible.
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_discovery_operator.running import (
    DEFAULT_FAILURE_MESSAGE,
    HostOutcome,
    _EventReader,
    escape_ansible_key,
    make_parameters,
    mark_unsafe,
    object_variable,
    role_play,
)
from cluster_discovery_operator.watches import Finalizer, GroupVersionKind, Watch

DATABASE = {
    "apiVersion": "app.example.com/v1alpha1",
    "kind": "Database",
    "metadata": {"name": "example", "namespace": "default", "uid": "u-1"},
    "spec": {"message": "Hello world 2", "newParameter": "newParam"},
}


def _watch(**kwargs: Any) -> Watch:
    return Watch(gvk=GroupVersionKind("app.example.com", "v1alpha1", "Database"), role="database", **kwargs)


def test_parameters_match_operator_sdks_documented_example() -> None:
    """operator-sdk's docs: spec keys snake_cased at top level, meta, the object under _app_example_com_database."""
    parameters = make_parameters(DATABASE, watch=_watch(), finalizer_run=False)
    assert parameters == {
        "ansible_operator_meta": {"name": "example", "namespace": "default"},
        "message": "Hello world 2",
        "new_parameter": "newParam",
        "_app_example_com_database": DATABASE,
        "_app_example_com_database_spec": DATABASE["spec"],
    }


def test_object_variable_escapes_dots_and_dashes() -> None:
    """operator-sdk's escapeAnsibleKey: the product's group becomes a valid variable name."""
    watch = Watch(gvk=GroupVersionKind("peerdiscovery.irt-saintexupery.com", "v1alpha1", "SwarmPool"), role="r")
    assert object_variable(watch) == "_peerdiscovery_irt_saintexupery_com_swarmpool"
    assert escape_ansible_key("_cert-manager.k8s.io") == "_cert_manager_k8s_io"


def test_snake_case_can_be_turned_off() -> None:
    """snakeCaseParameters: false passes spec keys as they are."""
    parameters = make_parameters(DATABASE, watch=_watch(snake_case_parameters=False), finalizer_run=False)
    assert parameters["newParameter"] == "newParam"
    assert "new_parameter" not in parameters


def test_watch_vars_override_spec_and_finalizer_vars_only_apply_to_finalizer_runs() -> None:
    """Watch vars come after the spec; finalizer vars are added on finalizer runs only (operator-sdk's order)."""
    watch = _watch(
        vars={"message": "from the watch", "state": "present"},
        finalizer=Finalizer(name="x.io/f", vars={"state": "absent"}),
    )
    normal = make_parameters(DATABASE, watch=watch, finalizer_run=False)
    final = make_parameters(DATABASE, watch=watch, finalizer_run=True)
    assert (normal["message"], normal["state"]) == ("from the watch", "present")
    assert final["state"] == "absent"


def test_a_spec_less_object_gets_an_empty_spec() -> None:
    """operator-sdk adds an empty spec, so roles can always read it."""
    obj = {"apiVersion": "v1", "kind": "Database", "metadata": {"name": "n", "namespace": "ns"}}
    parameters = make_parameters(obj, watch=_watch(), finalizer_run=False)
    assert parameters["_app_example_com_database"]["spec"] == {}
    assert parameters["_app_example_com_database_spec"] == {}
    assert set(parameters) == {"ansible_operator_meta", "_app_example_com_database", "_app_example_com_database_spec"}


def test_mark_unsafe_wraps_every_string() -> None:
    """markUnsafe: every string, at any depth, becomes {__ansible_unsafe: ...}; other values stay."""
    assert mark_unsafe({"a": "{{ x }}", "b": [1, "y"], "c": True}) == {
        "a": {"__ansible_unsafe": "{{ x }}"},
        "b": [1, {"__ansible_unsafe": "y"}],
        "c": True,
    }
    parameters = make_parameters(DATABASE, watch=_watch(mark_unsafe=True), finalizer_run=False)
    assert parameters["message"] == {"__ansible_unsafe": "Hello world 2"}
    assert parameters["_app_example_com_database"]["metadata"]["name"] == {"__ansible_unsafe": "example"}
    assert parameters["ansible_operator_meta"] == {"name": "example", "namespace": "default"}


def test_role_play_is_the_one_operator_sdk_generates() -> None:
    """hosts localhost, no fact gathering, the role."""
    assert role_play("peerdiscovery.cluster_discovery.swarmpool", "localhost") == [
        {"hosts": "localhost", "gather_facts": False, "roles": [{"role": "peerdiscovery.cluster_discovery.swarmpool"}]}
    ]


def _event(event: str, host: str = "h", **data: Any) -> dict[str, Any]:
    return {"event": event, "event_data": {"host": host, **data}, "created": "2026-01-01T00:00:00+00:00"}


def _reader(*hosts: str) -> _EventReader:
    return _EventReader({host: HostOutcome() for host in hosts})


def test_failure_messages_come_from_res_msg_and_ignore_errors_is_ignored() -> None:
    """runner_on_failed gives res.msg; ignore_errors failures and other hosts' events do not count."""
    reader = _reader("a", "b")
    reader(_event("runner_on_failed", "a", res={"msg": "boom"}))
    reader(_event("runner_on_failed", "a", res={"msg": "tolerated"}, ignore_errors=True))
    reader(_event("runner_on_failed", "b", res={}))
    reader(_event("runner_on_unreachable", "b", res={"msg": "no route"}))
    reader(_event("runner_on_failed", "stranger", res={"msg": "not ours"}))
    assert reader.hosts["a"].failure_messages == ["boom"]
    assert reader.hosts["b"].failure_messages == [DEFAULT_FAILURE_MESSAGE, "no route"]


def test_stats_are_read_per_host() -> None:
    """playbook_on_stats gives every host's counts and the completion time."""
    reader = _reader("a", "b")
    reader(
        {
            "event": "playbook_on_stats",
            "created": "2026-05-01T10:00:00.5+00:00",
            "event_data": {"ok": {"a": 3, "b": 1}, "changed": {"a": 1}, "failures": {"b": 1}, "skipped": {}},
        }
    )
    assert reader.stats_received
    assert reader.stats == {"a": {"ok": 3, "changed": 1}, "b": {"ok": 1, "failures": 1}}
    assert reader.completion == "2026-05-01T10:00:00.5+00:00"


@pytest.mark.parametrize(
    "action",
    [
        pytest.param("requeue_after", id="short"),
        pytest.param("peerdiscovery.cluster_discovery.requeue_after", id="fqcn"),
        pytest.param("operator_sdk.util.requeue_after", id="operator-sdk-fqcn"),
    ],
)
def test_requeue_after_is_read_from_its_result(action: str) -> None:
    """The period of a requeue_after task becomes the host's requeue delay, whatever the module's spelling."""
    reader = _reader("a")
    reader(_event("runner_on_ok", "a", task_action=action, resolved_action=action, res={"period": "1m30s"}))
    assert reader.hosts["a"].requeue_after == 90.0


def test_a_bad_requeue_period_is_reported_not_applied() -> None:
    reader = _reader("a")
    reader(_event("runner_on_ok", "a", task_action="requeue_after", res={"period": "soon"}))
    assert reader.hosts["a"].requeue_after is None
    assert "invalid duration" in reader.hosts["a"].directive_errors[0]


def test_osdk_metric_requests_are_collected_in_order() -> None:
    reader = _reader("a")
    for value in (1.0, 2.0):
        reader(
            _event(
                "runner_on_ok",
                "a",
                task_action="peerdiscovery.cluster_discovery.osdk_metric",
                resolved_action="peerdiscovery.cluster_discovery.osdk_metric",
                res={"metric": {"name": "m", "description": "d", "gauge": {"set": value}}},
            )
        )
    assert [m["gauge"]["set"] for m in reader.hosts["a"].metrics] == [1.0, 2.0]


def test_a_looped_osdk_metric_applies_each_item_once() -> None:
    """Each item event carries one request; the loop's final result repeats them only under ``results``."""
    reader = _reader("a")
    action = "peerdiscovery.cluster_discovery.osdk_metric"
    requests = [
        {"name": "m", "description": "d", "labels": {"s": s}, "gauge": {"set": v}} for s, v in (("x", 1), ("y", 2))
    ]
    for request in requests:
        reader(_event("runner_item_on_ok", "a", task_action=action, resolved_action=action, res={"metric": request}))
    reader(
        _event(
            "runner_on_ok",
            "a",
            task_action=action,
            resolved_action=action,
            res={"results": [{"metric": request} for request in requests]},
        )
    )
    assert reader.hosts["a"].metrics == requests


def test_objects_returned_by_kubernetes_modules_are_recorded_with_their_owners() -> None:
    """k8s results (single, multi-document and looped) give uid, resourceVersion and owner uids."""

    def obj(name: str, rv: str, owner: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": rv}
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "x/v1", "kind": "K", "name": "o", "uid": owner}]
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}

    reader = _reader("a")
    reader(_event("runner_on_ok", "a", resolved_action="kubernetes.core.k8s", res={"result": obj("one", "10", "o1")}))
    reader(
        _event(
            "runner_on_ok",
            "a",
            resolved_action="kubernetes.core.k8s",
            res={"result": {"results": [{"result": obj("two", "11")}, obj("three", "12")]}},
        )
    )
    reader(_event("runner_item_on_ok", "a", resolved_action="kubernetes.core.k8s", res={"result": obj("four", "13")}))
    produced = reader.hosts["a"].produced
    assert set(produced) == {"uid-one", "uid-two", "uid-three", "uid-four"}
    assert produced["uid-one"].owner_uids == frozenset({"o1"})
    assert produced["uid-one"].resource_version == "10"
    assert produced["uid-two"].owner_uids == frozenset()
