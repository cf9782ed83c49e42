"""Module payloads kept from run to run by the runner's strategy (ansible_plugins/module_payloads.py).

Real ansible-playbook runs with cdo_linear and a store, on a collection made
here: the second run uses the payload the first built, a change to a
module_util the module imports is built anew and runs, whatever was kept, and a
change to a collection the payload holds nothing of keeps it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cluster_discovery_operator.ansible_plugins.module_payloads import (
    STORE_VARIABLE,
    PayloadStore,
    base_fingerprint,
    collection_digest,
    installed_collections,
    payload_collections,
)
from cluster_discovery_operator.running import STRATEGY, STRATEGY_PLUGINS, AnsibleRunner
from cluster_discovery_operator.settings import KubeSettings, RunningSettings

MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.testns.payloads.plugins.module_utils.words import WORD


def main():
    AnsibleModule(argument_spec={}).exit_json(changed=False, word=WORD)


if __name__ == "__main__":
    main()
"""


ECHO = "ansible_collections.testns.payloads.plugins.modules.echo-ZIP_DEFLATED-none"


def collection(root: Path, word: str, *, name: str = "payloads") -> Path:
    plugins = root / "ansible_collections" / "testns" / name / "plugins"
    (plugins / "modules").mkdir(parents=True, exist_ok=True)
    (plugins / "module_utils").mkdir(parents=True, exist_ok=True)
    (root / "ansible_collections" / "testns" / name / "galaxy.yml").write_text(
        f"namespace: testns\nname: {name}\nversion: 1.0.0\n"
    )
    (plugins / "modules" / "echo.py").write_text(MODULE)
    (plugins / "module_utils" / "words.py").write_text(f"WORD = {word!r}\n")
    return root


def kept_echoes(store: Path) -> list[Path]:
    """The kept payloads of the echo module: ``<store>/<base>/<digest of its collections>/<payload>``."""
    return sorted(store.glob(f"*/*/{ECHO}"))


def run(tmp_path: Path, collections: Path, store: Path) -> str:
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - testns.payloads.echo:\n      register: said\n"
        "    - ansible.builtin.debug:\n        msg: 'said {{ said.word }}'\n"
    )
    completed = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-c",
            "local",
            "-i",
            "localhost,",
            os.fspath(play),
        ],
        env={
            **os.environ,
            "ANSIBLE_STRATEGY_PLUGINS": os.fspath(STRATEGY_PLUGINS),
            "ANSIBLE_STRATEGY": STRATEGY,
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_COLLECTIONS_PATH": os.fspath(collections),
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_DEBUG": "True",  # ansible says whether it built a payload or used one it had
            STORE_VARIABLE: os.fspath(store),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def test_a_run_uses_the_payload_an_earlier_run_built_from_the_same_sources(tmp_path: Path) -> None:
    collections = collection(tmp_path / "collections", "first")
    store = tmp_path / "store"
    first = run(tmp_path, collections, store)
    assert "ANSIBALLZ: Creating module" in first and '"msg": "said first"' in first
    assert len(kept_echoes(store)) == 1
    second = run(tmp_path, collections, store)
    assert "ANSIBALLZ: Creating module" not in second and "ANSIBALLZ: using cached module" in second
    assert '"msg": "said first"' in second


def test_a_changed_module_util_is_built_again_and_runs_as_changed(tmp_path: Path) -> None:
    collections = collection(tmp_path / "collections", "first")
    store = tmp_path / "store"
    run(tmp_path, collections, store)
    collection(collections, "second, and longer")  # what the module imports, not the module
    changed = run(tmp_path, collections, store)
    assert "ANSIBALLZ: Creating module" in changed
    assert '"msg": "said second, and longer"' in changed
    assert len(kept_echoes(store)) == 2, "the older sources' payloads stay apart"


def test_a_change_to_a_collection_the_payload_holds_nothing_of_keeps_the_payload(tmp_path: Path) -> None:
    collections = collection(tmp_path / "collections", "first")
    collection(collections, "other", name="other")
    store = tmp_path / "store"
    run(tmp_path, collections, store)
    collection(collections, "other, and changed", name="other")
    again = run(tmp_path, collections, store)
    assert "ANSIBALLZ: Creating module" not in again and "ANSIBALLZ: using cached module" in again
    assert '"msg": "said first"' in again
    assert len(kept_echoes(store)) == 1


def test_the_base_covers_versions_ansibles_module_sources_and_where_each_collection_is(tmp_path: Path) -> None:
    ansible = tmp_path / "ansible"
    (ansible / "module_utils").mkdir(parents=True)
    (ansible / "module_utils" / "basic.py").write_text("x = 1\n")
    first = collection(tmp_path / "first", "a")

    def base(*paths: Path, version: str = "2.19.0") -> str:
        found = installed_collections([os.fspath(path) for path in paths])
        return base_fingerprint(ansible, found, version=version)

    before = base(first)
    assert base(first) == before
    assert base(first, version="2.19.1") != before
    (ansible / "module_utils" / "basic.py").write_text("x = 2\n")
    assert base(first) != before
    before = base(first)
    second = collection(tmp_path / "second", "b", name="other")
    assert base(first, second) != before, "a collection installed: a module may now import it"
    shadow = collection(tmp_path / "shadow", "c")
    assert installed_collections([os.fspath(shadow), os.fspath(first)])["testns.payloads"].parent.parent == (
        shadow / "ansible_collections"
    ), "the first path wins, as ansible resolves it"
    assert base(shadow, first) != base(first, shadow)


def test_a_collections_digest_covers_its_modules_and_module_utils_only(tmp_path: Path) -> None:
    payloads = collection(tmp_path / "first", "a") / "ansible_collections" / "testns" / "payloads"
    before = collection_digest(payloads)
    assert collection_digest(payloads) == before
    (payloads / "plugins" / "module_utils" / "new.py").write_text("")
    assert collection_digest(payloads) != before
    before = collection_digest(payloads)
    (payloads / "plugins" / "module_utils" / "words.py").write_text("WORD = 'b'\n")
    assert collection_digest(payloads) != before
    before = collection_digest(payloads)
    (payloads / "README.md").write_text("not a source")
    (payloads / "plugins" / "filter").mkdir()
    (payloads / "plugins" / "filter" / "f.py").write_text("not in a payload")
    assert collection_digest(payloads) == before


def test_only_payloads_of_covered_sources_are_kept_under_their_collections_digests_and_never_replaced(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    names = [
        "ansible.modules.command-ZIP_DEFLATED-none",
        "ansible_collections.ns.c.plugins.modules.m-ZIP_DEFLATED-none",
        "ansible.legacy.from_a_roles_library-ZIP_DEFLATED-none",  # its folder is not digested
        "ansible.modules.command-ZIP_DEFLATED-none.lock",
    ]
    for name in names:
        (cache / name).write_text(name)
    holds = {names[0]: [], names[1]: ["ns.c"]}
    digests = {"ns.c": "c1"}

    def store(base: str, run_cache: Path) -> PayloadStore:
        return PayloadStore(
            tmp_path / "store",
            base,
            run_cache,
            {"ns.c": tmp_path / "ns-c"},
            digest=lambda path: digests["ns.c"],
            collections_of=lambda payload: holds.get(payload.name),
        )

    kept = store("b1", cache)
    assert kept.keep() == 2
    assert sorted(path.name for path in kept.folder.glob("*/*")) == sorted(names[:2])
    assert oct(kept.folder.stat().st_mode & 0o777) == "0o700"
    (cache / names[0]).write_text("built again")
    assert store("b1", cache).keep() == 0
    assert [path.read_text() for path in kept.folder.glob(f"*/{names[0]}")] == [names[0]]
    fresh = tmp_path / "fresh-cache"
    assert store("b1", fresh).restore() == 2
    assert sorted(path.name for path in fresh.iterdir()) == sorted(names[:2])
    assert store("b2", tmp_path / "other-base").restore() == 0, "another base fingerprint: nothing"
    digests["ns.c"] = "c2"
    changed = tmp_path / "changed-cache"
    assert store("b1", changed).restore() == 1, "ns.c changed: only what holds nothing of it"
    assert [path.name for path in changed.iterdir()] == [names[0]]
    assert payload_collections(cache / names[0]) is None, "not a payload ansible wrote: not kept"


def test_the_runner_gives_its_runs_a_private_store_and_removes_it_when_it_stops(tmp_path: Path) -> None:
    runner = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path / "artifacts", module_zygote=False), KubeSettings())
    store = Path(runner._envvars[STORE_VARIABLE])
    assert store.parent == tmp_path / "artifacts" and oct(store.stat().st_mode & 0o777) == "0o700"
    runner.close()
    assert not store.exists()
    without = RunningSettings(artifacts_dir=tmp_path / "linear", module_zygote=False, skip_in_strategy=False)
    assert STORE_VARIABLE not in AnsibleRunner(without, KubeSettings())._envvars, "only its strategy reads one"
