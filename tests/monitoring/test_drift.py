"""Drift from the training profile: a real shift is an alert for that feature only, and
training-like traffic raises (almost) no false alarm."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core import mail
from django.utils import timezone

from audits.models import Action, AuditEvent
from core.clock import replayed_time
from monitoring.evaluation import feature_drift
from monitoring.health import Status, default_thresholds
from monitoring.layout import feature_layouts
from monitoring.models import Alert, FeatureCounts, VersionCounts
from profiling import profile_file

from ..artifacts import breast_cancer_frame
from ..inference.helpers import released_version
from .helpers import count_and_run, drift_by_feature, log_rows, training_like

pytestmark = pytest.mark.django_db


def test_a_one_sd_shift_of_one_feature_in_5000_predictions_is_an_alert_for_it_only(
        personas, django_capture_on_commit_callbacks):
    version = released_version(personas, confidence_threshold=0.6)
    log_rows(personas, training_like(5000, seed=3, shift={"mean texture": 1.0}))
    with django_capture_on_commit_callbacks(execute=True):
        run = count_and_run(version)
    drift = drift_by_feature(run)
    assert drift["mean texture"]["n"] == 5000
    assert drift["mean texture"]["status"] == Status.ALERT
    assert drift["mean texture"]["psi"] > 0.25 and drift["mean texture"]["p_value"] < 0.001
    assert {name for name, d in drift.items() if d["status"] != Status.OK} == {"mean texture"}
    # the health table leads with it; one open alert for the feature, and it is audited
    assert run.summary["health"][0]["signal"] == "data_drift_psi"
    assert run.summary["health"][0]["feature"] == "mean texture"
    drift_alerts = Alert.objects.filter(signal="data_drift_psi", cleared_at__isnull=True)
    assert [a.feature for a in drift_alerts] == ["mean texture"]
    raised = AuditEvent.objects.filter(action=Action.MONITORING_ALERT_RAISED)
    assert {e.after["feature"] for e in raised if e.after["signal"] == "data_drift_psi"} == \
        {"mean texture"}
    assert all(e.version_id == version.pk for e in raised)
    # the owner is told by e-mail, once for the run
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [personas.owner.email]
    assert "mean texture" in mail.outbox[0].body
    assert run.summary["retraining"]["suggested"]


def test_twenty_resamples_of_training_like_rows_raise_at_most_one_false_alarm(tmp_path, personas):
    """All 30 features of the training data, 20 resamples of 1,000 rows: the same binning
    and verdict as the aggregation job, against the profile of the data resampled."""
    frame = breast_cancer_frame().drop(columns=["diagnosis"])
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    profile = profile_file(path).profile

    class Version:  # what feature_layouts reads
        input_schema = [{"name": c, "type": "number"} for c in frame.columns]

        class dataset:  # noqa: N801
            pass

    Version.dataset.profile = profile
    layouts = feature_layouts(Version)
    assert len(layouts) == 30
    thresholds = default_thresholds()
    alarms = []
    for seed in range(20):
        sample = frame.sample(n=1000, replace=True, random_state=100 + seed)
        flagged = []
        for layout in layouts:
            bins, missing = layout.bin_values(sample[layout.name].tolist())
            counts = np.bincount(bins[~missing], minlength=layout.size).astype(float)
            d = feature_drift(layout, [counts, int(missing.sum())], thresholds)
            if d["status"] in (Status.WARNING, Status.ALERT):
                flagged.append(layout.name)
        alarms.append(flagged)
    assert sum(1 for f in alarms if f) <= 1, alarms
    # and the same code does see a shift of one feature in such a sample
    shifted = frame.sample(n=1000, replace=True, random_state=7)
    shifted["worst area"] += frame["worst area"].std()
    layout = next(x for x in layouts if x.name == "worst area")
    bins, missing = layout.bin_values(shifted["worst area"].tolist())
    counts = np.bincount(bins[~missing], minlength=layout.size).astype(float)
    assert feature_drift(layout, [counts, 0], thresholds)["status"] == Status.ALERT


def test_a_small_window_gives_no_verdict_and_noise_alone_is_not_drift(personas):
    version = released_version(personas, confidence_threshold=0.6)
    log_rows(personas, training_like(20, seed=5, shift={"mean radius": 1.0}))
    run = count_and_run(version)
    drift = drift_by_feature(run)
    assert {d["status"] for d in drift.values()} == {Status.NO_DATA}
    assert not Alert.objects.filter(signal="data_drift_psi").exists()


def test_drift_alerts_clear_when_the_window_moves_past_the_shift(
        personas, django_capture_on_commit_callbacks):
    version = released_version(personas, confidence_threshold=0.6)
    with replayed_time(timezone.now() + timedelta(days=1)):
        log_rows(personas, training_like(1500, seed=8, shift={"mean concavity": 1.5}))
        run = count_and_run(version)
    assert drift_by_feature(run)["mean concavity"]["status"] == Status.ALERT
    with replayed_time(timezone.now() + timedelta(days=9)):  # the 7-day window moved on
        log_rows(personas, training_like(1500, seed=9))
        with django_capture_on_commit_callbacks(execute=True):
            run = count_and_run(version)
        assert drift_by_feature(run)["mean concavity"]["status"] == Status.OK
    assert not Alert.objects.filter(signal="data_drift_psi", cleared_at__isnull=True).exists()
    cleared = AuditEvent.objects.filter(action=Action.MONITORING_ALERT_CLEARED,
                                        after__signal="data_drift_psi")
    assert [e.after["feature"] for e in cleared] == ["mean concavity"]
    assert "cleared" in mail.outbox[-1].body
    # the 30-day window still holds both weeks
    assert drift_by_feature(run, "30d")["mean concavity"]["n"] == 3000


def test_counts_are_incremental_and_never_count_a_row_twice(personas):
    version = released_version(personas, confidence_threshold=0.6)
    log_rows(personas, training_like(300, seed=1))
    count_and_run(version)
    log_rows(personas, training_like(200, seed=2))
    count_and_run(version)
    count_and_run(version)  # nothing new: nothing added
    day = VersionCounts.objects.get(version=version, period="day")
    assert day.predictions == 500 and day.singles == 500
    radius = FeatureCounts.objects.get(version=version, period="day", feature="mean radius")
    assert sum(radius.counts) + radius.missing == 500
    hours = VersionCounts.objects.filter(version=version, period="hour")
    assert sum(h.predictions for h in hours) == 500


def test_owners_testing_a_version_outside_production_are_left_out(personas):
    from inference.services import prediction_create
    from registry.services import model_version_submit

    from ..registry.helpers import register_version

    version = released_version(personas, confidence_threshold=0.6)
    candidate = register_version(personas.owner, personas.model, version.dataset)
    model_version_submit(user=personas.owner, version=candidate)
    rows = training_like(40, seed=4).to_dict("records")
    prediction_create(user=personas.owner, model=personas.model, instances=rows,
                      version_number=candidate.number)
    log_rows(personas, training_like(60, seed=5))
    count_and_run(version)
    candidate_day = VersionCounts.objects.get(version=candidate, period="day")
    assert candidate_day.predictions == 0 and candidate_day.testing == 40
    assert not FeatureCounts.objects.filter(version=candidate).exists()
    assert VersionCounts.objects.get(version=version, period="day").predictions == 60
