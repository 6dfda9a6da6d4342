"""Celery tasks of the inference app: batch jobs and the prediction log's upkeep.

Tasks take ids, load, call a service (acknowledged late: a worker that dies mid-task
leaves the message with the broker). Beat runs the periodic ones; see the schedule
in ``portal/settings.py``.
"""

from __future__ import annotations

from celery import shared_task

from core.context import acting_as

from . import batches, log, services

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


@shared_task(name="inference.resume_stale_batches", acks_late=True)
def resume_stale_batches() -> list[int]:
    """Re-enqueue batch jobs whose worker died (no progress, no live worker's lock)."""
    return batches.batch_resume_stale()


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
