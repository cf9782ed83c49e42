"""The README's layout section names every file of the collection's module_utils, the runner and the agent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = [
    ROOT / "plugins" / "module_utils",
    ROOT / "plugins" / "plugin_utils",
    ROOT / "runner" / "src" / "cluster_discovery_operator",
    ROOT / "agent" / "src" / "cluster_discovery_agent",
]


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## Layout\n") : readme.index("## Tests\n")]


@pytest.mark.parametrize(
    "path",
    [path for package in PACKAGES for path in sorted(package.glob("*.py")) if path.name != "__init__.py"],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_the_layout_section_names_every_file(path: Path) -> None:
    assert f"`{path.name}`" in layout_section() or f"`{path.relative_to(ROOT)}`" in layout_section()


def test_the_layout_section_names_no_file_that_is_gone() -> None:
    named = set(re.findall(r"`([a-z_]+\.py)`", layout_section()))
    present = {path.name for package in PACKAGES for path in package.glob("*.py")}
    assert named - present == set()
