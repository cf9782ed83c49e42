"""The benchmarks' work folder: removed when a benchmark ends, kept and named when it fails."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bench.figures import work_folder


def test_the_folder_goes_when_the_benchmark_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with work_folder("bench-test-") as folder:
        (folder / "etcd").mkdir()
        (folder / "admin.key").write_text("key")
    assert folder.parent == tmp_path and not folder.exists()


def test_the_folder_stays_and_is_named_when_the_benchmark_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(KeyboardInterrupt), work_folder("bench-test-") as folder:
        (folder / "cluster.log").write_text("what went wrong")
        raise KeyboardInterrupt
    assert (folder / "cluster.log").read_text() == "what went wrong"
    assert f"the work folder is kept: {folder}" in capsys.readouterr().out
