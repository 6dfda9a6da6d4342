"""Every API 404 has the code ``not_found``, whichever layer raised it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.errors import NotFound, ValidationFailed
from portal.tokens import api_token_create

from ..inference.helpers import released_version, typical_input

pytestmark = pytest.mark.django_db

MISSING = "00000000-0000-4000-8000-000000000000"  # a valid UUID no row has


def _token_client(user) -> APIClient:
    """Through the real token authentication, as clients call the API."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='t')[1]}")
    return client


@pytest.mark.parametrize("who,method,path,body", [
    ("clinician", "get", f"/api/v1/predictions/{MISSING}/", None),
    ("clinician", "get", "/api/v1/predictions/not-a-uuid/", None),
    ("clinician", "get", f"/api/v1/batches/{MISSING}/", None),
    ("clinician", "get", "/api/v1/batches/not-a-uuid/", None),
    ("clinician", "get", f"/api/v1/batches/{MISSING}/results/", None),
    ("reviewer", "post", "/api/v1/reviews/999999/decision/", {"decision": "accept"}),
    ("reviewer", "post", "/api/v1/reviews/nope/decision/", {"decision": "accept"}),
    ("clinician", "get", "/api/v1/models/no-such-model/", None),
    ("clinician", "post", "/api/v1/models/no-such-model/predict/", {"inputs": {}}),
    ("owner", "get", "/api/v1/models/sepsis-risk/versions/99/", None),
    ("owner", "get", f"/api/v1/datasets/{MISSING}/", None),
    ("owner", "delete", "/api/v1/auth/tokens/999999/", None),
    ("admin", "get", "/api/v1/audit/events/99999999/", None),
    ("admin", "get", "/api/v1/audit/events/nope/", None),
    ("outsider", "get", "/api/v1/models/sepsis-risk/", None),  # exists, not visible
    ("clinician", "get", "/api/v1/no-such-endpoint/", None),  # no URL at all
])
def test_it_answers_not_found_with_the_one_code(personas, who, method, path, body):
    client = _token_client(personas.get(who))
    response = getattr(client, method)(path, body, format="json") if body is not None \
        else getattr(client, method)(path)
    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/json"
    errors = response.json()["errors"]
    assert errors and {e["code"] for e in errors} == {"not_found"}, errors


def test_someone_elses_prediction_is_not_found_like_a_missing_one(personas):
    version = released_version(personas)
    made = _token_client(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/predict/",
        {"inputs": typical_input(version)}, format="json")
    assert made.status_code == 200, made.json()
    seen = _token_client(personas.outsider).get(f"/api/v1/predictions/{made.json()['id']}/")
    missing = _token_client(personas.outsider).get(f"/api/v1/predictions/{MISSING}/")
    assert seen.status_code == missing.status_code == 404
    assert seen.json() == missing.json()
    assert seen.json()["errors"][0]["code"] == "not_found"


def test_not_found_defaults_to_its_code_and_keeps_a_precise_one():
    assert NotFound("No such thing.").as_body()["errors"] == [
        {"field": None, "code": "not_found", "message": "No such thing."}]
    assert NotFound().items[0].code == "not_found"
    assert NotFound("Not yet.", code="not_ready").items[0].code == "not_ready"
    # other errors keep their own default
    assert ValidationFailed("Bad.").items[0].code == "invalid"


def test_permission_denied_defaults_to_its_code(personas):
    from core.errors import PermissionDenied

    assert PermissionDenied("No.").items[0].code == "permission_denied"
    # raised without a code: the checkpoints list is for admins and auditors only
    response = _token_client(personas.clinician).get("/api/v1/audit/checkpoints/")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"


def test_a_host_not_served_answers_the_api_error_format(settings):
    """Django's DisallowedHost was an HTML "Bad Request (400)" page, also under /api/."""
    from django.test import Client

    settings.ALLOWED_HOSTS = ["attest.example.org"]
    client = Client(HTTP_HOST="evil.example")
    response = client.get("/api/v1/models/")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json() == {"errors": [{"field": "host", "code": "disallowed_host",
                                           "message": response.json()["errors"][0]["message"]}]}
    assert client.post("/api/v1/auth/tokens/", {}, content_type="application/json").json()[
        "errors"][0]["code"] == "disallowed_host"
    page = client.get("/login/")  # a page keeps Django's own answer
    assert page.status_code == 400 and not page["Content-Type"].startswith("application/json")
