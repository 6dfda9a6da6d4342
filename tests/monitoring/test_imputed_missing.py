"""Missing values of a feature the schema imputes (issue 18).

A feature with ``missing: impute`` is scored, and logged, with its imputed value; the log
row records which features were imputed (``Prediction.imputed``), and monitoring counts
those as missing, so a rise in missing inputs reaches the missing-value signal. Rows
logged before the field existed (inference 0012) do not say: their windows say so.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from inference.models import Prediction
from inference.services import prediction_create
from monitoring.health import Status
from monitoring.models import FeatureCounts, VersionCounts

from ..artifacts import FEATURES_SMALL
from ..conftest import api_as
from ..inference.helpers import released_version
from ..registry.helpers import register_dataset
from .helpers import count_and_run, training_like

pytestmark = pytest.mark.django_db

IMPUTED = "mean texture"


def _imputing_version(personas):
    schema = [{"name": n, "type": "number", "missing": "impute"} if n == IMPUTED else n
              for n in FEATURES_SMALL]
    return released_version(personas, register_dataset(personas.owner), input_schema=schema,
                            confidence_threshold=0.5)


def _with_gaps(n: int, missing: int, *, seed: int) -> pd.DataFrame:
    """``n`` training-like rows, the first ``missing`` of them without the imputed feature."""
    rows = training_like(n, seed=seed)
    rows[IMPUTED] = rows[IMPUTED].astype(object)
    rows.loc[: missing - 1, IMPUTED] = None
    return rows


def _missing_row(run) -> dict:
    return next(r for r in run.summary["health"] if r["signal"] == "missing_rate_increase")


def _drift(run, feature: str = IMPUTED) -> dict:
    return run.figures.get(window="7d", signal="drift", feature=feature).detail


def test_an_imputed_feature_missing_in_40_percent_of_predictions_is_an_alert(personas):
    version = _imputing_version(personas)
    records = _with_gaps(200, 80, seed=51).to_dict("records")
    for start in range(0, 200, 50):
        prediction_create(user=personas.clinician, model=personas.model,
                          instances=records[start:start + 50])
    run = count_and_run(version)
    row = _missing_row(run)
    assert row["status"] == Status.ALERT, row
    assert row["feature"] == IMPUTED and row["value"] == pytest.approx(0.40)
    drift = _drift(run)
    # the imputed values are missing values, not values in the distribution
    assert (drift["missing"], drift["n"]) == (80, 120)
    assert not drift.get("missing_note")


def test_a_few_imputed_values_stay_below_the_warning(personas):
    version = _imputing_version(personas)
    records = _with_gaps(200, 6, seed=52).to_dict("records")  # 3%
    prediction_create(user=personas.clinician, model=personas.model, instances=records)
    row = _missing_row(count_and_run(version))
    assert row["status"] == Status.OK and row["value"] == pytest.approx(0.03)


def test_each_row_records_the_features_it_imputed_under_its_hash(personas):
    from inference.log import prediction_row_hash, verify_prediction_log

    _imputing_version(personas)
    gap, full = _with_gaps(2, 1, seed=53).to_dict("records")
    results = prediction_create(user=personas.clinician, model=personas.model,
                                instances=[gap, full])
    stored = [Prediction.objects.get(pk=r.prediction.pk) for r in results]
    assert [p.imputed for p in stored] == [[IMPUTED], []]
    assert verify_prediction_log().ok
    # the record is hashed: a row claiming nothing was imputed no longer matches its hash
    forged = stored[0]
    forged.imputed = []
    assert prediction_row_hash(forged) != forged.row_hash
    forged.imputed = None
    assert prediction_row_hash(forged) != forged.row_hash
    # a row with nothing imputed hashes as rows did before the field (inference 0012)
    plain = stored[1]
    plain.imputed = None
    assert prediction_row_hash(plain) == plain.row_hash


def test_batch_rows_record_imputed_features_and_reach_the_alert(
        personas, monkeypatch, django_capture_on_commit_callbacks):
    from celery import current_app
    from django.core.files.uploadedfile import SimpleUploadedFile

    from inference.log import verify_prediction_log

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)  # the job runs here
    version = _imputing_version(personas)
    frame = _with_gaps(300, 120, seed=54)  # empty cells in the CSV
    upload = SimpleUploadedFile("batch.csv", frame.to_csv(index=False).encode())
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(personas.clinician).post(
            f"/api/v1/models/{personas.model.name}/batches/", {"file": upload},
            format="multipart")
    assert response.status_code == 202, response.json()
    rows = dict(Prediction.objects.filter(batch__isnull=False)
                .values_list("row_index", "imputed"))
    assert len(rows) == 300
    assert {i for i, imputed in rows.items() if imputed == [IMPUTED]} == set(range(120))
    assert all(rows[i] == [] for i in range(120, 300))
    assert verify_prediction_log().ok
    run = count_and_run(version)
    row = _missing_row(run)
    assert row["status"] == Status.ALERT and row["value"] == pytest.approx(0.40)
    assert (_drift(run)["missing"], _drift(run)["n"]) == (120, 180)


def _log_as_before_0012(personas, version, records: list[dict]) -> None:
    """Rows as inference logged them before 0012: no imputed field, hashed without it."""
    from django.db import transaction

    from inference.batches.logwrite import log_write
    from inference.log import row_hash
    from inference.services import score_rows
    from inference.validation import check_input
    from registry.loading import version_model_load

    checked = [check_input(r, schema=version.input_schema, profile=version.dataset.profile)
               for r in records]
    rows = score_rows(model=version.model, version=version, checked=checked,
                      loaded=version_model_load(version=version, purpose="batch"),
                      requester=personas.clinician, started=time.perf_counter())
    for r in rows:
        r.values["imputed"] = None
        r.values["row_hash"] = row_hash(r.values)
    with transaction.atomic():
        log_write(rows, model=version.model, version=version)


def test_rows_logged_before_imputation_was_recorded_verify_and_are_said_to_be_unknown(
        personas):
    from inference.log import verify_prediction_log

    version = _imputing_version(personas)
    _log_as_before_0012(personas, version, _with_gaps(100, 40, seed=55).to_dict("records"))
    records = _with_gaps(100, 40, seed=56).to_dict("records")
    prediction_create(user=personas.clinician, model=personas.model, instances=records)
    assert Prediction.objects.filter(imputed__isnull=True).count() == 100
    assert verify_prediction_log().ok  # their hashes were taken without the field
    run = count_and_run(version)
    assert sum(VersionCounts.objects.filter(period="day").values_list(
        "imputation_unrecorded", flat=True)) == 100
    drift = _drift(run)
    # only the recorded rows' imputed values count as missing: a lower bound, and said
    assert drift["missing"] == 40 and drift["n"] == 160
    assert "100 of the 200" in drift["missing_note"]
    assert "lower bound" in _missing_row(run)["evidence"]
    # a feature the schema does not impute is not affected by the unknown
    assert not _drift(run, "mean radius").get("missing_note")
    assert FeatureCounts.objects.filter(feature=IMPUTED, period="day").get().missing == 40
