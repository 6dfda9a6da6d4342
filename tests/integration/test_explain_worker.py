"""An explanation job survives ``kill -9`` of its worker and completes once: real
PostgreSQL, Redis, S3 and Celery workers.

A version's explanation figures (a job that reports progress row by row) are started;
the worker is killed once progress shows; a second worker is started and the job is
re-queued the way beat's ``explain.resume_stale_jobs`` does it. It completes with one
stored result and one audit event, and a redelivered message changes nothing.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from audits.models import Action, AuditEvent
from explain.models import ExplanationJob, JobStatus, VersionExplanation
from explain.services import (
    explanation_job_run,
    explanation_jobs_resume_stale,
    version_explanation_request,
)

from ..explain.helpers import forest, released_of
from .test_batch_worker import _start_worker, _stop, _wait

pytestmark = pytest.mark.integration


def test_an_explanation_job_survives_its_worker_being_killed(transactional_db, personas,
                                                             tmp_path):
    assert connection.vendor == "postgresql" and not settings.CELERY_TASK_ALWAYS_EAGER
    version = released_of(personas, forest())
    log_path = tmp_path / "workers.log"
    first = _start_worker(log_path)
    second = None
    try:
        job = version_explanation_request(version=version, parameters={
            "rows": 25, "lime_samples": 3000, "global_rows": 200})
        assert job is not None

        def progressed() -> bool:
            return ExplanationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING,
                                                 progress_done__gte=3).exists()

        _wait(progressed, seconds=90, what="the job to make progress", workers=[first],
              log_path=log_path)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.attempts == 1
        assert not VersionExplanation.objects.exists()

        second = _start_worker(log_path)
        _wait(lambda: explanation_jobs_resume_stale(stale_after=timedelta(0)) == [job.pk],
              seconds=20, what="the job to be re-queued", workers=[second], log_path=log_path)
        _wait(lambda: ExplanationJob.objects.filter(pk=job.pk, status__in=(
            JobStatus.COMPLETED, JobStatus.FAILED)).exists(), seconds=180,
              what="the job to finish", workers=[second], log_path=log_path)
    finally:
        _stop(first)
        if second is not None:
            _stop(second)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.attempts == 2 and job.progress_done == job.progress_total
    assert VersionExplanation.objects.filter(version=version).count() == 1
    assert AuditEvent.objects.filter(action=Action.VERSION_EXPLAINED).count() == 1
    # the original message, redelivered after the restart, finds nothing to do
    assert explanation_job_run(job_id=job.pk) == JobStatus.COMPLETED
    assert VersionExplanation.objects.count() == 1
