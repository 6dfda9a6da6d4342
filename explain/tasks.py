"""Celery tasks of the explain app. Tasks take ids and call a service; acknowledged
late, so a message whose worker died is delivered again (the job row decides whether
there is anything left to do)."""

from __future__ import annotations

from celery import shared_task

from core.context import acting_as

from . import services


@shared_task(name="explain.run_job", bind=True, acks_late=True, max_retries=None)
def run_explanation_job(self, job_id: int) -> str:
    """Run an explanation job (one input, or a version's figures); safe to redeliver."""
    with acting_as(None, via="task"):
        return services.explanation_job_run(job_id=job_id)


@shared_task(name="explain.resume_stale_jobs", acks_late=True)
def resume_stale_jobs() -> list[int]:
    """Re-queue explanation jobs whose worker stopped, resend those whose message was lost."""
    with acting_as(None, via="task"):
        return services.explanation_jobs_resume_stale()
