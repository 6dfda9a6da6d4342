"""Background samples uploaded by owners: checked, hashed, audited, content-addressed,
and then used (and recorded) by the explainers."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audits.models import Action, AuditEvent
from explain.compute import explanation_compute
from explain.models import BackgroundSample
from explain.services import explanation_parameters

from ..artifacts import FEATURES_SMALL, breast_cancer_frame, csv_bytes
from ..conftest import api_as
from .helpers import draft_of, knn

pytestmark = pytest.mark.django_db


def _sample(rows: int = 40) -> bytes:
    return csv_bytes(breast_cancer_frame()[FEATURES_SMALL].iloc[:rows])


def _post(personas, version, data: bytes, who="owner", statement="Safe Harbor, no dates"):
    return api_as(personas.get(who)).post(
        f"/api/v1/models/{version.model.name}/versions/{version.number}/background/",
        {"file": SimpleUploadedFile("bg.csv", data), "deidentification": statement},
        format="multipart")


def test_an_owner_uploads_a_sample_the_explainers_then_use(personas, dataset):
    version = draft_of(personas, dataset, knn())
    data = _sample()
    response = _post(personas, version, data)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rows"] == 40 and body["sha256"] == hashlib.sha256(data).hexdigest()
    event = AuditEvent.objects.get(action=Action.BACKGROUND_UPLOADED)
    assert event.version_id == version.pk and event.after["sha256"] == body["sha256"]
    sample = BackgroundSample.objects.get()
    assert sample.key.endswith(body["sha256"])
    _, params = explanation_parameters("shap", {})
    row = {k: float(v) for k, v in breast_cancer_frame()[FEATURES_SMALL].iloc[300].items()}
    computed = explanation_compute(version=version, inputs=row, method="shap",
                                   parameters=params)
    assert computed.background_source == "version_upload"
    assert len(computed.background_sha256) == 64


@pytest.mark.parametrize("data,code", [
    (b"mean radius,colour\n1,2\n", "missing_columns"),
    (csv_bytes(breast_cancer_frame()[FEATURES_SMALL].iloc[:2]).replace(b"\n1", b"\nabc", 1),
     "invalid_value"),
    (b"", "empty_file"),
    (b"\xff\xfe\x00", "encoding"),
])
def test_a_sample_that_does_not_fit_the_schema_is_refused(personas, dataset, data, code):
    version = draft_of(personas, dataset, knn())
    response = _post(personas, version, data)
    assert response.status_code == 400
    assert code in {e["code"] for e in response.json()["errors"]}
    assert not BackgroundSample.objects.exists()


def test_at_most_a_thousand_rows(personas, dataset):
    version = draft_of(personas, dataset, knn())
    frame = breast_cancer_frame()[FEATURES_SMALL]
    big = csv_bytes(frame.sample(1001, replace=True, random_state=0))
    response = _post(personas, version, big)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == \
        "too_many_rows"


def test_only_owners_of_a_draft_once_with_a_statement(personas, dataset):
    version = draft_of(personas, dataset, knn())
    assert _post(personas, version, _sample(), who="clinician").status_code == 403
    assert _post(personas, version, _sample(), who="outsider").status_code == 404
    assert _post(personas, version, _sample(), statement="").status_code == 400
    assert _post(personas, version, _sample()).status_code == 201
    again = _post(personas, version, _sample(5))
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "background_exists"


def test_a_dataset_sample_serves_its_versions(personas, dataset):
    version = draft_of(personas, dataset, knn())
    response = api_as(personas.owner).post(
        f"/api/v1/datasets/{dataset.pk}/background/",
        {"file": SimpleUploadedFile("bg.csv", _sample(30)),  # the label column left out
         "deidentification": "Safe Harbor"}, format="multipart")
    assert response.status_code == 201, response.json()
    _, params = explanation_parameters("shap", {})
    row = {k: float(v) for k, v in breast_cancer_frame()[FEATURES_SMALL].iloc[300].items()}
    computed = explanation_compute(version=version, inputs=row, method="shap",
                                   parameters=params)
    assert computed.background_source == "dataset_upload"
    assert api_as(personas.clinician).post(
        f"/api/v1/datasets/{dataset.pk}/background/",
        {"file": SimpleUploadedFile("bg.csv", b"x\n1\n"), "deidentification": "x"},
        format="multipart").status_code == 404
