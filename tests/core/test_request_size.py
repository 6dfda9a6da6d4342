"""A request body past DATA_UPLOAD_MAX_MEMORY_SIZE is a clean 413: the API's error body
under /api/ (fast lane included), a page elsewhere, and no traceback in the log."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape
from rest_framework.test import APIClient

from core.api import error_body
from core.uploads import body_limit_message
from inference.models import Prediction
from portal.tokens import api_token_create
from registry.models import ModelVersion, RegisteredModel

from ..artifacts import logistic_model, skops_bytes
from ..personas import PASSWORD
from ..registry.helpers import multipart_version, register_dataset

pytestmark = pytest.mark.django_db

LIMIT = 4096


@pytest.fixture
def small_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    return LIMIT


def _token_client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        secret = api_token_create(user=user, name="t")[1]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _json_body(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = b'{"inputs": {"note": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _no_traceback(caplog) -> None:
    """Before the fix: ERROR django.security.RequestDataTooBig with its traceback. (A 4xx
    is otherwise not logged: settings keep django.request at ERROR.)"""
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [(r.name, r.getMessage()) for r in loud]


def _is_413_error_body(response) -> None:
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json() == error_body("too_large", body_limit_message())


def test_a_30_mb_prediction_request_is_a_413_error_body(personas, caplog):
    """The report as made: default settings, a 30 MB JSON body, a valid token."""
    body = _json_body(30 * 1024 * 1024)
    with caplog.at_level(logging.INFO):
        response = _token_client(personas.clinician).generic(
            "POST", f"/api/v1/models/{personas.model.name}/predict/", body,
            content_type="application/json")
    _is_413_error_body(response)
    assert "10 MB" in response.json()["errors"][0]["message"]
    _no_traceback(caplog)
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("who", ["clinician", "outsider", None])
@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/models/sepsis-risk/predict/"),
    ("POST", "/api/v1/models/"),
    ("PATCH", "/api/v1/models/sepsis-risk/versions/1/"),
    ("POST", "/api/v1/auth/tokens/"),
    ("POST", "/api/v1/reviews/1/decision/"),
    ("POST", "/api/v1/models/sepsis-risk/batches/"),
])
def test_every_api_path_answers_413_whoever_asks(personas, small_limit, caplog, who, method,
                                                  path):
    client = _token_client(personas.get(who) if who else None)
    with caplog.at_level(logging.INFO):
        response = client.generic(method, path, _json_body(LIMIT + 1),
                                  content_type="application/json")
    _is_413_error_body(response)
    _no_traceback(caplog)


def test_a_body_at_the_limit_is_read_as_usual(personas, small_limit):
    head = json.dumps({"name": "padded", "description": ""}).encode()
    body = head[:-2] + b"x" * (LIMIT - len(head)) + head[-2:]
    assert len(body) == LIMIT
    response = _token_client(personas.owner).generic("POST", "/api/v1/models/", body,
                                                     content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    assert RegisteredModel.objects.get(name="padded").description == "x" * (LIMIT - len(head))


def test_multipart_fields_past_the_limit_are_a_413_error_body(personas, small_limit, caplog):
    with caplog.at_level(logging.INFO):
        response = _token_client(personas.owner).post(
            "/api/v1/models/", {"name": "big", "description": "x" * (LIMIT + 1)},
            format="multipart")
    _is_413_error_body(response)
    _no_traceback(caplog)
    assert not RegisteredModel.objects.filter(name="big").exists()


def test_a_multipart_upload_larger_than_the_limit_is_not_refused_for_its_size(personas,
                                                                             settings):
    dataset = register_dataset(personas.owner)
    data = skops_bytes(logistic_model())
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(data) // 2  # the file, not its fields
    response = _token_client(personas.owner).post(
        f"/api/v1/models/{personas.model.name}/versions/",
        multipart_version(data, {"dataset": dataset.pk}), format="multipart")
    assert response.status_code == 201, response.json()
    assert ModelVersion.objects.filter(model=personas.model).count() == 1


def _page_says_too_large(response) -> None:
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Too large to accept" in page and escape(body_limit_message()) in page
    assert "Nothing you sent was saved" in page


def test_an_over_limit_form_post_gets_a_413_page(personas, small_limit, client, caplog):
    client.force_login(personas.owner)
    body = urlencode({"name": "big", "description": "x" * LIMIT})
    with caplog.at_level(logging.INFO):
        response = client.post("/models/new/", body,
                               content_type="application/x-www-form-urlencoded")
    _page_says_too_large(response)
    assert "Sign out" in response.content.decode()  # the usual page, for the signed-in user
    _no_traceback(caplog)
    assert not RegisteredModel.objects.filter(name="big").exists()


def test_an_over_limit_multipart_form_post_gets_a_413_page(personas, small_limit, client,
                                                            caplog):
    client.force_login(personas.owner)
    with caplog.at_level(logging.INFO):
        response = client.post("/datasets/new/", {
            "name": "big", "version": "1", "source": "x" * LIMIT,
            "data_file": SimpleUploadedFile("train.csv", b"a,b\n1,2\n")})
    _page_says_too_large(response)
    _no_traceback(caplog)


def test_an_over_limit_sign_in_gets_a_413_page(personas, small_limit, client, caplog):
    body = urlencode({"username": "owner", "password": PASSWORD, "pad": "x" * LIMIT})
    with caplog.at_level(logging.INFO):
        response = client.post("/login/", body, content_type="application/x-www-form-urlencoded")
    _page_says_too_large(response)
    _no_traceback(caplog)
    assert "_auth_user_id" not in client.session


def test_a_form_post_under_the_limit_is_unaffected(personas, small_limit, client):
    client.force_login(personas.owner)
    response = client.post("/models/new/", urlencode({"name": "small", "description": "ok",
                                     "retention_days": 365}),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302
    assert RegisteredModel.objects.filter(name="small").exists()


def test_the_message_names_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
    assert "limit of 10 MB" in body_limit_message()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    assert "limit of 4096 bytes" in body_limit_message()
    assert json.dumps(error_body("too_large", body_limit_message()))  # plain text
