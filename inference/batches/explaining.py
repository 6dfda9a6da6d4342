"""A batch's "explain all rows": SHAP contributions of every scored row as columns of the
result file.

The explain app computes them (``explain.compute``: the explainer a single prediction
gets, on the chunk's rows as one matrix); this module plans them at upload, stores each
chunk's part and joins the parts into the result file.

1. At upload (``explain_plan``) only the exact fast explainers are accepted (tree or
   linear SHAP), and only when their estimated time for the file's rows is within
   ATTEST_BATCH_EXPLAIN_MAX_SECONDS; anything else is a 400 naming the reason.
2. Each chunk's valid rows are explained after they are scored (``chunk_explain``), and
   the part (row_index, base value, one contribution per feature) is stored
   content-addressed and recorded in the chunk's own transaction: progress (rows_done)
   advances only when a chunk is scored, explained and committed, and a resumed job
   explains exactly the chunks it scores.
3. At the end the result file gains ``contribution_columns`` (joined by row_index,
   ``Contributions``) and ``explanation_record`` says what was computed; the job's
   finish stores it and records it with BATCH_FINISHED in one transaction.

Contributions are in the explainer's units (probability of the positive class for
forests and single trees, log-odds for boosting and linear models), stated per row in
``shap_units``: base value + contributions = the model's output in those units
(``shap_output``, unrounded).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator

from core.errors import IntegrityFailure
from explain.compute import contribution_columns, explanation_rows_compute, explanation_rows_plan
from explain.services import explain_queue
from registry.models import ModelVersion
from registry.storage import artifact_storage

from ..models import BatchJob
from .files import put

__all__ = ["Contributions", "chunk_explain", "contribution_columns", "explain_plan",
           "explain_queue_for", "explanation_record"]


def explain_plan(*, version: ModelVersion, explain: str | None, rows: int) -> dict | None:
    """None without ``explain``; else the explain app's plan (explainer, units, estimated
    time) or its ValidationFailed (not SHAP, no fast explainer, over the budget)."""
    if not explain:
        return None
    return explanation_rows_plan(version=version, method=explain, rows=rows)


def explain_queue_for(explain: str) -> str:
    """The queue of an explained batch: the explain app's (``gpu`` when configured)."""
    return explain_queue(method=explain)


def chunk_explain(*, job: BatchJob, inputs: list[dict], row_indices: list[int]) -> dict:
    """Explain a chunk's scored rows and store the part; returns its entry for
    ``explain_parts`` (no database writes: the chunk's commit records it)."""
    computed = explanation_rows_compute(version=job.version, rows=inputs)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    units = computed.units
    # repr of a float (what csv writes) reads back as the same float: sums check exactly.
    for i, row_index in enumerate(row_indices):
        writer.writerow((row_index, float(computed.base[i]),
                         *(float(v) for v in computed.values[i]), float(computed.output[i]),
                         units))
    data = buffer.getvalue().encode("utf-8")
    sha256 = hashlib.sha256(data).hexdigest()
    key = put(io.BytesIO(data), sha256, "batch-explanations")
    provenance = computed.provenance
    return {"key": key, "sha256": sha256, "rows": len(row_indices),
            "explainer": computed.explainer, "units": units,
            "background_source": provenance["background_source"],
            "background_sha256": provenance["background_sha256"],
            "parameters": provenance["parameters"],
            "library_versions": provenance["library_versions"],
            "residual": computed.residual, "compute_ms": provenance["compute_ms"]}


def _one_or_all(values: list):
    """The value all parts share, or the distinct ones (a job resumed on another worker)."""
    distinct = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    return distinct[0] if len(distinct) == 1 else distinct


def explanation_record(job: BatchJob) -> dict:
    """What the job's chunks computed: method, explainer, units, parameters, background
    hash, library versions (one value, or the distinct ones), rows explained, the largest
    additivity residual and the compute time; with the plan made at upload."""
    parts = [job.explain_parts[k] for k in sorted(job.explain_parts, key=int)]
    record = {"planned": (job.explanation or {}).get("planned"), "method": job.explain,
              "columns": contribution_columns(job.version),
              "rows_explained": sum(p["rows"] for p in parts), "chunks": len(parts)}
    if parts:
        for name in ("explainer", "units", "parameters", "background_source",
                     "background_sha256", "library_versions"):
            record[name] = _one_or_all([p[name] for p in parts])
        record["max_additivity_residual"] = max(p["residual"] for p in parts)
        record["compute_ms"] = round(sum(p["compute_ms"] for p in parts), 3)
        record["explainers"] = dict(Counter(p["explainer"] for p in parts))
    return record


class Contributions:
    """A row's contribution columns by row_index, asked in increasing order (the result
    file is in row order): one pass over the parts in chunk order, each verified against
    its sha256. Rows without a part (failed rows are not in the result file) get blanks."""

    def __init__(self, job: BatchJob) -> None:
        self.width = len(contribution_columns(job.version))
        self.rows = self._rows(job)
        self.next: list[str] | None = next(self.rows, None)

    @staticmethod
    def _rows(job: BatchJob) -> Iterator[list[str]]:
        store = artifact_storage()
        for index in sorted(job.explain_parts, key=int):
            part = job.explain_parts[index]
            with store.open(part["key"], "rb") as handle:
                data = handle.read()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise IntegrityFailure(f"An explanation part ({part['key']}) changed in "
                                       "storage.", code="artifact_hash_mismatch")
            yield from csv.reader(io.StringIO(data.decode("utf-8"), newline=""))

    def __call__(self, row_index: int) -> tuple[str, ...]:
        while self.next is not None and int(self.next[0]) < row_index:
            self.next = next(self.rows, None)
        if self.next is not None and int(self.next[0]) == row_index:
            return tuple(self.next[1:])
        return ("",) * self.width

