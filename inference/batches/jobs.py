"""Batch jobs as the views see them: submitting (checks, storage, the job row and its
audit event, the task enqueued on commit), reading (who may see a job, its progress and
files), cancelling, re-enqueueing stale jobs, and the retention purge of the job's files.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import (
    Conflict,
    IntegrityFailure,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from registry.models import ArtifactFormat, ModelVersion, RegisteredModel
from registry.roles import Capability
from registry.selectors import require_capability, user_capabilities
from registry.storage import spool_upload

from ..models import BatchJob, BatchStatus
from ..services import target_version
from . import explaining, files
from .files import ERROR_HEADER, RESULT_HEADER, copy_verified, put
from .runner import (
    ACTIVE,
    DEFAULT_STALE_SECONDS,
    FINISHED,
    MAX_CHUNK_ROWS,
    chunk_rows_setting,
    chunk_seconds_setting,
    job_finish,
    nobody_working_on,
    processing_lock,
)

log = logging.getLogger(__name__)

# Sends a job (its id) to a worker on the named queue: ``inference.tasks.batch_enqueue``.
Enqueue = Callable[[int, str], None]


def batch_queue_for(version: ModelVersion, *, explain: str = "") -> str:
    """``gpu`` for versions served by onnxruntime, and for explained batches (the explain
    app's queue, ``explain.services.explain_queue``), when a GPU queue is configured."""
    if not getattr(settings, "ATTEST_GPU_QUEUE_ENABLED", False):
        return "default"
    if explain and explaining.explain_queue_for(explain) == "gpu":
        return "gpu"
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
        actual = copy_verified(key, expected, handle)
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


def batch_submit(*, user, model: RegisteredModel, upload, enqueue: Enqueue,
                 version_number: Any = None, file_format: str | None = None,
                 chunk_size: int | None = None,
                 passthrough_columns: str | Iterable[str] | None = None,
                 explain: str | None = None) -> BatchJob:
    """Check an uploaded file, store it and queue a job to score it.

    ``enqueue(job_id, queue)`` sends the job to its worker; the callers pass
    ``inference.tasks.batch_enqueue`` (Celery's side: this package never imports it).

    1. Permission (predict) and target version (production, or an owner's choice).
    2. The upload is spooled to disk (413 past ATTEST_MAX_UPLOAD_BYTES) and checked:
       format, strict UTF-8, no ragged rows, a header with every required feature
       and no unknown column (the pass-through columns named, a comma-separated text or a
       list, are columns of the file and not features), at least one row. Any problem is
       a 400, nothing stored. With ``explain`` ("shap": every row's contributions as
       result columns) the explain app plans the work (``explaining.explain_plan``): a
       400 naming the reason unless the version has a fast exact explainer whose
       estimated time for these rows is within ATTEST_BATCH_EXPLAIN_MAX_SECONDS.
    3. The broker is checked (503, nothing stored, when it is down).
    4. The file is stored under its sha256; the job row and its audit event are
       written in one transaction, and ``enqueue`` is called on commit.
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
    passthrough = files.passthrough_names(passthrough_columns)
    name = Path(getattr(upload, "name", "") or "upload").name[:200]
    fmt = files.resolve_format(name, file_format)
    path, sha256, size = spool_upload(upload, limit=settings.ATTEST_MAX_UPLOAD_BYTES)
    try:
        names, total = files.inspect(path, fmt)
        plan = explaining.explain_plan(version=version, explain=explain, rows=total)
        contributions = explaining.contribution_columns(version) if plan else []
        files.check_columns(version, names, passthrough=passthrough,
                                  reserved=(*RESULT_HEADER, *ERROR_HEADER, *contributions))
        _broker_check()
        with open(path, "rb") as local:
            input_key = put(local, sha256, "batch-input")
    finally:
        os.unlink(path)
    queue = batch_queue_for(version, explain=explain or "")
    publish: dict[str, Exception] = {}
    with transaction.atomic():
        job = BatchJob.objects.create(
            model=model, version=version, requester=user, file_name=name, file_format=fmt,
            input_sha256=sha256, input_key=input_key, input_size=size, total_rows=total,
            chunk_size=chunk_size, chunk_seconds=chunk_seconds, queue=queue,
            passthrough_columns=passthrough, explain=plan["method"] if plan else "",
            explanation={"planned": plan} if plan else {})
        audit_event_record(
            action=Action.BATCH_SUBMITTED, obj=job, model_id=model.pk, model_name=model.name,
            version_id=version.pk, version_label=version.label,
            details={"batch": str(job.public_id), "file_name": name, "file_format": fmt,
                     "input_sha256": sha256, "rows": total, "chunk_size": chunk_size,
                     "chunk_seconds": chunk_seconds, "queue": queue,
                     # names only: their values never leave the job's files
                     "passthrough_columns": passthrough, "explain": plan})
        transaction.on_commit(lambda: _publish(enqueue, job.pk, queue, publish))
    if "error" in publish:
        raise ServiceUnavailable(_PUBLISH_FAILED, code="queue_unavailable",
                                 extra={"batch": str(job.public_id)})
    job.refresh_from_db()
    return job


def _publish(enqueue: Enqueue, job_id: int, queue: str, publish: dict) -> None:
    """Publish the task (after commit); on failure mark the job failed, never queued forever."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        enqueue(job_id, queue)  # errors of an in-process run are the job's own, not publishing's
        return
    try:
        enqueue(job_id, queue)
    except Exception as exc:  # kombu/redis raise various classes
        log.error("could not publish batch job %s: %s", job_id, exc)
        publish["error"] = exc
        job_finish(job_id, BatchStatus.FAILED, error="The job could not be queued: the message "
                   f"broker was unreachable ({exc.__class__.__name__}).", write_files=False)


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
        with processing_lock(job.pk) as free:
            if free:
                job_finish(job.pk, BatchStatus.CANCELLED)
    job.refresh_from_db()
    return job


def batch_resume_stale(*, enqueue: Enqueue, stale_after: timedelta | None = None) -> list[int]:
    """Re-enqueue (``enqueue(job_id, queue)``) active jobs with no progress for
    ``stale_after`` and no live worker.

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
        if not nobody_working_on(job_id):
            continue
        touched = BatchJob.objects.filter(pk=job_id, status__in=ACTIVE,
                                          updated_at__lte=cutoff).update(updated_at=timezone.now())
        if touched:
            enqueue(job_id, queue or "default")
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
                    transaction.on_commit(lambda key=key: files.delete(key))
        purged += 1
    return purged


