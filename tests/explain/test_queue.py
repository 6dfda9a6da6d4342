"""Which Celery queue explanation work goes to: ``gpu`` for SHAP of inputs when a GPU
worker is configured (ATTEST_GPU_QUEUE_ENABLED), ``default`` otherwise and for LIME and a
version's figures. Decided and tested on CPU: the same code runs on either queue."""

from __future__ import annotations

import pytest

from explain import services, tasks
from explain.models import ExplanationJob, JobKind, JobStatus, Method

from ..artifacts import FEATURES_SMALL, breast_cancer_frame
from .helpers import draft_of, forest, knn

pytestmark = pytest.mark.django_db


def _input() -> dict:
    row = breast_cancer_frame()[FEATURES_SMALL].iloc[3]
    return {k: float(v) for k, v in row.items()}


def test_everything_goes_to_default_without_a_gpu_queue(settings):
    settings.ATTEST_GPU_QUEUE_ENABLED = False
    for kind in JobKind.values:
        for method in Method.values:
            assert services.explain_queue(kind=kind, method=method) == "default"


def test_shap_of_inputs_goes_to_gpu_when_it_is_configured(settings):
    settings.ATTEST_GPU_QUEUE_ENABLED = True
    assert services.explain_queue(method=Method.SHAP) == "gpu"
    assert services.explain_queue(kind=JobKind.PREDICTION, method=Method.SHAP) == "gpu"
    # LIME's time is its sampling, and a version's figures are mostly LIME: CPU work.
    assert services.explain_queue(kind=JobKind.PREDICTION, method=Method.LIME) == "default"
    assert services.explain_queue(kind=JobKind.VERSION, method=Method.SHAP) == "default"


@pytest.fixture
def published(monkeypatch):
    """A broker is there (not eager): what apply_async is asked to publish, and where."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    sent = []
    monkeypatch.setattr(tasks.run_explanation_job, "apply_async",
                        lambda args, queue, **kwargs: sent.append((args[0], queue)))
    return sent


@pytest.mark.parametrize(("enabled", "method", "queue"), [
    (True, "shap", "gpu"), (False, "shap", "default"), (True, "lime", "default")])
def test_a_jobs_task_is_published_to_its_queue(personas, dataset, settings, published,
                                               django_capture_on_commit_callbacks,
                                               enabled, method, queue):
    settings.ATTEST_GPU_QUEUE_ENABLED = enabled
    version = draft_of(personas, dataset, knn())  # permutation SHAP: always a job
    inputs = _input()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.explanation_request(
            user=personas.clinician, version=version, inputs=inputs,
            input_sha256=services.input_sha256_of(inputs), method=method,
            parameters={"samples": 600} if method == "lime" else None)
    job = outcome.job
    assert job is not None and job.queue == queue and job.status == JobStatus.QUEUED
    assert published == [(job.pk, queue)]


def test_a_stale_job_is_resent_to_the_queue_it_was_made_for(personas, dataset, settings,
                                                            published,
                                                            django_capture_on_commit_callbacks):
    from datetime import timedelta

    settings.ATTEST_GPU_QUEUE_ENABLED = True
    version = draft_of(personas, dataset, knn())
    inputs = _input()
    with django_capture_on_commit_callbacks(execute=True):
        job = services.explanation_request(
            user=personas.clinician, version=version, inputs=inputs,
            input_sha256=services.input_sha256_of(inputs), method="shap").job
    # The setting changes meanwhile: the job keeps the queue it was made for.
    settings.ATTEST_GPU_QUEUE_ENABLED = False
    published.clear()
    assert services.explanation_jobs_resume_stale(stale_after=timedelta(0)) == [job.pk]
    assert published == [(job.pk, "gpu")]
    assert ExplanationJob.objects.get(pk=job.pk).queue == "gpu"


def test_the_version_figures_job_stays_on_default(personas, dataset, settings, published,
                                                  django_capture_on_commit_callbacks):
    settings.ATTEST_GPU_QUEUE_ENABLED = True
    version = draft_of(personas, dataset, forest())
    with django_capture_on_commit_callbacks(execute=True):
        job = services.version_explanation_request(version=version)
    assert job.queue == "default" and published == [(job.pk, "default")]
