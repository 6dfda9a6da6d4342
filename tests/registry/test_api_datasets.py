from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audits.models import Action, AuditEvent
from profiling import profile_file
from registry.models import DatasetVersion
from registry.storage import artifact_storage, blob_key

from ..artifacts import training_csv
from ..conftest import api_as

pytestmark = pytest.mark.django_db

PROVENANCE = {"name": "sepsis-cohort", "version": "2024.1", "source": "EHR extract, site A",
              "inclusion_criteria": "adults", "exclusion_criteria": "transfers",
              "date_start": "2020-01-01", "date_end": "2023-12-31",
              "protocol_number": "IRB-2024-001", "deidentification": "Safe Harbor"}


def _upload(client, content: bytes, name="data.csv", **extra):
    return client.post("/api/v1/datasets/", {**PROVENANCE, **extra,
                                             "file": SimpleUploadedFile(name, content)},
                       format="multipart")


def test_it_profiles_an_uploaded_csv_without_keeping_it(personas):
    response = _upload(api_as(personas.owner), training_csv())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sha256"] == hashlib.sha256(training_csv()).hexdigest()
    assert body["row_count"] == 569
    assert body["file_stored"] is False
    radius = body["profile"]["columns"]["mean radius"]
    assert radius["min"] < radius["max"] and len(radius["quantiles"]) > 2
    assert body["profile"]["columns"]["diagnosis"]["categories"].keys() == {"benign", "malignant"}
    dataset = DatasetVersion.objects.get(pk=body["id"])
    assert AuditEvent.objects.filter(action=Action.DATASET_REGISTERED,
                                     object_id=str(dataset.pk)).count() == 1


def test_it_keeps_the_raw_file_when_asked(personas):
    response = _upload(api_as(personas.owner), training_csv(), store_file="true")
    assert response.status_code == 201
    sha = response.json()["sha256"]
    assert artifact_storage().exists(blob_key(sha))


def test_it_registers_a_profile_computed_locally(personas, tmp_path):
    path = tmp_path / "local.csv"
    path.write_bytes(training_csv())
    local = profile_file(path).as_dict()
    response = api_as(personas.owner).post("/api/v1/datasets/", {
        **PROVENANCE, "sha256": local["sha256"], "row_count": local["row_count"],
        "columns": local["columns"], "profile": local["profile"]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["sha256"] == local["sha256"]


def test_a_locally_computed_profile_is_validated(personas, tmp_path):
    path = tmp_path / "local.csv"
    path.write_bytes(training_csv())
    local = profile_file(path).as_dict()
    broken = json.loads(json.dumps(local["profile"]))
    broken["columns"]["mean radius"]["min"] = 1e9
    response = api_as(personas.owner).post("/api/v1/datasets/", {
        **PROVENANCE, "sha256": local["sha256"], "row_count": 569,
        "columns": local["columns"], "profile": broken}, format="json")
    assert response.status_code == 400
    assert any("mean radius" in (e["field"] or "") for e in response.json()["errors"])
    assert not DatasetVersion.objects.exists()


@pytest.mark.parametrize("content,code", [
    (b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "ragged_rows"),
    (b"a,b\n1,2\n3,4,5,6\n", "ragged_rows"),
    (b"a,b\n1,\xff\xfe\n", "encoding"),
    (b"", "empty_file"),
    (b"a,b,c\n", "no_rows"),
])
def test_it_refuses_bad_csv_files_and_stores_nothing(personas, content, code):
    response = _upload(api_as(personas.owner), content, store_file="true")
    assert response.status_code == 400, response.json()
    error = response.json()["errors"][0]
    assert error["code"] == code and error["field"] == "file"
    assert not DatasetVersion.objects.exists()
    assert not AuditEvent.objects.filter(action=Action.DATASET_REGISTERED).exists()


def test_it_refuses_a_duplicate_version(personas):
    client = api_as(personas.owner)
    assert _upload(client, training_csv()).status_code == 201
    response = _upload(client, training_csv())
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "duplicate_version"
    assert DatasetVersion.objects.count() == 1


def test_it_needs_a_file_or_a_hash_and_profile(personas):
    response = api_as(personas.owner).post("/api/v1/datasets/", PROVENANCE, format="json")
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"sha256", "profile", "columns", "row_count"} <= fields


def test_it_refuses_a_reversed_date_range(personas):
    response = _upload(api_as(personas.owner), training_csv(), date_start="2024-01-01",
                       date_end="2020-01-01")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "date_start"


def test_users_who_register_nothing_cannot_register_datasets(personas):
    response = _upload(api_as(personas.clinician), training_csv())
    assert response.status_code == 403
    assert not DatasetVersion.objects.exists()


def test_datasets_are_visible_to_their_creator_and_model_viewers(personas):
    created = _upload(api_as(personas.owner), training_csv()).json()
    assert api_as(personas.owner).get(f"/api/v1/datasets/{created['id']}/").status_code == 200
    assert api_as(personas.outsider).get(f"/api/v1/datasets/{created['id']}/").status_code == 404
    assert api_as(personas.auditor).get(f"/api/v1/datasets/{created['id']}/").status_code == 200
    assert api_as(personas.outsider).get("/api/v1/datasets/").json() == []
