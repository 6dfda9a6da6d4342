"""Validating many inputs at once: column by column, with the per-row checker as the referee.

``check_many(rows, ...)`` returns exactly ``[check_input(row, ...) for row in rows]``
(tests compare the two on generated inputs), but screens the rows a column at a
time with numpy first. A row passes the screen only when it would come out of
``check_input`` untouched (but for a boolean's 0/1, read as false/true): a dict of
known features, every value present and of the schema's type, numbers finite (whole
and exactly representable for integers), inside the validated range, categories
allowed and seen in training, and not in the profile's tails. Those rows get their
``Checked`` built directly; every other row — an error, an OOD flag, an imputed or
missing value — goes through ``check_input`` itself, so messages and flags are always
the reference ones.

Batch jobs validate 20,000-row chunks this way (docs/performance.md, "Predict"):
per row, the screen costs about a tenth of ``check_input``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.schema import boolean_value

from .validation import TAIL_MIN_FEATURES, TAIL_MIN_SHARE, Checked, check_input

NUMERIC = ("number", "integer")
_EXACT_INT = 2.0 ** 53  # integers beyond this do not survive float() exactly


@dataclass
class Screened:
    """``checked[i]`` is ``check_input(rows[i])``. ``passed[i]``: row i passed the screen
    (valid, no OOD flag, nothing imputed). ``matrix``: float64 rows x features in schema
    order when every feature is numeric, else None; a row's line is its values only
    where ``passed`` (others hold placeholders)."""

    checked: list[Checked]
    passed: np.ndarray
    matrix: np.ndarray | None


def check_many(rows: list[Any], *, schema: list[dict], profile: dict,
               paths: list[str] | None = None, path: str = "row") -> Screened:
    """``[check_input(row, ...) for row in rows]``, screened column by column first."""
    n = len(rows)
    names = [f["name"] for f in schema]
    known = frozenset(names)
    columns = (profile or {}).get("columns", {})
    shaped = [r if type(r) is dict and r.keys() <= known else None for r in rows]
    clean = np.fromiter((r is not None for r in shaped), dtype=bool, count=n)
    source = [r if r is not None else {} for r in shaped]
    try:  # the usual batch: every row has every feature, so one C-level pass per row
        if len(names) == 1:
            cols: list = [[r[names[0]] for r in source]]
        elif n:
            cols = list(zip(*map(operator.itemgetter(*names), source), strict=True))
        else:
            cols = [() for _ in names]
    except KeyError:
        cols = [[r.get(name) for r in source] for name in names]
    values: list[Any] = []
    numeric_arrays: list[np.ndarray] = []
    tails = np.zeros(n, dtype=np.int64)
    numeric = 0
    as_given = True  # every clean row's values equal its raw dict: reuse the dict
    for feature, col in zip(schema, cols, strict=True):
        name, kind = feature["name"], feature["type"]
        column = columns.get(name, {})
        types = set(map(type, col))
        if kind in NUMERIC:
            numeric += 1
            if types <= {float, int}:
                typed = None  # every value is a number
            else:
                typed = np.fromiter(((type(v) is float or type(v) is int) for v in col),
                                    dtype=bool, count=n)
            try:
                arr = np.array(col if typed is None else
                               [v if ok else 0.0 for v, ok in zip(col, typed, strict=True)],
                               dtype=np.float64)
            except OverflowError:  # an integer beyond float: check_input reports it
                arr = np.array([_to_float(v) if typed is None or typed[i] else 0.0
                                for i, v in enumerate(col)], dtype=np.float64)
            ok = np.isfinite(arr) if typed is None else typed & np.isfinite(arr)
            if kind == "integer":
                ok &= (np.abs(arr) < _EXACT_INT) & (arr == np.floor(arr))
            lo, hi = feature.get("min"), feature.get("max")
            if lo is not None:
                ok &= arr >= lo
            if hi is not None:
                ok &= arr <= hi
            p01, p99 = column.get("p01"), column.get("p99")
            if p01 is not None and p99 is not None:
                tails += (arr < p01) | (arr > p99)
            clean &= ok
            numeric_arrays.append(arr)
            if kind == "number":
                as_given &= types <= {float}
                values.append(arr)
            else:  # rows that fail keep a placeholder; check_input rebuilds them
                as_given &= types <= {int}
                values.append([int(v) if good else 0
                               for v, good in zip(arr.tolist(), ok.tolist(), strict=True)])
        elif kind == "boolean":  # check_input's rule: true/false, 0/1 (read as booleans)
            if types <= {bool}:
                values.append(col)
            else:
                parsed = [boolean_value(v) for v in col]
                clean &= np.fromiter((p is not None for p in parsed), dtype=bool, count=n)
                as_given = False
                values.append(parsed)
        else:
            allowed = {str(c) for c in feature.get("categories") or []}
            seen = column.get("categories")
            strict_seen = seen is not None and column.get("other_rate", 0) == 0
            as_given &= types <= {str}
            text = [str(v) if type(v) is str or type(v) is int else None for v in col]
            clean &= np.fromiter(
                (t is not None and (not allowed or t in allowed)
                 and (not strict_seen or t in seen) for t in text), dtype=bool, count=n)
            values.append(text)
    if numeric:
        clean &= ~((tails >= TAIL_MIN_FEATURES) & (tails / numeric >= TAIL_MIN_SHARE))
    passed = clean.tolist()
    if as_given:
        out = [Checked(values=rows[i]) if ok else
               check_input(rows[i], schema=schema, profile=profile,
                           path=paths[i] if paths is not None else path)
               for i, ok in enumerate(passed)]
    else:
        lists = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]
        out = []
        for i, (ok, row_values) in enumerate(zip(passed, zip(*lists, strict=True) if lists
                                                 else [()] * n, strict=True)):
            out.append(Checked(values=dict(zip(names, row_values, strict=True))) if ok else
                       check_input(rows[i], schema=schema, profile=profile,
                                   path=paths[i] if paths is not None else path))
    matrix = np.column_stack(numeric_arrays) if numeric_arrays and numeric == len(schema) \
        else None
    return Screened(out, clean, matrix)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf")
