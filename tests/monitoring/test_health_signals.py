"""Health signals driven one at a time (issue 18): review, OOD and rejection rates, cost.

Each test moves one signal past its stated threshold with rows drawn from the training
data, and checks the health row, its status and the figure beside it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.clock import replayed_time
from core.errors import ValidationFailed
from inference.services import prediction_create
from monitoring.health import Status
from monitoring.services import monitoring_policy_update

from ..conftest import api_as
from ..inference.helpers import released_version
from .helpers import count_and_run, labelled_sample, log_rows, record, training_like


def _health(run) -> dict[str, dict]:
    return {r["signal"]: r for r in run.summary["health"] if not r.get("feature")}


def test_a_threshold_that_sends_most_cases_to_review_raises_the_review_rate(personas):
    strict = released_version(personas, confidence_threshold=0.99)
    log_rows(personas, training_like(200, seed=21))
    row = _health(count_and_run(strict))["review_rate"]
    assert row["status"] == Status.ALERT and row["value"] > 0.40


def test_a_lenient_threshold_keeps_the_review_rate_ok(personas):
    lenient = released_version(personas, confidence_threshold=0.5)
    log_rows(personas, training_like(200, seed=21))
    health = _health(count_and_run(lenient))
    assert health["review_rate"]["status"] == Status.OK
    assert health["ood_rate"]["status"] == Status.OK


def test_out_of_range_inputs_raise_the_ood_rate(personas):
    version = released_version(personas, confidence_threshold=0.5, ood_policy="review")
    log_rows(personas, training_like(150, seed=22))
    log_rows(personas, training_like(50, seed=23, shift={"mean radius": 25.0}))  # far out
    row = _health(count_and_run(version))["ood_rate"]
    assert row["status"] == Status.ALERT
    assert row["value"] == pytest.approx(50 / 200, abs=0.02)


def test_refused_requests_raise_the_rejection_rate(personas):
    version = released_version(personas, confidence_threshold=0.5, ood_policy="reject")
    log_rows(personas, training_like(60, seed=24))
    far = training_like(20, seed=25, shift={"mean radius": 25.0}).to_dict("records")
    for instance in far:  # each request refused whole, counted by reason
        with pytest.raises(ValidationFailed):
            prediction_create(user=personas.clinician, model=personas.model, instances=[instance])
    row = _health(count_and_run(version))["rejection_rate"]
    assert row["status"] == Status.ALERT
    assert row["value"] == pytest.approx(20 / 80, abs=0.02)


def test_the_cost_per_thousand_follows_the_models_cpu_hour_price(personas):
    version = released_version(personas, confidence_threshold=0.5)
    log_rows(personas, training_like(100, seed=26), chunk=1)  # single predictions
    cheap = _health(count_and_run(version))["cost_per_1000"]
    assert cheap["status"] == Status.OK  # $0.05 per CPU-hour: a fraction of a cent
    monitoring_policy_update(user=personas.owner, model=personas.model, cpu_hour_price=1000)
    dear = _health(count_and_run(version))["cost_per_1000"]
    assert dear["value"] == pytest.approx(cheap["value"] * 1000 / 0.05, rel=0.05)  # rounded
    monitoring_policy_update(user=personas.owner, model=personas.model, cpu_hour_price=1000,
                             thresholds={"cost_per_1000": {"warning": dear["value"] / 4,
                                                           "alert": dear["value"] / 2}})
    assert _health(count_and_run(version))["cost_per_1000"]["status"] == Status.ALERT


def test_outcomes_that_contradict_the_model_are_a_performance_drop(personas):
    version = released_version(personas, confidence_threshold=0.5,
                               metrics={"overall": {"auc": 0.95}})
    rows, y = labelled_sample(120, seed=27)
    results = log_rows(personas, rows)
    record(personas, results, 1 - y)  # every outcome the opposite of the truth
    row = _health(count_and_run(version))["performance_drop"]
    assert row["status"] == Status.ALERT and row["value"] > 0.5


def test_outcomes_that_agree_with_validation_are_no_drop(personas):
    version = released_version(personas, confidence_threshold=0.5,
                               metrics={"overall": {"auc": 0.95}})
    rows, y = labelled_sample(120, seed=27)
    record(personas, log_rows(personas, rows), y)
    row = _health(count_and_run(version))["performance_drop"]
    assert row["status"] == Status.OK and row["value"] < 0.02


def test_scores_moving_away_from_the_first_week_in_production_are_score_drift(personas):
    start = timezone.now() - timedelta(days=14)
    with replayed_time(start) as clock:
        version = released_version(personas, confidence_threshold=0.5)
        for day in range(7):  # the baseline: the version's first 7 days in production
            clock.set(start + timedelta(days=day, hours=1))
            log_rows(personas, training_like(40, seed=30 + day))
        for day in range(8, 14):  # then inputs that all push the score up
            clock.set(start + timedelta(days=day, hours=1))
            log_rows(personas, training_like(40, seed=40 + day,
                                             shift={"mean radius": 2.0, "mean texture": 2.0}))
    row = _health(count_and_run(version))["score_drift_psi"]
    assert row["status"] == Status.ALERT, row
    assert row["value"] > 0.25


def test_latency_counts_single_predictions_only(personas, monkeypatch,
                                                django_capture_on_commit_callbacks):
    from celery import current_app
    from django.core.files.uploadedfile import SimpleUploadedFile

    from inference.models import Prediction

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)  # the job runs here
    version = released_version(personas, confidence_threshold=0.5)
    log_rows(personas, training_like(12, seed=31), chunk=1)  # 12 single predictions
    upload = SimpleUploadedFile("batch.csv", training_like(300, seed=32).to_csv(
        index=False).encode())
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(personas.clinician).post(
            f"/api/v1/models/{personas.model.name}/batches/", {"file": upload},
            format="multipart")
    assert response.status_code == 202, response.json()
    assert Prediction.objects.filter(batch__isnull=False).count() == 300
    # batch rows carry their chunk's CPU time per row too
    assert not Prediction.objects.filter(batch__isnull=False, cpu_ms__isnull=True).exists()
    row = _health(count_and_run(version))["latency_p95_ms"]
    assert row["evidence"] == "12 single predictions"
    assert row["value"] is not None


def test_the_cost_comes_from_the_measured_cpu_time_of_the_rows(personas):
    from inference.models import Prediction

    version = released_version(personas, confidence_threshold=0.5)
    log_rows(personas, training_like(40, seed=33), chunk=1)
    cpu = [p.cpu_ms for p in Prediction.objects.filter(version=version)]
    assert len(cpu) == 40 and all(c is not None and c > 0 for c in cpu)
    run = count_and_run(version)
    row = _health(run)["cost_per_1000"]
    assert row["evidence"].startswith("measured: ")
    price = 0.05  # ATTEST_MONITORING_CPU_HOUR_PRICE's default
    expected = sum(cpu) / len(cpu) / 1000.0 * 1000 * price / 3600.0
    assert row["value"] == pytest.approx(expected, rel=0.06)  # the health row rounds it
    detail = run.figures.get(window="7d", signal="cost").detail
    assert detail["estimated"] is False and detail["measured_rows"] == 40
