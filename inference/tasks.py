"""Celery tasks of the inference app: batch jobs and the prediction log's upkeep.

Tasks take ids, load, call a service (acknowledged late: a worker that dies mid-task
leaves the message with the broker). Beat runs the periodic ones; see the schedule
in ``portal/settings.py``.

Sending a batch job to a worker lives here too (``batch_enqueue``: the GPU queue or the
default one, or a thread of this process when there is no broker): ``inference.batches``
is handed it by its callers and never imports this module.
"""

from __future__ import annotations

import threading

from celery import current_app, shared_task
from django.conf import settings
from django.db import connection

from core.context import acting_as

from . import batches, log, services
from .batches.runner import embedded_thread_name

# A second delivery of a job another worker is still scoring waits this long.
BUSY_RETRY_SECONDS = 30


@shared_task(name="inference.run_batch", bind=True, acks_late=True, max_retries=None)
def run_batch(self, job_id: int) -> str:
    """Score a batch job's remaining chunks; safe to deliver more than once."""
    with acting_as(None, via="task"):
        outcome = batches.batch_run(job_id=job_id)
    if outcome == batches.BUSY and not self.request.is_eager:
        # Eager (in-process) runs would retry at once, in a loop: the process holding
        # the job finishes it anyway.
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return outcome


def batch_enqueue(job_id: int, queue: str) -> None:
    """Queue the job's task; without a broker (eager, the embedded shape) run it right here."""
    if current_app.conf.task_always_eager:
        if settings.ATTEST_BATCH_EAGER_THREAD:
            # Embedded shape: no worker, so run beside the request instead of inside it (a
            # million rows take a minute); the upload answers at once and the job's page
            # shows progress as chunks commit.
            threading.Thread(target=_run_here, args=(job_id,),
                             name=embedded_thread_name(job_id), daemon=True).start()
        else:
            run_batch.apply(args=[job_id], throw=True)
        return
    run_batch.apply_async(args=[job_id], queue=queue, retry=True, retry_policy={
        "max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1})


def _run_here(job_id: int) -> None:
    try:
        run_batch.apply(args=[job_id], throw=False)
    finally:
        connection.close()  # this thread's own connection


def batch_resume_embedded() -> list[int]:
    """The embedded shape's stale-job sweep (the production shape has Celery beat's).

    Without a worker, jobs run in threads of the web process, and a restart (the dev
    server reloading, say) leaves them ``running``. Called when jobs are looked at:
    jobs with no progress for ``ATTEST_BATCH_STALE_SECONDS`` and no thread here are
    started again; they resume after their last committed chunk.
    """
    if not (current_app.conf.task_always_eager and settings.ATTEST_BATCH_EAGER_THREAD):
        return []
    return batches.batch_resume_stale(enqueue=batch_enqueue)


@shared_task(name="inference.resume_stale_batches", acks_late=True)
def resume_stale_batches() -> list[int]:
    """Re-enqueue batch jobs whose worker died (no progress, no live worker's lock)."""
    return batches.batch_resume_stale(enqueue=batch_enqueue)


@shared_task(name="inference.anchor_predictions", acks_late=True)
def anchor_predictions(max_anchors: int = 20) -> list[dict]:
    """Anchor settled prediction-log ranges in the audit chain (up to 1M rows per anchor)."""
    made = []
    with acting_as(None, via="task"):
        for _ in range(max_anchors):
            anchor = log.anchor_predictions()
            if anchor is None:
                break
            made.append({"from_id": anchor.from_id, "to_id": anchor.to_id,
                         "count": anchor.count, "digest": anchor.digest})
    return made


@shared_task(name="inference.purge_inputs", acks_late=True)
def purge_inputs() -> dict:
    """Drop raw inputs (logged rows and batch input files) past each model's retention."""
    with acting_as(None, via="task"):
        rows = services.prediction_inputs_purge()
        files = batches.batch_inputs_purge()
    return {"prediction_inputs": rows, "batch_input_files": files}
