"""GET /api/v1/auth/whoami/: who the caller is and what they may do, per model."""

from __future__ import annotations

import pytest

from ..conftest import api_as
from ..personas import PASSWORD

pytestmark = pytest.mark.django_db


def test_it_names_the_owner_their_token_and_their_roles(api, personas):
    secret = api.post("/api/v1/auth/tokens/", {"username": "owner", "password": PASSWORD,
                                               "name": "laptop"}, format="json").json()["token"]
    response = api.get("/api/v1/auth/whoami/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "owner" and body["name"] == "Owner Test"
    assert body["can_create_models"] is True and body["is_admin"] is False
    assert body["token"]["name"] == "laptop" and secret.startswith(f"att_{body['token']['prefix']}_")
    assert body["token"]["expires_at"]
    [model] = body["models"]  # the other owner's model stays invisible
    assert model["name"] == personas.model.name and model["roles"] == ["owner"]
    assert "register_version" in model["capabilities"]


def test_a_clinician_sees_only_what_they_may_do(personas):
    body = api_as(personas.clinician).get("/api/v1/auth/whoami/").json()
    assert body["token"] is None  # not token-authenticated
    assert body["can_create_models"] is False
    [model] = body["models"]
    assert model["roles"] == ["clinician"]
    assert "predict" in model["capabilities"] and "register_version" not in model["capabilities"]


def test_an_outsider_sees_no_model_and_an_auditor_sees_all(personas):
    assert api_as(personas.outsider).get("/api/v1/auth/whoami/").json()["models"] == []
    body = api_as(personas.auditor).get("/api/v1/auth/whoami/").json()
    assert body["is_auditor"] is True
    assert {m["name"] for m in body["models"]} == {personas.model.name, personas.other_model.name}


def test_without_credentials_it_is_a_401(api, personas):
    response = api.get("/api/v1/auth/whoami/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authenticated"
