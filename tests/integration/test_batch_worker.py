"""A batch job survives ``kill -9`` of its worker: real PostgreSQL, Redis, S3 and workers.

The first worker is killed once a few chunks are logged; a second worker is
started and the stalled job is re-enqueued the way the beat task does it
(``batch_resume_stale``: no progress, and no worker holds the job's advisory
lock). The job then completes with exactly one log row per input row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from inference import batches
from inference.models import BatchJob, BatchStatus, Prediction, ReviewItem
from inference.tasks import batch_enqueue

from ..inference.helpers import released_version
from ..inference.test_batches import _frame

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# ~4,500 rows/s on a loaded 2-core machine: 150,000 rows keep the test near 45 s.
ROWS = 150_000
CHUNK = 5_000


def _start_worker(log_path: Path) -> subprocess.Popen:
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
                           f"{db['NAME']}",
           # The test's own artifact location (conftest gives each test a key prefix).
           "ATTEST_S3_PREFIX": settings.STORAGES["artifacts"]["OPTIONS"]["location"],
           "OMP_NUM_THREADS": "1"}
    log = open(log_path, "ab")  # noqa: SIM115 - the worker writes to it until it exits
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "-Q", "default",
         "--loglevel=WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(predicate, *, seconds: float, what: str, workers=(), log_path: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for worker in workers:
            if worker.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
                pytest.fail(f"a worker exited early while waiting for {what}:\n{tail}")
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
    pytest.fail(f"timed out after {seconds} s waiting for {what}\n{tail}")


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("sizing", ["time", "fixed"])
def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(transactional_db, personas,
                                                              tmp_path, settings, sizing):
    """``time``: chunks sized to ~1 s of work (the default), first one CHUNK rows; the
    second worker cuts its own sizes from where the committed chunks end. ``fixed``:
    every chunk CHUNK rows."""
    assert connection.vendor == "postgresql" and not settings.CELERY_TASK_ALWAYS_EAGER
    settings.ATTEST_BATCH_CHUNK_ROWS = CHUNK
    released_version(personas)
    data = _frame(ROWS).to_csv(index=False).encode()
    log_path = tmp_path / "workers.log"
    job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                               upload=SimpleUploadedFile("big.csv", data),
                               chunk_size=CHUNK if sizing == "fixed" else None)
    assert job.status == BatchStatus.QUEUED and job.total_rows == ROWS
    assert (job.chunk_seconds > 0) == (sizing == "time")

    def rows_done() -> int:
        return BatchJob.objects.values_list("rows_done", flat=True).get(pk=job.pk)

    first = _start_worker(log_path)
    second = None
    try:
        _wait(lambda: rows_done() >= 3 * CHUNK, seconds=45, what="three chunks",
              workers=[first], log_path=log_path)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = rows_done()
        job.refresh_from_db()
        chunks_at_kill = len(job.chunks_done)
        assert job.status == BatchStatus.RUNNING and at_kill < ROWS
        # Every chunk is all or nothing, whatever the moment of the kill.
        assert Prediction.objects.filter(batch=job).count() == at_kill

        second = _start_worker(log_path)
        # The beat task's way: the dead worker's advisory lock went with its connection.
        _wait(lambda: batches.batch_resume_stale(enqueue=batch_enqueue, stale_after=timedelta(0)) == [job.pk],
              seconds=20, what="the job to be re-enqueued", workers=[second],
              log_path=log_path)
        _wait(lambda: BatchJob.objects.filter(pk=job.pk, status__in=batches.FINISHED).exists(),
              seconds=90, what="the job to finish", workers=[second], log_path=log_path)
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED, job.error
    assert job.rows_done == ROWS and job.rows_failed == 0 and job.attempts == 2
    assert job.chunks_done == list(range(len(job.chunks_done)))
    assert len(job.chunks_done) > chunks_at_kill
    if sizing == "fixed":
        assert job.chunks_done == list(range(ROWS // CHUNK))
    logged = Prediction.objects.filter(batch=job)
    assert logged.count() == ROWS
    assert logged.values("row_index").distinct().count() == ROWS
    reviews = ReviewItem.objects.filter(prediction__batch=job)
    assert reviews.count() == logged.filter(routing="review").count() == job.rows_routed
    assert job.result_key and job.result_sha256
