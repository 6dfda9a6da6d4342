from __future__ import annotations

import csv
import io

import pytest

from core import csvcells


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1",
                                  '=HYPERLINK("https://evil.example","x")'])
def test_text_a_spreadsheet_would_run_gets_a_leading_apostrophe(text):
    assert csvcells.cell(text) == "'" + text


@pytest.mark.parametrize("value", ["owner", "", "a=b", " =1", "'=1", 5, -5, -0.5, None])
def test_other_cells_and_numbers_are_unchanged(value):
    assert csvcells.cell(value) == value


def test_the_writer_is_csv_writer_with_safe_cells():
    out = io.StringIO()
    writer = csvcells.writer(out, lineterminator="\n")
    writer.writerow(["name", "score"])
    writer.writerows([["=cmd|' /C calc'!A0", -1.5], ["plain", 2]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["name", "score"], ["'=cmd|' /C calc'!A0", "-1.5"], ["plain", "2"]]
