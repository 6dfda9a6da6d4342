"""Batch jobs: a CSV or Parquet file scored in chunks by Celery workers.

The request that uploads the file checks it (format, encoding, ragged rows,
the header against the version's schema, the broker), stores it and writes a
``BatchJob`` row; the worker task takes only the job's id. Every valid row is
logged as a ``Prediction`` with ``batch`` and ``row_index`` (its 0-based
position among the file's data rows, blank lines not counted) and routed like a
single prediction (the same ``score_and_build``); rows that fail validation go
to the error file instead, and are counted by reason like refused requests.

Chunks
    Chunks are consecutive runs of rows, committed in order: chunk k starts where
    chunk k-1 ended, so the job's ``rows_done`` is where the next chunk starts.
    A job with ``chunk_seconds`` (the default, ATTEST_BATCH_CHUNK_SECONDS) sizes each
    chunk from the rate of the ones before it (``ChunkSizer``): about that many
    seconds of work, so progress moves as often on a slow model or machine as on a
    fast one, and transactions are as large as that allows. Its first chunk is
    ``chunk_size`` rows; a job submitted with an explicit ``chunk_size`` keeps it.

Crash safety
    A chunk's log rows, review items, error-file part and the job's progress
    (``chunks_done``, counters) are written in ONE transaction that first locks the
    job row, skips the chunk if it is already marked done, and refuses it unless it
    starts at ``rows_done``. So a worker killed at any point leaves either the whole
    chunk or none of it, and a later run resumes at ``rows_done`` whatever size its
    chunks take; the unique (batch, row_index) constraint is the backstop, checked
    before inserting (check-then-insert) so review items stay paired with their rows.
    Result and error files are derived from the database and the stored parts at the
    end, byte-for-byte the same on a re-run, and stored under their sha256.

Pass-through columns
    Columns named at upload (``passthrough_columns``, an identifier to join results
    back by) are never read into a record, so they are not validated, scored, hashed or
    logged, and no chunk's error part holds them. The result and error files get them
    as leading columns at the end, read afresh from the stored input by row_index
    (``batch_files.passthrough_rows``), so a resumed job's files are right whatever
    chunks it ran in. Their values then live only in the stored input, result and error
    files, which ``batch_inputs_purge`` deletes together under the model's retention.

    Redelivery: tasks are acknowledged late, so a message whose worker died
    stays with the broker. On PostgreSQL a worker holds a session advisory lock
    on the job while it works; the database drops it the moment the worker's
    connection dies. A second delivery while the lock is held retries later
    (no two workers score one job at once), and ``batch_resume_stale`` (Celery
    beat) re-enqueues jobs that made no progress for a while and whose lock
    nobody holds: that resumes a job after ``kill -9`` within a minute or two,
    without waiting for the broker's visibility timeout (an hour).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import hashlib
import io
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core import csvcells
from core.errors import (
    Conflict,
    ErrorItem,
    IntegrityFailure,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from core.gc import gc_paused
from core.hashing import CHUNK
from registry.loading import version_model_load
from registry.models import ArtifactFormat, ModelVersion, RegisteredModel
from registry.roles import Capability
from registry.selectors import require_capability, user_capabilities
from registry.storage import artifact_storage, blob_key, spool_upload

from . import batch_files
from .batch_files import Record
from .columnar import Screened, check_many
from .log import chain_advance, chain_links, chain_lock
from .models import BatchJob, BatchStatus, Prediction, ReviewItem, ReviewStatus
from .services import (
    ScoredRow,
    ScoringFailed,
    rejection_count,
    score_rows,
    target_version,
)

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
RESULT_HEADER = ("row_index", "prediction_id", "label", "score", "confidence", "routing",
                 "reason")
ERROR_HEADER = ("row_index", "field", "code", "message")
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


def batch_queue_for(version: ModelVersion) -> str:
    """``gpu`` for versions served by onnxruntime when a GPU queue is configured."""
    if not getattr(settings, "ATTEST_GPU_QUEUE_ENABLED", False):
        return "default"
    onnx = version.artifact_format == ArtifactFormat.ONNX
    serving = getattr(version, "serving_runtime", None)
    if serving is not None and getattr(serving, "batch_runtime", "") == "onnxruntime":
        onnx = True
    return "gpu" if onnx else "default"


# -- reads ------------------------------------------------------------------------------

def _may_see(user, job: BatchJob) -> bool:
    caps = user_capabilities(user=user, model=job.model)
    if Capability.PREDICT not in caps:
        return False
    return job.requester_id == user.pk or Capability.REGISTER_VERSION in caps


def batch_get_for_user(*, user, batch_id: Any) -> BatchJob:
    """The job if the user may see it (its requester or the model's owners, with predict)."""
    try:
        public_id = uuid.UUID(str(batch_id))
    except ValueError:
        raise NotFound("No such batch job.") from None
    job = (BatchJob.objects.select_related("model", "version", "requester")
           .filter(public_id=public_id).first())
    if job is None or not _may_see(user, job):
        raise NotFound("No such batch job.")
    return job


def batch_list_for_user(*, user, model: RegisteredModel):
    """The model's jobs the user may see, newest first."""
    require_capability(user=user, model=model, capability=Capability.PREDICT)
    jobs = BatchJob.objects.filter(model=model).select_related("version", "requester")
    if Capability.REGISTER_VERSION not in user_capabilities(user=user, model=model):
        jobs = jobs.filter(requester=user)
    return jobs.order_by("-created_at")


def batch_progress(job: BatchJob) -> dict:
    """Rows done of total, the average rate so far and the time left at that rate."""
    total, done = job.total_rows, job.rows_done
    rate = eta = None
    if job.started_at and done:
        until = job.finished_at or job.updated_at
        elapsed = (until - job.started_at).total_seconds() if until else 0
        if elapsed > 0:
            rate = done / elapsed
            if job.status in ACTIVE:
                eta = max(total - done, 0) / rate
    return {"rows_done": done, "total_rows": total,
            "percent": round(100 * done / total, 1) if total else 0.0,
            "rows_per_second": round(rate, 1) if rate else None,
            "eta_seconds": round(eta, 1) if eta is not None else None}


def batch_file_get(*, user, job: BatchJob, kind: str) -> tuple[Any, str]:
    """The job's result or error file, verified against its sha256, and a download name.

    The stored file is copied to an anonymous temp file while hashing, so a large
    file is never held in memory and a changed one is refused before any byte is
    sent. The caller closes the returned file (a FileResponse does).
    """
    if not _may_see(user, job) or kind not in ("results", "errors"):
        raise NotFound("No such batch job or file.")
    key, expected = ((job.result_key, job.result_sha256) if kind == "results"
                     else (job.error_key, job.error_sha256))
    if not key and job.files_purged:
        raise NotFound(f"This job's {kind} file was deleted under the model's retention "
                       f"({job.model.retention_days} days): it carried the pass-through "
                       "columns.", code="purged")
    if not key:
        raise NotFound(f"This job has no {kind} file (yet).", code="not_ready")
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - returned open; the caller closes it
    try:
        actual = _copy_verified(key, expected, handle)
        if actual != expected:
            raise IntegrityFailure(
                f"The stored {kind} file's sha256 is {actual[:12]}…, but {expected[:12]}… was "
                "recorded when the job finished: the bytes changed in storage. Refusing to "
                "serve it.", code="artifact_hash_mismatch",
                extra={"expected_sha256": expected, "actual_sha256": actual})
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    return handle, f"{job.model.name}-batch-{str(job.public_id)[:8]}-{kind}.csv"


def _copy_verified(key: str, expected: str, out) -> str:
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


# -- submitting -------------------------------------------------------------------------

def _broker_check() -> None:
    """503 before anything is stored when the broker cannot be reached (eager: no broker)."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        return
    try:
        with current_app.connection_for_write(connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2,
                                   timeout=2)
    except Exception as exc:  # kombu/redis raise various classes
        log.warning("batch refused: broker unreachable (%s)", exc)
        raise ServiceUnavailable(_BROKER_DOWN, code="queue_unavailable") from exc


_BROKER_DOWN = ("Batch jobs cannot be accepted right now: the job queue (message broker) is "
                "unreachable. Nothing was stored. Single predictions still work; try the batch "
                "again later.")
_PUBLISH_FAILED = ("The job could not be queued: the job queue (message broker) became "
                   "unreachable. The job is recorded as failed; single predictions still work. "
                   "Try the batch again later.")


def _put(local, sha256: str, kind: str) -> str:
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


def batch_submit(*, user, model: RegisteredModel, upload, version_number: Any = None,
                 file_format: str | None = None, chunk_size: int | None = None,
                 passthrough_columns: str | Iterable[str] | None = None) -> BatchJob:
    """Check an uploaded file, store it and queue a job to score it.

    1. Permission (predict) and target version (production, or an owner's choice).
    2. The upload is spooled to disk (413 past ATTEST_MAX_UPLOAD_BYTES) and checked:
       format, strict UTF-8, no ragged rows, a header with every required feature
       and no unknown column (the pass-through columns named, a comma-separated text or a
       list, are columns of the file and not features), at least one row. Any problem is
       a 400, nothing stored.
    3. The broker is checked (503, nothing stored, when it is down).
    4. The file is stored under its sha256; the job row and its audit event are
       written in one transaction, and the task is enqueued on commit.
    5. Should publishing still fail, the job is marked failed (never left queued)
       and the request answers 503.
    """
    require_capability(user=user, model=model, capability=Capability.PREDICT)
    if upload is None:
        raise ValidationFailed("Attach the file to score as 'file' (CSV or Parquet).",
                               code="required", field="file")
    version = target_version(user=user, model=model, number=version_number)
    chunk_seconds = 0.0 if chunk_size else chunk_seconds_setting()
    chunk_size = int(chunk_size or chunk_rows_setting())
    if not 1 <= chunk_size <= MAX_CHUNK_ROWS:
        raise ValidationFailed(f"chunk_size must be between 1 and {MAX_CHUNK_ROWS}.",
                               field="chunk_size")
    passthrough = batch_files.passthrough_names(passthrough_columns)
    name = Path(getattr(upload, "name", "") or "upload").name[:200]
    fmt = batch_files.resolve_format(name, file_format)
    path, sha256, size = spool_upload(upload, limit=settings.ATTEST_MAX_UPLOAD_BYTES)
    try:
        names, total = batch_files.inspect(path, fmt)
        batch_files.check_columns(version, names, passthrough=passthrough,
                                  reserved=(*RESULT_HEADER, *ERROR_HEADER))
        _broker_check()
        with open(path, "rb") as local:
            input_key = _put(local, sha256, "batch-input")
    finally:
        os.unlink(path)
    queue = batch_queue_for(version)
    publish: dict[str, Exception] = {}
    with transaction.atomic():
        job = BatchJob.objects.create(
            model=model, version=version, requester=user, file_name=name, file_format=fmt,
            input_sha256=sha256, input_key=input_key, input_size=size, total_rows=total,
            chunk_size=chunk_size, chunk_seconds=chunk_seconds, queue=queue,
            passthrough_columns=passthrough)
        audit_event_record(
            action=Action.BATCH_SUBMITTED, obj=job, model_id=model.pk, model_name=model.name,
            version_id=version.pk, version_label=version.label,
            details={"batch": str(job.public_id), "file_name": name, "file_format": fmt,
                     "input_sha256": sha256, "rows": total, "chunk_size": chunk_size,
                     "chunk_seconds": chunk_seconds, "queue": queue,
                     # names only: their values never leave the job's files
                     "passthrough_columns": passthrough})
        transaction.on_commit(lambda: _enqueue(job.pk, queue, publish))
    if "error" in publish:
        raise ServiceUnavailable(_PUBLISH_FAILED, code="queue_unavailable",
                                 extra={"batch": str(job.public_id)})
    job.refresh_from_db()
    return job


def _send(job_id: int, queue: str) -> None:
    """Queue the job's task; without a broker (eager, the embedded shape) run it right here."""
    from celery import current_app

    from .tasks import run_batch

    if current_app.conf.task_always_eager:
        if settings.ATTEST_BATCH_EAGER_THREAD:
            # Embedded shape: no worker, so run beside the request instead of inside it (a
            # million rows take a minute); the upload answers at once and the job's page
            # shows progress as chunks commit.
            threading.Thread(target=_run_here, args=(job_id,), name=f"attest-batch-{job_id}",
                             daemon=True).start()
        else:
            run_batch.apply(args=[job_id], throw=True)
        return
    run_batch.apply_async(args=[job_id], queue=queue, retry=True, retry_policy={
        "max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1})


def _run_here(job_id: int) -> None:
    from .tasks import run_batch

    try:
        run_batch.apply(args=[job_id], throw=False)
    finally:
        connection.close()  # this thread's own connection


def _enqueue(job_id: int, queue: str, publish: dict) -> None:
    """Publish the task (after commit); on failure mark the job failed, never queued forever."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        _send(job_id, queue)  # errors of an in-process run are the job's own, not publishing's
        return
    try:
        _send(job_id, queue)
    except Exception as exc:  # kombu/redis raise various classes
        log.error("could not publish batch job %s: %s", job_id, exc)
        publish["error"] = exc
        _finish(job_id, BatchStatus.FAILED, error="The job could not be queued: the message "
                f"broker was unreachable ({exc.__class__.__name__}).", write_files=False)


def _fetch_input(job: BatchJob) -> str:
    """Copy the stored input to a private temp file, proving it has the recorded sha256."""
    fd, path = tempfile.mkstemp(prefix="attest-batch-", suffix=f".{job.file_format}")
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _copy_verified(job.input_key, job.input_sha256, out)
        if actual != job.input_sha256:
            raise IntegrityFailure("The stored input file no longer has the sha256 recorded at "
                                   "upload; refusing to score it.", code="artifact_hash_mismatch")
    except BaseException:
        os.unlink(path)
        raise
    return path


# -- running ------------------------------------------------------------------------------

@contextmanager
def _processing_lock(job_id: int) -> Iterator[bool]:
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


def _nobody_working_on(job_id: int) -> bool:
    if any(t.name == f"attest-batch-{job_id}" and t.is_alive() for t in threading.enumerate()):
        return False  # the embedded shape's thread for it, in this process
    with _processing_lock(job_id) as got:
        return got


def batch_resume_embedded() -> list[int]:
    """The embedded shape's stale-job sweep (the production shape has Celery beat's).

    Without a worker, jobs run in threads of the web process, and a restart (the dev
    server reloading, say) leaves them ``running``. Called when jobs are looked at:
    jobs with no progress for ``ATTEST_BATCH_STALE_SECONDS`` and no thread here are
    started again; they resume after their last committed chunk.
    """
    from celery import current_app

    if not (current_app.conf.task_always_eager and settings.ATTEST_BATCH_EAGER_THREAD):
        return []
    return batch_resume_stale()


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
    with _processing_lock(job.pk) as mine:
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
            return _finish(job.pk, BatchStatus.CANCELLED)
        path = None
        try:
            path = _fetch_input(job)
            loaded = version_model_load(version=job.version, purpose="batch")
            sizer = ChunkSizer(job.chunk_size, job.chunk_seconds)
            # Committed chunks are a prefix of the file: resume where they end.
            chunks = batch_files.chunks(path, job.file_format, job.version, sizer,
                                        start=job.rows_done, first_index=len(job.chunks_done))
            if not batch_chunks_run(job=job, chunks=chunks, loaded=loaded, sizer=sizer):
                return _finish(job.pk, BatchStatus.CANCELLED)
        except ChunkOutOfStep as exc:
            log.warning("batch job %s: %s; leaving it to the run that moved it", job.public_id,
                        exc)
            return BUSY
        except DatabaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the job, which fails
            log.exception("batch job %s failed", job.public_id)
            message = exc.message if hasattr(exc, "message") else f"{exc.__class__.__name__}: {exc}"
            return _finish(job.pk, BatchStatus.FAILED, error=str(message)[:2000])
        finally:
            if path:
                os.unlink(path)
        return _finish(job.pk, BatchStatus.COMPLETED)


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
    two across consecutive chunks.
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


def batch_chunk_prepare(*, job: BatchJob, index: int, records: list[Record],
                        loaded) -> PreparedChunk:
    """Validation column by column (``check_many``, identical to per-row ``check_input``),
    scoring on one matrix, routing and row hashes; the error-file part goes to the
    artifact store (content-addressed, so a retried chunk writes the same key). No
    database writes."""
    with gc_paused():  # ~20,000 rows of short-lived dicts, no cycles (core/gc.py)
        started = time.perf_counter()
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
                                  batch=job, row_indices=indices, matrix=matrix)
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
                                      started=started, batch=job, row_indices=indices)
    part = _error_part_put(errors) if errors else None
    return PreparedChunk(index, records[0][0] if records else 0, len(records), rows, part,
                         len({e[0] for e in errors}), _codes_by_row(errors),
                         _reasons_by_row(errors))


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
        routed = _log_write(rows, model=job.model, version=job.version)
        locked.chunks_done = sorted({*locked.chunks_done, index})
        locked.rows_done += prepared.size
        locked.rows_failed += prepared.failed_rows
        locked.rows_routed += routed
        if prepared.part:
            locked.error_parts = {**locked.error_parts,
                                  str(index): [*prepared.part, prepared.failed_rows,
                                               prepared.reasons]}
        locked.save(update_fields=["chunks_done", "rows_done", "rows_failed", "rows_routed",
                                   "error_parts", "updated_at"])
    # Counted after the commit, outside the chunk's transaction, so single predictions
    # counting the same reasons never wait for a chunk; a crash right here undercounts.
    for code, n in sorted(prepared.codes.items()):
        rejection_count(model=job.model, version=job.version, code=code, n=n)
    return True


def batch_chunks_run(*, job: BatchJob, chunks: Iterable[tuple[int, Callable[[], list[Record]]]],
                     loaded, done: set[int] | frozenset[int] = frozenset(),
                     sizer: ChunkSizer | None = None) -> bool:
    """Process the chunks not in ``done``, in order; False if cancellation stopped it.

    ``sizer`` (the one ``chunks`` asks for sizes) is told how long each chunk took,
    from one progress step to the next.

    On PostgreSQL (outside any transaction) chunk k is committed by a second thread with
    its own connection while this one prepares chunk k+1: the database ingests one chunk
    while Python validates and scores the next (docs/performance.md, "Predict"). Commits
    stay in chunk order, one at a time, and a commit's error is raised here before the
    next chunk is handed over, so what is written is what the sequential loop writes.
    """
    overlap = connection.vendor == "postgresql" and not connection.in_atomic_block
    step = [time.perf_counter()]

    def stepped(rows: int) -> None:
        now = time.perf_counter()
        if sizer is not None:
            sizer.observe(rows, now - step[0])
        step[0] = now

    if not overlap:
        for index, records in chunks:
            if index in done:
                continue
            if _cancel_requested(job.pk):
                return False
            chunk = records()
            batch_chunk_process(job=job, index=index, records=chunk, loaded=loaded)
            stepped(len(chunk))
        return True
    context = contextvars.copy_context()  # the actor of the job's audit context

    def commit(prepared: PreparedChunk) -> bool:
        return context.run(batch_chunk_commit, job=job, prepared=prepared)

    def close() -> None:
        connection.close()  # the committing thread's own connection

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-commit") as committer:
        pending = None
        try:
            for index, records in chunks:
                if index in done:
                    continue
                if _cancel_requested(job.pk):
                    return False
                prepared = batch_chunk_prepare(job=job, index=index, records=records(),
                                               loaded=loaded)
                if pending is not None:
                    pending.result()
                pending = committer.submit(commit, prepared)
                # The previous chunk's commit (a progress step) and this one's preparation
                # are behind us: the time since the last step is what this chunk costs.
                stepped(prepared.size)
            if pending is not None:
                pending.result()
                pending = None
        finally:
            if pending is not None:  # an error here: let the commit in flight finish first
                with contextlib.suppress(Exception):
                    pending.result()
            committer.submit(close).result()
    return True


# The log's columns in COPY order: those equal for every row of a chunk first, written as
# one prepared prefix per chunk.
_LOG_CONSTANT = ("model_id", "version_id", "shadow_version_id", "requester_id", "runtime",
                 "created_at", "latency_ms", "batch_id")
_LOG_COLUMNS = (*_LOG_CONSTANT, "id", "public_id", "input_sha256", "input", "label", "score",
                "confidence", "probabilities", "routing", "reason", "ood", "shadow_output",
                "row_index", "row_hash", "chain_hash")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """A text value for COPY's text format (backslash, tab, newline and CR escaped)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_value(value: Any) -> str:
    """An integer, float, text or time value for COPY's text format (None is NULL)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return _copy_text(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _log_prefix(rows: list[ScoredRow]) -> str:
    """The COPY columns equal for every row of one ``score_rows`` call, as one prefix."""
    return "\t".join(_copy_value(rows[0].values[name]) for name in _LOG_CONSTANT) + "\t"


def _copy_line(prefix: str, pk: int, r: ScoredRow, dumps=orjson.dumps) -> str:
    """One log row in COPY's text format, columns as ``_LOG_COLUMNS``."""
    v = r.values
    shadow = v["shadow_output"]
    return prefix + "\t".join((
        str(pk), v["public_id"], v["input_sha256"], _copy_text(r.input_json.decode()),
        _copy_text(v["label"]), repr(v["score"]), repr(v["confidence"]),
        _copy_text(dumps(v["probabilities"]).decode()), v["routing"],
        _copy_text(v["reason"]), _copy_text(dumps(v["ood"]).decode()),
        "\\N" if shadow is None else _copy_text(dumps(shadow).decode()),
        _copy_value(v["row_index"]), v["row_hash"], v["chain_hash"]))


_REVIEW_COLUMNS = ("prediction_id", "model_id", "version_id", "status", "created_at",
                   "decision", "final_label", "reason_code", "comment")


def _log_write(rows: list[ScoredRow], *, model: RegisteredModel, version: ModelVersion) -> int:
    """Write log rows and their review items (inside the caller's transaction); returns the
    number routed to review.

    On PostgreSQL: ids drawn from the table's sequence in one query, then one COPY for
    the log rows and one for the review items (Django's bulk_create spends ~65% of a
    chunk rendering and quoting 20 columns per row; docs/performance.md). JSON goes in
    as the canonical text already computed for the hashes. Elsewhere: bulk_create.
    """
    if not rows:
        return 0
    # The model's chain head is locked before any id is drawn (a model's ids follow its
    # chain) and held to the chunk's commit.
    head = chain_lock(model.pk)
    links = chain_links(head, [r.values["row_hash"] for r in rows])
    for r, link in zip(rows, links, strict=True):
        r.values["chain_hash"] = link
    if connection.vendor != "postgresql":
        objects = [Prediction(input=r.input, **r.values) for r in rows]
        Prediction.objects.bulk_create(objects, batch_size=2000)
        chain_advance(head, links=links, last_id=objects[-1].pk)
        reviews = [ReviewItem(prediction=p, model=model, version=version,
                              created_at=p.created_at)
                   for p, r in zip(objects, rows, strict=True) if r.review]
        ReviewItem.objects.bulk_create(reviews, batch_size=2000)
        return len(reviews)
    table = Prediction._meta.db_table
    dumps = orjson.dumps
    # One score_rows call computes these once for all its rows (tests check it).
    prefix = _log_prefix(rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                       "FROM generate_series(1, %s)", [table, len(rows)])
        ids = [r[0] for r in cursor.fetchall()]
        routed = []
        raw = cursor.cursor  # psycopg's cursor: COPY is not in the DB-API
        lines = []
        with raw.copy(f"COPY {table} ({', '.join(_LOG_COLUMNS)}) FROM STDIN") as copy:
            for pk, r in zip(ids, rows, strict=True):
                lines.append(_copy_line(prefix, pk, r, dumps))
                if len(lines) == 1000:
                    copy.write("\n".join(lines) + "\n")
                    lines = []
                if r.review:
                    routed.append((pk, r.values["created_at"]))
            if lines:
                copy.write("\n".join(lines) + "\n")
        chain_advance(head, links=links, last_id=ids[-1])
        if routed:
            review_table = ReviewItem._meta.db_table
            with raw.copy(f"COPY {review_table} ({', '.join(_REVIEW_COLUMNS)}) "
                          "FROM STDIN") as copy:
                for pk, created in routed:
                    copy.write_row((pk, model.pk, version.pk, ReviewStatus.OPEN, created,
                                    "", "", "", ""))
    return len(routed)


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


def _csv_bytes(rows, header=None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    # error rows quote what was sent (core.csvcells: no cell a spreadsheet would run)
    writer.writerows(csvcells.row(r) for r in rows)
    return buffer.getvalue().encode("utf-8")


def _error_part_put(errors) -> tuple[str, str]:
    data = _csv_bytes(errors)
    sha256 = hashlib.sha256(data).hexdigest()
    return _put(io.BytesIO(data), sha256, "batch-errors"), sha256


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
        key = _put(raw, sha256, kind)
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
        writer.writerow((*job.passthrough_columns, *RESULT_HEADER) if passed else RESULT_HEADER)
        rows = (Prediction.objects.filter(batch_id=job.pk).order_by("row_index")
                .values_list(*("row_index", "public_id", "label", "score", "confidence",
                               "routing", "reason")).iterator(chunk_size=5000))
        if passed:
            rows = ((*passed(row[0]), *row) for row in rows)
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


def _write_files(job: BatchJob) -> dict[str, str]:
    """The result and error files, the pass-through columns joined in from the stored input
    (fetched and verified again: the worker's copy is gone, and a resumed job's chunks
    may have come from several runs)."""
    files: dict[str, str] = {}
    if not job.passthrough_columns:
        files["result_key"], files["result_sha256"] = _write_results(job)
        files["error_key"], files["error_sha256"] = _write_errors(job)
        return files
    path = _fetch_input(job)
    try:
        for kind, writer in (("result", _write_results), ("error", _write_errors)):
            rows = batch_files.passthrough_rows(path, job.file_format, job.passthrough_columns)
            passed = _PassedThrough(rows, len(job.passthrough_columns))
            try:
                files[f"{kind}_key"], files[f"{kind}_sha256"] = writer(job, passed)
            finally:
                rows.close()
    finally:
        os.unlink(path)
    return files


def _finish(job_id: int, status: str, *, error: str = "", write_files: bool = True) -> str:
    """Mark a job finished (once), with its result files, and record BATCH_FINISHED."""
    job = BatchJob.objects.select_related("model", "version").get(pk=job_id)
    if job.status in FINISHED:
        return job.status
    files: dict[str, str] = {}
    if write_files:
        try:
            files = _write_files(job)
        except (OSError, ValueError, IntegrityFailure) as exc:
            log.exception("batch %s: result files could not be written", job.public_id)
            status, error, files = BatchStatus.FAILED, f"Result files could not be written: {exc}", {}
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
        BatchJob.objects.filter(pk=job_id).update(status=status, error=error, finished_at=now,
                                                  updated_at=now, **files)
        audit_event_record(
            action=Action.BATCH_FINISHED, obj=locked, model_id=locked.model_id,
            model_name=job.model.name, version_id=locked.version_id,
            version_label=job.version.label,
            details={"batch": str(locked.public_id), "status": status,
                     "total_rows": locked.total_rows, "rows_done": locked.rows_done,
                     "predictions": locked.rows_done - locked.rows_failed,
                     "rows_failed": locked.rows_failed, "rows_routed": locked.rows_routed,
                     "attempts": locked.attempts, "result_sha256": files.get("result_sha256"),
                     "error_sha256": files.get("error_sha256"), "error": error or None})
    return status


# -- cancelling and resuming --------------------------------------------------------------

def batch_cancel(*, user, job: BatchJob) -> BatchJob:
    """Stop a job: a queued one at once, a running one at its next chunk boundary."""
    if not _may_see(user, job):
        raise NotFound("No such batch job.")
    with transaction.atomic():
        locked = BatchJob.objects.select_for_update().get(pk=job.pk)
        if locked.status in FINISHED:
            raise Conflict(f"The job is already {locked.get_status_display().lower()}.",
                           code="batch_finished")
        if locked.cancel_requested:
            return locked
        was = locked.status
        BatchJob.objects.filter(pk=job.pk).update(cancel_requested=True,
                                                  updated_at=timezone.now())
        audit_event_record(action=Action.BATCH_CANCELLED, obj=locked,
                           model_id=locked.model_id, model_name=job.model.name,
                           version_id=locked.version_id, version_label=job.version.label,
                           details={"batch": str(locked.public_id), "status_at_request": was,
                                    "rows_done": locked.rows_done,
                                    "total_rows": locked.total_rows})
    if was == BatchStatus.QUEUED:
        # Not started: finish it now, holding the job's lock so no worker starts it
        # meanwhile (its message then finds the job finished).
        with _processing_lock(job.pk) as free:
            if free:
                _finish(job.pk, BatchStatus.CANCELLED)
    job.refresh_from_db()
    return job


def batch_resume_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Re-enqueue active jobs with no progress for ``stale_after`` and no live worker.

    Touching ``updated_at`` when re-enqueueing means a job waiting in a long queue
    gets at most one extra message per ``stale_after``; extra messages are harmless.
    """
    if stale_after is None:
        stale_after = timedelta(seconds=getattr(settings, "ATTEST_BATCH_STALE_SECONDS",
                                                DEFAULT_STALE_SECONDS))
    cutoff = timezone.now() - stale_after
    resumed = []
    for job_id, queue in BatchJob.objects.filter(status__in=ACTIVE, updated_at__lte=cutoff) \
            .values_list("pk", "queue"):
        if not _nobody_working_on(job_id):
            continue
        touched = BatchJob.objects.filter(pk=job_id, status__in=ACTIVE,
                                          updated_at__lte=cutoff).update(updated_at=timezone.now())
        if touched:
            _send(job_id, queue or "default")
            resumed.append(job_id)
    if resumed:
        log.warning("re-enqueued stalled batch jobs %s", resumed)
    return resumed


def batch_inputs_purge(*, now=None) -> int:
    """Delete stored batch input files of finished jobs past their model's retention, and
    with them the result and error files of jobs with pass-through columns.

    The rows live on (as prediction inputs, purged by ``prediction_inputs_purge``);
    the file is only needed while the job may still run. A job's pass-through values
    are in its input, result and error files only (never in the log or a chunk's error
    part), so they go together; the result and error files of other jobs hold no input
    values and are kept. A file still referenced by another job (identical bytes share
    a key) is deleted when the last of them is purged.
    """
    now = now or timezone.now()
    purged = 0
    jobs = (BatchJob.objects.filter(status__in=FINISHED, input_purged_at__isnull=True)
            .exclude(input_key="").select_related("model"))
    for job in jobs.iterator():
        if job.created_at > now - timedelta(days=job.model.retention_days):
            continue
        cleared = {"input_key": job.input_key}
        if job.passthrough_columns:
            cleared.update(result_key=job.result_key, error_key=job.error_key)
        with transaction.atomic():
            BatchJob.objects.filter(pk=job.pk).update(input_purged_at=now,
                                                      **dict.fromkeys(cleared, ""))
            audit_event_record(
                action=Action.BATCH_FILES_PURGED, obj=job, model_id=job.model_id,
                model_name=job.model.name, object_repr=f"batch {job.public_id}",
                details={"files": [c.removesuffix("_key") for c, k in cleared.items() if k],
                         "passthrough_columns": job.passthrough_columns,
                         "retention_days": job.model.retention_days,
                         "created_at": job.created_at.isoformat()})
            for column, key in cleared.items():
                if key and not BatchJob.objects.filter(**{column: key}).exists():
                    transaction.on_commit(lambda key=key: _delete(key))
        purged += 1
    return purged


def _delete(key: str) -> None:
    store = artifact_storage()
    if store.exists(key):
        store.delete(key)

