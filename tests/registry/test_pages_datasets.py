"""The dataset pages per persona: list, detail, register from a file or a profile."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from profiling import profile_file
from registry.models import DatasetVersion

from ..artifacts import FEATURES_SMALL, training_csv
from ..pages import (
    HIDDEN,
    READ_ONLY,
    assert_404,
    assert_refused,
    dataset_form,
    field_errors,
    flashes,
    ragged_csv,
    text,
)

pytestmark = pytest.mark.django_db


# -- datasets ---------------------------------------------------------------------------------------

def test_it_lists_datasets_with_the_register_button_for_registrars(client_as, dataset):
    body = text(client_as("owner").get("/datasets/"))
    assert f'href="/datasets/{dataset.pk}/"' in body
    assert 'href="/datasets/new/"' in body


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_lists_datasets_of_visible_models_without_the_button(client_as, version, name):
    response = client_as(name).get("/datasets/")
    assert response.status_code == 200
    body = text(response)
    assert f'href="/datasets/{version.dataset.pk}/"' in body
    assert 'href="/datasets/new/"' not in body


@pytest.mark.parametrize("name", HIDDEN)
def test_it_lists_no_datasets_of_hidden_models(client_as, version, name):
    response = client_as(name).get("/datasets/")
    assert response.status_code == 200
    assert f'href="/datasets/{version.dataset.pk}/"' not in text(response)
    assert "No dataset versions you can see." in text(response)


def test_it_shows_the_dataset_page_with_its_profile(client_as, dataset):
    response = client_as("owner").get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 200
    body = text(response)
    assert dataset.sha256 in body and "IRB-2024-001" in body
    for feature in FEATURES_SMALL:
        assert f'<th scope="row">{feature}</th>' in body


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_shows_a_dataset_to_members_of_a_model_it_trains(client_as, version, name):
    assert client_as(name).get(f"/datasets/{version.dataset.pk}/").status_code == 200


def test_it_hides_an_unused_dataset_from_other_members(client_as, dataset):
    assert_404(client_as("pi").get(f"/datasets/{dataset.pk}/"))
    assert client_as("auditor").get(f"/datasets/{dataset.pk}/").status_code == 200


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_a_dataset_to_others(client_as, version, name):
    assert_404(client_as(name).get(f"/datasets/{version.dataset.pk}/"))
    assert_404(client_as(name).get("/datasets/not-a-number/"))


def test_it_shows_the_dataset_form(client_as):
    response = client_as("owner").get("/datasets/new/")
    assert response.status_code == 200
    body = text(response)
    assert 'enctype="multipart/form-data"' in body
    assert 'name="file"' in body and 'name="profile_json"' in body


def test_it_registers_a_dataset_from_an_uploaded_csv(client_as):
    response = client_as("owner").post("/datasets/new/", {
        **dataset_form(), "file": SimpleUploadedFile("train.csv", training_csv())}, follow=True)
    dataset = DatasetVersion.objects.get(name="icu-cohort", version="2025.1")
    assert response.redirect_chain == [(f"/datasets/{dataset.pk}/", 302)]
    assert dataset.row_count == 569 and dataset.file_format == "csv"
    assert dataset.file_key == ""  # the raw file is not kept unless asked
    assert flashes(response) == [f"Dataset {dataset} registered (569 rows, sha256 "
                                 f"{dataset.sha256[:12]}…)."]


def test_it_keeps_the_raw_file_when_asked(client_as):
    client_as("owner").post("/datasets/new/", {
        **dataset_form(), "store_file": "on",
        "file": SimpleUploadedFile("train.csv", training_csv())})
    dataset = DatasetVersion.objects.get(name="icu-cohort")
    assert dataset.file_key and dataset.file_size == len(training_csv())


def test_it_registers_a_dataset_from_a_pasted_profile(client_as, tmp_path):
    path = tmp_path / "local.csv"
    path.write_bytes(training_csv())
    profile = profile_file(path).as_dict()
    response = client_as("owner").post("/datasets/new/", {
        **dataset_form(), "profile_json": json.dumps(profile)}, follow=True)
    dataset = DatasetVersion.objects.get(name="icu-cohort")
    assert response.redirect_chain == [(f"/datasets/{dataset.pk}/", 302)]
    assert dataset.sha256 == profile["sha256"] and dataset.row_count == 569
    assert dataset.file_key == ""
    assert [c["name"] for c in dataset.columns] == [*FEATURES_SMALL, "diagnosis"]


def test_it_shows_a_ragged_csv_error_next_to_the_file_field(client_as):
    response = client_as("owner").post("/datasets/new/", {
        **dataset_form(), "file": SimpleUploadedFile("ragged.csv", ragged_csv())})
    assert response.status_code == 200
    [error] = field_errors(response, "file")
    assert "fields but the header has 3" in error
    assert "/tmp" not in error  # no server paths in messages
    assert not DatasetVersion.objects.filter(name="icu-cohort").exists()


def test_it_shows_a_broken_pasted_profile_next_to_its_field(client_as, tmp_path):
    response = client_as("owner").post("/datasets/new/", {
        **dataset_form(), "profile_json": json.dumps({"sha256": "abc", "row_count": 0})})
    assert response.status_code == 200
    errors = field_errors(response, "profile_json")
    assert any("sha256" in e for e in errors) and any("row_count" in e for e in errors)


def test_it_asks_for_a_file_or_a_profile(client_as):
    response = client_as("owner").post("/datasets/new/", dataset_form())
    assert response.status_code == 200
    assert "Upload the data file or paste its profile." in text(response)


def test_it_shows_a_duplicate_dataset_version_next_to_the_version_field(client_as, dataset):
    response = client_as("owner").post("/datasets/new/", {
        **dataset_form(name=dataset.name, version=dataset.version),
        "file": SimpleUploadedFile("train.csv", training_csv())})
    assert response.status_code == 200
    assert any("already registered" in e for e in field_errors(response, "version"))


def test_it_refuses_a_dataset_post_without_the_csrf_token(client_as):
    response = client_as("owner", enforce_csrf_checks=True).post("/datasets/new/", {
        **dataset_form(), "file": SimpleUploadedFile("train.csv", training_csv())})
    assert response.status_code == 403
    assert not DatasetVersion.objects.exists()


@pytest.mark.parametrize("name", READ_ONLY + HIDDEN)
def test_it_refuses_the_dataset_form_to_non_registrars(client_as, name):
    response = client_as(name).get("/datasets/new/", follow=True)
    assert_refused(response, message="permission to register datasets")
    assert response.redirect_chain[-1][0] == "/datasets/"


@pytest.mark.parametrize("name", READ_ONLY + HIDDEN)
def test_it_refuses_a_dataset_post_from_non_registrars(client_as, name):
    response = client_as(name).post("/datasets/new/", {
        **dataset_form(), "file": SimpleUploadedFile("train.csv", training_csv())}, follow=True)
    assert_refused(response, message="You lack the 'register_version' permission")
    assert not DatasetVersion.objects.exists()
