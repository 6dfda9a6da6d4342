"""A feature declared boolean over a training column of 0/1 (issue 15 §5): every input path
reads 0/1 and true/false by one rule, refuses anything else per field, and the model gets
the values it was trained on."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from inference import batches
from inference.columnar import check_many
from inference.models import BatchStatus, Prediction
from inference.tasks import batch_enqueue
from inference.validation import check_input
from registry import services

from ..artifacts import (
    FEATURES_FLAGGED,
    FEATURES_SMALL,
    FLAG,
    csv_bytes,
    flagged_frame,
    flagged_model,
    skops_bytes,
)
from ..conftest import api_as
from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Jobs run in-process on commit, also in the layer with a real broker (no worker there),
    as in test_batches."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


@pytest.fixture
def version(personas):
    """In production: the flag declared boolean over the training file's 0/1 column."""
    dataset = services.dataset_version_register(
        user=personas.owner, name="flagged-cohort", version="1", source="EHR extract, site A",
        data_file=SimpleUploadedFile("flagged.csv", csv_bytes(flagged_frame())))
    assert dataset.profile["columns"][FLAG]["type"] == "integer"  # 0/1 is not a boolean there
    return released_version(personas, dataset, data=skops_bytes(flagged_model()),
                            input_schema=[*FEATURES_SMALL, {"name": FLAG, "type": "boolean"}],
                            confidence_threshold=0.5)


def _predict(personas, inputs: dict):
    return api_as(personas.clinician).post(f"/api/v1/models/{personas.model.name}/predict/",
                                           {"inputs": inputs}, format="json")


def _training_rows(n: int) -> pd.DataFrame:
    return flagged_frame()[FEATURES_FLAGGED].head(n).copy()


def _model_scores(frame: pd.DataFrame) -> np.ndarray:
    """What the model itself says of the training rows, as it was fitted on them."""
    model = flagged_model()
    return model.predict_proba(frame[FEATURES_FLAGGED])[:, list(model.classes_).index("malignant")]


# -- batches -----------------------------------------------------------------------------

@pytest.mark.parametrize("spell", [
    None,  # the training file's own 0/1
    {0: "false", 1: "true"}, {0: "FALSE", 1: "True"}, {0: " 0 ", 1: " 1 "}, {0: "0.0", 1: "1.0"},
])
def test_a_batch_of_the_training_rows_completes_with_no_failed_row(
        personas, version, spell, django_capture_on_commit_callbacks):
    frame = _training_rows(500)
    upload = frame if spell is None else frame.assign(**{FLAG: frame[FLAG].map(spell)})
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=SimpleUploadedFile("rows.csv", csv_bytes(upload)),
                                   chunk_size=200)
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED, job.error
    assert (job.rows_done, job.rows_failed) == (500, 0)
    logged = Prediction.objects.filter(batch=job).order_by("row_index")
    assert [p.input[FLAG] for p in logged] == [bool(v) for v in frame[FLAG]]
    scores = [p.probabilities["malignant"] for p in logged]
    assert scores == pytest.approx(_model_scores(frame).tolist(), abs=1e-6)


@pytest.mark.parametrize("as_type", ["int64", "float64", "bool", "str"])
def test_a_parquet_batch_reads_the_flag_whatever_its_column_type(
        personas, version, as_type, django_capture_on_commit_callbacks):
    frame = _training_rows(100)
    column = frame[FLAG].astype(bool).astype(str).str.lower() if as_type == "str" \
        else frame[FLAG].astype(as_type)
    buffer = io.BytesIO()
    frame.assign(**{FLAG: column}).to_parquet(buffer, index=False)
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=SimpleUploadedFile("rows.parquet", buffer.getvalue()))
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_failed == 0, job.error


def test_a_batch_row_with_another_spelling_is_refused_per_field(
        personas, version, django_capture_on_commit_callbacks):
    frame = _training_rows(6).astype(object)
    frame.loc[1, FLAG], frame.loc[3, FLAG], frame.loc[4, FLAG] = "yes", "2", "0.5"
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=SimpleUploadedFile("rows.csv", csv_bytes(frame)))
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_failed == 3
    assert sorted(Prediction.objects.filter(batch=job).values_list("row_index", flat=True)) == \
        [0, 2, 5]
    assert batches.batch_failure_reasons(job) == [
        {"code": "invalid_type", "field": FLAG, "rows": 3,
         "message": f"{FLAG} must be true or false (or 1 or 0)."}]


# -- single predictions --------------------------------------------------------------------

def test_single_predictions_take_0_1_and_true_false_alike(personas, version):
    row = typical_input(version)
    answers = {}
    for value in (0, 1, False, True, 0.0, 1.0):
        response = _predict(personas, {**row, FLAG: value})
        assert response.status_code == 200, response.json()
        answers[value] = response.json()
    for one, other in ((0, False), (1, True), (0.0, False), (1.0, True)):
        assert answers[one]["score"] == answers[other]["score"]
        assert answers[one]["input_sha256"] == answers[other]["input_sha256"]
    assert answers[0]["score"] != answers[1]["score"]
    logged = Prediction.objects.get(public_id=answers[1]["id"])
    assert logged.input[FLAG] is True
    frame = pd.DataFrame([{**row, FLAG: 1}])
    assert answers[1]["probabilities"]["malignant"] == pytest.approx(_model_scores(frame)[0],
                                                                     abs=1e-6)


@pytest.mark.parametrize("value", ["yes", 2, -1, 0.5, "true", "1", [1], {"v": 1}])
def test_other_values_are_refused_with_a_structured_error(personas, version, value):
    """JSON carries real booleans and numbers: text is read only from CSV and the form."""
    response = _predict(personas, {**typical_input(version), FLAG: value})
    assert response.status_code == 400
    assert response.json()["errors"] == [{
        "field": f"inputs.{FLAG}", "code": "invalid_type",
        "message": f"{FLAG} must be true or false (or 1 or 0)."}]
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("typed,stored", [("1", True), ("true", True), (" TRUE ", True),
                                          ("0", False), ("false", False)])
def test_the_form_reads_the_same_spellings(personas, version, typed, stored):
    client = Client()
    client.force_login(personas.clinician)
    row = {k: str(v) for k, v in typical_input(version).items()}
    response = client.post(f"/models/{personas.model.name}/predict/", {**row, FLAG: typed})
    assert response.status_code == 302, response.context["form"].errors
    assert Prediction.objects.get().input[FLAG] is stored


def test_the_form_refuses_another_spelling_next_to_the_field(personas, version):
    client = Client()
    client.force_login(personas.clinician)
    row = {k: str(v) for k, v in typical_input(version).items()}
    response = client.post(f"/models/{personas.model.name}/predict/", {**row, FLAG: "yes"})
    assert response.status_code == 200
    assert response.context["form"].errors[FLAG] == [f"{FLAG} must be true or false (or 1 or 0)."]
    assert not Prediction.objects.exists()


# -- one rule, column by column as row by row ------------------------------------------------

def test_the_column_screen_reads_booleans_as_the_row_checker_does():
    schema = [{"name": "x", "type": "number"}, {"name": "flag", "type": "boolean"}]
    values = [True, False, 1, 0, 1.0, 0.0, -0.0, 2, 0.5, "1", "true", None, float("nan")]
    rows = [{"x": 1.0, "flag": v} for v in values]
    expected = [check_input(r, schema=schema, profile={}, path="row") for r in rows]
    screened = check_many(rows, schema=schema, profile={}, path="row")
    assert screened.checked == expected
    assert [c.values.get("flag") for c in expected[:7]] == [True, False, True, False, True,
                                                            False, False]
    assert all(c.errors for c in expected[7:])


def test_a_missing_flag_is_imputed_from_a_0_1_profile():
    schema = [{"name": "flag", "type": "boolean", "missing": "impute"}]
    profile = {"columns": {"flag": {"type": "integer", "min": 0.0, "max": 1.0, "mean": 0.7,
                                    "quantiles": [0.0, 1.0]}}}
    checked = check_input({}, schema=schema, profile=profile)
    assert (checked.values, checked.imputed, checked.errors) == ({"flag": True}, ["flag"], [])
