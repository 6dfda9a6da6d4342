from __future__ import annotations

import pytest

from audits.models import Action, AuditEvent
from registry.models import ModelAccessGrant, RegisteredModel

from ..conftest import api_as

pytestmark = pytest.mark.django_db


def test_it_requires_authentication(api):
    response = api.get("/api/v1/models/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authenticated"


def test_it_creates_a_model_and_makes_the_creator_owner(personas):
    response = api_as(personas.owner).post("/api/v1/models/", {
        "name": "icu-delirium", "description": "Delirium risk", "retention_days": 90},
        format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["required_signoffs"] == ["pi_approval", "irb_approval"]
    assert "manage_access" in body["capabilities"]
    model = RegisteredModel.objects.get(name="icu-delirium")
    assert ModelAccessGrant.objects.filter(model=model, user=personas.owner, role="owner").exists()
    actions = list(AuditEvent.objects.filter(model_id=model.pk).values_list("action", flat=True))
    assert Action.MODEL_CREATED in actions and Action.ACCESS_GRANTED in actions


def test_it_refuses_a_duplicate_name_with_409(personas):
    response = api_as(personas.owner).post("/api/v1/models/", {"name": personas.model.name},
                                           format="json")
    assert response.status_code == 409
    assert response.json()["errors"] == [{"field": "name", "code": "duplicate_name",
                                          "message": f"A model named '{personas.model.name}' "
                                                     "already exists."}]
    assert RegisteredModel.objects.filter(name=personas.model.name).count() == 1


@pytest.mark.parametrize("name", ["A", "UPPER", "with space", "-dash-first", "x" * 101, "new"])
def test_it_refuses_bad_names(personas, name):
    response = api_as(personas.owner).post("/api/v1/models/", {"name": name}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_it_refuses_bad_signoffs_and_retention(personas):
    response = api_as(personas.owner).post("/api/v1/models/", {
        "name": "good-name", "required_signoffs": ["Bad Meaning"], "retention_days": 0},
        format="json")
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert "retention_days" in fields


def test_users_without_the_create_permission_cannot_create(personas):
    response = api_as(personas.clinician).post("/api/v1/models/", {"name": "sneaky"},
                                               format="json")
    assert response.status_code == 403
    assert not RegisteredModel.objects.filter(name="sneaky").exists()
    assert AuditEvent.objects.filter(action=Action.PERMISSION_DENIED,
                                     actor=personas.clinician).exists()


@pytest.mark.parametrize("persona,visible", [
    ("admin", True), ("auditor", True), ("owner", True), ("pi", True), ("irb", True),
    ("clinician", True), ("reviewer", True), ("viewer_other", False), ("outsider", False),
])
def test_list_and_detail_follow_grants(personas, persona, visible):
    client = api_as(personas.get(persona))
    names = [m["name"] for m in client.get("/api/v1/models/").json()]
    assert (personas.model.name in names) is visible
    detail = client.get(f"/api/v1/models/{personas.model.name}/")
    assert detail.status_code == (200 if visible else 404)


def test_an_unknown_model_is_a_json_404(personas):
    response = api_as(personas.owner).get("/api/v1/models/does-not-exist/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_malformed_json_is_a_structured_400(personas):
    response = api_as(personas.owner).post("/api/v1/models/", data="{not json",
                                           content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"


@pytest.mark.parametrize("text", ["nul\u0000byte", "lone \ud800 surrogate"])
def test_unstorable_text_is_a_structured_400(personas, text):
    import json as _json

    body = _json.dumps({"name": "fine-name", "description": text})
    response = api_as(personas.owner).post("/api/v1/models/", data=body,
                                           content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] in ("invalid_characters", "null_characters_not_allowed")
    assert not RegisteredModel.objects.filter(name="fine-name").exists()


def test_absurdly_nested_json_is_a_structured_400(personas):
    body = "[" * 100_000 + "]" * 100_000
    response = api_as(personas.owner).post("/api/v1/models/", data=body,
                                           content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] in ("parse_error", "invalid")
