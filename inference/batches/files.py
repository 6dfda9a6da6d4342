"""Reading batch input files: an upload's shape, checked up front, then typed records.

CSV is read as the dataset profiler reads it (``profiling``): strictly
UTF-8 (a byte-order mark is tolerated), blank lines skipped, the same missing-value
markers; its text is typed per the version's schema (a bad value stays text, so the
validator reports it; a boolean reads true/false and 1/0 by the rule of every input
path, ``registry.schema.boolean_value``). Parquet is typed already (a boolean column
may also hold 0/1 numbers or true/false text); float NaN is missing. A record's
``row_index`` is its 0-based position among the data rows.

Pass-through columns (named at upload, ``check_columns``) are never part of a record:
``passthrough_rows`` reads them on their own, as text, for the result and error files.

Written at the end of a job: the result file (from the log) and the error file (from the
chunks' stored parts), with the pass-through columns joined in by row_index
(``_PassedThrough``); and the stored files themselves (content-addressed puts, verified
copies, the input fetched for a run).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from django.core.files import File

from core import csvcells
from core.errors import ErrorItem, IntegrityFailure, ValidationFailed
from core.hashing import CHUNK

# The profiler's own file checks, so a batch is read exactly as `attest profile` reads a
# dataset: same encoding rules, ragged-row and header checks, row count.
from profiling import (
    ProfilingError,
    check_file,
    check_header,
    resolve_file_format,
    scan_csv,
)
from registry.models import ModelVersion
from registry.schema import boolean_value
from registry.storage import artifact_storage, blob_key

from ..models import BatchJob, Prediction

# The same missing-value markers as the dataset profiler (pandas' defaults), so a
# file is read the way its training data was profiled.
MISSING_MARKERS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
_PANDAS_INDEX_PREFIX = "__index_level_"
# Pass-through columns a job may name, and the longest name.
MAX_PASSTHROUGH = 20
MAX_PASSTHROUGH_NAME = 200
PASSTHROUGH_HINT = ("or name it in passthrough_columns to copy it to the result file, unscored "
                    "and unlogged")


def passthrough_names(raw: str | Iterable[str] | None) -> list[str]:
    """The pass-through column names as given: one comma-separated text or a list of them
    (a repeated form field), each name stripped, empty ones dropped, order kept."""
    if raw is None:
        return []
    texts = [raw] if isinstance(raw, str) else list(raw)
    return [name.strip() for text in texts for name in str(text).split(",") if name.strip()]


def resolve_format(name: str, file_format: str | None) -> str:
    """``csv`` or ``parquet``: as given, else from the file name's extension (400 otherwise)."""
    try:
        return resolve_file_format(Path(name), file_format or None)
    except ProfilingError as exc:
        raise _profiling_error(exc) from None


def _profiling_error(exc: ProfilingError) -> ValidationFailed:
    return ValidationFailed(exc.message, code=exc.code, field="file")


def inspect(path: str, fmt: str) -> tuple[list[str], int]:
    """Column names and data rows of the spooled file; every problem is a 400."""
    try:
        check_file(Path(path))
        if fmt == "csv":
            names, rows = scan_csv(Path(path))
        else:
            names, rows = _parquet_shape(path)
    except ProfilingError as exc:
        raise _profiling_error(exc) from None
    if rows == 0:
        raise ValidationFailed("The file has a header but no data rows.", code="no_rows",
                               field="file")
    return names, rows


def _parquet_shape(path: str) -> tuple[list[str], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            names = [n for n in parquet.schema_arrow.names
                     if not n.startswith(_PANDAS_INDEX_PREFIX)]
            if not names:
                raise ProfilingError("no_columns", "The file has no columns.")
            check_header(names)
            return names, parquet.metadata.num_rows
    except (pa.ArrowException, ValueError, EOFError, OSError) as exc:
        raise ProfilingError("corrupt_file", "The parquet file could not be read (corrupt or "
                             f"not parquet): {exc}") from exc


def _shown(name: str) -> str:
    return name if len(name) <= 80 else name[:80] + "…"


def _passthrough_problems(passthrough: list[str], names: list[str], features: dict,
                          reserved: Iterable[str]) -> list[ErrorItem]:
    """Each pass-through name must be a column of the file, not a feature (a feature is
    scored and logged, so it cannot also be kept out of the log), not a column the result
    or error file already has, and named once; at most MAX_PASSTHROUGH of them."""
    where = "passthrough_columns"
    if len(passthrough) > MAX_PASSTHROUGH:
        return [ErrorItem("too_many_passthrough", f"At most {MAX_PASSTHROUGH} pass-through "
                          f"columns may be named ({len(passthrough)} were).", where)]
    header, reserved = set(names), set(reserved)
    problems, seen = [], set()
    for name in passthrough:
        shown = _shown(name)
        if len(name) > MAX_PASSTHROUGH_NAME:
            problems.append(ErrorItem("passthrough_name_too_long", f"Pass-through column "
                                      f"'{shown}' is longer than {MAX_PASSTHROUGH_NAME} "
                                      "characters.", where))
        elif name in seen:
            problems.append(ErrorItem("duplicate_passthrough", f"Pass-through column "
                                      f"'{shown}' is named twice.", where))
        elif name in features:
            problems.append(ErrorItem("passthrough_is_feature", f"Column '{shown}' is an input "
                                      "of this model, so it is scored and logged: a feature "
                                      "cannot be a pass-through column.", where))
        elif name in reserved:
            problems.append(ErrorItem("passthrough_reserved", f"Column '{shown}' cannot be "
                                      "passed through: the result or error file has a column "
                                      "of that name. Rename it in the file.", where))
        elif name not in header:
            problems.append(ErrorItem("passthrough_not_in_file", f"Pass-through column "
                                      f"'{shown}' is not a column of the file.", where))
        seen.add(name)
    return problems


def check_columns(version: ModelVersion, names: list[str], *,
                  passthrough: list[str] | None = None, reserved: Iterable[str] = ()) -> None:
    """Refuse up front a header that lacks required features or has unknown columns, and
    pass-through names that do not fit (``_passthrough_problems``).

    The same rule as a single prediction (unknown fields are refused, not ignored,
    so a misspelt optional column is not silently imputed); a column named as a
    pass-through column is not unknown. A missing feature that the schema imputes or
    passes through may be left out.
    """
    passthrough = passthrough or []
    features = {f["name"]: f for f in version.input_schema}
    if len(names) == 1 and names[0] not in features:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            parts = [p.strip().strip('"') for p in names[0].split(sep)]
            if len(parts) > 1 and any(p in features for p in parts):
                raise ValidationFailed(
                    f"The header is one column of {len(parts)} names separated by {label}: "
                    "Attest reads CSV with commas between fields. Export the file as "
                    "comma-separated CSV (UTF-8), or as Parquet.", code="wrong_delimiter",
                    field="file", extra={"model_version": version.number})
    problems = _passthrough_problems(passthrough, names, features, reserved)
    kept = set(passthrough)
    for name in [n for n in names if n not in features and n not in kept]:
        shown = _shown(name)
        problems.append(ErrorItem("unknown_field", f"Column '{shown}' is not an input of this "
                                  f"model: remove it, {PASSTHROUGH_HINT}.", f"file.{shown}"))
    for name, feature in features.items():
        if name not in names and feature.get("missing", "reject") == "reject" \
                and feature.get("required", True):
            problems.append(ErrorItem("missing_column", f"The file has no column '{name}', which "
                                      "this model requires.", f"file.{name}"))
    if problems:
        raise ValidationFailed(items=problems, extra={"model_version": version.number})


Record = tuple[int, dict | None, ErrorItem | None]  # row_index, values, file-level problem


def _coercer(kind: str) -> Callable[[str], Any]:
    """CSV text → the JSON type the schema validator expects; bad text stays text."""
    if kind in ("number", "integer"):
        def number(text: str) -> Any:
            try:
                return int(text) if kind == "integer" else float(text)
            except ValueError:
                try:
                    return float(text)
                except ValueError:
                    return text
        return number
    if kind == "boolean":
        return _boolean_text
    return lambda text: text


def _boolean_text(text: Any) -> Any:
    """A boolean feature's text ("true", "0", ...: the one rule, ``boolean_value``) as a
    boolean; other text stays text, which the validator refuses."""
    value = boolean_value(text, text=True)
    return text if value is None else value


def _storable(row_index: int, values: dict) -> Record:
    """Refuse a row with NUL in a text value: the database could not store its input."""
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            return row_index, None, ErrorItem("invalid_characters", "Text may not contain NUL "
                                              "characters.", name)
    return row_index, values, None


ChunkSize = int | Callable[[], int]  # rows per chunk, or asked before each chunk is cut


def _sizes(size: ChunkSize) -> Callable[[], int]:
    return size if callable(size) else (lambda: size)


def _cut(items: Iterator, size: ChunkSize, start: int, first_index: int
         ) -> Iterator[tuple[int, int, tuple]]:
    """(chunk index, first row, items) after skipping ``start`` items; sizes asked lazily."""
    sizes = _sizes(size)
    for _ in itertools.islice(items, start):
        pass
    index = first_index
    while batch := tuple(itertools.islice(items, max(1, int(sizes())))):
        yield index, start, batch
        index, start = index + 1, start + len(batch)


def _csv_rows(raw) -> Iterator[list[str]]:
    """The rows of a CSV file as the batch reads them (header first, blank lines skipped):
    the one rule for ``row_index``, shared by the records and the pass-through values."""
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
    return (row for row in csv.reader(text, strict=False) if row)


def csv_chunks(path: str, version: ModelVersion, chunk_size: ChunkSize, *, start: int = 0,
               first_index: int = 0) -> Iterator[tuple[int, Callable[[], list[Record]]]]:
    """Chunks of raw CSV rows from data row ``start`` on, numbered from ``first_index``;
    each converts to records only when called. ``chunk_size`` is asked before each
    chunk is cut when it is a callable (time-sized chunks, ``batches.ChunkSizer``)."""
    kinds = {f["name"]: f["type"] for f in version.input_schema}
    with open(path, "rb") as raw:
        rows = _csv_rows(raw)
        header = next(rows, None) or []
        columns = [(i, name, _coercer(kinds[name])) for i, name in enumerate(header)
                   if name in kinds]
        width = len(header)

        def convert(start: int, batch: tuple[list[str], ...]) -> list[Record]:
            out: list[Record] = []
            for offset, row in enumerate(batch):
                if len(row) != width:  # the upload was checked; kept for safety
                    out.append((start + offset, None, ErrorItem(
                        "ragged_row", f"The row has {len(row)} fields but the header has "
                        f"{width}.", "")))
                    continue
                out.append(_storable(start + offset, {
                    name: None if row[i] in MISSING_MARKERS else coerce(row[i])
                    for i, name, coerce in columns}))
            return out

        for k, low, batch in _cut(rows, chunk_size, start, first_index):
            yield k, (lambda low=low, b=batch: convert(low, b))


def parquet_chunks(path: str, version: ModelVersion, chunk_size: ChunkSize, *, start: int = 0,
                   first_index: int = 0) -> Iterator[tuple[int, Callable[[], list[Record]]]]:
    """As :func:`csv_chunks`; record batches are re-cut to the asked sizes."""
    import pyarrow.parquet as pq

    names = {f["name"] for f in version.input_schema}
    # A boolean stored as text ("true"/"false", as the profiler reads it) is read like CSV.
    texts = {f["name"] for f in version.input_schema if f["type"] == "boolean"}
    with pq.ParquetFile(path) as parquet:
        columns = [n for n in parquet.schema_arrow.names if n in names]
        values = (row for batch in parquet.iter_batches(batch_size=8192, columns=columns)
                  for row in batch.to_pylist())
        for k, low, batch in _cut(values, chunk_size, start, first_index):
            def convert(low=low, b=batch) -> list[Record]:
                return [_storable(low + i, {
                    n: (None if isinstance(v, float) and math.isnan(v) else
                        _boolean_text(v) if n in texts and isinstance(v, str) else v)
                    for n, v in row.items()}) for i, row in enumerate(b)]
            yield k, convert


def chunks(path: str, file_format: str, version: ModelVersion, chunk_size: ChunkSize, *,
           start: int = 0, first_index: int = 0
           ) -> Iterator[tuple[int, Callable[[], list[Record]]]]:
    """(chunk index, records), in order, from data row ``start`` and chunk ``first_index``
    on; each chunk's rows follow the previous chunk's, ``chunk_size`` rows (or what the
    callable answers when the chunk is cut)."""
    reader = csv_chunks if file_format == "csv" else parquet_chunks
    return reader(path, version, chunk_size, start=start, first_index=first_index)


def _as_text(value: Any) -> str:
    """A Parquet value as the text a result file carries (missing: empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def passthrough_rows(path: str, file_format: str, names: list[str]) -> Iterator[tuple[str, ...]]:
    """The pass-through columns' values of every data row, in row order (the n-th tuple is
    ``row_index`` n), as text: a CSV's cells verbatim, Parquet values as text."""
    if file_format == "csv":
        with open(path, "rb") as raw:
            rows = _csv_rows(raw)
            header = next(rows, None) or []
            where = [header.index(n) for n in names]
            width = len(header)
            for row in rows:  # a ragged row (refused at upload) gets empty values
                yield tuple(row[i] for i in where) if len(row) == width else ("",) * len(names)
        return
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=8192, columns=names):
            columns = [batch.column(n).to_pylist() for n in names]
            for values in zip(*columns, strict=True):
                yield tuple(_as_text(v) for v in values)


# -- stored files and the result and error files --------------------------------------

RESULT_HEADER = ("row_index", "prediction_id", "label", "score", "confidence", "routing",
                 "reason")
ERROR_HEADER = ("row_index", "field", "code", "message")


def copy_verified(key: str, expected: str, out) -> str:
    digest = hashlib.sha256()
    try:
        with artifact_storage().open(key, "rb") as src:
            for block in iter(lambda: src.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
    except Exception as exc:  # FileNotFoundError, OSError, botocore errors
        raise IntegrityFailure(f"The stored file {key} cannot be read; refusing to serve it.",
                               code="artifact_missing") from exc
    return digest.hexdigest()


def put(local, sha256: str, kind: str) -> str:
    """Store a stream under ``<kind>/<2 hex>/<sha256>``; identical bytes share one key.

    Batch files get their own key space so purging a batch input can never delete a
    model or dataset blob that happens to have the same bytes.
    """
    store = artifact_storage()
    key = blob_key(sha256, kind=kind)
    if not store.exists(key):
        local.seek(0)
        store.save(key, File(local, name=key))
    return key


def fetch_input(job: BatchJob) -> str:
    """Copy the stored input to a private temp file, proving it has the recorded sha256."""
    fd, path = tempfile.mkstemp(prefix="attest-batch-", suffix=f".{job.file_format}")
    try:
        with os.fdopen(fd, "wb") as out:
            actual = copy_verified(job.input_key, job.input_sha256, out)
        if actual != job.input_sha256:
            raise IntegrityFailure("The stored input file no longer has the sha256 recorded at "
                                   "upload; refusing to score it.", code="artifact_hash_mismatch")
    except BaseException:
        os.unlink(path)
        raise
    return path


def _csv_bytes(rows, header=None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    # error rows quote what was sent (core.csvcells: no cell a spreadsheet would run)
    writer.writerows(csvcells.row(r) for r in rows)
    return buffer.getvalue().encode("utf-8")


def error_part_put(errors) -> tuple[str, str]:
    data = _csv_bytes(errors)
    sha256 = hashlib.sha256(data).hexdigest()
    return put(io.BytesIO(data), sha256, "batch-errors"), sha256


def _spool_and_put(write: Callable[[Any], None], kind: str) -> tuple[str, str]:
    """Write a file through ``write(text_stream)`` to a temp file, hashing it, and store it."""
    with tempfile.TemporaryFile() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        write(text)
        text.flush()
        raw.seek(0)
        digest = hashlib.sha256()
        for block in iter(lambda: raw.read(CHUNK), b""):
            digest.update(block)
        sha256 = digest.hexdigest()
        key = put(raw, sha256, kind)
        text.detach()
    return key, sha256


class _PassedThrough:
    """The pass-through values of a row by its row_index, asked in non-decreasing order
    (the result and error files are both in row order): one forward pass over the file."""

    def __init__(self, rows: Iterator[tuple[str, ...]], width: int) -> None:
        self.rows, self.blank = rows, ("",) * width
        self.index, self.values = -1, self.blank

    def __call__(self, row_index: int) -> tuple[str, ...]:
        if row_index < self.index:
            raise IntegrityFailure("Result rows out of row order; cannot join the pass-through "
                                   "columns.", code="passthrough_order")
        while self.index < row_index:
            # verbatim, except text a spreadsheet would run as a formula (core.csvcells)
            self.values = tuple(csvcells.row(next(self.rows, self.blank)))
            self.index += 1
        return self.values


def _write_results(job: BatchJob, passed: _PassedThrough | None = None) -> tuple[str, str]:
    def write(out) -> None:
        writer = csv.writer(out, lineterminator="\n")
        header: tuple = (*job.passthrough_columns, *RESULT_HEADER) if passed else RESULT_HEADER
        rows = (Prediction.objects.filter(batch_id=job.pk).order_by("row_index")
                .values_list(*("row_index", "public_id", "label", "score", "confidence",
                               "routing", "reason")).iterator(chunk_size=5000))
        if job.explain:  # the contributions after the result's own columns (explaining.py)
            from .explaining import Contributions, contribution_columns

            header = (*header, *contribution_columns(job.version))
            contributions = Contributions(job)
            rows = ((*row, *contributions(row[0])) for row in rows)
        if passed:
            rows = ((*passed(row[0]), *row) for row in rows)
        writer.writerow(header)
        writer.writerows(rows)
    return _spool_and_put(write, "batch-results")


def _write_errors(job: BatchJob, passed: _PassedThrough | None = None) -> tuple[str, str]:
    store = artifact_storage()

    def write(out) -> None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow((*job.passthrough_columns, *ERROR_HEADER) if passed else ERROR_HEADER)
        for _index, (key, sha256, *_rows_reasons) in sorted(job.error_parts.items(),
                                                            key=lambda item: int(item[0])):
            with store.open(key, "rb") as part:
                data = part.read()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise IntegrityFailure(f"An error-file part ({key}) changed in storage.",
                                       code="artifact_hash_mismatch")
            if passed is None:
                out.write(data.decode("utf-8"))
                continue
            for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")):
                writer.writerow((*passed(int(row[0])), *row))
    return _spool_and_put(write, "batch-errors")


def write_files(job: BatchJob) -> dict[str, str]:
    """The result and error files, the pass-through columns joined in from the stored input
    (fetched and verified again: the worker's copy is gone, and a resumed job's chunks
    may have come from several runs)."""
    files: dict[str, str] = {}
    if not job.passthrough_columns:
        files["result_key"], files["result_sha256"] = _write_results(job)
        files["error_key"], files["error_sha256"] = _write_errors(job)
        return files
    path = fetch_input(job)
    try:
        for kind, writer in (("result", _write_results), ("error", _write_errors)):
            rows = passthrough_rows(path, job.file_format, job.passthrough_columns)
            passed = _PassedThrough(rows, len(job.passthrough_columns))
            try:
                files[f"{kind}_key"], files[f"{kind}_sha256"] = writer(job, passed)
            finally:
                rows.close()
    finally:
        os.unlink(path)
    return files


def delete(key: str) -> None:
    store = artifact_storage()
    if store.exists(key):
        store.delete(key)

