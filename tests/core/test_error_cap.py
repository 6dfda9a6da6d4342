"""Error lists are capped: a request with a million problems is answered in a few
kilobytes, with the count of the rest (core.errors.MAX_ERROR_ITEMS)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from core.errors import MAX_ERROR_ITEMS, ErrorItem, ValidationFailed

from ..conftest import api_as
from ..inference.helpers import released_version, typical_input

pytestmark = pytest.mark.django_db

UNKNOWN = 20_000


def _wide_header_csv(version) -> bytes:
    row = typical_input(version)
    names = list(row) + [f"junk{i}" for i in range(UNKNOWN)]
    values = [str(v) for v in row.values()] + ["0"] * UNKNOWN
    return (",".join(names) + "\n" + ",".join(values) + "\n").encode()


def test_a_header_of_many_unknown_columns_gets_a_capped_error_list(personas):
    version = released_version(personas)
    response = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/batches/",
        {"file": SimpleUploadedFile("wide.csv", _wide_header_csv(version))}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert len(body["errors"]) == MAX_ERROR_ITEMS + 1
    assert all(set(item) == {"field", "code", "message"} for item in body["errors"])
    assert {i["code"] for i in body["errors"][:-1]} == {"unknown_field"}
    assert body["errors"][-1]["code"] == "too_many_errors" and body["errors"][-1]["field"] is None
    assert body["errors_not_listed"] == UNKNOWN - MAX_ERROR_ITEMS
    assert f"{UNKNOWN - MAX_ERROR_ITEMS:,} more" in body["errors"][-1]["message"]
    assert len(response.content) < 50_000


def test_the_page_shows_the_capped_list(personas):
    version = released_version(personas)
    client = Client()
    client.force_login(personas.clinician)
    page = client.post(f"/models/{personas.model.name}/batches/",
                       {"file": SimpleUploadedFile("wide.csv", _wide_header_csv(version))})
    assert page.status_code == 200
    assert page.content.count(b"is not an input of this model") == MAX_ERROR_ITEMS
    assert f"{UNKNOWN - MAX_ERROR_ITEMS:,} more problems not listed".encode() in page.content


def test_drf_validation_errors_are_capped_too(personas):
    response = api_as(personas.owner).post("/api/v1/models/", {
        "name": "wide", "required_signoffs": [{"not": "text"}] * 500}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert len(body["errors"]) == MAX_ERROR_ITEMS + 1
    assert body["errors"][-1]["code"] == "too_many_errors"
    assert body["errors_not_listed"] == 500 - MAX_ERROR_ITEMS


def test_a_short_list_is_left_as_it_is():
    exc = ValidationFailed(items=[ErrorItem("invalid", "x", "a")] * MAX_ERROR_ITEMS)
    assert len(exc.as_body()["errors"]) == MAX_ERROR_ITEMS and "errors_not_listed" not in \
        exc.as_body()
