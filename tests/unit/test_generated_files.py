"""The write-or-check convention of generated files: a stale or missing file fails --check."""

from pathlib import Path

import pytest

from cryptodudez.generated import write_or_check


def test_write_then_check_passes_and_a_changed_render_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "docs" / "page.md"
    assert write_or_check(out, lambda: "one\n", description="d", command="make page",
                          argv=[]) == 0
    assert out.read_text() == "one\n"
    assert write_or_check(out, lambda: "one\n", description="d", command="make page",
                          argv=["--check"]) == 0
    assert write_or_check(out, lambda: "two\n", description="d", command="make page",
                          argv=["--check"]) == 1
    assert out.read_text() == "one\n", "--check never writes"
    assert "out of date: run make page" in capsys.readouterr().err


def test_check_of_a_missing_file_fails_and_bytes_are_compared_exactly(tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    assert write_or_check(out, lambda: b"\x89PNG", description="d", command="c",
                          argv=["--check"]) == 1
    assert write_or_check(out, lambda: b"\x89PNG", description="d", command="c", argv=[]) == 0
    assert write_or_check(out, lambda: b"\x89PNG ", description="d", command="c",
                          argv=["--check"]) == 1
