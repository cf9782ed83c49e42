"""Module payloads kept from run to run by the runner's strategy (ansible_plugins/module_payloads.py).

Real ansible-playbook runs with cdo_linear and a store, on a collection made
here: the second run uses the payload the first built, and a change to a
module_util the module imports is built anew and runs, whatever was kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cluster_discovery_operator.ansible_plugins.module_payloads import (
    STORE_VARIABLE,
    PayloadStore,
    sources_fingerprint,
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


def collection(root: Path, word: str) -> Path:
    plugins = root / "ansible_collections" / "testns" / "payloads" / "plugins"
    (plugins / "modules").mkdir(parents=True, exist_ok=True)
    (plugins / "module_utils").mkdir(parents=True, exist_ok=True)
    (root / "ansible_collections" / "testns" / "payloads" / "galaxy.yml").write_text(
        "namespace: testns\nname: payloads\nversion: 1.0.0\n"
    )
    (plugins / "modules" / "echo.py").write_text(MODULE)
    (plugins / "module_utils" / "words.py").write_text(f"WORD = {word!r}\n")
    return root


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
    kept = [path.name for folder in store.iterdir() for path in folder.iterdir()]
    assert "ansible_collections.testns.payloads.plugins.modules.echo-ZIP_DEFLATED-none" in kept
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
    assert len(list(store.iterdir())) == 2, "the older sources' payloads stay apart"


def test_the_fingerprint_covers_modules_and_module_utils_of_every_collection_path(tmp_path: Path) -> None:
    ansible = tmp_path / "ansible"
    (ansible / "module_utils").mkdir(parents=True)
    (ansible / "module_utils" / "basic.py").write_text("x = 1\n")
    first = collection(tmp_path / "first", "a")

    def fingerprint(*paths: Path) -> str:
        return sources_fingerprint(ansible, [os.fspath(path) for path in paths], version="2.19.0")

    before = fingerprint(first)
    assert fingerprint(first) == before
    assert sources_fingerprint(ansible, [os.fspath(first)], version="2.19.1") != before
    (first / "ansible_collections" / "testns" / "payloads" / "plugins" / "module_utils" / "new.py").write_text("")
    assert fingerprint(first) != before
    before = fingerprint(first)
    (ansible / "module_utils" / "basic.py").write_text("x = 2\n")
    assert fingerprint(first) != before
    before = fingerprint(first)
    assert fingerprint(first, collection(tmp_path / "second", "b")) != before
    (first / "ansible_collections" / "testns" / "payloads" / "README.md").write_text("not a source")
    assert fingerprint(first) == before


def test_only_payloads_of_covered_sources_are_kept_and_nothing_kept_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    names = [
        "ansible.modules.command-ZIP_DEFLATED-none",
        "ansible_collections.ns.c.plugins.modules.m-ZIP_DEFLATED-none",
        "ansible.legacy.from_a_roles_library-ZIP_DEFLATED-none",  # its folder is not in the fingerprint
        "ansible.modules.command-ZIP_DEFLATED-none.lock",
    ]
    for name in names:
        (cache / name).write_text(name)
    store = PayloadStore(tmp_path / "store", "f1", cache)
    assert store.keep() == 2
    assert sorted(path.name for path in store.folder.iterdir()) == sorted(names[:2])
    assert oct(store.folder.stat().st_mode & 0o777) == "0o700"
    (cache / names[0]).write_text("built again")
    assert store.keep() == 0 and (store.folder / names[0]).read_text() == names[0]
    fresh = tmp_path / "fresh-cache"
    assert PayloadStore(tmp_path / "store", "f1", fresh).restore() == 2
    assert sorted(path.name for path in fresh.iterdir()) == sorted(names[:2])
    assert PayloadStore(tmp_path / "store", "f2", fresh).restore() == 0, "another fingerprint: nothing"


def test_the_runner_gives_its_runs_a_private_store_and_removes_it_when_it_stops(tmp_path: Path) -> None:
    runner = AnsibleRunner(RunningSettings(artifacts_dir=tmp_path / "artifacts", module_zygote=False), KubeSettings())
    store = Path(runner._envvars[STORE_VARIABLE])
    assert store.parent == tmp_path / "artifacts" and oct(store.stat().st_mode & 0o777) == "0o700"
    runner.close()
    assert not store.exists()
    without = RunningSettings(artifacts_dir=tmp_path / "linear", module_zygote=False, skip_in_strategy=False)
    assert STORE_VARIABLE not in AnsibleRunner(without, KubeSettings())._envvars, "only its strategy reads one"
