"""A batch's "explain all rows": SHAP contributions of every scored row as result columns,
computed by the explain app's path, adding up to the model's output, recorded and
audited; refused with the reason when the version has no fast exact explainer or the
work would cost too much; routed to the gpu queue when one is configured."""

from __future__ import annotations

import csv
import io
import math

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audits.models import Action, AuditEvent
from explain.compute import explanation_compute
from explain.models import BackgroundSource, ExplainerKind, Units
from explain.space import positive_index
from inference import batches
from inference.models import BatchJob, BatchStatus, Prediction
from registry.loading import artifact_model_load

from ..artifacts import FEATURES_SMALL, breast_cancer_frame
from ..conftest import api_as
from ..explain.helpers import boosting, forest, knn, released_of

pytestmark = pytest.mark.django_db

SHAP_COLUMNS = ["shap_base_value", *(f"shap_{n}" for n in FEATURES_SMALL), "shap_output",
                "shap_units"]


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Jobs run in-process on commit, also in the layer with a real broker (no worker there)."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


def _frame(n: int, *, bad: tuple[int, ...] = ()) -> pd.DataFrame:
    cohort = breast_cancer_frame()[FEATURES_SMALL]
    frame = pd.concat([cohort] * (n // len(cohort) + 1), ignore_index=True).iloc[:n].copy()
    frame = frame.astype(object)
    for i in bad:
        frame.loc[i, "mean radius"] = "large"
    return frame


def _csv(frame: pd.DataFrame) -> SimpleUploadedFile:
    return SimpleUploadedFile("batch.csv", frame.to_csv(index=False).encode("utf-8"))


def _post(personas, capture, upload, **data):
    url = f"/api/v1/models/{personas.model.name}/batches/"
    with capture(execute=True):
        return api_as(personas.clinician).post(url, {"file": upload, **data},
                                               format="multipart")


def _job(response) -> BatchJob:
    assert response.status_code == 202, response.json()
    return BatchJob.objects.get(public_id=response.json()["id"])


def _download(personas, job: BatchJob) -> list[dict]:
    response = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/results/")
    assert response.status_code == 200, response
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def _codes(response) -> dict[str, dict]:
    assert response.status_code == 400, response.json()
    return {e["code"]: e for e in response.json()["errors"]}


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _added_up(row: dict) -> float:
    return float(row["shap_base_value"]) + sum(float(row[f"shap_{n}"]) for n in FEATURES_SMALL)


def _assert_adds_up(job: BatchJob, rows: list[dict], units: str) -> None:
    """Per row of the file: base + contributions = shap_output, which is the model
    artifact's own output for the row's logged input (its positive-class probability, or
    the log-odds of it); the score column is the served runtime's probability (onnxruntime
    for a batch when it matched the artifact within ATTEST_ONNX_TOLERANCE), rounded."""
    estimator = artifact_model_load(version=job.version).estimator
    inputs = dict(Prediction.objects.filter(batch=job).values_list("row_index", "input"))
    frame = pd.DataFrame([inputs[int(r["row_index"])] for r in rows])[FEATURES_SMALL]
    positive = positive_index(job.version, [str(c) for c in estimator.classes_])
    proba = estimator.predict_proba(frame)[:, positive]
    for row, model_p in zip(rows, proba.tolist(), strict=True):
        assert row["shap_units"] == units
        output = float(row["shap_output"])
        assert abs(_added_up(row) - output) < 1e-9, row
        p = output if units == Units.PROBABILITY else _sigmoid(output)
        assert abs(p - model_p) < 1e-9, row
        assert abs(float(row["score"]) - model_p) <= 1e-5 + 5e-7, row


# -- whole jobs ----------------------------------------------------------------------------

def test_a_forest_batch_gets_contributions_that_add_up_to_each_rows_score(
        personas, settings, django_capture_on_commit_callbacks):
    settings.ATTEST_BATCH_CHUNK_ROWS, settings.ATTEST_BATCH_CHUNK_SECONDS = 7, 0
    released_of(personas, forest())
    response = _post(personas, django_capture_on_commit_callbacks, _csv(_frame(40, bad=(3, 22))),
                     explain="shap")
    job = _job(response)
    assert job.status == BatchStatus.COMPLETED and len(job.chunks_done) == 6
    assert job.rows_done == 40 and len(job.explain_parts) == 6

    rows = _download(personas, job)
    assert list(rows[0]) == [*batches.RESULT_HEADER, *SHAP_COLUMNS]
    assert len(rows) == 38 and {r["row_index"] for r in rows}.isdisjoint({"3", "22"})
    # A forest's TreeSHAP adds up to the probability of the positive class.
    _assert_adds_up(job, rows, Units.PROBABILITY)

    record = job.explanation
    assert record["method"] == "shap" and record["explainer"] == ExplainerKind.TREE
    assert record["units"] == Units.PROBABILITY and record["rows_explained"] == 38
    assert record["background_source"] == BackgroundSource.TREE_PATHS
    assert record["background_sha256"] == ""
    assert set(record["library_versions"]) >= {"shap", "numpy", "scikit-learn"}
    assert record["columns"] == SHAP_COLUMNS and record["max_additivity_residual"] < 1e-6
    assert record["planned"]["explainer"] == ExplainerKind.TREE
    assert record["planned"]["estimated_seconds"] >= 0

    body = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/").json()
    assert body["explain"] == "shap" and body["explanation"] == record
    assert body["progress"]["rows_done"] == 40

    client = Client()
    client.force_login(personas.clinician)
    page = client.get(f"/batches/{job.public_id}/").content.decode()
    assert "38 rows explained by the tree explainer, in probability" in page
    assert "shap_output" in page

    submitted = AuditEvent.objects.get(action=Action.BATCH_SUBMITTED, object_id=str(job.pk))
    assert submitted.details["explain"]["explainer"] == ExplainerKind.TREE
    finished = AuditEvent.objects.get(action=Action.BATCH_FINISHED, object_id=str(job.pk))
    assert finished.details["status"] == BatchStatus.COMPLETED
    assert finished.details["explanation"] == record


def test_a_linear_pipeline_batch_is_in_log_odds_and_matches_the_single_explanation(
        personas, settings, django_capture_on_commit_callbacks):
    """The batch takes the path one prediction's explanation takes: the same contributions,
    background hash and units for the same input."""
    settings.ATTEST_BATCH_CHUNK_ROWS, settings.ATTEST_BATCH_CHUNK_SECONDS = 10, 0
    version = released_of(personas)  # StandardScaler + LogisticRegression
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(25)),
                     explain="shap"))
    assert job.status == BatchStatus.COMPLETED
    rows = _download(personas, job)
    assert len(rows) == 25
    _assert_adds_up(job, rows, Units.LOG_ODDS)

    prediction = Prediction.objects.get(batch=job, row_index=4)
    single = explanation_compute(version=version, inputs=prediction.input, method="shap",
                                 parameters={"seed": 0})
    row = rows[4]
    assert row["prediction_id"] == str(prediction.public_id)
    assert float(row["shap_base_value"]) == pytest.approx(single.content["base_value"], abs=1e-12)
    for item in single.content["contributions"]:
        assert float(row[f"shap_{item['feature']}"]) == pytest.approx(item["contribution"],
                                                                     abs=1e-12)
    assert job.explanation["explainer"] == single.explainer == ExplainerKind.LINEAR
    assert job.explanation["background_sha256"] == single.background_sha256 != ""
    assert job.explanation["background_source"] == single.background_source


def test_boosting_adds_up_in_log_odds_with_pass_through_columns_first(
        personas, settings, django_capture_on_commit_callbacks):
    settings.ATTEST_BATCH_CHUNK_ROWS, settings.ATTEST_BATCH_CHUNK_SECONDS = 6, 0
    released_of(personas, boosting())
    frame = _frame(20, bad=(5,))
    frame.insert(0, "record_id", [f"r{i}" for i in range(20)])
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(frame),
                     explain="shap", passthrough_columns="record_id"))
    rows = _download(personas, job)
    assert list(rows[0]) == ["record_id", *batches.RESULT_HEADER, *SHAP_COLUMNS]
    assert len(rows) == 19
    assert all(row["record_id"] == f"r{row['row_index']}" for row in rows)
    _assert_adds_up(job, rows, Units.LOG_ODDS)


def test_without_explain_the_result_file_is_unchanged(
        personas, django_capture_on_commit_callbacks):
    released_of(personas, forest())
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(5))))
    assert job.explain == "" and job.explain_parts == {} and job.explanation == {}
    assert list(_download(personas, job)[0]) == list(batches.RESULT_HEADER)
    finished = AuditEvent.objects.get(action=Action.BATCH_FINISHED, object_id=str(job.pk))
    assert "explanation" not in finished.details


def test_a_resumed_job_explains_each_chunk_once(personas, settings, monkeypatch,
                                               django_capture_on_commit_callbacks):
    """A worker dies after two chunks; the resumed run explains only the rest, and the
    file has every row's contributions once."""
    from inference.batches import runner
    from inference.tasks import run_batch

    settings.ATTEST_BATCH_CHUNK_ROWS, settings.ATTEST_BATCH_CHUNK_SECONDS = 5, 0
    released_of(personas, forest())
    real = runner.batch_chunk_commit
    committed = []

    def die_after_two(*, job, prepared):
        if len(committed) == 2:
            raise SystemExit("worker killed")
        committed.append(prepared.index)
        return real(job=job, prepared=prepared)

    monkeypatch.setattr(runner, "batch_chunk_commit", die_after_two)
    with pytest.raises(SystemExit):
        _post(personas, django_capture_on_commit_callbacks, _csv(_frame(18)), explain="shap")
    job = BatchJob.objects.get()
    assert job.status == BatchStatus.RUNNING and sorted(job.explain_parts) == ["0", "1"]
    monkeypatch.setattr(runner, "batch_chunk_commit", real)
    run_batch.apply(args=[job.pk], throw=True)
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and sorted(job.explain_parts, key=int) == [
        "0", "1", "2", "3"]
    assert job.explanation["rows_explained"] == 18 and job.explanation["chunks"] == 4
    rows = _download(personas, job)
    assert [int(r["row_index"]) for r in rows] == list(range(18))
    _assert_adds_up(job, rows, Units.PROBABILITY)


# -- refused ---------------------------------------------------------------------------------

def test_a_version_without_a_fast_explainer_is_refused_with_the_reason(
        personas, django_capture_on_commit_callbacks):
    released_of(personas, knn())
    codes = _codes(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(5)),
                         explain="shap"))
    error = codes["explainer_not_fast"]
    assert error["field"] == "explain"
    assert "permutation" in error["message"].lower() and "KNeighborsClassifier" in error["message"]
    assert not BatchJob.objects.exists()


def test_lime_and_unknown_methods_are_refused(personas, django_capture_on_commit_callbacks):
    released_of(personas, forest())
    for method in ("lime", "kernel"):
        response = _post(personas, django_capture_on_commit_callbacks, _csv(_frame(5)),
                         explain=method)
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "explain"
    assert not BatchJob.objects.exists()


def test_work_over_the_budget_is_refused_with_the_estimate(
        personas, settings, django_capture_on_commit_callbacks):
    released_of(personas, forest())
    settings.ATTEST_BATCH_EXPLAIN_MAX_SECONDS = 1e-6
    response = _post(personas, django_capture_on_commit_callbacks, _csv(_frame(50)),
                     explain="shap")
    error = _codes(response)["explain_too_costly"]
    assert "ATTEST_BATCH_EXPLAIN_MAX_SECONDS" in error["message"]
    assert response.json()["estimated_seconds"] > 1e-6
    assert not BatchJob.objects.exists()


def test_a_pass_through_column_may_not_take_a_contribution_columns_name(
        personas, django_capture_on_commit_callbacks):
    released_of(personas, forest())
    frame = _frame(5)
    frame.insert(0, "shap_units", "x")
    codes = _codes(_post(personas, django_capture_on_commit_callbacks, _csv(frame),
                         explain="shap", passthrough_columns="shap_units"))
    assert "passthrough_reserved" in codes


# -- routing and the page ---------------------------------------------------------------------

def test_explained_batches_go_to_the_gpu_queue_when_one_is_configured(
        personas, settings, django_capture_on_commit_callbacks):
    version = released_of(personas, forest())
    assert batches.batch_queue_for(version, explain="shap") == "default"
    settings.ATTEST_GPU_QUEUE_ENABLED = True
    assert batches.batch_queue_for(version, explain="shap") == "gpu"
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(5)),
                     explain="shap"))
    assert job.queue == "gpu" and job.status == BatchStatus.COMPLETED


def test_the_upload_page_asks_for_explanations_and_shows_why_not(
        personas, django_capture_on_commit_callbacks):
    released_of(personas, knn())
    client = Client()
    client.force_login(personas.clinician)
    url = f"/models/{personas.model.name}/batches/"
    page = client.get(url).content.decode()
    assert 'name="explain"' in page
    response = client.post(url, {"file": _csv(_frame(5)), "explain": "shap"})
    assert response.status_code == 200
    assert "exact fast explainer" in response.content.decode()
    assert not BatchJob.objects.exists()
