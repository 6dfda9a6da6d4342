"""Explanation jobs are durable rows: a job whose worker died is resumed and completes
once; redelivered messages change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audits.models import Action, AuditEvent
from explain import services
from explain.models import Explanation, ExplanationJob, JobStatus, VersionExplanation
from explain.services import explanation_job_run, explanation_jobs_resume_stale

from ..artifacts import FEATURES_SMALL, breast_cancer_frame
from .helpers import draft_of, forest

pytestmark = pytest.mark.django_db


def _input() -> dict:
    row = breast_cancer_frame()[FEATURES_SMALL].iloc[7]
    return {k: float(v) for k, v in row.items()}


@pytest.fixture
def no_worker(monkeypatch):
    """Messages go nowhere: what a broker holds for a worker that is down."""
    sent = []
    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: sent.append(job_id))
    return sent


def _request(personas, version, method="lime"):
    inputs = _input()
    return services.explanation_request(
        user=personas.clinician, version=version, inputs=inputs,
        input_sha256=services.input_sha256_of(inputs), method=method,
        parameters={"samples": 600} if method == "lime" else None)


def test_a_202_job_survives_a_worker_restart_and_completes_once(
        personas, dataset, no_worker, monkeypatch, django_capture_on_commit_callbacks):
    version = draft_of(personas, dataset, forest())
    with django_capture_on_commit_callbacks(execute=True):
        outcome = _request(personas, version)
    job = outcome.job
    assert job is not None and no_worker == [job.pk] and job.status == JobStatus.QUEUED

    # 1. A worker claims it and dies mid-computation (the process is gone: no cleanup).
    import explain.services as svc

    def die(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(svc, "explanation_compute", die)
    with pytest.raises(SystemExit):
        explanation_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1 and job.input is not None
    monkeypatch.undo()
    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: no_worker.append(job_id))

    # 2. Redelivered while the dead claim still looks alive: left alone.
    assert explanation_job_run(job_id=job.pk) == services.BUSY
    assert explanation_jobs_resume_stale() == []

    # 3. Past the stale time the sweep re-queues it, once, however often it runs.
    ExplanationJob.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - timedelta(minutes=10))
    assert explanation_jobs_resume_stale() == [job.pk]
    assert explanation_jobs_resume_stale() == []
    assert no_worker == [job.pk, job.pk]

    # 4. The restarted worker runs it to the end; the original message, delivered again
    #    after the restart, finds nothing to do.
    assert explanation_job_run(job_id=job.pk) == JobStatus.COMPLETED
    assert explanation_job_run(job_id=job.pk) == JobStatus.COMPLETED
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.attempts == 2 and job.input is None
    assert Explanation.objects.count() == 1 and job.explanation == Explanation.objects.get()
    assert AuditEvent.objects.filter(action=Action.EXPLANATION_CREATED).count() == 1


def test_a_run_that_lost_its_claim_writes_nothing(personas, dataset, no_worker, monkeypatch):
    version = draft_of(personas, dataset, forest())
    job = _request(personas, version).job
    real = services.explanation_compute

    def slow_and_overtaken(**kwargs):
        # While this run computes, the sweep hands the job to another worker.
        ExplanationJob.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, claim="")
        return real(**kwargs)

    monkeypatch.setattr(services, "explanation_compute", slow_and_overtaken)
    assert explanation_job_run(job_id=job.pk) == services.BUSY
    assert not Explanation.objects.exists()
    assert not AuditEvent.objects.filter(action=Action.EXPLANATION_CREATED).exists()
    monkeypatch.setattr(services, "explanation_compute", real)
    assert explanation_job_run(job_id=job.pk) == JobStatus.COMPLETED
    assert Explanation.objects.count() == 1


def test_a_second_request_joins_the_job_under_way(personas, dataset, no_worker):
    version = draft_of(personas, dataset, forest())
    first, second = _request(personas, version), _request(personas, version)
    assert first.job.pk == second.job.pk and ExplanationJob.objects.count() == 1


def test_a_failing_job_records_why(personas, dataset, no_worker, monkeypatch):
    version = draft_of(personas, dataset, forest())
    job = _request(personas, version).job

    def broken(**kwargs):
        raise RuntimeError("the model said no")

    monkeypatch.setattr(services, "explanation_compute", broken)
    assert explanation_job_run(job_id=job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error_code == "explanation_failed" and "the model said no" in job.error
    assert job.input is None


def test_submitting_a_version_computes_its_figures_in_the_background(
        personas, dataset, settings, monkeypatch, django_capture_on_commit_callbacks):
    from explain import reliability
    from registry.services import model_version_submit

    settings.ATTEST_EXPLAIN_ON_SUBMIT = True
    monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, "rows", 6)
    monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, "lime_samples", 600)
    monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, "global_rows", 100)
    version = draft_of(personas, dataset, forest())
    with django_capture_on_commit_callbacks(execute=True):
        model_version_submit(user=personas.owner, version=version)
    job = ExplanationJob.objects.get(kind="version")
    assert job.status == JobStatus.COMPLETED and job.progress_done == job.progress_total == 7
    figures = VersionExplanation.objects.get(version=version)
    content = figures.content
    importance = content["global_importance"]
    assert importance["rows"] == 100 and len(importance["features"]) == 4
    assert importance["features"][0]["mean_abs"] >= importance["features"][-1]["mean_abs"]
    stability = content["lime_stability"]
    assert 0 <= stability["worst"] <= stability["mean"] <= 1 and stability["rows"] == 6
    assert stability["top_k"] == 3  # four features: a top 4 would agree trivially
    assert stability["reading"] in ("stable", "unstable: do not rely on LIME for this model")
    agreement = content["shap_lime_agreement"]
    assert 0 <= agreement["feature_agreement"] <= 1
    assert figures.background_source == "synthetic_profile"
    assert len(figures.background_sha256) == 64
    event = AuditEvent.objects.get(action=Action.VERSION_EXPLAINED)
    assert event.version_id == version.pk and event.details["lime_reading"] == \
        stability["reading"]
