"""changelogs/: antsibull-changelog's configuration names the changelog the repository keeps, and every fragment
uses its sections."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHANGELOGS = REPO_ROOT / "changelogs"
CONFIG = yaml.safe_load((CHANGELOGS / "config.yaml").read_text())
SECTIONS = {name for name, _title in CONFIG["sections"]}


def test_the_configuration_writes_the_changelog_the_repository_keeps() -> None:
    # antsibull-changelog writes the template's name with each output format's extension.
    template = (CHANGELOGS / CONFIG["changelog_filename_template"]).resolve()
    written = {template.with_suffix(f".{extension}") for extension in CONFIG["output_formats"]}
    assert written == {REPO_ROOT / "CHANGELOG.md"}
    assert (REPO_ROOT / "CHANGELOG.md").is_file()


@pytest.mark.parametrize("fragment", sorted((CHANGELOGS / "fragments").glob("*.yml")), ids=lambda p: p.name)
def test_every_fragment_uses_the_configured_sections(fragment: Path) -> None:
    entries = yaml.safe_load(fragment.read_text())
    assert isinstance(entries, dict) and entries
    assert set(entries) <= SECTIONS, set(entries) - SECTIONS
    for section, items in entries.items():
        assert isinstance(items, list) and all(isinstance(item, str) and item for item in items), section
