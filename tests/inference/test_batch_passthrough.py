"""Pass-through columns of a batch job: identifiers copied to the result and error files,
never scored, never in the prediction log, deleted with the files under retention."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pandas as pd
import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from audits.models import Action, AuditEvent
from inference import batches
from inference.batches import files as batch_files
from inference.models import BatchJob, BatchStatus, Prediction
from inference.tasks import batch_enqueue, purge_inputs, run_batch
from registry.loading import version_model_load
from registry.storage import artifact_storage

from ..artifacts import FEATURES_SMALL, breast_cancer_frame
from ..conftest import api_as
from .helpers import released_version

pytestmark = pytest.mark.django_db

# Values no feature, message or hash could hold by chance: found anywhere, they leaked.
MARK = "MRN7Q"


def _record_id(i: int) -> str:
    return f"{MARK}-{i:05d}"


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Jobs run in-process on commit, also in the layer with a real broker (no worker there)."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


@pytest.fixture
def version(personas):
    return released_version(personas, confidence_threshold=0.8)


def _frame(n: int, *, bad: tuple[int, ...] = ()) -> pd.DataFrame:
    """n cohort rows with a leading ``record_id`` (and the rows in ``bad`` invalid)."""
    cohort = breast_cancer_frame()[FEATURES_SMALL]
    frame = pd.concat([cohort] * (n // len(cohort) + 1), ignore_index=True).iloc[:n].copy()
    frame = frame.astype(object)
    for i in bad:
        frame.loc[i, "mean radius"] = "large"
    frame.insert(0, "record_id", [_record_id(i) for i in range(n)])
    return frame


def _csv(frame: pd.DataFrame, name: str = "batch.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, frame.to_csv(index=False).encode("utf-8"))


def _parquet(frame: pd.DataFrame, name: str = "batch.parquet") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, row_group_size=7)
    return SimpleUploadedFile(name, buffer.getvalue())


def _post(personas, capture, upload, who: str = "clinician", **data):
    url = f"/api/v1/models/{personas.model.name}/batches/"
    with capture(execute=True):
        return api_as(personas.get(who)).post(url, {"file": upload, **data}, format="multipart")


def _job(response) -> BatchJob:
    assert response.status_code == 202, response.json()
    return BatchJob.objects.get(public_id=response.json()["id"])


def _read(key: str) -> list[list[str]]:
    with artifact_storage().open(key, "rb") as handle:
        return list(csv.reader(io.StringIO(handle.read().decode("utf-8"))))


def _download(personas, job: BatchJob, kind: str) -> list[list[str]]:
    response = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/{kind}/")
    assert response.status_code == 200, response
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def _stored_anywhere(needle: str) -> list[str]:
    """Every table's rows that contain ``needle``, as "<model>: <row>" (all columns)."""
    found = []
    for model in apps.get_models():
        for row in model.objects.all().values():
            text = repr(row)
            if needle in text:
                found.append(f"{model._meta.label}: {text[:200]}")
    return found


def _codes(response) -> dict[str, str]:
    assert response.status_code == 400, response.json()
    return {e["code"]: e["message"] for e in response.json()["errors"]}


# -- a whole job ----------------------------------------------------------------------

def test_a_csv_record_id_is_copied_aligned_and_never_logged(
        personas, version, settings, django_capture_on_commit_callbacks):
    settings.ATTEST_BATCH_CHUNK_ROWS, settings.ATTEST_BATCH_CHUNK_SECONDS = 7, 0
    frame = _frame(40, bad=(3, 22))
    response = _post(personas, django_capture_on_commit_callbacks, _csv(frame),
                     passthrough_columns="record_id")
    job = _job(response)
    assert job.status == BatchStatus.COMPLETED and len(job.chunks_done) == 6
    assert job.passthrough_columns == ["record_id"]
    assert response.json()["passthrough_columns"] == ["record_id"]
    results = _download(personas, job, "results")
    assert results[0] == ["record_id", *batches.RESULT_HEADER]
    assert len(results) == 1 + 38
    for row in results[1:]:
        assert row[0] == _record_id(int(row[1]))  # the id of the row's own input line
    predictions = dict(Prediction.objects.filter(batch=job).values_list("public_id",
                                                                        "row_index"))
    assert {str(k): v for k, v in predictions.items()} == {r[2]: int(r[1])
                                                           for r in results[1:]}
    errors = _download(personas, job, "errors")
    assert errors[0] == ["record_id", *batches.ERROR_HEADER]
    assert [(r[0], r[1], r[3]) for r in errors[1:]] == [
        (_record_id(3), "3", "invalid_type"), (_record_id(22), "22", "invalid_type")]
    # The log rows (inputs, hashes, every field), review items, audit events, the job row:
    # no table of the database holds a record_id value.
    assert Prediction.objects.filter(batch=job).count() == 38
    assert all(set(p.input) == set(FEATURES_SMALL)
               for p in Prediction.objects.filter(batch=job))
    assert _stored_anywhere(MARK) == []
    # The search does see the log's inputs: a feature value of row 0 is found there.
    value = Prediction.objects.get(batch=job, row_index=0).input[FEATURES_SMALL[1]]
    assert any(hit.startswith("inference.Prediction:") for hit in _stored_anywhere(repr(value)))


def test_values_are_copied_verbatim_as_text(personas, version,
                                            django_capture_on_commit_callbacks):
    """Leading zeros, a missing-value marker, a comma and a quote stay as they were; text
    a spreadsheet would run as a formula gets a leading apostrophe (core.csvcells)."""
    frame = _frame(4)
    frame["record_id"] = ["007", "NA", 'a,"b"', ""]
    frame.insert(1, "site", ["x", "y", "z", '=HYPERLINK("http://evil.example")'])
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(frame),
                     passthrough_columns=["site", "record_id"]))
    rows = _download(personas, job, "results")
    assert rows[0][:3] == ["site", "record_id", "row_index"]
    assert [r[:3] for r in rows[1:]] == [["x", "007", "0"], ["y", "NA", "1"],
                                         ["z", 'a,"b"', "2"],
                                         ['\'=HYPERLINK("http://evil.example")', "", "3"]]


def test_a_parquet_file_with_pass_through_columns(personas, version,
                                                  django_capture_on_commit_callbacks):
    frame = _frame(30)
    for name in FEATURES_SMALL:
        frame[name] = frame[name].astype(float)
    frame.loc[11, "mean texture"] = None  # NaN: missing, and required: an error row
    frame["visit"] = pd.array([i if i % 5 else None for i in range(30)], dtype="Int64")
    job = _job(_post(personas, django_capture_on_commit_callbacks, _parquet(frame),
                     passthrough_columns="record_id, visit"))
    assert job.status == BatchStatus.COMPLETED and job.passthrough_columns == ["record_id",
                                                                                "visit"]
    results = _download(personas, job, "results")
    assert results[0][:3] == ["record_id", "visit", "row_index"]
    for row in results[1:]:
        i = int(row[2])
        assert row[:2] == [_record_id(i), str(i) if i % 5 else ""]
    assert len(results) == 1 + 29 and "11" not in {r[2] for r in results[1:]}
    errors = _download(personas, job, "errors")
    assert {tuple(r[:3]) for r in errors[1:]} == {(_record_id(11), "11", "11")}
    assert _stored_anywhere(MARK) == []


def test_a_resumed_job_joins_the_right_ids_to_every_row(personas, version):
    """A first run commits one chunk and dies; the second run, with other chunks, ends
    with files whose ids still match their rows."""
    job = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                               upload=_csv(_frame(50, bad=(2, 41))), chunk_size=13,
                               passthrough_columns="record_id")
    BatchJob.objects.filter(pk=job.pk).update(status=BatchStatus.RUNNING)
    job.refresh_from_db()
    loaded = version_model_load(version=version, purpose="batch")
    path = batch_files.fetch_input(job)
    index, records = next(iter(batch_files.csv_chunks(path, job.version, 13)))
    assert batches.batch_chunk_process(job=job, index=index, records=records(), loaded=loaded)
    assert run_batch.apply(args=[job.pk]).get() == BatchStatus.COMPLETED
    job.refresh_from_db()
    assert job.chunks_done == [0, 1, 2, 3] and job.rows_failed == 2
    results = _read(job.result_key)
    assert [r[0] for r in results[1:]] == [_record_id(i) for i in range(50) if i not in (2, 41)]
    assert [r[:2] for r in _read(job.error_key)[1:]] == [[_record_id(2), "2"],
                                                         [_record_id(41), "41"]]


# -- what is refused ------------------------------------------------------------------

def test_naming_a_column_the_file_lacks_is_a_400_naming_it(personas, version,
                                                           django_capture_on_commit_callbacks):
    response = _post(personas, django_capture_on_commit_callbacks, _csv(_frame(3)),
                     passthrough_columns="record_id,patient_no")
    codes = _codes(response)
    assert set(codes) == {"passthrough_not_in_file"}
    assert "'patient_no'" in codes["passthrough_not_in_file"]
    assert response.json()["errors"][0]["field"] == "passthrough_columns"
    assert not BatchJob.objects.exists() and not artifact_storage().exists("batch-input")


def test_naming_a_feature_is_a_400(personas, version, django_capture_on_commit_callbacks):
    codes = _codes(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(3)),
                         passthrough_columns=f"record_id,{FEATURES_SMALL[0]}"))
    assert set(codes) == {"passthrough_is_feature"}
    assert FEATURES_SMALL[0] in codes["passthrough_is_feature"]
    assert not BatchJob.objects.exists()


@pytest.mark.parametrize("named,code", [
    ("record_id,record_id", "duplicate_passthrough"),
    (",".join(f"c{i}" for i in range(batch_files.MAX_PASSTHROUGH + 1)), "too_many_passthrough"),
    ("x" * (batch_files.MAX_PASSTHROUGH_NAME + 1), "passthrough_name_too_long"),
    ("score", "passthrough_reserved"),
])
def test_duplicate_too_many_too_long_and_reserved_names_are_400s(
        personas, version, named, code, django_capture_on_commit_callbacks):
    frame = _frame(3)
    frame["score"] = 1
    codes = _codes(_post(personas, django_capture_on_commit_callbacks, _csv(frame),
                         passthrough_columns=named))
    assert code in codes
    assert not BatchJob.objects.exists()


def test_an_unnamed_extra_column_is_still_refused_with_the_hint(
        personas, version, django_capture_on_commit_callbacks):
    codes = _codes(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(3))))
    assert set(codes) == {"unknown_field"}
    assert "'record_id'" in codes["unknown_field"]
    assert "passthrough_columns" in codes["unknown_field"]
    assert not BatchJob.objects.exists()


def test_an_unknown_api_field_is_still_refused(personas, version,
                                               django_capture_on_commit_callbacks):
    codes = _codes(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(3)),
                         passthrough_columns="record_id", passthrough="record_id"))
    assert set(codes) == {"unknown_field"}


# -- audit and retention --------------------------------------------------------------

def test_the_audit_event_lists_the_names_without_values(personas, version,
                                                        django_capture_on_commit_callbacks):
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(10)),
                     passthrough_columns="record_id"))
    submitted = AuditEvent.objects.get(action=Action.BATCH_SUBMITTED)
    assert submitted.details["passthrough_columns"] == ["record_id"]
    assert submitted.details["batch"] == str(job.public_id)
    for event in AuditEvent.objects.all():
        assert MARK not in repr(event.details)


def test_the_purge_deletes_the_files_carrying_the_values_past_retention(
        personas, version, django_capture_on_commit_callbacks):
    job = _job(_post(personas, django_capture_on_commit_callbacks, _csv(_frame(20, bad=(4,))),
                     passthrough_columns="record_id"))
    plain = batches.batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                 upload=_csv(_frame(5).drop(columns="record_id")))
    run_batch.apply(args=[plain.pk])
    plain.refresh_from_db()
    keys = (job.input_key, job.result_key, job.error_key)
    parts = [part[0] for part in job.error_parts.values()]
    assert all(keys) and parts and all(artifact_storage().exists(k) for k in keys)
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_inputs.apply().get()["batch_input_files"] == 0  # within retention
    assert all(artifact_storage().exists(k) for k in keys)
    old = timezone.now() - timedelta(days=personas.model.retention_days + 1)
    BatchJob.objects.filter(pk__in=[job.pk, plain.pk]).update(created_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_inputs.apply().get()["batch_input_files"] == 2
    job.refresh_from_db()
    assert (job.input_key, job.result_key, job.error_key) == ("", "", "")
    events = {e.object_id: e.details for e in AuditEvent.objects.filter(
        action=Action.BATCH_FILES_PURGED)}
    assert events[str(job.pk)]["files"] == ["input", "result", "error"]
    assert events[str(job.pk)]["passthrough_columns"] == ["record_id"]
    assert events[str(plain.pk)]["files"] == ["input"]
    assert job.files_purged and job.result_sha256  # what was written stays on record
    assert not any(artifact_storage().exists(k) for k in keys)
    # The chunks' error parts never held the values (the files are joined at the end).
    for key in parts:
        assert MARK not in artifact_storage().open(key, "rb").read().decode()
    response = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/results/")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "purged"
    body = api_as(personas.clinician).get(f"/api/v1/batches/{job.public_id}/").json()
    assert body["files_purged"] is True and body["links"]["results"] is None
    # A job without pass-through columns keeps its result file (it holds no input values).
    plain.refresh_from_db()
    assert plain.input_key == "" and plain.result_key
    assert artifact_storage().exists(plain.result_key)


def test_a_file_another_job_still_holds_is_kept_until_that_one_is_purged(
        personas, version, django_capture_on_commit_callbacks):
    """Identical uploads share the input and error files (content-addressed)."""
    frame = _frame(8, bad=(1,))
    first, second = (_job(_post(personas, django_capture_on_commit_callbacks, _csv(frame),
                                passthrough_columns="record_id")) for _ in range(2))
    assert first.error_key == second.error_key and first.input_key == second.input_key
    old = timezone.now() - timedelta(days=personas.model.retention_days + 1)
    BatchJob.objects.filter(pk=first.pk).update(created_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert batches.batch_inputs_purge() == 1
    assert artifact_storage().exists(second.error_key)
    assert artifact_storage().exists(second.input_key)
    assert not artifact_storage().exists(first.result_key)
    BatchJob.objects.filter(pk=second.pk).update(created_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert batches.batch_inputs_purge() == 1
    assert not artifact_storage().exists(second.error_key)
    assert not artifact_storage().exists(second.input_key)


# -- pages ----------------------------------------------------------------------------

def _csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _token(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_the_upload_form_takes_pass_through_columns(personas, version,
                                                   django_capture_on_commit_callbacks):
    client = _csrf_client(personas.clinician)
    url = f"/models/{personas.model.name}/batches/"
    page = client.get(url).content.decode()
    assert 'name="passthrough_columns"' in page and "never scored or logged" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"file": _csv(_frame(12, bad=(5,))),
                                     "passthrough_columns": "record_id",
                                     "csrfmiddlewaretoken": _token(page)})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = BatchJob.objects.get()
    assert job.status == BatchStatus.COMPLETED and job.passthrough_columns == ["record_id"]
    detail = client.get(response["Location"]).content.decode()
    assert "Pass-through columns" in detail and "<code>record_id</code>" in detail
    download = client.get(f"/batches/{job.public_id}/files/results/")
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert lines[0].startswith("record_id,row_index,") and lines[1].startswith(
        f"{_record_id(0)},0,")


def test_the_upload_form_shows_pass_through_problems(personas, version):
    client = _csrf_client(personas.clinician)
    url = f"/models/{personas.model.name}/batches/"
    token = _token(client.get(url).content.decode())
    response = client.post(url, {"file": _csv(_frame(3)), "passthrough_columns": "mrn",
                                 "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Pass-through column &#x27;mrn&#x27; is not a column of the file." in page
    assert "passthrough_columns" in page and not BatchJob.objects.exists()
    # Without the token the form is refused (CSRF is enforced on this path).
    refused = client.post(url, {"file": _csv(_frame(3)), "passthrough_columns": "record_id"})
    assert refused.status_code == 403 and not BatchJob.objects.exists()
