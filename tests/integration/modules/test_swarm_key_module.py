"""The swarm_key module against a real kube-apiserver (the test bed's control plane), run through ansible-playbook.

Covers kubernetes.core's cycle for the Secret: create, modify (labels, owner
references), delete, each in check mode, for real, and again for idempotency,
asserting ``changed``, ``diff`` and the cluster's state; keys given by the
user (kept, refused when different, replaced on request); every kind of
malformed key, given or stored, refused with a clear message and nothing
overwritten; ``return_content`` under ``no_log``; ownership through a real
garbage collector (kube-controller-manager); Kubernetes access through
``K8S_AUTH_KUBECONFIG`` and the ``kubeconfig`` option; and that no key material
ever appears in any -vvv output or artifact of any run.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import (
    SwarmKey,
    generate,
    parse,
)
from playbook_runs import Run, Zygotes, run_tasks

pytestmark = pytest.mark.integration

MODULE = "peerdiscovery.cluster_discovery.swarm_key"
SEED_KEY = "/key/swarm/psk/1.0.0/\n/base16/\n0849c7ce4cb89ef22842da52295d7f21072bf1243fb6b7e5506533392adaea0c"


def secret(cp: Any, namespace: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = cp.read("secret", name, namespace=namespace)
    return found


def stored_key(cp: Any, namespace: str, name: str) -> SwarmKey:
    found = secret(cp, namespace, name)
    assert found is not None
    return parse(base64.b64decode(found["data"]["swarm-key"]))


def task(title: str, /, **args: Any) -> dict[str, Any]:
    return {"name": title, MODULE: args, "register": "result", "ignore_errors": True}


@pytest.fixture
def play(control_plane: Any, tmp_path: Path, zygotes: Zygotes) -> Any:
    """Run tasks against the test bed's control plane (kubeconfig through K8S_AUTH_KUBECONFIG)."""

    def run(*tasks: dict[str, Any], check: bool = False, diff: bool = True) -> Run:
        return run_tasks(
            list(tasks),
            base_dir=tmp_path,
            check=check,
            diff=diff,
            env={"K8S_AUTH_KUBECONFIG": str(control_plane.kubeconfig)},
            zygotes=zygotes,
        )

    return run


def test_the_kubernetes_core_cycle_create_modify_delete_in_check_mode_for_real_and_again(
    control_plane: Any, play: Any
) -> None:
    ns = control_plane.create_namespace("swarm-key-cycle")
    owner = json.loads(control_plane.kubectl("create", "configmap", "-n", ns, "owner", "-o", "json").stdout)
    args = {"name": "private-swarm", "namespace": ns}
    runs: list[Run] = []

    # create
    run = play(task("Create", **args), check=True)
    runs.append(run)
    assert run["Create"]["changed"] is True
    assert run["Create"]["generated"] is True
    assert run["Create"]["fingerprint"] is None
    assert run["Create"]["diff"]["before"] == {}
    assert secret(control_plane, ns, "private-swarm") is None

    run = play(task("Create", **args))
    runs.append(run)
    created = run["Create"]
    assert (created["changed"], created["generated"]) == (True, True)
    key = stored_key(control_plane, ns, "private-swarm")
    assert created["fingerprint"] == key.fingerprint
    assert created["secret"] == {"name": "private-swarm", "namespace": ns}
    assert created["diff"]["after"]["fingerprint"] == key.fingerprint
    assert "content" not in created
    assert secret(control_plane, ns, "private-swarm")["type"] == "Opaque"  # type: ignore[index]

    run = play(task("Create", **args))
    runs.append(run)
    assert run["Create"]["changed"] is False
    assert run["Create"]["generated"] is False
    assert run["Create"]["fingerprint"] == key.fingerprint
    assert run["Create"]["diff"]["before"] == run["Create"]["diff"]["after"]

    # modify: labels and an owner reference
    modified = {
        **args,
        "labels": {"app.kubernetes.io/managed-by": "cluster-discovery"},
        "owner_references": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        ],
    }
    run = play(task("Modify", **modified), check=True)
    runs.append(run)
    assert run["Modify"]["changed"] is True
    assert run["Modify"]["diff"]["after"]["labels"] == {"app.kubernetes.io/managed-by": "cluster-discovery"}
    assert not (secret(control_plane, ns, "private-swarm") or {})["metadata"].get("labels")

    run = play(task("Modify", **modified))
    runs.append(run)
    assert run["Modify"]["changed"] is True
    assert run["Modify"]["fingerprint"] == key.fingerprint
    metadata = secret(control_plane, ns, "private-swarm")["metadata"]  # type: ignore[index]
    assert metadata["labels"] == {"app.kubernetes.io/managed-by": "cluster-discovery"}
    assert [ref["uid"] for ref in metadata["ownerReferences"]] == [owner["metadata"]["uid"]]
    assert stored_key(control_plane, ns, "private-swarm") == key

    run = play(task("Modify", **modified))
    runs.append(run)
    assert run["Modify"]["changed"] is False

    # delete
    run = play(task("Delete", state="absent", **args), check=True)
    runs.append(run)
    assert run["Delete"]["changed"] is True
    assert run["Delete"]["diff"]["before"]["fingerprint"] == key.fingerprint
    assert run["Delete"]["diff"]["after"] == {}
    assert secret(control_plane, ns, "private-swarm") is not None

    run = play(task("Delete", state="absent", **args))
    runs.append(run)
    assert run["Delete"]["changed"] is True
    assert secret(control_plane, ns, "private-swarm") is None

    run = play(task("Delete", state="absent", **args))
    runs.append(run)
    assert run["Delete"]["changed"] is False

    for run in runs:
        assert "ESTABLISH LOCAL CONNECTION" in run.output  # the run really was at -vvv
        run.assert_never_shows(*key.sensitive_values())


def test_a_given_key_is_stored_kept_refused_when_different_and_replaced_on_request(
    control_plane: Any, play: Any
) -> None:
    ns = control_plane.create_namespace("swarm-key-given")
    other = generate()
    args = {"name": "joined", "namespace": ns}

    run = play(task("Store", key=SEED_KEY + "\n", **args), task("Again", key=SEED_KEY, **args))
    assert (run["Store"]["changed"], run["Store"]["generated"]) == (True, False)
    assert run["Again"]["changed"] is False
    assert stored_key(control_plane, ns, "joined") == parse(SEED_KEY)

    run2 = play(task("Different", key=other.text, **args))
    failed = run2["Different"]
    assert failed["failed"] is True
    assert parse(SEED_KEY).fingerprint in failed["msg"] and other.fingerprint in failed["msg"]
    assert "regenerate=always" in failed["msg"]
    assert "Traceback" not in failed["msg"]
    assert stored_key(control_plane, ns, "joined") == parse(SEED_KEY)

    run3 = play(task("Never", key=other.text, regenerate="never", **args))
    assert run3["Never"]["changed"] is False
    assert any("regenerate=never" in warning for warning in run3["Never"]["warnings"])

    run4 = play(task("Replace", key=other.text, regenerate="always", **args), task("Replace", key=other.text, **args))
    assert stored_key(control_plane, ns, "joined") == other

    for each in (run, run2, run3, run4):
        each.assert_never_shows(*parse(SEED_KEY).sensitive_values(), *other.sensitive_values())


HEX = "0849c7ce4cb89ef22842da52295d7f21072bf1243fb6b7e5506533392adaea0c"
MALFORMED = [
    pytest.param(f"/key/swarm/psk/2.0.0/\n/base16/\n{HEX}", "line 1 (header)", id="header"),
    pytest.param(f"/key/swarm/psk/1.0.0/\n/base64/\n{HEX}", "line 2 (encoding)", id="encoding"),
    pytest.param(f"/key/swarm/psk/1.0.0/\n/base16/\n{HEX[:-4]}", "line 3 (length)", id="length"),
    pytest.param(f"/key/swarm/psk/1.0.0/\n/base16/\n{HEX[:-1]}z", "line 3 (non-hex)", id="non-hex"),
]


@pytest.mark.parametrize(("text", "named"), MALFORMED)
def test_a_malformed_given_key_is_refused_by_line_and_rule_and_nothing_is_written(
    control_plane: Any, play: Any, text: str, named: str
) -> None:
    ns = control_plane.create_namespace("swarm-key-bad-input")
    run = play(task("Store", name="bad", namespace=ns, key=text))
    failed = run["Store"]
    assert failed["failed"] is True
    assert failed["msg"].startswith(f"Malformed swarm key, {named}:")
    assert "Traceback" not in failed["msg"]
    assert secret(control_plane, ns, "bad") is None
    run.assert_never_shows(HEX[8:40], text)


@pytest.mark.parametrize(("text", "named"), MALFORMED)
def test_a_malformed_stored_key_fails_clearly_and_is_not_overwritten_unless_regenerate_always(
    control_plane: Any, play: Any, text: str, named: str
) -> None:
    ns = control_plane.create_namespace("swarm-key-bad-stored")
    control_plane.kubectl("create", "secret", "generic", "-n", ns, "stored", f"--from-literal=swarm-key={text}")
    before = secret(control_plane, ns, "stored")

    run = play(task("Keep", name="stored", namespace=ns))
    failed = run["Keep"]
    assert failed["failed"] is True
    assert (
        f"Secret {ns}/stored holds a malformed swarm key under swarm-key: Malformed swarm key, {named}" in failed["msg"]
    )
    assert "left unchanged" in failed["msg"]
    assert secret(control_plane, ns, "stored")["data"] == before["data"]  # type: ignore[index]

    replaced = play(task("Replace", name="stored", namespace=ns, regenerate="always"))
    assert replaced["Replace"]["changed"] is True
    new_key = stored_key(control_plane, ns, "stored")
    assert replaced["Replace"]["fingerprint"] == new_key.fingerprint
    for a_run in (run, replaced):
        a_run.assert_never_shows(HEX[8:40], *new_key.sensitive_values())


def test_return_content_under_no_log_hands_the_key_to_later_tasks_without_printing_it(
    control_plane: Any, play: Any, tmp_path: Path
) -> None:
    ns = control_plane.create_namespace("swarm-key-content")
    target = tmp_path / "swarm.key"
    run = play(
        {
            "name": "Create and read",
            MODULE: {"name": "content", "namespace": ns, "return_content": True},
            "register": "swarm",
            "no_log": True,
        },
        {
            "name": "Write swarm.key",
            "ansible.builtin.copy": {"content": "{{ swarm.content }}\n", "dest": str(target), "mode": "0400"},
            "no_log": True,
        },
    )
    assert run.status == "successful"
    key = stored_key(control_plane, ns, "content")
    assert parse(target.read_text()) == key
    run.assert_never_shows(*key.sensitive_values())


def test_the_output_check_does_see_a_key_that_is_returned_without_no_log(control_plane: Any, play: Any) -> None:
    """The converse of every assert_never_shows: a key the user asked to print is found by the same check."""
    ns = control_plane.create_namespace("swarm-key-printed")
    run = play(task("Print", name="printed", namespace=ns, return_content=True))
    key = stored_key(control_plane, ns, "printed")
    assert run["Print"]["content"] == key.text
    with pytest.raises(AssertionError):
        run.assert_never_shows(key.key.hex())


def test_owner_references_let_the_garbage_collector_delete_the_secret_with_its_owner(
    control_plane: Any, play: Any
) -> None:
    ns = control_plane.create_namespace("swarm-key-owner")
    owner = json.loads(control_plane.kubectl("create", "configmap", "-n", ns, "pool", "-o", "json").stdout)
    ref = {"api_version": "v1", "kind": "ConfigMap", "name": "pool", "uid": owner["metadata"]["uid"]}
    run = play(task("Owned", name="owned", namespace=ns, owner_references=[ref]))
    assert run["Owned"]["changed"] is True
    control_plane.kubectl("delete", "configmap", "-n", ns, "pool")
    deadline = time.monotonic() + 60
    while secret(control_plane, ns, "owned") is not None:
        assert time.monotonic() < deadline, "the garbage collector did not delete the owned Secret"
        time.sleep(0.5)


def test_the_kubeconfig_option_works_as_in_kubernetes_core(control_plane: Any, tmp_path: Path) -> None:
    ns = control_plane.create_namespace("swarm-key-kubeconfig")
    run = run_tasks(
        [task("Create", name="by-option", namespace=ns, kubeconfig=str(control_plane.kubeconfig))],
        base_dir=tmp_path,
        env={"K8S_AUTH_KUBECONFIG": str(tmp_path / "missing-kubeconfig")},
    )
    assert run["Create"]["changed"] is True
    assert secret(control_plane, ns, "by-option") is not None


def test_a_missing_namespace_fails_with_the_api_servers_reason_and_no_traceback_in_msg(
    control_plane: Any, play: Any
) -> None:
    run = play(task("Create", name="nowhere", namespace="no-such-namespace"))
    failed = run["Create"]
    assert failed["failed"] is True
    assert failed["msg"].startswith("Failed to create Secret no-such-namespace/nowhere: ")
    assert "not found" in failed["msg"]
    assert "Traceback" not in failed["msg"]
