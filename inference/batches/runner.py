"""Running a batch job: claiming it, time-sized chunks committed once each, resumption
where the committed chunks end, finishing, and the summary of why rows failed.

See the package's docstring (``inference.batches``) for chunks and crash safety.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import ErrorItem, IntegrityFailure
from core.gc import gc_paused
from registry.loading import version_model_load

from ..columnar import Screened, check_many
from ..models import BatchJob, BatchStatus, Prediction
from ..services import (
    ScoredRow,
    ScoringFailed,
    rejection_count,
    score_rows,
)
from . import explaining, files
from .files import Record
from .logwrite import log_write

log = logging.getLogger(__name__)

# The first chunk's rows (ATTEST_BATCH_CHUNK_ROWS), and the seconds of work each later
# chunk is sized to (ATTEST_BATCH_CHUNK_SECONDS; 0 keeps every chunk at the first's size).
# About 1 s a chunk keeps the progress step under 2 s with room for a slow chunk, and
# chunks large enough that per-chunk costs stay small (docs/performance.md, "Predict").
DEFAULT_CHUNK_ROWS = 5000
DEFAULT_CHUNK_SECONDS = 1.0
MIN_CHUNK_ROWS = 100
MAX_CHUNK_ROWS = 100_000
# A running job with no progress for this long, and no live worker, is re-enqueued.
DEFAULT_STALE_SECONDS = 120
# pg_try_advisory_lock(class, id): "BATC" names the batch jobs among advisory locks.
_LOCK_CLASS = 0x42415443
FINISHED = (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED)
ACTIVE = (BatchStatus.QUEUED, BatchStatus.RUNNING)
BUSY = "busy"  # another worker holds the job: the task retries later
# Failure reasons kept per chunk (with its error-file part), and the length of a message.
MAX_CHUNK_REASONS = 50
MAX_REASON_TEXT = 300



def chunk_rows_setting() -> int:
    return int(getattr(settings, "ATTEST_BATCH_CHUNK_ROWS", DEFAULT_CHUNK_ROWS))


def chunk_seconds_setting() -> float:
    return float(getattr(settings, "ATTEST_BATCH_CHUNK_SECONDS", DEFAULT_CHUNK_SECONDS))


class ChunkSizer:
    """Rows for the next chunk: ``first``, then — with a ``target`` in seconds — what the
    last full chunk's rate does in that time, growing at most 2x a chunk and within
    [MIN_CHUNK_ROWS, MAX_CHUNK_ROWS]. Called by the reader before it cuts a chunk."""

    def __init__(self, first: int, target: float = 0.0) -> None:
        self.size = max(1, int(first))
        self.target = target

    def __call__(self) -> int:
        return self.size

    def observe(self, rows: int, seconds: float) -> None:
        """A chunk of ``rows`` took ``seconds`` from the previous progress step to its own."""
        if self.target <= 0 or seconds <= 0 or rows < self.size:
            return  # fixed size, or the short last chunk: nothing to learn
        wanted = rows * self.target / seconds
        self.size = int(max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, 2 * self.size, wanted)))


class ChunkOutOfStep(Exception):
    """A chunk did not start at the job's ``rows_done``: another run moved the job on.
    Nothing was written; the job resumes from what is committed."""


# -- running ------------------------------------------------------------------------------

@contextmanager
def processing_lock(job_id: int) -> Iterator[bool]:
    """Yield whether this process may work on the job (PostgreSQL: a session advisory lock).

    The lock dies with the worker's connection, so a crashed worker never blocks the
    job; elsewhere (SQLite, the embedded shape) there is one process and no lock.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, job_id % 2**31])
        got = bool(cursor.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)",
                                   [_LOCK_CLASS, job_id % 2**31])
            except DatabaseError:  # the connection is gone, and the lock with it
                pass


def embedded_thread_name(job_id: int) -> str:
    """The name of the thread that runs a job in the web process (the embedded shape)."""
    return f"attest-batch-{job_id}"


def nobody_working_on(job_id: int) -> bool:
    if any(t.name == embedded_thread_name(job_id) and t.is_alive()
           for t in threading.enumerate()):
        return False  # the embedded shape's thread for it, in this process
    with processing_lock(job_id) as got:
        return got


def _cancel_requested(job_id: int) -> bool:
    return bool(BatchJob.objects.filter(pk=job_id).values_list("cancel_requested", flat=True)
                .first())


def batch_run(*, job_id: int) -> str:
    """Score a job's remaining chunks; returns its status afterwards (or ``busy``).

    1. Finished jobs are left alone (a redelivered message is a no-op).
    2. Take the job's processing lock; if another worker holds it, answer ``busy``.
    3. Mark it running (count the attempt); fetch and verify the input; load the model.
    4. For each chunk not yet done: stop as cancelled if cancellation was requested,
       else ``batch_chunk_process`` it (one transaction per chunk).
    5. Write the result and error files and mark the job completed.
    Bad rows do not fail a job (they go to the error file) unless every row is bad: then
    it ends failed, the reasons summarised (``batch_failure_reasons``). A missing input or
    an unloadable model fails it too, with the reason. Database errors propagate: the job stays
    running and is resumed.
    """
    job = BatchJob.objects.filter(pk=job_id).select_related(
        "model", "version", "version__dataset", "requester").first()
    if job is None or job.status in FINISHED:
        return job.status if job else "missing"
    with processing_lock(job.pk) as mine:
        if not mine:
            return BUSY
        now = timezone.now()
        claimed = BatchJob.objects.filter(pk=job.pk, status__in=ACTIVE).update(
            status=BatchStatus.RUNNING, attempts=F("attempts") + 1, updated_at=now,
            started_at=job.started_at or now)
        if not claimed:
            return BatchJob.objects.values_list("status", flat=True).get(pk=job.pk)
        job.refresh_from_db()
        if job.cancel_requested:
            return job_finish(job.pk, BatchStatus.CANCELLED)
        path = None
        try:
            path = files.fetch_input(job)
            loaded = version_model_load(version=job.version, purpose="batch")
            sizer = ChunkSizer(job.chunk_size, job.chunk_seconds)
            # Committed chunks are a prefix of the file: resume where they end.
            chunks = files.chunks(path, job.file_format, job.version, sizer,
                                        start=job.rows_done, first_index=len(job.chunks_done))
            if not batch_chunks_run(job=job, chunks=chunks, loaded=loaded, sizer=sizer):
                return job_finish(job.pk, BatchStatus.CANCELLED)
        except ChunkOutOfStep as exc:
            log.warning("batch job %s: %s; leaving it to the run that moved it", job.public_id,
                        exc)
            return BUSY
        except DatabaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the job, which fails
            log.exception("batch job %s failed", job.public_id)
            message = exc.message if hasattr(exc, "message") else f"{exc.__class__.__name__}: {exc}"
            return job_finish(job.pk, BatchStatus.FAILED, error=str(message)[:2000])
        finally:
            if path:
                os.unlink(path)
        return job_finish(job.pk, BatchStatus.COMPLETED)


def _errors_of(records: list[Record], checked_rows: list, reject_ood: bool
               ) -> tuple[list[int], list[int], list[tuple[int, str, str, str]]]:
    """(positions of the valid rows in ``records``, their row indices, the errors)."""
    valid, indices, errors = [], [], []
    for position, ((row_index, _values, problem), checked) in enumerate(
            zip(records, checked_rows, strict=True)):
        if problem is not None:
            errors.append((row_index, problem.field or "", problem.code, problem.message))
            continue
        if not checked.errors and not (reject_ood and checked.ood):
            valid.append(position)
            indices.append(row_index)
            continue
        items = list(checked.errors)
        if reject_ood:
            items += [ErrorItem(f"ood_{flag['code']}", flag["message"],
                                f"row.{flag['feature']}" if flag["feature"] else "row")
                      for flag in checked.ood]
        errors += [(row_index, (e.field or "").removeprefix("row").removeprefix("."),
                    e.code, e.message) for e in items]
    return valid, indices, errors


def _matrix_of(screened: Screened, positions: list[int], checked: list, names: list[str]
               ) -> np.ndarray | None:
    """The scoring matrix of the valid rows: the screen's lines, and the validated values
    for rows that did not pass the screen (imputed, or flagged and routed to review)."""
    if screened.matrix is None or not positions:
        return None
    matrix = screened.matrix[positions]
    passed = screened.passed[positions]
    for j in np.flatnonzero(~passed).tolist():
        values = checked[j].values
        matrix[j] = [np.nan if values.get(n) is None else float(values[n]) for n in names]
    return matrix


def batch_chunk_process(*, job: BatchJob, index: int, records: list[Record], loaded) -> bool:
    """Validate, score and log one chunk, exactly once; returns False if it was already done.

    ``batch_chunk_prepare`` then ``batch_chunk_commit``; ``batch_chunks_run`` overlaps the
    two across consecutive chunks on PostgreSQL (``_committer``).
    """
    return batch_chunk_commit(job=job, prepared=batch_chunk_prepare(
        job=job, index=index, records=records, loaded=loaded))


@dataclass
class PreparedChunk:
    """A chunk validated and scored, with everything its transaction will write."""

    index: int
    start: int  # the chunk's first row_index
    size: int
    rows: list[ScoredRow]
    part: tuple[str, str] | None
    failed_rows: int
    codes: Counter
    reasons: list = field(default_factory=list)  # _reasons_by_row: stored with the part
    explained: dict | None = None  # the contributions' part (explaining.chunk_explain)


def batch_chunk_prepare(*, job: BatchJob, index: int, records: list[Record],
                        loaded) -> PreparedChunk:
    """Validation column by column (``check_many``, identical to per-row ``check_input``),
    scoring on one matrix, routing and row hashes; the error-file part goes to the
    artifact store (content-addressed, so a retried chunk writes the same key). No
    database writes."""
    with gc_paused():  # ~20,000 rows of short-lived dicts, no cycles (core/gc.py)
        started, cpu_started = time.perf_counter(), time.thread_time()
        version = job.version
        schema, profile = version.input_schema, version.dataset.profile
        screened = check_many([values for _i, values, _p in records], schema=schema,
                              profile=profile, path="row")
        positions, indices, errors = _errors_of(records, screened.checked,
                                                reject_ood=version.ood_policy == "reject")
        valid = [screened.checked[p] for p in positions]
        matrix = _matrix_of(screened, positions, valid, [f["name"] for f in schema])
        rows: list[ScoredRow] = []
        if valid:
            try:
                rows = score_rows(model=job.model, version=version, checked=valid,
                                  loaded=loaded, requester=job.requester, started=started,
                                  batch=job, row_indices=indices, matrix=matrix,
                                  cpu_started=cpu_started)
            except ScoringFailed:
                # Valid rows the model cannot represent (1e308 overflowing a scaler): find
                # them, list them as errors, and score the rest.
                bad = _unscorable(loaded, valid)
                errors = sorted(errors + [(indices[i], "", "unscorable", UNSCORABLE)
                                          for i in bad])
                keep = [i for i in range(len(valid)) if i not in bad]
                valid, indices = [valid[i] for i in keep], [indices[i] for i in keep]
                if valid:
                    rows = score_rows(model=job.model, version=version, checked=valid,
                                      loaded=loaded, requester=job.requester,
                                      started=started, batch=job, row_indices=indices,
                                      cpu_started=cpu_started)
    part = files.error_part_put(errors) if errors else None
    # "Explain all rows": the scored rows' SHAP contributions, part of this chunk's work
    # (and so of its progress step and its size).
    explained = explaining.chunk_explain(job=job, inputs=[c.values for c in valid],
                                         row_indices=indices) if job.explain and valid else None
    return PreparedChunk(index, records[0][0] if records else 0, len(records), rows, part,
                         len({e[0] for e in errors}), _codes_by_row(errors),
                         _reasons_by_row(errors), explained)


def batch_chunk_commit(*, job: BatchJob, prepared: PreparedChunk) -> bool:
    """Write a prepared chunk exactly once: log rows, review items, the error part's key and
    the job's progress in one transaction, after locking the job row and re-checking its
    status and ``chunks_done`` (False: nothing written, the chunk was done already)."""
    index, rows, low = prepared.index, prepared.rows, prepared.start
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != BatchStatus.RUNNING or index in locked.chunks_done:
            return False
        if low != locked.rows_done or index != len(locked.chunks_done):
            raise ChunkOutOfStep(f"chunk {index} starts at row {low}, the job is at chunk "
                                 f"{len(locked.chunks_done)}, row {locked.rows_done}")
        # Backstop: rows of this chunk logged without the chunk being marked cannot
        # happen (one transaction), but never log a row twice if they did.
        present = set(Prediction.objects.filter(
            batch_id=job.pk, row_index__gte=low, row_index__lt=low + prepared.size)
            .values_list("row_index", flat=True))
        if present:
            log.error("batch %s chunk %s: %d rows already logged; skipping them",
                      job.public_id, index, len(present))
            rows = [r for r in rows if r.values["row_index"] not in present]
        routed = log_write(rows, model=job.model, version=job.version)
        locked.chunks_done = sorted({*locked.chunks_done, index})
        locked.rows_done += prepared.size
        locked.rows_failed += prepared.failed_rows
        locked.rows_routed += routed
        if prepared.part:
            locked.error_parts = {**locked.error_parts,
                                  str(index): [*prepared.part, prepared.failed_rows,
                                               prepared.reasons]}
        if prepared.explained:
            locked.explain_parts = {**locked.explain_parts, str(index): prepared.explained}
        locked.save(update_fields=["chunks_done", "rows_done", "rows_failed", "rows_routed",
                                   "error_parts", "explain_parts", "updated_at"])
    # Counted after the commit, outside the chunk's transaction, so single predictions
    # counting the same reasons never wait for a chunk; a crash right here undercounts.
    for code, n in sorted(prepared.codes.items()):
        rejection_count(model=job.model, version=job.version, code=code, n=n)
    return True


def batch_chunks_run(*, job: BatchJob, chunks: Iterable[tuple[int, Callable[[], list[Record]]]],
                     loaded, done: set[int] | frozenset[int] = frozenset(),
                     sizer: ChunkSizer | None = None) -> bool:
    """Process the chunks not in ``done``, in order; False if cancellation stopped it.

    Each chunk is prepared (``batch_chunk_prepare``) and handed to ``_committer``, which
    commits it after the one before it. ``sizer`` (the one ``chunks`` asks for sizes) is
    told how long each chunk took, from one progress step to the next.
    """
    step = time.perf_counter()
    with _committer(job) as commit:
        for index, records in chunks:
            if index in done:
                continue
            if _cancel_requested(job.pk):
                return False
            prepared = batch_chunk_prepare(job=job, index=index, records=records(),
                                           loaded=loaded)
            commit(prepared)
            # The previous chunk's commit (a progress step) and this one's preparation
            # are behind us: the time since the last step is what this chunk costs.
            now = time.perf_counter()
            if sizer is not None:
                sizer.observe(prepared.size, now - step)
            step = now
    return True


@contextmanager
def _committer(job: BatchJob) -> Iterator[Callable[[PreparedChunk], None]]:
    """``commit(prepared)``: commit a chunk (``batch_chunk_commit``) after the previous one.

    On PostgreSQL outside any transaction, a second thread with its own connection commits
    chunk k while the caller prepares chunk k+1: the database ingests one chunk while
    Python validates and scores the next. Commits stay in chunk order, one at a time, and
    a commit's error is raised by the next ``commit`` (or on leaving) before anything else
    is handed over, so what is written is what committing in line writes. Elsewhere
    (SQLite has one writer; inside a transaction the thread could not see the job)
    ``commit`` commits at once.

    Kept for its measured worth: 200,000 rows on PostgreSQL (time-sized chunks from 5,000
    rows, logistic regression, one BLAS thread, 2 cores), the whole loop took 7.95 s
    overlapped against 9.36 s committing in line (best of 3: 15% less time); 7.54 s
    against 9.53 s with the earlier hand-formatted COPY.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield lambda prepared: batch_chunk_commit(job=job, prepared=prepared)
        return
    context = contextvars.copy_context()  # the actor of the job's audit context
    pending: Future | None = None

    def commit(prepared: PreparedChunk) -> None:
        nonlocal pending
        if pending is not None:
            pending.result()
        pending = committer.submit(context.run, batch_chunk_commit, job=job, prepared=prepared)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-commit") as committer:
        try:
            yield commit
            if pending is not None:
                pending.result()
        except BaseException:
            if pending is not None:  # let the commit in flight finish first
                with contextlib.suppress(Exception):
                    pending.result()
            raise
        finally:
            committer.submit(_close_connection).result()  # the committing thread's own


def _close_connection() -> None:
    connection.close()  # called in the thread whose connection it closes


UNSCORABLE = "The model could not score this row: a value is too extreme for it."


def _unscorable(loaded, checked: list) -> set[int]:
    """Positions of the inputs the model cannot score, by bisection (they are rare)."""
    try:
        proba = np.asarray(loaded.predict_proba([c.values for c in checked]), dtype=float)
    except (ValueError, OverflowError, FloatingPointError):
        if len(checked) == 1:
            return {0}
        mid = len(checked) // 2
        return _unscorable(loaded, checked[:mid]) | {
            mid + i for i in _unscorable(loaded, checked[mid:])}
    return {int(i) for i in np.flatnonzero(~np.isfinite(proba).all(axis=1))}


def _codes_by_row(errors) -> Counter:
    by_row: dict[int, set[str]] = {}
    for row_index, _field, code, _message in errors:
        by_row.setdefault(row_index, set()).add(code)
    return Counter(code for codes in by_row.values() for code in codes)


def _reasons_by_row(errors) -> list[list]:
    """``[code, field, rows, message]`` per (code, field) of a chunk's errors: in how many
    rows, and the first message (messages name the feature and the rule, never the value),
    most rows first, at most MAX_CHUNK_REASONS."""
    rows: dict[tuple[str, str], set[int]] = {}
    messages: dict[tuple[str, str], str] = {}
    for row_index, where, code, message in errors:
        rows.setdefault((code, where), set()).add(row_index)
        messages.setdefault((code, where), message[:MAX_REASON_TEXT])
    ranked = sorted(rows, key=lambda k: (-len(rows[k]), k))[:MAX_CHUNK_REASONS]
    return [[code, where, len(rows[(code, where)]), messages[(code, where)]]
            for code, where in ranked]


def batch_failure_reasons(job: BatchJob, *, top: int = 10) -> list[dict]:
    """Why the job's rows failed: ``{"code", "field", "rows", "message"}`` per error code
    and feature, summed over its chunks (from ``error_parts``), most rows first. A row with
    two problems counts under both; the error file has every row."""
    rows: Counter = Counter()
    messages: dict[tuple[str, str], str] = {}
    for part in job.error_parts.values():
        for code, where, n, message in (part[3] if len(part) > 3 else []):
            rows[(code, where)] += n
            messages.setdefault((code, where), message)
    ranked = sorted(rows, key=lambda k: (-rows[k], k))[:top]
    return [{"code": code, "field": where, "rows": rows[(code, where)],
             "message": messages[(code, where)]} for code, where in ranked]


def _all_failed_text(job: BatchJob, *, top: int = 5) -> str:
    """The error of a job in which every row failed: its most frequent reasons."""
    reasons = batch_failure_reasons(job, top=top + 1)
    parts = []
    for r in reasons[:top]:
        where = f" on {r['field']}" if r["field"] else ""
        parts.append(f"{r['code']}{where} in {r['rows']} row{'s' if r['rows'] != 1 else ''} "
                     f"({r['message'].rstrip('.')})")
    more = "; and other reasons" if len(reasons) > top else ""
    return (f"Every row failed ({job.rows_failed} of {job.total_rows}), so nothing was "
            f"scored: {'; '.join(parts) or 'see the error file'}{more}. The error file lists "
            "every row.")[:2000]


def job_finish(job_id: int, status: str, *, error: str = "", write_files: bool = True) -> str:
    """Mark a job finished (once), with its result files, and record BATCH_FINISHED."""
    job = BatchJob.objects.select_related("model", "version").get(pk=job_id)
    if job.status in FINISHED:
        return job.status
    written: dict[str, str] = {}
    if write_files:
        try:
            written = files.write_files(job)
        except (OSError, ValueError, IntegrityFailure) as exc:
            log.exception("batch %s: result files could not be written", job.public_id)
            status, error, written = (BatchStatus.FAILED,
                                       f"Result files could not be written: {exc}", {})
    if status == BatchStatus.COMPLETED and job.rows_done != job.total_rows:
        status, error = BatchStatus.FAILED, (f"Only {job.rows_done} of {job.total_rows} rows "
                                             "were read from the file.")
    elif status == BatchStatus.COMPLETED and job.total_rows \
            and job.rows_failed >= job.total_rows:
        # Nothing was scored: not a completed job, though its error file is written.
        status, error = BatchStatus.FAILED, _all_failed_text(job)
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().get(pk=job_id)
        if locked.status in FINISHED:
            return locked.status
        now = timezone.now()
        # What was explained, from the chunks committed (the locked row's): stored with
        # the state change and in its audit event.
        explained = {"explanation": explaining.explanation_record(locked)} \
            if locked.explain else {}
        BatchJob.objects.filter(pk=job_id).update(status=status, error=error, finished_at=now,
                                                  updated_at=now, **written, **explained)
        audit_event_record(
            action=Action.BATCH_FINISHED, obj=locked, model_id=locked.model_id,
            model_name=job.model.name, version_id=locked.version_id,
            version_label=job.version.label,
            details={"batch": str(locked.public_id), "status": status,
                     "total_rows": locked.total_rows, "rows_done": locked.rows_done,
                     "predictions": locked.rows_done - locked.rows_failed,
                     "rows_failed": locked.rows_failed, "rows_routed": locked.rows_routed,
                     "attempts": locked.attempts, "result_sha256": written.get("result_sha256"),
                     "error_sha256": written.get("error_sha256"), "error": error or None,
                     **explained})
    return status


