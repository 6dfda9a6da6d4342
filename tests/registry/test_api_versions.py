from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from registry import services
from registry.loading import artifact_model_load
from registry.models import ModelVersion
from registry.storage import artifact_storage, blob_key

from ..artifacts import (
    FEATURES_SMALL,
    FLAG,
    breast_cancer_frame,
    corrupt_zip_bytes,
    csv_bytes,
    flagged_frame,
    flagged_model,
    joblib_bytes,
    logistic_model,
    onnx_bytes,
    pickle_bytes,
    skops_bytes,
    tree_model_bytes,
    zip_without_schema,
)
from ..conftest import api_as
from .helpers import multipart_version, register_dataset, register_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


def _url(personas, suffix=""):
    return f"/api/v1/models/{personas.model.name}/versions/{suffix}"


def _post(personas, data: bytes, metadata: dict, name="model.skops", user=None):
    return api_as(user or personas.owner).post(_url(personas), multipart_version(data, metadata, name),
                                               format="multipart")


def _stored_blobs() -> list[str]:
    store = artifact_storage()
    try:
        dirs, _ = store.listdir("sha256")
    except (FileNotFoundError, OSError):
        return []
    return [f for d in dirs for f in store.listdir(f"sha256/{d}")[1]]


def test_it_registers_a_skops_version_with_profile_defaults(personas, dataset):
    data = skops_bytes(logistic_model())
    response = _post(personas, data, {
        "dataset": dataset.pk, "model_card": "# Card", "runbook": "Steps",
        "metrics": {"overall": {"auc": 0.97},
                    "subgroups": [{"name": "age ≥ 65", "n": 80, "metrics": {"auc": 0.93}}]},
        "confidence_threshold": 0.75, "ood_policy": "reject", "code_reference": "git@x:y@abc"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1 and body["state"] == "draft"
    assert body["artifact_sha256"] == hashlib.sha256(data).hexdigest()
    # features came from the model itself (feature_names_in_), ranges from the profile
    radius = next(f for f in body["input_schema"] if f["name"] == "mean radius")
    profile = dataset.profile["columns"]["mean radius"]
    assert (radius["min"], radius["max"]) == (profile["min"], profile["max"])
    assert body["output_schema"]["labels"] == ["benign", "malignant"]
    assert body["dry_run"]["ok"] is True and len(body["dry_run"]["probabilities"]) == 2
    assert len(body["content_hash"]) == 64
    version = ModelVersion.objects.get()
    assert [e.action for e in AuditEvent.objects.filter(version_id=version.pk).order_by("seq")] == [
        Action.ARTIFACT_UPLOADED, Action.VERSION_REGISTERED]
    assert verify_chain().ok


def test_versions_are_numbered_per_model(personas, dataset):
    for expected in (1, 2):
        assert _post(personas, skops_bytes(logistic_model()),
                     {"dataset": dataset.pk}).json()["version"] == expected


def test_a_model_trained_on_other_data_registers_with_documented_fields_only(personas):
    """Wine data (3 classes, 13 features), a random forest saved with skops."""
    import skops.io as sio
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "c0", 1: "c1", 2: "c2"})
    forest = RandomForestClassifier(n_estimators=20, random_state=1).fit(
        frame[wine.feature_names], frame["cultivar"])
    client = api_as(personas.owner)
    dataset = client.post("/api/v1/datasets/", {
        "name": "wine", "version": "1", "source": "UCI wine",
        "file": SimpleUploadedFile("wine.csv", frame.to_csv(index=False).encode())},
        format="multipart").json()
    data = sio.dumps(forest)
    untrusted = sio.get_untrusted_types(data=data)
    response = _post(personas, data, {"dataset": "wine@1", "trusted_types": untrusted})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [f["name"] for f in body["input_schema"]] == list(wine.feature_names)
    assert body["output_schema"]["labels"] == ["c0", "c1", "c2"]
    assert body["dry_run"]["ok"] and len(body["dry_run"]["probabilities"]) == 3
    assert body["dataset"]["id"] == dataset["id"]


def test_it_registers_an_onnx_version(personas, dataset):
    response = _post(personas, onnx_bytes(), {
        "dataset": dataset.pk, "input_schema": FEATURES_SMALL,
        "output_schema": {"labels": ["benign", "malignant"], "positive_label": "malignant"}},
        name="model.onnx")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["format"] == "onnx" and body["framework"] == "onnx"
    loaded = artifact_model_load(version=ModelVersion.objects.get())
    proba = loaded.predict_proba([{f: 14.0 if f == "mean radius" else 0.1 for f in FEATURES_SMALL}])
    assert proba.shape == (1, 2)


def test_an_onnx_model_with_another_number_of_inputs_is_refused(personas, dataset):
    response = _post(personas, onnx_bytes(), {
        "dataset": dataset.pk, "input_schema": FEATURES_SMALL[:3],
        "output_schema": {"labels": ["benign", "malignant"]}}, name="model.onnx")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "schema_mismatch" and "takes 4 features" in error["message"]
    assert not ModelVersion.objects.exists() and _stored_blobs() == []


@pytest.mark.parametrize("make,code", [
    (lambda: pickle_bytes(4), "pickle_refused"),
    (lambda: pickle_bytes(0), "pickle_refused"),
    (joblib_bytes, "pickle_refused"),
    (corrupt_zip_bytes, "corrupt_file"),
    (zip_without_schema, "not_skops"),
    (lambda: b"", "empty_file"),
])
def test_unsafe_or_broken_artifacts_are_refused_and_nothing_is_kept(personas, dataset, make, code):
    response = _post(personas, make(), {"dataset": dataset.pk})  # all named model.skops
    assert response.status_code == 400, response.json()
    error = response.json()["errors"][0]
    assert error["code"] == code and error["field"] == "artifact"
    if code == "pickle_refused":
        assert "skops" in error["message"] and "skl2onnx" in error["message"]
    assert not ModelVersion.objects.exists() and _stored_blobs() == []
    assert not AuditEvent.objects.filter(action=Action.VERSION_REGISTERED).exists()


def test_untrusted_skops_types_are_refused_by_name(personas, dataset):
    """A type off the administrators' allowlist refuses the upload, with its name and
    how to ask; the uploader's own trusted_types never widen it; once an administrator
    lists it, the same file registers."""
    from registry.models import TrustedType
    from registry.trust import trusted_type_add

    TrustedType.objects.filter(name="sklearn.tree._tree.Tree").delete()
    response = _post(personas, tree_model_bytes(), {"dataset": dataset.pk,
                                                    "input_schema": FEATURES_SMALL,
                                                    "trusted_types": ["sklearn.tree._tree.Tree"]})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["code"] == "untrusted_types"
    assert body["errors"][0]["field"] == "artifact"
    assert body["untrusted_types"] == ["sklearn.tree._tree.Tree"]
    assert "sklearn.tree._tree.Tree" in body["errors"][0]["message"]
    assert "administrator" in body["errors"][0]["message"]
    assert not ModelVersion.objects.exists() and _stored_blobs() == []
    trusted_type_add(user=personas.admin, name="sklearn.tree._tree.Tree", reason="trees")
    ok = _post(personas, tree_model_bytes(), {"dataset": dataset.pk})
    assert ok.status_code == 201, ok.json()
    assert ok.json()["trusted_types"] == ["sklearn.tree._tree.Tree"]


def test_a_schema_range_with_min_above_max_is_refused(personas, dataset):
    schema = [{"name": f} for f in FEATURES_SMALL]
    schema[0].update(min=30, max=5)
    response = _post(personas, skops_bytes(logistic_model()), {"dataset": dataset.pk,
                                                               "input_schema": schema})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error == {"field": "metadata.input_schema.0.min", "code": "invalid_range",
                     "message": "Range of 'mean radius' has min 30 greater than max 5."}


def test_an_unknown_feature_type_is_refused(personas, dataset):
    schema = [{"name": f} for f in FEATURES_SMALL]
    schema[1]["type"] = "complex"
    response = _post(personas, skops_bytes(logistic_model()), {"dataset": dataset.pk,
                                                               "input_schema": schema})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_type"
    assert response.json()["errors"][0]["field"] == "metadata.input_schema.1.type"


def test_a_schema_that_does_not_match_the_model_is_refused(personas, dataset):
    response = _post(personas, skops_bytes(logistic_model()), {
        "dataset": dataset.pk, "input_schema": FEATURES_SMALL[:2]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "schema_mismatch"


def test_undocumented_metadata_keys_and_bad_json_are_refused(personas, dataset):
    response = _post(personas, skops_bytes(logistic_model()), {"dataset": dataset.pk,
                                                               "colour": "blue"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_key"
    raw = api_as(personas.owner).post(_url(personas), {
        "artifact": SimpleUploadedFile("m.skops", skops_bytes(logistic_model())),
        "metadata": "{oops"}, format="multipart")
    assert raw.status_code == 400 and raw.json()["errors"][0]["code"] == "invalid_json"


def test_the_dataset_must_be_visible(personas, dataset):
    other_dataset = register_dataset(personas.admin, name="hidden", version="1")
    response = _post(personas, skops_bytes(logistic_model()), {"dataset": other_dataset.pk})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_dataset"


@override_settings(ATTEST_MAX_UPLOAD_BYTES=10_000)
def test_an_oversized_upload_is_refused_with_413_and_leaves_nothing(personas, dataset):
    response = _post(personas, skops_bytes(logistic_model()), {"dataset": dataset.pk})
    assert response.status_code == 413, response.content
    assert response.json()["errors"][0]["code"] == "too_large"
    assert not ModelVersion.objects.exists() and _stored_blobs() == []


def test_drafts_can_be_patched_and_the_hash_follows(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    before = version.content_hash
    response = api_as(personas.owner).patch(_url(personas, "1/"), {
        "model_card": "## New card", "confidence_threshold": 0.6}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["content_hash"] != before
    event = AuditEvent.objects.filter(action=Action.VERSION_UPDATED).get()
    assert event.before["confidence_threshold"] == 0.8 and event.after["confidence_threshold"] == 0.6


def test_patching_the_schema_reruns_the_dry_run(personas, dataset):
    register_version(personas.owner, personas.model, dataset)
    schema = [{"name": f, "unit": "mm" if f == "mean radius" else ""} for f in FEATURES_SMALL]
    schema[0].update(min=40, max=1)
    bad = api_as(personas.owner).patch(_url(personas, "1/"), {"input_schema": schema},
                                       format="json")
    assert bad.status_code == 400
    schema[0].update(min=5, max=30)
    good = api_as(personas.owner).patch(_url(personas, "1/"), {"input_schema": schema},
                                        format="json")
    assert good.status_code == 200, good.json()
    assert good.json()["input_schema"][0]["unit"] == "mm"


def test_a_version_cannot_change_after_submit_through_any_path(personas, dataset):
    register_version(personas.owner, personas.model, dataset)
    client = api_as(personas.owner)
    submitted = client.post(_url(personas, "1/submit/"))
    assert submitted.status_code == 200 and submitted.json()["state"] == "in_review"
    frozen_hash = submitted.json()["content_hash"]
    response = client.patch(_url(personas, "1/"), {"runbook": "changed"}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["errors"][0]["code"] == "version_frozen"
    assert body["state"] == "in_review" and body["allowed_next"] == ["approved", "rejected"]
    again = client.post(_url(personas, "1/submit/"))
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "illegal_transition"
    assert ModelVersion.objects.get().content_hash == frozen_hash


def test_only_editors_may_patch_or_submit(personas, dataset):
    register_version(personas.owner, personas.model, dataset)
    for persona in ("pi", "clinician", "auditor"):
        client = api_as(personas.get(persona))
        assert client.patch(_url(personas, "1/"), {"runbook": "x"}, format="json").status_code == 403
        assert client.post(_url(personas, "1/submit/")).status_code == 403
    assert api_as(personas.outsider).patch(_url(personas, "1/"), {"runbook": "x"},
                                           format="json").status_code == 404


def test_changed_artifact_bytes_are_refused_everywhere(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    store = artifact_storage()
    key = blob_key(version.artifact_sha256)
    with store.open(key, "rb") as handle:
        original = handle.read()
    store.delete(key)
    from django.core.files.base import ContentFile

    store.save(key, ContentFile(original[:-10] + b"tampered!!"))
    from registry.loading import models_clear

    models_clear()
    client = api_as(personas.owner)
    download = client.get(_url(personas, "1/artifact/"))
    assert download.status_code == 409
    assert download.json()["errors"][0]["code"] == "artifact_hash_mismatch"
    submit = client.post(_url(personas, "1/submit/"))
    assert submit.status_code == 409
    assert ModelVersion.objects.get().state == "draft"
    assert AuditEvent.objects.filter(action=Action.ARTIFACT_INTEGRITY_FAILED).count() >= 1


def test_downloads_are_verified_and_audited(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    response = api_as(personas.pi).get(_url(personas, "1/artifact/"))
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == version.artifact_sha256
    assert AuditEvent.objects.filter(action=Action.ARTIFACT_DOWNLOADED, actor=personas.pi).exists()
    assert api_as(personas.clinician).get(_url(personas, "1/artifact/")).status_code == 403
    assert api_as(personas.outsider).get(_url(personas, "1/artifact/")).status_code == 404


def test_version_detail_and_list(personas, dataset):
    register_version(personas.owner, personas.model, dataset)
    client = api_as(personas.clinician)
    assert [v["version"] for v in client.get(_url(personas)).json()] == [1]
    detail = client.get(_url(personas, "1/")).json()
    assert detail["dataset"]["sha256"] == dataset.sha256
    assert client.get(_url(personas, "99/")).status_code == 404
    assert client.get(_url(personas, "abc/")).status_code == 404
    assert json.dumps(detail)  # plain JSON throughout


def test_a_pickle_with_any_name_hears_why_it_is_refused(personas, dataset):
    response = _post(personas, pickle_bytes(), {"dataset": dataset.pk}, name="model.pkl")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "pickle_refused"


# -- declared types against the training profile (issue 15 §5) -----------------------------

def _flagged_dataset(personas, frame=None):
    return services.dataset_version_register(
        user=personas.owner, name="flagged-cohort", version="1", source="EHR extract, site A",
        data_file=SimpleUploadedFile("flagged.csv", csv_bytes(
            flagged_frame() if frame is None else frame)))


def test_a_boolean_declared_over_a_0_1_column_is_accepted(personas):
    dataset = _flagged_dataset(personas)
    response = _post(personas, skops_bytes(flagged_model()), {
        "dataset": dataset.pk,
        "input_schema": [*FEATURES_SMALL, {"name": FLAG, "type": "boolean"}]})
    assert response.status_code == 201, response.json()
    flag = next(f for f in response.json()["input_schema"] if f["name"] == FLAG)
    assert flag["type"] == "boolean" and "min" not in flag


@pytest.mark.parametrize("column,declared,kind", [
    ("mean radius", "boolean", "number"),  # values far outside {0, 1}
    ("mean radius", "integer", "number"),  # not whole numbers
    ("site", "boolean", "category"),  # yes/no is not a boolean spelling
    ("site", "number", "category"),
    ("smoker", "integer", "boolean"),
])
def test_a_declared_type_that_contradicts_the_profile_is_refused(personas, column, declared,
                                                                 kind):
    frame = breast_cancer_frame()[["mean radius", "diagnosis"]].copy()
    frame["site"] = np.where(np.arange(len(frame)) % 3 == 0, "yes", "no")
    frame["smoker"] = np.arange(len(frame)) % 4 == 0
    dataset = _flagged_dataset(personas, frame)
    assert dataset.profile["columns"][column]["type"] == kind
    features = ["mean radius", "site", "smoker"]
    schema = [{"name": n} for n in features]
    schema[features.index(column)]["type"] = declared
    # The schema is checked against the profile before it is bound to the model.
    response = _post(personas, skops_bytes(logistic_model()), {"dataset": dataset.pk,
                                                               "input_schema": schema})
    assert response.status_code == 400, response.json()
    [error] = response.json()["errors"]
    assert error["field"] == f"metadata.input_schema.{features.index(column)}.type"
    assert error["code"] == "type_contradicts_profile"
    assert f"'{column}'" in error["message"] and f"declared {declared}" in error["message"]
    assert f"profiled as {kind}" in error["message"]
    assert not ModelVersion.objects.exists()
