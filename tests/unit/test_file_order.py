"""The order `make test` hands files to its workers in (tests/conftest.py)."""

from __future__ import annotations

from testbed.collection import REPO_ROOT
from tests.conftest import LONGEST_FIRST


def test_every_file_listed_longest_first_exists_once() -> None:
    assert [path for path in LONGEST_FIRST if not (REPO_ROOT / path).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_the_make_target_keeps_the_collected_order() -> None:
    # Without it xdist sorts files by their number of tests and LONGEST_FIRST has no effect.
    test_recipe = (REPO_ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "--dist loadfile" in test_recipe and "--no-loadscope-reorder" in test_recipe
