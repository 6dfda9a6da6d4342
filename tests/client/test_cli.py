"""Tests for the ``attest`` command line: JSON out on success, one error line otherwise."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from attest_client import cli, commands

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "cohort.csv"
    path.write_text("age,sex,smoker\n34,F,true\n51,M,false\n,F,true\n", encoding="utf-8")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error_line(status: int, out: str, err: str) -> str:
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("attest: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_it_prints_the_profile_as_json(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["profile", str(dataset)], capsys)

    assert status == 0
    assert err == ""
    data = json.loads(out)
    assert data["sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()
    assert data["row_count"] == 3
    assert data["file_format"] == "csv"
    assert data["columns"] == [
        {"name": "age", "type": "integer"},
        {"name": "sex", "type": "category"},
        {"name": "smoker", "type": "boolean"},
    ]
    assert data["profile"]["columns"]["age"]["missing_rate"] == pytest.approx(1 / 3)


def test_it_writes_the_profile_to_a_file(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "profile.json"
    output.parent.mkdir()
    status, out, err = run(["profile", str(dataset), "--output", str(output)], capsys)

    assert status == 0
    assert out == ""
    assert "profile.json" in err and "3 rows" in err
    assert json.loads(output.read_text(encoding="utf-8"))["row_count"] == 3
    assert [p.name for p in output.parent.iterdir()] == ["profile.json"]  # no temporary left over


def test_it_overwrites_an_existing_output_file(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "profile.json"
    output.write_text("old", encoding="utf-8")
    assert run(["profile", str(dataset), "-o", str(output)], capsys)[0] == 0
    assert json.loads(output.read_text(encoding="utf-8"))["file_format"] == "csv"


def test_it_honours_the_format_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "export.dat"
    pd.DataFrame({"x": [1.5, 2.5]}).to_parquet(path)
    status, out, _ = run(["profile", str(path), "--format", "parquet"], capsys)

    assert status == 0
    assert json.loads(out)["file_format"] == "parquet"


@pytest.mark.parametrize(
    ("name", "content", "extra", "reason"),
    [
        ("missing.csv", None, [], "not found"),
        ("empty.csv", b"", [], "empty"),
        ("header.csv", b"a,b\n", [], "no data rows"),
        ("ragged.csv", b"a,b\n1,2\n3\n", [], "Line 3"),
        ("latin1.csv", "a\nMontréal\n".encode("latin-1"), [], "UTF-8"),
        ("bad.parquet", b"not parquet", [], "parquet"),
        ("data.xlsx", b"x", [], ".xlsx"),
        ("dup.csv", b"a,a\n1,2\n", [], "Duplicate"),
        ("ok.csv", b"a\n1\n", ["--format", "xml"], "invalid choice"),
    ],
)
def test_it_reports_bad_input_on_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    extra: list[str],
    reason: str,
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    line = assert_one_error_line(*run(["profile", str(path), *extra], capsys))
    assert reason in line


@pytest.mark.parametrize("argv", [[], ["profile"], ["frobnicate"], ["profile", "a.csv", "--bogus"]])
def test_it_reports_usage_errors_on_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_error_line(*run(argv, capsys))


def test_it_reports_an_unwritable_output_on_one_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "no" / "such" / "dir" / "profile.json"
    line = assert_one_error_line(*run(["profile", str(dataset), "--output", str(output)], capsys))
    assert "cannot write" in line
    assert not output.exists()


def test_it_reports_a_bug_on_one_line_without_a_traceback(
    dataset: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something\nunexpected")

    monkeypatch.delenv("ATTEST_DEBUG", raising=False)
    monkeypatch.setattr(commands, "profile_file", broken)
    status, out, err = run(["profile", str(dataset)], capsys)

    assert status == 70  # EX_SOFTWARE: exit 1 means "the check failed", 2 "your input"
    assert out == ""
    assert err.splitlines() == [
        "attest: error: internal error (RuntimeError: something); set ATTEST_DEBUG=1 for details"
    ]


def test_the_help_lists_the_profile_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    assert "profile" in capsys.readouterr().out


def test_it_runs_as_a_program_without_a_traceback(dataset: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "attest_client.cli", "profile", str(dataset)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["row_count"] == 3

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2,3\n", encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-m", "attest_client.cli", "profile", str(ragged)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "attest: error: Line 2 has 3 fields but the header has 2; every row must have exactly "
        "one value per column (use an empty field for a missing value)."
    ]


def test_rare_category_values_stay_on_the_machine_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("site,patient\n" + "".join(f"north,P{i}\n" for i in range(6)))
    status, out, _err = run([ "profile", str(path)], capsys)
    columns = json.loads(out)["profile"]["columns"]
    assert status == 0 and columns["patient"]["categories"] == {}
    assert columns["site"]["categories"] == {"north": 1.0}
    status, out, _err = run(["profile", str(path), "--min-category-count", "1"], capsys)
    assert len(json.loads(out)["profile"]["columns"]["patient"]["categories"]) == 6
    status, out, err = run(["profile", str(path), "--min-category-count", "0"], capsys)
    assert "must be at least 1" in assert_one_error_line(status, out, err)
