"""Profiling a file: ``profile_file`` and the readers it shares with batch uploads.

The rules (formats, column types, what a column's profile holds) are in the
package's docstring (``profiling/__init__.py``)."""

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
SUM_TOLERANCE = 1e-6
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
