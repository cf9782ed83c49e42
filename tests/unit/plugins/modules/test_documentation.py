"""Every module's documentation against its code: a sanity test in the spirit of ansible-test's validate-modules.

For each file in plugins/modules (so modules added later are checked too):
it compiles under this Python, DOCUMENTATION/EXAMPLES/RETURN parse as YAML,
``ansible-doc`` renders it, the documented options (with their doc fragments,
as ansible-doc merges them) match the argument spec the module really builds
(names, types, defaults, choices, elements, required, aliases, suboptions),
and the examples call the module by its fully qualified name. The argument
spec is captured by stopping AnsibleModule's constructor, as validate-modules
does, so no module needs a particular helper function. No network.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils import basic

REPO = Path(__file__).resolve().parents[4]
MODULES_DIR = REPO / "plugins" / "modules"
COLLECTION = "peerdiscovery.cluster_discovery"
MODULES = sorted(path.stem for path in MODULES_DIR.glob("*.py") if not path.name.startswith("_"))
ANSIBLE_DOC = Path(sys.executable).with_name("ansible-doc")


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("argument spec captured")
        self.kwargs = kwargs


def captured_argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    def stop(self: object, *args: Any, **kwargs: Any) -> None:
        raise _Captured(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "__init__", stop)
    module = importlib.import_module(f"ansible_collections.{COLLECTION}.plugins.modules.{name}")
    with pytest.raises(_Captured) as caught:
        module.main()
    return dict(caught.value.kwargs["argument_spec"])


def doc_strings(name: str) -> dict[str, str]:
    tree = ast.parse((MODULES_DIR / f"{name}.py").read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target in ("DOCUMENTATION", "EXAMPLES", "RETURN") and isinstance(node.value, ast.Constant):
                found[target] = node.value.value
    return found


@functools.cache
def _ansible_doc(as_json: bool) -> str:
    """One ansible-doc run for every module: each run is a Python start and a collection scan."""
    reply = subprocess.run(
        [os.fspath(ANSIBLE_DOC), *(["--json"] if as_json else []), *(f"{COLLECTION}.{name}" for name in MODULES)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        check=False,
    )
    assert reply.returncode == 0, reply.stderr
    assert "ERROR" not in reply.stderr, reply.stderr
    return reply.stdout


def ansible_doc_json(name: str) -> dict[str, Any]:
    return json.loads(_ansible_doc(True))[f"{COLLECTION}.{name}"]


def ansible_doc_text(name: str) -> str:
    """The part of ansible-doc's text output about module ``name``."""
    sections = re.split(r"(?m)^> MODULE ", _ansible_doc(False))
    matching = [
        section for section in sections if re.sub(r"\x1b\[[0-9;]*m", "", section).startswith(f"{COLLECTION}.{name} ")
    ]
    assert len(matching) == 1, f"ansible-doc rendered no section for {name}"
    return re.sub(r"\x1b\[[0-9;]*m", "", matching[0])


def compare_options(documented: dict[str, Any], spec: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    for name in sorted(set(documented) ^ set(spec)):
        side = "documented but not in the argument spec" if name in documented else "in the argument spec, undocumented"
        problems.append(f"{where}{name}: {side}")
    for name in sorted(set(documented) & set(spec)):
        doc, arg = documented[name], spec[name]
        arg_type = arg.get("type", "str")
        if callable(arg_type):
            arg_type = "raw"  # a type function (kubernetes.core's list_dict_str) is documented as raw input
        checks = {
            "type": (doc.get("type", "str"), arg_type),
            "required": (bool(doc.get("required", False)), bool(arg.get("required", False))),
            "default": (doc.get("default"), arg.get("default")),
            "choices": (doc.get("choices"), arg.get("choices")),
            "elements": (doc.get("elements"), arg.get("elements")),
            "aliases": (sorted(doc.get("aliases") or []), sorted(arg.get("aliases") or [])),
        }
        if doc.get("type") == "raw" and callable(arg.get("type")):
            checks.pop("type")
        for field, (doc_value, arg_value) in checks.items():
            if doc_value != arg_value:
                problems.append(f"{where}{name}.{field}: documented {doc_value!r}, argument spec {arg_value!r}")
        if doc.get("suboptions") or arg.get("options"):
            problems += compare_options(doc.get("suboptions") or {}, arg.get("options") or {}, f"{where}{name}.")
    return problems


def test_the_comparison_reports_each_kind_of_drift() -> None:
    documented = {
        "a": {"type": "str"},
        "b": {"type": "int", "default": 1},
        "c": {"type": "list", "elements": "dict", "suboptions": {"x": {"type": "str", "aliases": ["y"]}}},
    }
    spec = {
        "b": {"type": "int", "default": 2},
        "c": {"type": "list", "elements": "dict", "options": {"x": {"type": "str"}, "z": {"type": "bool"}}},
        "d": {"type": "bool", "required": True},
    }
    assert compare_options(documented, spec, "") == [
        "a: documented but not in the argument spec",
        "d: in the argument spec, undocumented",
        "b.default: documented 1, argument spec 2",
        "c.z: in the argument spec, undocumented",
        "c.x.aliases: documented ['y'], argument spec []",
    ]


def test_there_are_modules_to_check() -> None:
    assert {"swarm_key", "ipfs_swarm"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_the_module_compiles_under_this_python(name: str) -> None:
    path = MODULES_DIR / f"{name}.py"
    compile(path.read_text(), os.fspath(path), "exec", dont_inherit=True)


@pytest.mark.parametrize("name", MODULES)
def test_documentation_examples_and_return_parse_as_yaml(name: str) -> None:
    strings = doc_strings(name)
    assert set(strings) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(strings["DOCUMENTATION"])
    assert documentation["module"] == name
    assert documentation["short_description"]
    assert set(documentation["attributes"]) >= {"check_mode", "diff_mode", "idempotent"}
    examples = yaml.safe_load(strings["EXAMPLES"])
    assert isinstance(examples, list) and examples
    returned = yaml.safe_load(strings["RETURN"])
    assert isinstance(returned, dict)
    for key, value in returned.items():
        assert {"description", "returned", "type"} <= set(value), f"RETURN {key} lacks description/returned/type"


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module(name: str) -> None:
    text = ansible_doc_text(name)
    assert "OPTIONS" in text and "RETURN VALUES" in text and "EXAMPLES" in text


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_the_argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    documented = ansible_doc_json(name)["doc"].get("options") or {}
    spec = captured_argument_spec(name, monkeypatch)
    assert compare_options(documented, spec, "") == []


@pytest.mark.parametrize("name", MODULES)
def test_every_example_calls_the_module_by_its_fully_qualified_name(name: str) -> None:
    examples = yaml.safe_load(doc_strings(name)["EXAMPLES"])
    calling = [task for task in examples if f"{COLLECTION}.{name}" in task]
    assert calling, f"no example calls {COLLECTION}.{name}"
    for task in examples:
        assert task.get("name"), "every example task has a name"
        assert name not in task, f"example {task['name']!r} uses the short name"
