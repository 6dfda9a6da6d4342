"""Batch jobs on SQLite with Celery eager: the job runs in-process when its row commits."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import timedelta

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from audits.models import Action, AuditEvent
from core.errors import ErrorItem
from inference import batches, services
from inference.batches import files as batch_files
from inference.batches import jobs, runner
from inference.models import BatchJob, BatchStatus, Prediction, RejectionCount, ReviewItem
from inference.tasks import (
    anchor_predictions,
    batch_enqueue,
    batch_resume_embedded,
    purge_inputs,
    run_batch,
)
from registry.loading import version_model_load
from registry.models import ModelVersion
from registry.roles import ModelRole
from registry.services import access_grant
from registry.storage import artifact_storage

from ..artifacts import FEATURES_SMALL, breast_cancer_frame, onnx_bytes
from ..conftest import api_as
from ..personas import make_user
from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


def _frame(n: int) -> pd.DataFrame:
    """n rows cycling through the breast-cancer cohort's four features."""
    cohort = breast_cancer_frame()[FEATURES_SMALL]
    return pd.concat([cohort] * (n // len(cohort) + 1), ignore_index=True).iloc[:n].copy()


def _csv_upload(frame: pd.DataFrame, name: str = "batch.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, frame.to_csv(index=False).encode("utf-8"))


def _parquet_upload(frame: pd.DataFrame, name: str = "batch.parquet",
                    row_group_size: int | None = None) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, row_group_size=row_group_size)
    return SimpleUploadedFile(name, buffer.getvalue())


def _submit(personas, capture, upload, who: str = "clinician", **data):
    """POST a file; the job runs (eagerly) when the test's on-commit callbacks do."""
    url = f"/api/v1/models/{personas.model.name}/batches/"
    with capture(execute=True):
        return api_as(personas.get(who)).post(url, {"file": upload, **data}, format="multipart")


def _finished(personas, response, who: str = "clinician") -> dict:
    """The job as the API shows it now (after the on-commit callbacks ran)."""
    assert response.status_code == 202, response.json()
    return api_as(personas.get(who)).get(response.json()["links"]["self"]).json()


def _download(personas, url: str, who: str = "clinician") -> list[list[str]]:
    response = api_as(personas.get(who)).get(url)
    assert response.status_code == 200, response
    assert response["Content-Type"].startswith("text/csv")
    # Reading it to the end closes the response, and the temp file behind it.
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


def _one_row_each(job: BatchJob) -> set[int]:
    rows = Prediction.objects.filter(batch=job)
    indices = list(rows.values_list("row_index", flat=True))
    assert len(indices) == len(set(indices)), "a row was logged twice"
    return set(indices)


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Jobs run in-process on commit, also in the layer with a real broker (no worker there)."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


@pytest.fixture
def version(personas):
    return released_version(personas, confidence_threshold=0.8)


# -- a whole job ----------------------------------------------------------------------

def test_a_csv_of_1000_rows_is_scored_logged_and_written(transactional_db, personas, version):
    """Outside a test transaction, as in the embedded shape: the answer comes after the job."""
    frame = _frame(1000).astype(object)
    frame.loc[5, "mean radius"] = "large"  # invalid_type
    frame.loc[17, "mean texture"] = None  # required
    frame.loc[999, "mean smoothness"] = "n/a"  # a missing-value marker: required
    response = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/batches/", {"file": _csv_upload(frame)},
        format="multipart")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "completed" and body["model_version"] == version.number
    assert body["progress"]["rows_done"] == body["progress"]["total_rows"] == 1000
    assert body["progress"]["percent"] == 100.0 and body["progress"]["rows_per_second"] > 0
    assert body["progress"]["eta_seconds"] is None
    assert body["rows_failed"] == 3 and body["predictions"] == 997
    assert response["Location"] == body["links"]["self"]
    job = BatchJob.objects.get(public_id=body["id"])
    assert _one_row_each(job) == set(range(1000)) - {5, 17, 999}
    # Each logged row is a full prediction: requester, batch, row hash, raw input.
    first = Prediction.objects.get(batch=job, row_index=0)
    assert first.requester == personas.clinician and first.input is not None
    assert first.input["mean radius"] == pytest.approx(float(frame.loc[0, "mean radius"]))
    # Routed rows have exactly one review item each.
    routed = Prediction.objects.filter(batch=job, routing="review")
    assert routed.count() == body["rows_routed"] > 0
    assert ReviewItem.objects.filter(prediction__batch=job).count() == routed.count()

    results = _download(personas, body["links"]["results"])
    assert results[0] == ["row_index", "prediction_id", "label", "score", "confidence", "routing",
                          "reason"]
    assert [int(r[0]) for r in results[1:]] == sorted(set(range(1000)) - {5, 17, 999})
    by_index = {p.row_index: p for p in Prediction.objects.filter(batch=job)}
    for row in results[1:]:
        p = by_index[int(row[0])]
        assert row[1:6] == [str(p.public_id), p.label, str(p.score), str(p.confidence),
                            p.routing]
        assert row[6] == p.reason

    errors = _download(personas, body["links"]["errors"])
    assert errors[0] == ["row_index", "field", "code", "message"]
    assert [r[:3] for r in errors[1:]] == [["5", "mean radius", "invalid_type"],
                                           ["17", "mean texture", "required"],
                                           ["999", "mean smoothness", "required"]]
    assert dict(RejectionCount.objects.values_list("code", "count")) == {
        "invalid_type": 1, "required": 2}

    submitted = AuditEvent.objects.get(action=Action.BATCH_SUBMITTED)
    assert submitted.actor_username == "clinician" and submitted.details["rows"] == 1000
    finished = AuditEvent.objects.get(action=Action.BATCH_FINISHED).details
    assert finished == {
        "batch": body["id"], "status": "completed", "total_rows": 1000, "rows_done": 1000,
        "predictions": 997, "rows_failed": 3, "rows_routed": body["rows_routed"],
        "attempts": 1, "result_sha256": body["result_sha256"],
        "error_sha256": body["error_sha256"], "error": None}


def test_a_job_in_which_every_row_failed_ends_failed_with_the_reasons(
        personas, version, django_capture_on_commit_callbacks):
    """Issue 15 §5: 500 of 500 rows failed used to end 'completed'."""
    frame = _frame(500).astype(object)
    frame["mean radius"] = "large"  # invalid_type, every row
    frame.loc[:9, "mean texture"] = None  # required, rows 0-9 as well
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame), chunk_size=200)
    job.refresh_from_db()
    assert job.status == BatchStatus.FAILED
    assert (job.rows_done, job.rows_failed, job.chunks_done) == (500, 500, [0, 1, 2])
    assert not Prediction.objects.filter(batch=job).exists()
    reasons = [{"code": "invalid_type", "field": "mean radius", "rows": 500,
                "message": "mean radius must be a number."},
               {"code": "required", "field": "mean texture", "rows": 10,
                "message": "mean texture is required."}]
    assert batches.batch_failure_reasons(job) == reasons
    assert job.error == ("Every row failed (500 of 500), so nothing was scored: "
                         "invalid_type on mean radius in 500 rows (mean radius must be a "
                         "number); required on mean texture in 10 rows (mean texture is "
                         "required). The error file lists every row.")

    body = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/").json()
    assert body["status"] == "failed" and body["error"] == job.error
    assert body["failure_reasons"] == reasons and body["predictions"] == 0
    assert body["links"]["errors"] and body["links"]["results"]  # the files are still written
    assert len(_download(personas, body["links"]["errors"])) == 1 + 500 + 10

    finished = AuditEvent.objects.get(action=Action.BATCH_FINISHED).details
    assert finished["status"] == "failed" and finished["error"] == job.error
    assert finished["rows_failed"] == 500 and finished["predictions"] == 0

    client = Client()
    client.force_login(personas.clinician)
    page = client.get(f"/batches/{job.public_id}/").content.decode()
    assert "Every row failed (500 of 500)" in page
    assert "<td>invalid_type</td>" in page and "<td>mean radius</td>" in page


def test_a_partly_failed_job_still_completes_and_lists_its_reasons(
        personas, version, django_capture_on_commit_callbacks):
    frame = _frame(20).astype(object)
    frame.loc[3, "mean radius"] = "large"
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame))
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.error == "" and job.rows_failed == 1
    body = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/").json()
    assert body["failure_reasons"] == [{"code": "invalid_type", "field": "mean radius",
                                        "rows": 1, "message": "mean radius must be a number."}]


def test_text_the_database_could_not_store_is_a_row_error(tmp_path):
    """NUL passes UTF-8 and the csv module, but PostgreSQL refuses it in the logged input."""
    from types import SimpleNamespace

    schema = SimpleNamespace(input_schema=[{"name": "site", "type": "category"},
                                           {"name": "age", "type": "integer"}])
    path = tmp_path / "nul.csv"
    path.write_bytes(b"site,age\na,1\nb\x00c,2\nNA,3.0\n")
    [(index, records)] = list(batch_files.csv_chunks(str(path), schema, 10))
    assert index == 0
    assert records() == [
        (0, {"site": "a", "age": 1}, None),
        (1, None, ErrorItem("invalid_characters", "Text may not contain NUL characters.",
                            "site")),
        (2, {"site": None, "age": 3.0}, None)]


def test_a_parquet_file_completes_with_one_log_row_per_row(personas, version,
                                                           django_capture_on_commit_callbacks):
    frame = _frame(1000)
    frame.loc[10, "mean concavity"] = float("nan")  # missing in parquet: required
    # Row groups of 128 rows against chunks of 300: re-batched to exact chunks.
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_parquet_upload(frame, row_group_size=128),
                                   chunk_size=300)
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED, job.error
    assert job.file_format == "parquet" and job.chunks_done == [0, 1, 2, 3]
    assert job.rows_done == 1000 and job.rows_failed == 1
    assert _one_row_each(job) == set(range(1000)) - {10}


def test_batch_rows_are_routed_like_single_predictions(personas, version,
                                                       django_capture_on_commit_callbacks):
    frame = _frame(12)
    frame.loc[3, "mean radius"] = 1e6  # out of range: review
    frame.loc[7, "mean texture"] = 1e6
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame), chunk_size=5)
    job.refresh_from_db()
    logged = {p.row_index: p for p in Prediction.objects.filter(batch=job)}
    assert len(logged) == 12 and {logged[3].routing, logged[7].routing} == {"review"}
    for index, row in frame.iterrows():
        single = services.prediction_create(user=personas.clinician, model=personas.model,
                                            instances=[row.to_dict()])[0].prediction
        batch = logged[index]
        assert (batch.label, batch.score, batch.confidence, batch.routing, batch.reason,
                batch.input_sha256) == (single.label, single.score, single.confidence,
                                        single.routing, single.reason, single.input_sha256)


def test_the_reject_policy_sends_out_of_distribution_rows_to_the_error_file(
        personas, django_capture_on_commit_callbacks):
    released_version(personas, ood_policy="reject")
    frame = _frame(10)
    frame.loc[2, "mean radius"] = 1e6
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame))
    job.refresh_from_db()
    assert job.rows_failed == 1 and _one_row_each(job) == set(range(10)) - {2}
    with artifact_storage().open(job.error_key, "rb") as handle:
        assert "2,mean radius,ood_out_of_range," in handle.read().decode()


class _Fragile:
    """The real model, except that it cannot score 'mean texture' = 999 (raises) and gives
    NaN for 'mean texture' = 998, as scikit-learn does for values like 1e308."""

    def __init__(self, real) -> None:
        self.real, self.runtime = real, real.runtime

    def predict_proba(self, rows):
        if any(r["mean texture"] == 999 for r in rows):
            raise ValueError("Input X contains infinity or a value too large.")
        proba = self.real.predict_proba(rows)
        proba[[r["mean texture"] == 998 for r in rows]] = float("nan")
        return proba

    def predict_proba_matrix(self, matrix):
        texture = matrix[:, self.real.feature_names.index("mean texture")]
        if (texture == 999).any():
            raise ValueError("Input X contains infinity or a value too large.")
        proba = self.real.predict_proba_matrix(matrix)
        if proba is not None:
            proba[texture == 998] = float("nan")
        return proba


def test_rows_the_model_cannot_score_go_to_the_error_file(personas, version, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    real = version_model_load(version=version, purpose="batch")
    monkeypatch.setattr(runner, "version_model_load",
                        lambda *, version, purpose="single": _Fragile(real))
    frame = _frame(100).astype(object)
    frame.loc[[7, 60], "mean texture"] = 999
    frame.loc[33, "mean texture"] = 998
    frame.loc[34, "mean radius"] = "x"
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame), chunk_size=50)
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_failed == 4
    assert _one_row_each(job) == set(range(100)) - {7, 33, 34, 60}
    with artifact_storage().open(job.error_key, "rb") as handle:
        lines = handle.read().decode().splitlines()[1:]
    assert [line.split(",")[:3] for line in lines] == [
        ["7", "", "unscorable"], ["33", "", "unscorable"], ["34", "mean radius", "invalid_type"],
        ["60", "", "unscorable"]]
    assert RejectionCount.objects.get(code="unscorable").count == 3


# -- crash safety ---------------------------------------------------------------------

def _queued_job(personas, rows: int = 1000, chunk_size: int = 300) -> BatchJob:
    """A committed job whose task has not run (no on-commit callbacks in a db test)."""
    return batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                upload=_csv_upload(_frame(rows)), chunk_size=chunk_size)


def _running(job: BatchJob) -> BatchJob:
    """The job as a worker that claimed it sees it (status running, nothing done)."""
    BatchJob.objects.filter(pk=job.pk).update(status=BatchStatus.RUNNING)
    job.refresh_from_db()
    return job


def _chunks(job: BatchJob):
    path = batch_files.fetch_input(job)
    return dict(batch_files.csv_chunks(path, job.version, job.chunk_size))


def test_running_a_chunk_twice_logs_each_row_once(personas, version):
    job = _queued_job(personas)
    assert job.status == BatchStatus.QUEUED
    job = _running(job)
    loaded = version_model_load(version=version, purpose="batch")
    chunk = _chunks(job)[0]
    assert batches.batch_chunk_process(job=job, index=0, records=chunk(), loaded=loaded)
    first_ids = set(Prediction.objects.filter(batch=job).values_list("public_id", flat=True))
    assert not batches.batch_chunk_process(job=job, index=0, records=chunk(), loaded=loaded)
    job.refresh_from_db()
    assert job.chunks_done == [0] and job.rows_done == 300
    assert _one_row_each(job) == set(range(300))
    # A redelivery after a crash that followed chunk 0: the rest is done, chunk 0 untouched.
    assert run_batch.apply(args=[job.pk]).get() == BatchStatus.COMPLETED
    job.refresh_from_db()
    assert job.chunks_done == [0, 1, 2, 3] and job.rows_done == 1000 and job.attempts == 1
    assert _one_row_each(job) == set(range(1000))
    assert first_ids <= set(Prediction.objects.filter(batch=job).values_list("public_id",
                                                                            flat=True))
    # A further delivery of the finished job changes nothing.
    assert run_batch.apply(args=[job.pk]).get() == BatchStatus.COMPLETED
    assert Prediction.objects.filter(batch=job).count() == 1000
    assert AuditEvent.objects.filter(action=Action.BATCH_FINISHED).count() == 1


def test_rows_logged_without_their_chunk_mark_are_not_logged_again(personas, version):
    """The backstop: check-then-insert skips present rows and keeps review items paired."""
    job = _running(_queued_job(personas, rows=600, chunk_size=300))
    loaded = version_model_load(version=version, purpose="batch")
    chunk = _chunks(job)[1]
    BatchJob.objects.filter(pk=job.pk).update(chunks_done=[0], rows_done=300)  # in step
    job.refresh_from_db()
    batches.batch_chunk_process(job=job, index=1, records=chunk(), loaded=loaded)
    routed = ReviewItem.objects.filter(prediction__batch=job).count()
    # Forget the mark, as if the rows had been committed without it.
    BatchJob.objects.filter(pk=job.pk).update(chunks_done=[], rows_done=0, rows_routed=0)
    run_batch.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and _one_row_each(job) == set(range(600))
    reviews = ReviewItem.objects.filter(prediction__batch=job)
    assert reviews.values("prediction").annotate(n=Count("id")).filter(n__gt=1).count() == 0
    assert reviews.count() == Prediction.objects.filter(batch=job, routing="review").count()
    assert reviews.filter(prediction__row_index__gte=300).count() == routed


def test_a_stalled_job_is_resumed(personas, version):
    job = _queued_job(personas)
    BatchJob.objects.filter(pk=job.pk).update(status=BatchStatus.RUNNING)
    assert batches.batch_resume_stale(enqueue=batch_enqueue) == []  # it made progress (was touched) just now
    assert batches.batch_resume_stale(enqueue=batch_enqueue, stale_after=timedelta(0)) == [job.pk]  # eager: runs now
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and _one_row_each(job) == set(range(1000))


def test_a_job_whose_input_changed_in_storage_fails_without_scoring(personas, version):
    job = _queued_job(personas)
    with artifact_storage().open(job.input_key, "wb") as handle:
        handle.write(b"mean radius\n1\n")
    assert run_batch.apply(args=[job.pk]).get() == BatchStatus.FAILED
    job.refresh_from_db()
    assert "sha256" in job.error and not Prediction.objects.filter(batch=job).exists()
    assert AuditEvent.objects.get(action=Action.BATCH_FINISHED).details["status"] == "failed"


# -- cancelling -----------------------------------------------------------------------

def test_a_running_job_stops_at_the_next_chunk(personas, version, monkeypatch,
                                               django_capture_on_commit_callbacks):
    real = batches.batch_chunk_commit

    def cancel_after_the_first(*, job, prepared):
        done = real(job=job, prepared=prepared)
        if prepared.index == 0:
            response = api_as(personas.clinician).delete(f"/api/v1/batches/{job.public_id}/")
            assert response.status_code == 202 and response.json()["cancel_requested"]
            assert response.json()["status"] == "running"
        return done

    monkeypatch.setattr(runner, "batch_chunk_commit", cancel_after_the_first)
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(_frame(1000)), chunk_size=250)
    job.refresh_from_db()
    assert job.status == BatchStatus.CANCELLED and job.rows_done == 250
    assert _one_row_each(job) == set(range(250))
    assert job.result_key  # what was done can still be downloaded
    cancelled = AuditEvent.objects.get(action=Action.BATCH_CANCELLED)
    assert cancelled.actor_username == "clinician"
    assert cancelled.details["status_at_request"] == "running"
    assert AuditEvent.objects.get(action=Action.BATCH_FINISHED).details["status"] == "cancelled"


def test_a_queued_job_is_cancelled_at_once_and_its_task_does_nothing(personas, version):
    job = _queued_job(personas)
    response = api_as(personas.owner).delete(f"/api/v1/batches/{job.public_id}/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert run_batch.apply(args=[job.pk]).get() == BatchStatus.CANCELLED
    assert not Prediction.objects.filter(batch=job).exists()
    again = api_as(personas.owner).delete(f"/api/v1/batches/{job.public_id}/")
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "batch_finished"


# -- bad input ------------------------------------------------------------------------

HEADER = ",".join(FEATURES_SMALL)


@pytest.mark.parametrize("name,data,code", [
    ("empty.csv", b"", "empty_file"),
    ("header.csv", f"{HEADER}\n".encode(), "no_rows"),
    ("ragged.csv", f"{HEADER}\n1,2,3,4\n1,2,3,4,5\n".encode(), "ragged_rows"),
    ("latin1.csv", f"{HEADER}\n1,2,3,4\n".encode() + "caf\xe9,2,3,4\n".encode("latin-1"),
     "encoding"),
    ("scores.xlsx", b"PK\x03\x04 not a csv", "unsupported_format"),
    ("noext", f"{HEADER}\n1,2,3,4\n".encode(), "unsupported_format"),
    ("missing.csv", b"mean radius,mean texture,mean smoothness\n1,2,3\n", "missing_column"),
    ("extra.csv", f"{HEADER},patient_id\n1,2,3,4,p1\n".encode(), "unknown_field"),
    ("twice.csv", f"{HEADER},mean radius\n1,2,3,4,5\n".encode(), "duplicate_columns"),
    ("broken.parquet", b"PAR1 this is not parquet", "corrupt_file"),
])
def test_bad_files_are_refused_up_front_and_nothing_is_stored(personas, version, name, data,
                                                              code,
                                                              django_capture_on_commit_callbacks):
    response = _submit(personas, django_capture_on_commit_callbacks,
                       SimpleUploadedFile(name, data))
    assert response.status_code == 400, response.json()
    assert code in {e["code"] for e in response.json()["errors"]}
    assert not BatchJob.objects.exists()
    assert not artifact_storage().exists("batch-input")


def test_a_missing_file_and_unknown_fields_are_400s(personas, version):
    client = api_as(personas.clinician)
    url = f"/api/v1/models/{personas.model.name}/batches/"
    response = client.post(url, {}, format="multipart")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "file"
    response = client.post(url, {"file": _csv_upload(_frame(2)), "priority": "high"},
                           format="multipart")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "priority"
    assert not BatchJob.objects.exists()


def test_a_file_over_the_upload_limit_is_a_413(personas, version, settings,
                                               django_capture_on_commit_callbacks):
    settings.ATTEST_MAX_UPLOAD_BYTES = 2000
    response = _submit(personas, django_capture_on_commit_callbacks, _csv_upload(_frame(200)))
    assert response.status_code == 413
    assert not BatchJob.objects.exists() and not artifact_storage().exists("batch-input")


def test_a_header_only_with_an_imputed_feature_may_leave_it_out(
        personas, django_capture_on_commit_callbacks):
    from ..registry.helpers import register_dataset

    schema = [{"name": n, "type": "number", "missing": "impute"} if n == "mean concavity" else n
              for n in FEATURES_SMALL]
    released_version(personas, register_dataset(personas.owner), input_schema=schema)
    frame = _frame(20).drop(columns=["mean concavity"])
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame))
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_failed == 0
    assert _one_row_each(job) == set(range(20))


# -- who may do what ------------------------------------------------------------------

@pytest.mark.parametrize("who,expected", [
    ("clinician", 202), ("owner", 202), ("admin", 202), ("reviewer", 403), ("pi", 403),
    ("auditor", 403), ("outsider", 404), ("viewer_other", 404)])
def test_who_may_submit(personas, version, who, expected, django_capture_on_commit_callbacks):
    response = _submit(personas, django_capture_on_commit_callbacks, _csv_upload(_frame(5)),
                       who=who)
    assert response.status_code == expected, response.json()
    assert BatchJob.objects.count() == (1 if expected == 202 else 0)


def test_anonymous_requests_are_401(personas, version):
    from rest_framework.test import APIClient

    response = APIClient().post(f"/api/v1/models/{personas.model.name}/batches/",
                                {"file": _csv_upload(_frame(2))}, format="multipart")
    assert response.status_code == 401


def test_only_owners_may_name_a_version(personas, version, django_capture_on_commit_callbacks):
    upload = _csv_upload(_frame(5))
    response = _submit(personas, django_capture_on_commit_callbacks, upload, version=1)
    assert response.status_code == 403 and response.json()["errors"][0]["field"] == "version"
    response = _submit(personas, django_capture_on_commit_callbacks, _csv_upload(_frame(5)),
                       who="owner", version=version.number)
    assert response.status_code == 202 and response.json()["model_version"] == version.number


def test_a_job_is_seen_by_its_requester_and_the_model_owners_only(
        personas, version, django_capture_on_commit_callbacks):
    body = _submit(personas, django_capture_on_commit_callbacks, _csv_upload(_frame(5))).json()
    colleague = make_user("colleague")
    access_grant(user=personas.owner, model=personas.model, grantee=colleague,
                 role=ModelRole.CLINICIAN)
    personas.colleague = colleague
    url = f"/api/v1/batches/{body['id']}/"
    for who, expected in (("clinician", 200), ("owner", 200), ("admin", 200),
                          ("colleague", 404), ("reviewer", 404), ("auditor", 404),
                          ("outsider", 404)):
        client = api_as(getattr(personas, who))
        assert client.get(url).status_code == expected, who
        download = client.get(f"{url}results/")
        assert download.status_code == expected, who
        if expected == 200:
            assert b"".join(download.streaming_content).startswith(b"row_index,")
        if expected == 404:
            assert client.delete(url).status_code == 404, who
    listed = api_as(colleague).get(f"/api/v1/models/{personas.model.name}/batches/").json()
    assert listed["results"] == []
    listed = api_as(personas.owner).get(f"/api/v1/models/{personas.model.name}/batches/").json()
    assert [j["id"] for j in listed["results"]] == [body["id"]]
    assert api_as(personas.clinician).get("/api/v1/batches/not-a-uuid/").status_code == 404
    assert api_as(personas.clinician).get(f"{url}inputs/").status_code == 404


def test_a_result_file_changed_in_storage_is_refused(personas, version,
                                                     django_capture_on_commit_callbacks):
    body = _finished(personas, _submit(personas, django_capture_on_commit_callbacks,
                                       _csv_upload(_frame(5))))
    job = BatchJob.objects.get(public_id=body["id"])
    with artifact_storage().open(job.result_key, "wb") as handle:
        handle.write(b"row_index,prediction_id\n0,forged\n")
    response = api_as(personas.clinician).get(body["links"]["results"])
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "artifact_hash_mismatch"


# -- the broker -----------------------------------------------------------------------

@pytest.fixture
def broker_down(monkeypatch):
    from celery import current_app

    # Nothing listens on port 9. Celery prefers the environment variable to its config.
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    monkeypatch.setitem(current_app.conf, "broker_url", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)


def test_with_the_broker_down_a_batch_is_a_503_and_predictions_still_work(
        personas, version, broker_down, django_capture_on_commit_callbacks):
    response = _submit(personas, django_capture_on_commit_callbacks, _csv_upload(_frame(5)))
    assert response.status_code == 503
    error = response.json()["errors"][0]
    assert error["code"] == "queue_unavailable" and "Single predictions still work" in \
        error["message"]
    assert not BatchJob.objects.exists() and not artifact_storage().exists("batch-input")
    single = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/predict/", {"inputs": typical_input(version)},
        format="json")
    assert single.status_code == 200


def test_a_failed_publish_marks_the_job_failed_in_the_same_request(transactional_db, personas,
                                                                    monkeypatch):
    from celery import current_app
    from kombu.exceptions import OperationalError

    released_version(personas)
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    monkeypatch.setattr(jobs, "_broker_check", lambda: None)  # up when checked, down after

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(run_batch, "apply_async", refuse)
    response = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/batches/", {"file": _csv_upload(_frame(5))},
        format="multipart")
    assert response.status_code == 503
    job = BatchJob.objects.get()
    assert response.json()["batch"] == str(job.public_id)
    assert job.status == BatchStatus.FAILED and "could not be queued" in job.error
    assert AuditEvent.objects.get(action=Action.BATCH_FINISHED).details["status"] == "failed"


# -- queues ---------------------------------------------------------------------------

def test_onnx_versions_go_to_the_gpu_queue_only_when_it_is_enabled(
        personas, settings, django_capture_on_commit_callbacks):
    onnx = released_version(personas, data=onnx_bytes(), name="model.onnx")
    skops = ModelVersion(artifact_format="skops")
    assert batches.batch_queue_for(onnx) == "default"
    settings.ATTEST_GPU_QUEUE_ENABLED = True
    assert batches.batch_queue_for(onnx) == "gpu"
    assert batches.batch_queue_for(skops) == "default"
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(_frame(50)))
    job.refresh_from_db()
    assert job.queue == "gpu" and job.status == BatchStatus.COMPLETED  # eager: on the CPU


# -- periodic tasks -------------------------------------------------------------------

def test_the_anchor_task_anchors_settled_predictions(personas, version, monkeypatch,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                             upload=_csv_upload(_frame(30)))
    assert anchor_predictions.apply().get() == []  # nothing has settled yet
    later = timezone.now() + timedelta(minutes=5)
    monkeypatch.setattr("inference.log.timezone.now", lambda: later)
    made = anchor_predictions.apply().get()
    assert len(made) == 1 and made[0]["count"] == 30


def test_the_purge_task_deletes_batch_inputs_past_retention(personas, version,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(_frame(30)))
    job.refresh_from_db()
    key = job.input_key
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_inputs.apply().get()["batch_input_files"] == 0
    assert artifact_storage().exists(key)
    old = timezone.now() - timedelta(days=personas.model.retention_days + 1)
    BatchJob.objects.filter(pk=job.pk).update(created_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_inputs.apply().get()["batch_input_files"] == 1
    job.refresh_from_db()
    assert job.input_key == "" and job.input_purged_at is not None
    assert not artifact_storage().exists(key)


# -- pages ----------------------------------------------------------------------------

def _page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_upload_page_starts_a_job_and_the_status_page_shows_it(
        personas, version, django_capture_on_commit_callbacks):
    client = _page_client(personas.clinician)
    url = f"/models/{personas.model.name}/batches/"
    page = client.get(url).content.decode()
    assert 'enctype="multipart/form-data"' in page and 'name="file"' in page
    assert 'name="version"' not in page  # owners only
    frame = _frame(40)
    frame["mean radius"] = frame["mean radius"].astype(object)
    frame.loc[1, "mean radius"] = "big"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"file": _csv_upload(frame)})
    assert response.status_code == 302
    job = BatchJob.objects.get()
    assert response["Location"] == f"/batches/{job.public_id}/"
    page = client.get(response["Location"]).content.decode()
    assert "<progress" in page and 'value="40"' in page and "http-equiv=\"refresh\"" not in page
    assert f"/batches/{job.public_id}/files/results/" in page
    assert f"/batches/{job.public_id}/files/errors/" in page
    download = client.get(f"/batches/{job.public_id}/files/errors/")
    assert download.status_code == 200
    assert b"1,mean radius,invalid_type" in b"".join(download.streaming_content)
    assert job.file_name in client.get(url).content.decode()
    assert 'name="version"' in _page_client(personas.owner).get(url).content.decode()


def test_a_running_job_page_refreshes_itself_and_can_be_cancelled(personas, version):
    job = _queued_job(personas)
    client = _page_client(personas.clinician)
    page = client.get(f"/batches/{job.public_id}/").content.decode()
    assert 'http-equiv="refresh" content="2"' in page and "Cancel job" in page
    assert 'value="0"' in page and "csrfmiddlewaretoken" in page
    response = client.post(f"/batches/{job.public_id}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == BatchStatus.CANCELLED
    page = client.get(response["Location"]).content.decode()
    assert "Job cancelled." in page and 'http-equiv="refresh"' not in page


def test_bad_files_show_as_form_errors(personas, version):
    client = _page_client(personas.clinician)
    response = client.post(f"/models/{personas.model.name}/batches/",
                           {"file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")})
    assert response.status_code == 200
    page = response.content.decode()
    assert "is not an input of this model" in page and not BatchJob.objects.exists()


def test_pages_refuse_those_without_predict(personas, version):
    url = f"/models/{personas.model.name}/batches/"
    response = _page_client(personas.reviewer).get(url)
    assert response.status_code == 302 and response["Location"] == "/models/"
    assert _page_client(personas.outsider).get(url).status_code == 404
    job = _queued_job(personas)
    for who in ("reviewer", "outsider"):
        client = _page_client(personas.get(who))
        assert client.get(f"/batches/{job.public_id}/").status_code == 404
        assert client.post(f"/batches/{job.public_id}/cancel/").status_code == 404
    assert Client().get(url).status_code == 302  # to the sign-in page


def test_batch_rows_are_logged_as_single_predictions_are(personas, version,
                                                         django_capture_on_commit_callbacks):
    """Whichever way a chunk is written (COPY on PostgreSQL, bulk_create elsewhere), each
    row verifies against its hash, holds the input it hashed, and routed rows have their
    review item — the same as a single prediction of the same input."""
    from inference.log import verify_prediction_log

    frame = _frame(120)
    frame.loc[5, "mean radius"] = 29.0  # out of the validated range: scored, routed to review
    with django_capture_on_commit_callbacks(execute=True):
        job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                   upload=_csv_upload(frame), chunk_size=50)
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_done == 120
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.checked == verdict.inputs_checked == 120
    assert verdict.legacy_inputs_unmatched == 0
    rows = {p.row_index: p for p in Prediction.objects.filter(batch=job)}
    routed = {i for i, p in rows.items() if p.routing == "review"}
    assert 5 in routed and rows[5].ood[0]["code"] == "out_of_range"
    assert job.rows_routed == len(routed) == ReviewItem.objects.filter(
        prediction__batch=job).count()
    single = services.prediction_create(user=personas.clinician, model=personas.model,
                                        instances=[frame.iloc[5].to_dict()])[0].prediction
    single.refresh_from_db()
    batch_row = rows[5]
    for field in ("input", "input_sha256", "label", "score", "confidence", "probabilities",
                  "routing", "reason", "ood", "runtime"):
        assert getattr(batch_row, field) == getattr(single, field), field
    assert verify_prediction_log().ok


def test_without_a_broker_a_job_runs_beside_the_request_not_inside_it(transactional_db,
                                                                       settings):
    """The embedded shape: the upload answers with the job queued; a thread of the web
    process scores it and the job completes."""
    import threading

    from tests.personas import make_personas

    from .helpers import released_version

    settings.ATTEST_BATCH_EAGER_THREAD = True
    personas = make_personas()
    released_version(personas, confidence_threshold=0.8)
    job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                               upload=_csv_upload(_frame(60)), chunk_size=25)
    runner = next(t for t in threading.enumerate() if t.name == f"attest-batch-{job.pk}")
    runner.join(timeout=60)
    assert not runner.is_alive()
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and job.rows_done == 60
    assert _one_row_each(job) == set(range(60))


def test_the_embedded_shape_restarts_a_job_a_restart_left_behind(transactional_db, settings,
                                                                 monkeypatch):
    """A job whose thread died with the process (no progress for the stale period) is
    started again when jobs are looked at, and completes with one log row per input row."""
    import threading
    from datetime import timedelta

    from django.utils import timezone

    from tests.personas import make_personas

    from .helpers import released_version

    personas = make_personas()
    released_version(personas, confidence_threshold=0.8)
    job = batches.batch_submit(user=personas.clinician, model=personas.model,
                               enqueue=lambda job_id, queue: None,  # the lost thread
                               upload=_csv_upload(_frame(40)), chunk_size=15)
    BatchJob.objects.filter(pk=job.pk).update(
        status=BatchStatus.RUNNING, updated_at=timezone.now() - timedelta(minutes=10))
    settings.ATTEST_BATCH_EAGER_THREAD = True
    assert batch_resume_embedded() == [job.pk]
    runner = next(t for t in threading.enumerate() if t.name == f"attest-batch-{job.pk}")
    runner.join(timeout=60)
    job.refresh_from_db()
    assert job.status == BatchStatus.COMPLETED and _one_row_each(job) == set(range(40))
    assert batch_resume_embedded() == []


# -- chunks sized by time ---------------------------------------------------------------

def test_the_sizer_aims_at_its_seconds_grows_at_most_twice_and_ignores_the_last_chunk():
    fixed = batches.ChunkSizer(300, 0.0)
    fixed.observe(300, 10.0)
    assert fixed() == 300  # no target: every chunk the first's size
    sizer = batches.ChunkSizer(1000, 1.0)
    sizer.observe(1000, 0.1)  # 10,000 rows/s: 10,000 wanted, at most twice the last
    assert sizer() == 2000
    sizer.observe(2000, 0.2)
    assert sizer() == 4000
    sizer.observe(4000, 4.0)  # slowed down to 1,000 rows/s: down at once
    assert sizer() == 1000
    sizer.observe(200, 10.0)  # a short (last) chunk says nothing about the rate
    assert sizer() == 1000
    sizer.observe(1000, 1000.0)
    assert sizer() == batches.MIN_CHUNK_ROWS
    huge = batches.ChunkSizer(batches.MAX_CHUNK_ROWS, 1.0)
    huge.observe(batches.MAX_CHUNK_ROWS, 0.001)
    assert huge() == batches.MAX_CHUNK_ROWS


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunks_follow_the_asked_sizes_from_any_row(tmp_path, version, fmt):
    frame = _frame(50)
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=7)
    cut = [(k, records()) for k, records in batch_files.chunks(
        str(path), fmt, version, _Sizes([5, 1, 20, 100]), start=12, first_index=3)]
    assert [k for k, _ in cut] == [3, 4, 5, 6]
    assert [[r[0] for r in records] for _k, records in cut] == [
        list(range(12, 17)), [17], list(range(18, 38)), list(range(38, 50))]
    assert cut[0][1][0][1]["mean radius"] == pytest.approx(frame.loc[12, "mean radius"])


def test_submitted_jobs_size_chunks_by_time_unless_given_a_size(personas, version, settings):
    settings.ATTEST_BATCH_CHUNK_SECONDS = 0.5
    settings.ATTEST_BATCH_CHUNK_ROWS = 400
    timed = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                 upload=_csv_upload(_frame(10)))
    assert (timed.chunk_size, timed.chunk_seconds) == (400, 0.5)
    fixed = _queued_job(personas, rows=10, chunk_size=300)
    assert (fixed.chunk_size, fixed.chunk_seconds) == (300, 0.0)
    assert AuditEvent.objects.filter(action=Action.BATCH_SUBMITTED,
                                     details__chunk_seconds=0.5).count() == 1


def test_a_resumed_job_with_other_chunk_sizes_logs_each_row_once(personas, version,
                                                                  monkeypatch):
    """The first run commits chunks of 300 and 50 rows and dies; the second cuts its own
    sizes from where the committed chunks end. Errors keep file order across both."""
    frame = _frame(1000).astype(object)
    frame.loc[[10, 320, 990], "mean radius"] = "large"
    job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                               upload=_csv_upload(frame))
    assert job.chunk_seconds > 0
    job = _running(job)
    loaded = version_model_load(version=version, purpose="batch")
    path = batch_files.fetch_input(job)
    sizes = iter([300, 50])
    for index, records in itertools.islice(
            batch_files.csv_chunks(path, job.version, lambda: next(sizes)), 2):
        assert batches.batch_chunk_process(job=job, index=index, records=records(),
                                           loaded=loaded)
    job.refresh_from_db()
    assert job.chunks_done == [0, 1] and job.rows_done == 350
    monkeypatch.setattr(runner, "ChunkSizer", lambda first, target: _Sizes([111, 222]))
    assert run_batch.apply(args=[job.pk]).get() == BatchStatus.COMPLETED
    job.refresh_from_db()
    assert job.rows_done == 1000 and job.rows_failed == 3
    assert job.chunks_done == [0, 1, 2, 3, 4, 5]  # 300, 50 | 111, 222, 222, 95
    assert _one_row_each(job) == set(range(1000)) - {10, 320, 990}
    with artifact_storage().open(job.error_key, "rb") as handle:
        rows = list(csv.reader(io.StringIO(handle.read().decode())))
    assert [r[0] for r in rows[1:]] == ["10", "320", "990"]


class _Sizes:
    """A ChunkSizer stand-in: the given sizes, then the last one."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def __call__(self) -> int:
        return self.sizes.pop(0) if len(self.sizes) > 1 else self.sizes[0]

    def observe(self, rows: int, seconds: float) -> None:
        pass


def test_a_chunk_out_of_step_with_the_job_writes_nothing(personas, version):
    job = _running(_queued_job(personas, rows=600, chunk_size=300))
    loaded = version_model_load(version=version, purpose="batch")
    second = _chunks(job)[1]
    with pytest.raises(batches.ChunkOutOfStep):
        batches.batch_chunk_process(job=job, index=1, records=second(), loaded=loaded)
    job.refresh_from_db()
    assert job.chunks_done == [] and job.rows_done == 0
    assert not Prediction.objects.filter(batch=job).exists()


def test_a_run_that_finds_its_job_moved_on_leaves_it_to_the_other(personas, version,
                                                                   monkeypatch):
    job = _queued_job(personas, rows=600, chunk_size=300)
    real = batches.batch_chunk_commit

    def another_run_committed_first(*, job, prepared):
        BatchJob.objects.filter(pk=job.pk).update(rows_done=17)
        return real(job=job, prepared=prepared)

    monkeypatch.setattr(runner, "batch_chunk_commit", another_run_committed_first)
    assert batches.batch_run(job_id=job.pk) == batches.BUSY
    job.refresh_from_db()
    assert job.status == BatchStatus.RUNNING and not Prediction.objects.filter(batch=job).exists()


@pytest.mark.parametrize("sep,label", [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_with_another_delimiter_gets_one_clear_error(personas, version, sep, label):
    frame = _frame(3)
    body = frame.to_csv(index=False, sep=sep).encode()
    response = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/batches/",
        {"file": SimpleUploadedFile("semi.csv", body)}, format="multipart")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["code"] == "wrong_delimiter" and label in error["message"]
    assert not BatchJob.objects.exists()


def test_a_long_unknown_column_name_is_shortened_in_the_error(personas, version):
    frame = _frame(2)
    frame["x" * 300] = 1
    response = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/batches/",
        {"file": SimpleUploadedFile("long.csv", frame.to_csv(index=False).encode())},
        format="multipart")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["code"] == "unknown_field" and "x" * 80 + "…" in error["message"]
    assert len(error["message"]) < 250


def test_the_log_writer_keeps_text_copy_would_read_as_structure(personas):
    """Backslashes, tabs, newlines and CRs in a row's text (its reason, its input's JSON)
    come back as written and the log verifies: COPY's escaping on PostgreSQL (psycopg's
    write_row), bulk_create elsewhere."""
    import hashlib
    import time

    from django.db import transaction

    from inference.batches.logwrite import log_write
    from inference.log import row_hash, verify_prediction_log
    from inference.validation import check_input

    version = released_version(personas)
    schema, profile = version.input_schema, version.dataset.profile
    checked = [check_input(typical_input(version), schema=schema, profile=profile)
               for _ in range(3)]
    rows = services.score_rows(model=version.model, version=version, checked=checked,
                               loaded=version_model_load(version=version, purpose="batch"),
                               requester=personas.clinician, started=time.perf_counter(),
                               row_indices=[0, 1, 2])
    awkward = 'back\\slash\ttab\nnew\rline "quoted" \\N – ✓'
    for r in rows:
        r.input = {**r.input, "note": awkward}
        r.input_json = services.canonical_bytes(r.input)
        r.values["input_sha256"] = hashlib.sha256(r.input_json).hexdigest()
        r.values["reason"] = awkward
        r.values["row_hash"] = row_hash(r.values)
    with transaction.atomic():
        log_write(rows, model=version.model, version=version)
    stored = Prediction.objects.filter(public_id__in=[r.values["public_id"] for r in rows])
    assert [(p.reason, p.input["note"]) for p in stored] == [(awkward, awkward)] * 3
    assert verify_prediction_log().ok
