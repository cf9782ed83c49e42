"""Templates compiled once per process (ansible_plugins/compiled_templates.py) render exactly as ansible's own.

Each mode runs in a process of its own, since installing the cache changes
ansible's Jinja environment for the whole process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

RENDER = textwrap.dedent(
    r"""
    import json, sys
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    cache = None
    if sys.argv[1] == "cached":
        from cluster_discovery_operator.ansible_plugins.compiled_templates import install
        cache = install()

    def outcome(call):
        try:
            return ["ok", call()]
        except Exception as err:
            return [type(err).__name__, str(err)]

    out = []
    for round_ in range(2):  # the second round is what the cache answers
        for variables in ({"a": 1, "items": [1, 2]}, {"a": 7, "items": []}):
            templar = Templar(loader=DataLoader(), variables=variables)  # a new environment, as per task and host
            for source in (
                "{{ a + 1 }}",
                "{{ items | length }} of {{ a }}",
                "{{ 'x\\ty' }}",
                "#jinja2:variable_start_string:'[[', variable_end_string:']]'\n[[ a ]] {{ a }}",
                "[[ a ]] {{ a }}",
                "{{ a + }}",
            ):
                for escape in (True, False):
                    out.append(outcome(lambda: templar.template(trust_as_template(source), escape_backslashes=escape)))
            for condition in ("a > 3", "items | length > 0", "a >", "undefined_name == 1"):
                out.append(outcome(lambda: templar.evaluate_conditional(trust_as_template(condition))))
            out.append(outcome(lambda: templar.template("{{ a }}")))  # untrusted: never compiled, cached or not
    print(json.dumps({"out": out, "hits": cache and cache.hits, "misses": cache and cache.misses}))
    """
)


def render(mode: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", RENDER, mode], capture_output=True, text=True, check=True, timeout=120)
    return dict(json.loads(done.stdout))


def test_cached_compilation_renders_and_fails_exactly_as_ansible_does() -> None:
    plain, cached = render("plain"), render("cached")
    assert cached["out"] == plain["out"]
    assert ["ok", 2] in plain["out"] and ["ok", "1 {{ a }}"] in plain["out"]  # the cases exercise what they say
    assert any(kind == "AnsibleTemplateSyntaxError" for kind, _ in plain["out"])


def test_each_source_and_setting_is_compiled_once_whatever_the_environment() -> None:
    cached = render("cached")
    # Distinct compilations: 5 valid templates x 2 escape settings (the overlay header makes the 4th its own
    # setting), and 3 valid conditions; the failing template and condition are compiled each time, never kept.
    # Compiled sources: 2 rounds x 2 environments x (12 templates + 4 conditions), of which 10 failed.
    assert cached["misses"] == 5 * 2 + 3
    assert cached["hits"] == 2 * 2 * (12 + 4) - 2 * 2 * 3 - cached["misses"]
