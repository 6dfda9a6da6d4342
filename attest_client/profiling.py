"""Dataset profiling: a summary of a tabular file that is safe to share instead of its rows.

Why this module exists: a researcher registers the dataset a model was trained or
validated on without uploading patient rows. ``attest profile`` runs this code on their
own machine and sends only the result (hash, shape, per-column statistics) to the
server; the server runs the very same code on files it already holds and uses
``validate_profile`` on profiles it receives as JSON. It therefore must not import
Django, and it must behave identically in both places.

Formats
    ``csv`` (``.csv``) or ``parquet`` (``.parquet``, ``.pq``), chosen by ``file_format``
    or else by the file's suffix. CSV is comma-separated, double-quoted, strictly UTF-8
    (a leading byte-order mark is tolerated), first line is the header. Blank lines are
    skipped. A row with more *or fewer* fields than the header is an error, never padded
    or shifted. Missing values are empty fields and pandas' default NA markers
    (``NA``, ``N/A``, ``NaN``, ``null``, ...); in parquet, nulls and float NaN.

Column types (deliberately simple and predictable, decided per column)
    * ``boolean``: a bool column (pandas/arrow bool), or a column whose values are all
      the strings ``true``/``false`` in any letter case (at least one value present).
    * ``integer``: an integer column; or a float column that has at least one missing
      value and whose present values are all whole numbers (an integer column with gaps
      is read back as float, this undoes that). ``1.0, 2.0`` with no gaps stays
      ``number``.
    * ``number``: any other float column (including a column with no values at all).
    * ``category``: everything else (text, dates, decimals, nested values), profiled on
      the values' string form. ``yes``/``no`` or ``0``/``1`` are *not* booleans.

Profile of one column
    every type: ``type``, ``count`` (present values), ``missing_rate`` (0..1).
    numeric: ``min max mean std p01 p99`` (floats; ``std`` is the sample standard
    deviation, None below two values), ``quantiles`` (edges at q = 0, 1/n_bins, ..., 1,
    deduplicated, ascending) and ``bin_frequencies`` (share of present values per bin,
    sums to 1). Bins follow ``numpy.histogram``: ``[e_i, e_i+1)``, the last one closed.
    A constant column has the single edge ``[c]`` and one bin ``[1.0]``.
    boolean: ``categories`` ``{"true": share, "false": share}``.
    category: ``distinct``, ``categories`` (the ``max_categories`` most frequent values
    among those seen in at least ``min_category_count`` rows (default 5), ties broken by
    value, with their shares) and ``other_rate`` (share of the rest).
    Shares are of the present values; anything undefined (no values) is None.
    Infinite numbers are refused (``non_finite_values``) rather than silently dropped.

Note for reviewers of what leaves the machine: min/max are individual values from the
data. Category values are listed only when at least ``min_category_count`` rows share
them, so an identifier or free-text column lists nothing but its number of distinct
values and ``other_rate``.

Error codes (``ProfilingError.code``)
    ``unsupported_format``, ``file_not_found``, ``file_unreadable``, ``empty_file``,
    ``encoding``, ``ragged_rows``, ``malformed_csv``, ``corrupt_file``, ``no_columns``,
    ``blank_column_name``, ``duplicate_columns``, ``no_rows``, ``non_finite_values``.
"""

from __future__ import annotations

import codecs
import copy
import csv
import hashlib
import heapq
import io
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROFILE_VERSION = 1
# Category values seen in fewer rows than this are not listed in a profile (see
# _category_profile): k-anonymity for what leaves the machine.
MIN_CATEGORY_COUNT = 5
HASH_CHUNK_SIZE = 1024 * 1024
FORMATS = ("csv", "parquet")
COLUMN_TYPES = ("number", "integer", "boolean", "category")
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_SUM_TOLERANCE = 1e-6
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


class ProfilingError(Exception):
    """A problem with the input file that the user can fix; ``code`` is stable for callers."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"ProfilingError(code={self.code!r}, message={self.message!r}, field={self.field!r})"


@dataclass(frozen=True)
class DatasetProfile:
    """What is known about a dataset file without its rows; ``as_dict`` is what gets sent."""

    sha256: str
    row_count: int
    file_format: str
    columns: list[dict] = field(default_factory=list)
    profile: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """A JSON-serializable copy (copied so callers cannot mutate this frozen object)."""
        return {
            "sha256": self.sha256,
            "row_count": self.row_count,
            "file_format": self.file_format,
            "columns": copy.deepcopy(self.columns),
            "profile": copy.deepcopy(self.profile),
        }


# --------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB chunks so multi-GB files fit in memory."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb") as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


# --------------------------------------------------------------------------- entry point


def profile_file(
    path: str | os.PathLike[str],
    *,
    file_format: str | None = None,
    n_bins: int = 10,
    max_categories: int = 50,
    min_category_count: int | None = None,
) -> DatasetProfile:
    """Read a CSV or parquet file and summarize it; raises ProfilingError on bad input."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if max_categories < 0:
        raise ValueError("max_categories must not be negative")
    if min_category_count is None:
        min_category_count = MIN_CATEGORY_COUNT
    if min_category_count < 1:
        raise ValueError("min_category_count must be at least 1")
    path = Path(path)
    fmt = resolve_file_format(path, file_format)
    check_file(path)
    try:
        if fmt == "csv":
            names, series = _read_csv(path)
        else:
            names, series = _read_parquet(path)
        sha256 = sha256_file(path)
    except PermissionError as exc:
        raise ProfilingError("file_unreadable", f"Cannot read {path}: permission denied.") from exc
    except IsADirectoryError as exc:  # pragma: no cover - check_file catches this first
        raise ProfilingError("file_not_found", f"{path} is a directory, not a file.") from exc
    except OSError as exc:
        raise ProfilingError(
            "file_unreadable", f"Cannot read {path}: {exc.strerror or exc}."
        ) from exc

    row_count = len(series[0][1]) if series else 0
    if row_count == 0:
        raise ProfilingError("no_rows", "The file has a header but no data rows.")

    columns: list[dict] = []
    column_profiles: dict[str, dict] = {}
    for name, (kind, values) in zip(names, series, strict=True):
        column_type = _infer_type(kind, values)
        columns.append({"name": name, "type": column_type})
        column_profiles[name] = _profile_column(
            name, column_type, values, row_count, n_bins=n_bins, max_categories=max_categories,
            min_category_count=min_category_count,
        )
    return DatasetProfile(
        sha256=sha256,
        row_count=row_count,
        file_format=fmt,
        columns=columns,
        profile={"version": PROFILE_VERSION, "columns": column_profiles},
    )


def resolve_file_format(path: Path, file_format: str | None) -> str:
    """Explicit format wins; otherwise the suffix decides (never sniff contents: predictable)."""
    if file_format is not None:
        fmt = file_format.strip().lower()
        if fmt not in FORMATS:
            raise ProfilingError(
                "unsupported_format",
                f"Unsupported format {file_format!r}; use one of: {', '.join(FORMATS)}.",
                "file_format",
            )
        return fmt
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = path.suffix or "(none)"
        raise ProfilingError(
            "unsupported_format",
            f"Cannot tell the format from the file extension {shown}; expected .csv, .parquet "
            "or .pq, or give the format explicitly.",
            "file_format",
        )
    return fmt


def check_file(path: Path) -> None:
    """Fail early with specific messages instead of whatever the parser would say."""
    if not path.exists():
        raise ProfilingError("file_not_found", f"File not found: {path}")
    if not path.is_file():
        raise ProfilingError("file_not_found", f"{path} is not a regular file.")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProfilingError(
            "file_unreadable", f"Cannot read {path}: {exc.strerror or exc}."
        ) from exc
    if size == 0:
        raise ProfilingError("empty_file", "The file is empty (0 bytes).")


# --------------------------------------------------------------------------- readers

# Each reader returns the column names in file order and, per column, a "kind" (how the
# storage typed it: "bool", "int", "float" or "other") with the values as a pandas Series.
_Columns = tuple[list[str], list[tuple[str, pd.Series]]]


def _read_csv(path: Path) -> _Columns:
    header, data_rows = scan_csv(path)
    if data_rows == 0:
        raise ProfilingError("no_rows", "The file has a header but no data rows.")
    try:
        frame = pd.read_csv(
            path,
            sep=",",
            header=0,
            # Our own names: pandas would rename duplicates ("a.1") and keep a BOM.
            names=header,
            index_col=False,  # never turn a surplus first field into an index
            encoding="utf-8",
            encoding_errors="strict",
            low_memory=False,  # one dtype per column, not per chunk
            skip_blank_lines=True,
            engine="c",
        )
    except UnicodeDecodeError as exc:  # scan_csv should have caught it; keep it translated
        raise _encoding_error(path) from exc
    except pd.errors.ParserError as exc:
        # Only reachable if pandas and the csv module disagree about a row; keep the code right.
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found:
            expected, line, saw = found.groups()
            raise ProfilingError(
                "ragged_rows", f"Line {line} has {saw} fields but the header has {expected}."
            ) from exc
        raise ProfilingError(
            "malformed_csv", f"The CSV file could not be parsed: {str(exc).strip()}"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise ProfilingError("no_columns", "The file has no columns.") from exc
    names = [str(name) for name in header]
    series = [(_pandas_kind(frame.iloc[:, i]), frame.iloc[:, i]) for i in range(len(names))]
    return names, series


def scan_csv(path: Path) -> tuple[list[str], int]:
    """Check the CSV's structure and encoding with the csv module before pandas reads it.

    Why a separate pass: pandas silently pads rows with too few fields with NaN and turns a
    surplus field on every row into an index, shifting all values one column over. Reading
    with the csv module gives exact field counts and line numbers, and decoding strictly
    as UTF-8 here finds bad bytes. Returns the header and the number of data rows.
    """
    header: list[str] | None = None
    data_rows = 0
    try:
        with open(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
            reader = csv.reader(text, strict=False)
            line_before = 0
            for row in reader:
                first_line, line_before = line_before + 1, reader.line_num
                if not row:
                    continue  # blank line; pandas skips these too
                if header is None:
                    header = row
                    check_header(header)
                    continue
                if len(row) != len(header):
                    raise ProfilingError(
                        "ragged_rows",
                        f"Line {first_line} has {len(row)} field{'s' if len(row) != 1 else ''} "
                        f"but the header has {len(header)}; every row must have exactly one "
                        "value per column (use an empty field for a missing value).",
                    )
                data_rows += 1
    except UnicodeDecodeError as exc:
        raise _encoding_error(path) from exc
    except csv.Error as exc:
        line = f" near line {reader.line_num + 1}" if header is not None else ""
        raise ProfilingError(
            "malformed_csv", f"The CSV file could not be parsed{line}: {exc}."
        ) from exc
    if header is None:
        raise ProfilingError("no_columns", "The file has no columns (no header line).")
    return header, data_rows


def check_header(names: list[str]) -> None:
    """Column names become keys in the profile, so they must be present and unique."""
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise ProfilingError(
                "blank_column_name",
                f"Column {position} has a blank name; every column needs a name.",
            )
    duplicates = [name for name, seen in Counter(names).items() if seen > 1]
    if duplicates:
        listed = ", ".join(repr(name) for name in duplicates)
        raise ProfilingError("duplicate_columns", f"Duplicate column names: {listed}.")


def _encoding_error(path: Path) -> ProfilingError:
    offset = _first_invalid_utf8_offset(path)
    where = f" (invalid byte at offset {offset})" if offset is not None else ""
    return ProfilingError(
        "encoding", f"The file must be UTF-8 encoded{where}; re-save it as UTF-8 and try again."
    )


def _first_invalid_utf8_offset(path: Path) -> int | None:
    """Absolute byte offset of the first invalid UTF-8 byte (only run once decoding failed)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    consumed = 0  # bytes fed to the decoder before the current call
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(HASH_CHUNK_SIZE)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return consumed - pending + exc.start
            if not chunk:
                return None
            consumed += len(chunk)


def _read_parquet(path: Path) -> _Columns:
    """Read with ParquetFile, not read_table: the dataset layer rejects duplicate names as
    "invalid", and would treat a directory as a partitioned dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            schema = parquet.schema_arrow
            # An unnamed pandas index saved by DataFrame.to_parquet is an artefact, not data.
            names = [name for name in schema.names if not _PANDAS_INDEX.fullmatch(name)]
            if not names:
                raise ProfilingError("no_columns", "The file has no columns.")
            check_header(names)
            if parquet.metadata.num_rows == 0:
                raise ProfilingError("no_rows", "The file has a header but no data rows.")
            table = parquet.read(columns=names)
    except (pa.ArrowException, ValueError, EOFError) as exc:
        raise _corrupt(exc) from exc
    except OSError as exc:
        if isinstance(exc, PermissionError | FileNotFoundError):
            raise
        raise _corrupt(exc) from exc
    series = []
    for index, arrow_type in enumerate(table.schema.types):
        values = table.column(index).to_pandas()
        series.append((_arrow_kind(arrow_type), values))
    return names, series


def _corrupt(exc: BaseException) -> ProfilingError:
    return ProfilingError(
        "corrupt_file", f"The parquet file could not be read (corrupt or not parquet): {exc}"
    )


def _pandas_kind(values: pd.Series) -> str:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "other"


def _arrow_kind(arrow_type: Any) -> str:
    import pyarrow.types as pat

    if pat.is_boolean(arrow_type):
        return "bool"
    if pat.is_integer(arrow_type):
        return "int"
    if pat.is_floating(arrow_type):
        return "float"
    return "other"


# --------------------------------------------------------------------------- type inference


def _infer_type(kind: str, values: pd.Series) -> str:
    """The rule in the module docstring; ``kind`` is how the file's storage typed the column."""
    if kind == "bool":
        return "boolean"
    if kind == "int":
        return "integer"
    if kind == "float":
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        present = numbers[~np.isnan(numbers)]
        had_missing = present.size < numbers.size
        if (
            had_missing
            and present.size
            and np.all(np.isfinite(present))
            and np.all(present == np.floor(present))
        ):
            return "integer"
        return "number"
    present = values.dropna()
    if present.empty:
        return "category"
    # Look at a few values first: most text columns are ruled out without lowercasing them all.
    for sample in (present.iloc[:100], present):
        if not bool(sample.astype(str).str.lower().isin(("true", "false")).all()):
            return "category"
    return "boolean"


# --------------------------------------------------------------------------- column profiles


def _profile_column(
    name: str,
    column_type: str,
    values: pd.Series,
    row_count: int,
    *,
    n_bins: int,
    max_categories: int,
    min_category_count: int = 1,
) -> dict:
    if column_type in ("number", "integer"):
        return _numeric_profile(name, column_type, values, row_count, n_bins)
    if column_type == "boolean":
        return _boolean_profile(values, row_count)
    return _category_profile(values, row_count, max_categories, min_category_count)


def _numeric_profile(
    name: str, column_type: str, values: pd.Series, row_count: int, n_bins: int
) -> dict:
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    present = numbers[~np.isnan(numbers)]
    count = int(present.size)
    if count and not np.all(np.isfinite(present)):
        raise ProfilingError(
            "non_finite_values",
            f"Column {name!r} contains infinite values; replace them with a number or leave "
            "the field empty.",
            name,
        )
    result: dict[str, Any] = {
        "type": column_type,
        "count": count,
        "missing_rate": _rate(row_count - count, row_count),
    }
    if count == 0:
        result.update(
            min=None,
            max=None,
            mean=None,
            std=None,
            p01=None,
            p99=None,
            quantiles=[],
            bin_frequencies=[],
        )
        return result
    levels = np.concatenate(([0.01, 0.99], np.linspace(0.0, 1.0, n_bins + 1)))
    levels[-1], levels[2] = 1.0, 0.0  # exact ends, so the outer edges are exactly min and max
    points = np.quantile(present, levels)
    edges = np.unique(points[2:])
    if edges.size == 1:
        frequencies = [1.0]
    else:
        counts, _ = np.histogram(present, bins=edges)
        frequencies = [float(c) / count for c in counts]
    low, high = float(edges[0]), float(edges[-1])
    if count == 1:
        std: float | None = None
    elif low == high:  # exact, where np.std would give rounding noise like 1.7e-17
        std = 0.0
    else:
        std = float(np.std(present, ddof=1))

    def within(value: Any) -> float | None:
        # Rounding can put the mean of a constant column an ulp outside [min, max].
        number = float(value)
        return min(max(number, low), high) if math.isfinite(number) else None

    result.update(
        min=low,
        max=high,
        mean=within(np.mean(present)),
        std=_finite(std),
        p01=within(points[0]),
        p99=within(points[1]),
        quantiles=[float(edge) for edge in edges],
        bin_frequencies=frequencies,
    )
    return result


def _boolean_profile(values: pd.Series, row_count: int) -> dict:
    present = values.dropna()
    count = int(present.size)
    if pd.api.types.is_bool_dtype(present.dtype):
        trues = int(present.sum())
    else:
        trues = int((present.astype(str).str.lower() == "true").sum())
    return {
        "type": "boolean",
        "count": count,
        "missing_rate": _rate(row_count - count, row_count),
        "categories": {"true": _share(trues, count), "false": _share(count - trues, count)},
    }


def _category_profile(values: pd.Series, row_count: int, max_categories: int,
                      min_category_count: int = 1) -> dict:
    present = values.dropna()
    count = int(present.size)
    if not pd.api.types.is_string_dtype(present.dtype) or present.dtype == object:
        present = present.astype(str)
    counts = present.value_counts(sort=False)
    distinct = int(counts.size)
    # A value seen in fewer than min_category_count rows would single out those rows (an
    # ID, a name, a rare free-text entry): it is never listed, only counted in other_rate.
    counts = counts[counts >= min_category_count]
    top = _top_categories(counts, max_categories)
    kept = sum(n for _, n in top)
    return {
        "type": "category",
        "count": count,
        "missing_rate": _rate(row_count - count, row_count),
        "distinct": distinct,
        "categories": {str(value): float(n) / count for value, n in top},
        "other_rate": _share(count - kept, count),
    }


def _top_categories(counts: pd.Series, limit: int) -> list[tuple[str, int]]:
    """Most frequent first, ties by value, without sorting every value of an ID-like column."""
    if limit == 0 or counts.empty:
        return []
    frequencies = counts.to_numpy()
    if counts.size > limit:
        cutoff = np.partition(frequencies, counts.size - limit)[counts.size - limit]
        above = counts[frequencies > cutoff]
        tied = counts[frequencies == cutoff]
        chosen = [(str(v), int(n)) for v, n in above.items()]
        # Values are already strings; an object array is far quicker to scan than the index.
        for value in heapq.nsmallest(limit - len(chosen), tied.index.to_numpy(dtype=object)):
            chosen.append((str(value), int(cutoff)))
    else:
        chosen = [(str(v), int(n)) for v, n in counts.items()]
    chosen.sort(key=lambda item: (-item[1], item[0]))
    return chosen


def _rate(part: int, whole: int) -> float:
    return float(part) / whole if whole else 0.0


def _share(part: int, whole: int) -> float | None:
    return float(part) / whole if whole else None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- validation

Problem = tuple[str | None, str, str]

_COMMON_KEYS = ("type", "count", "missing_rate")
_KEYS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "number": (
        *_COMMON_KEYS,
        "min",
        "max",
        "mean",
        "std",
        "p01",
        "p99",
        "quantiles",
        "bin_frequencies",
    ),
    "integer": (
        *_COMMON_KEYS,
        "min",
        "max",
        "mean",
        "std",
        "p01",
        "p99",
        "quantiles",
        "bin_frequencies",
    ),
    "boolean": (*_COMMON_KEYS, "categories"),
    "category": (*_COMMON_KEYS, "distinct", "categories", "other_rate"),
}


def validate_profile(profile: dict, columns: list[dict] | None = None) -> list[Problem]:
    """Check a profile computed elsewhere (received as JSON) before trusting or storing it.

    Returns every problem as ``(field, code, message)`` so the user can fix them all at
    once; an empty list means valid. Fields are paths like ``profile.columns.age.min``.
    """
    problems: list[Problem] = []
    if not isinstance(profile, dict):
        return [("profile", "invalid", "The profile must be an object.")]
    for key in sorted(set(profile) - {"version", "columns"}):
        problems.append((f"profile.{key}", "unknown_key", f"Unexpected key {key!r}."))
    if "version" not in profile:
        problems.append(("profile.version", "missing_key", "The profile has no version."))
    elif _is_bool(profile["version"]) or profile["version"] != PROFILE_VERSION:
        problems.append(
            (
                "profile.version",
                "unsupported_version",
                f"Only profile version {PROFILE_VERSION} is supported.",
            )
        )
    column_profiles = profile.get("columns")
    if "columns" not in profile:
        problems.append(("profile.columns", "missing_key", "The profile has no columns."))
        column_profiles = None
    elif not isinstance(column_profiles, dict):
        problems.append(
            (
                "profile.columns",
                "invalid",
                "profile.columns must be an object keyed by column name.",
            )
        )
        column_profiles = None
    elif not column_profiles:
        problems.append(("profile.columns", "no_columns", "The profile describes no columns."))
    if column_profiles:
        for name, column_profile in column_profiles.items():
            problems.extend(_validate_column(f"profile.columns.{name}", column_profile))
    if columns is not None:
        problems.extend(_validate_columns_list(columns, column_profiles))
    return problems


def _validate_column(path: str, column: Any) -> list[Problem]:
    if not isinstance(column, dict):
        return [(path, "invalid", "A column profile must be an object.")]
    column_type = column.get("type")
    if "type" not in column:
        return [(f"{path}.type", "missing_key", "Missing key 'type'.")]
    if column_type not in COLUMN_TYPES:
        return [
            (
                f"{path}.type",
                "unknown_type",
                f"Unknown column type {column_type!r}; expected one of {', '.join(COLUMN_TYPES)}.",
            )
        ]
    expected = _KEYS_BY_TYPE[column_type]
    problems: list[Problem] = [
        (f"{path}.{key}", "missing_key", f"Missing key {key!r}.")
        for key in expected
        if key not in column
    ]
    problems += [
        (f"{path}.{key}", "unknown_key", f"Unexpected key {key!r} for a {column_type} column.")
        for key in column
        if key not in expected
    ]
    count = column.get("count")
    if "count" in column and not (_is_int(count) and count >= 0):
        problems.append((f"{path}.count", "invalid", "count must be a non-negative integer."))
        count = None
    if "missing_rate" in column:
        problems += _check_rate(f"{path}.missing_rate", column["missing_rate"], nullable=False)
    if column_type in ("number", "integer"):
        problems += _validate_numeric(path, column, count)
    elif column_type == "boolean":
        problems += _validate_boolean(path, column)
    else:
        problems += _validate_category(path, column)
    return problems


def _validate_numeric(path: str, column: dict, count: int | None) -> list[Problem]:
    problems: list[Problem] = []
    scalars: dict[str, float | None] = {}
    for key in ("min", "max", "mean", "std", "p01", "p99"):
        if key not in column:
            continue
        value = column[key]
        if value is None:
            scalars[key] = None
        elif not _is_number(value):
            problems.append((f"{path}.{key}", "invalid", f"{key} must be a number or null."))
        elif not math.isfinite(value):
            problems.append((f"{path}.{key}", "not_finite", f"{key} must be finite."))
        else:
            scalars[key] = float(value)
    low, high = scalars.get("min"), scalars.get("max")
    if low is not None and high is not None and low > high:
        problems.append(
            (f"{path}.min", "min_greater_than_max", f"min ({low}) is greater than max ({high}).")
        )
    std = scalars.get("std")
    if std is not None and std < 0:
        problems.append((f"{path}.std", "out_of_range", "std must not be negative."))
    if low is not None and high is not None and low <= high:
        for key in ("mean", "p01", "p99"):
            value = scalars.get(key)
            if value is not None and not low <= value <= high:
                problems.append(
                    (f"{path}.{key}", "out_of_range", f"{key} must lie between min and max.")
                )

    edges = _number_list(path, column, "quantiles", problems)
    frequencies = _number_list(path, column, "bin_frequencies", problems)
    if edges is not None:
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            problems.append(
                (f"{path}.quantiles", "not_ascending", "quantiles must be strictly ascending.")
            )
        if (
            edges
            and low is not None
            and high is not None
            and (edges[0] != low or edges[-1] != high)
        ):
            problems.append(
                (f"{path}.quantiles", "out_of_range", "quantiles must start at min and end at max.")
            )
        if count and not edges:
            problems.append(
                (f"{path}.quantiles", "invalid", "quantiles must not be empty when count > 0.")
            )
    if frequencies is not None:
        for index, share in enumerate(frequencies):
            if not 0.0 <= share <= 1.0:
                problems.append(
                    (
                        f"{path}.bin_frequencies.{index}",
                        "out_of_range",
                        "Each bin frequency must be between 0 and 1.",
                    )
                )
        if frequencies and abs(sum(frequencies) - 1.0) > _SUM_TOLERANCE:
            problems.append(
                (f"{path}.bin_frequencies", "bad_sum", "bin_frequencies must sum to 1.")
            )
    if edges is not None and frequencies is not None:
        expected_bins = max(len(edges) - 1, 1) if edges else 0
        if len(frequencies) != expected_bins:
            problems.append(
                (
                    f"{path}.bin_frequencies",
                    "length_mismatch",
                    f"Expected {expected_bins} bin frequencies for {len(edges)} quantile edges, got {len(frequencies)}.",
                )
            )
    return problems


def _validate_boolean(path: str, column: dict) -> list[Problem]:
    if "categories" not in column:
        return []
    categories = column["categories"]
    if not isinstance(categories, dict) or set(categories) != {"true", "false"}:
        return [
            (
                f"{path}.categories",
                "invalid",
                "categories must have exactly the keys 'true' and 'false'.",
            )
        ]
    problems: list[Problem] = []
    for key in ("true", "false"):
        problems += _check_rate(f"{path}.categories.{key}", categories[key], nullable=True)
    shares = [categories["true"], categories["false"]]
    if (
        not problems
        and all(s is not None for s in shares)
        and abs(sum(shares) - 1.0) > _SUM_TOLERANCE
    ):
        problems.append(
            (f"{path}.categories", "bad_sum", "The true and false shares must sum to 1.")
        )
    return problems


def _validate_category(path: str, column: dict) -> list[Problem]:
    problems: list[Problem] = []
    if "distinct" in column and not (_is_int(column["distinct"]) and column["distinct"] >= 0):
        problems.append((f"{path}.distinct", "invalid", "distinct must be a non-negative integer."))
    if "other_rate" in column:
        problems += _check_rate(f"{path}.other_rate", column["other_rate"], nullable=True)
    categories = column.get("categories")
    if "categories" not in column:
        return problems
    if not isinstance(categories, dict):
        return [
            *problems,
            (f"{path}.categories", "invalid", "categories must be an object of value: share."),
        ]
    rate_problems: list[Problem] = []
    for value, share in categories.items():
        rate_problems += _check_rate(f"{path}.categories.{value}", share, nullable=False)
    problems += rate_problems
    distinct = column.get("distinct")
    if _is_int(distinct) and len(categories) > distinct:
        problems.append(
            (f"{path}.categories", "invalid", "There are more categories than distinct values.")
        )
    other = column.get("other_rate")
    if categories and not rate_problems and _is_number(other):
        total = sum(categories.values()) + other
        if abs(total - 1.0) > _SUM_TOLERANCE:
            problems.append(
                (f"{path}.categories", "bad_sum", "Category shares plus other_rate must sum to 1.")
            )
    return problems


def _validate_columns_list(columns: Any, column_profiles: dict | None) -> list[Problem]:
    """The declared column list and the profile must describe the same columns, same types."""
    if not isinstance(columns, list):
        return [("columns", "invalid", "columns must be a list of {name, type} objects.")]
    problems: list[Problem] = []
    declared: dict[str, str | None] = {}
    for index, entry in enumerate(columns):
        where = f"columns.{index}"
        if not isinstance(entry, dict):
            problems.append((where, "invalid", "Each column must be an object with name and type."))
            continue
        name, column_type = entry.get("name"), entry.get("type")
        for key in sorted(set(entry) - {"name", "type"}):
            problems.append((f"{where}.{key}", "unknown_key", f"Unexpected key {key!r}."))
        if not isinstance(name, str) or not name.strip():
            problems.append((f"{where}.name", "invalid", "Each column needs a non-blank name."))
            continue
        if column_type not in COLUMN_TYPES:
            problems.append(
                (f"{where}.type", "unknown_type", f"Unknown column type {column_type!r}.")
            )
            column_type = None
        if name in declared:
            problems.append(
                (f"{where}.name", "duplicate_columns", f"Column {name!r} is listed twice.")
            )
            continue
        declared[name] = column_type
    if column_profiles is None:
        return problems
    missing = [name for name in declared if name not in column_profiles]
    extra = [name for name in column_profiles if name not in declared]
    if missing or extra:
        parts = []
        if missing:
            parts.append("no profile for " + ", ".join(repr(n) for n in missing))
        if extra:
            parts.append("profiled but not listed: " + ", ".join(repr(n) for n in extra))
        problems.append(
            (
                "columns",
                "columns_mismatch",
                "columns and profile disagree: " + "; ".join(parts) + ".",
            )
        )
    for name, column_type in declared.items():
        column_profile = column_profiles.get(name)
        profiled_type = column_profile.get("type") if isinstance(column_profile, dict) else None
        if column_type and profiled_type in COLUMN_TYPES and profiled_type != column_type:
            problems.append(
                (
                    f"profile.columns.{name}.type",
                    "type_mismatch",
                    f"Column {name!r} is declared {column_type} but profiled as {profiled_type}.",
                )
            )
    return problems


def _number_list(path: str, column: dict, key: str, problems: list[Problem]) -> list[float] | None:
    if key not in column:
        return None
    value = column[key]
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        problems.append((f"{path}.{key}", "invalid", f"{key} must be a list of numbers."))
        return None
    if not all(math.isfinite(v) for v in value):
        problems.append((f"{path}.{key}", "not_finite", f"{key} must contain only finite numbers."))
        return None
    return [float(v) for v in value]


def _check_rate(path: str, value: Any, *, nullable: bool) -> list[Problem]:
    if value is None and nullable:
        return []
    if not _is_number(value) or not math.isfinite(value):
        return [(path, "invalid", "Must be a number between 0 and 1.")]
    if not 0.0 <= value <= 1.0:
        return [(path, "out_of_range", f"Must be between 0 and 1, got {value}.")]
    return []


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
