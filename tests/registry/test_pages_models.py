"""The model pages per persona: list, create, detail (allowed, read-only, hidden)."""

from __future__ import annotations

import pytest

from audits.models import Action, AuditEvent
from registry.models import ModelAccessGrant, RegisteredModel
from registry.roles import ModelRole

from ..pages import (
    HIDDEN,
    MODEL,
    READ_ONLY,
    WRITERS,
    assert_404,
    assert_refused,
    field_errors,
    flashes,
    model_url,
    text,
    version_url,
)

pytestmark = pytest.mark.django_db


# -- model list -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", WRITERS + READ_ONLY)
def test_it_lists_the_model_for_its_members(client_as, name):
    response = client_as(name).get("/models/")
    assert response.status_code == 200
    assert f'href="{model_url()}"' in text(response)


@pytest.mark.parametrize("name", HIDDEN)
def test_it_hides_the_model_from_the_list_for_others(client_as, name):
    response = client_as(name).get("/models/")
    assert response.status_code == 200
    assert f'href="{model_url()}"' not in text(response)


@pytest.mark.parametrize(("name", "shown"), [("owner", True), ("admin", True), ("pi", False),
                                             ("auditor", False), ("outsider", False)])
def test_it_shows_the_register_model_button_only_to_creators(client_as, name, shown):
    body = text(client_as(name).get("/models/"))
    assert ('href="/models/new/"' in body) is shown


def test_it_shows_the_latest_version_state_in_the_list(client_as, version):
    body = text(client_as("pi").get("/models/"))
    assert "v1" in body and "state-draft" in body


@pytest.mark.parametrize(("name", "shown"), [("admin", True), ("auditor", True), ("owner", True),
                                             ("pi", True), ("clinician", False)])
def test_it_shows_the_audit_link_to_those_who_may_read_the_trail(client_as, name, shown):
    body = text(client_as(name).get("/models/"))
    assert ('href="/audit/"' in body) is shown


# -- model create -----------------------------------------------------------------------------------

def test_it_shows_the_model_form_to_creators(client_as):
    response = client_as("owner").get("/models/new/")
    assert response.status_code == 200
    assert 'name="name"' in text(response) and 'name="required_signoffs"' in text(response)


def test_it_registers_a_model_from_the_form(client_as, personas):
    client = client_as("owner")
    response = client.post("/models/new/", {
        "name": "aki-risk", "description": "Acute kidney injury",
        "required_signoffs": "pi_approval, irb_approval", "retention_days": "90"}, follow=True)
    assert response.redirect_chain[-1][0] == "/models/aki-risk/"
    assert "Model aki-risk registered. You are its owner." in flashes(response)
    model = RegisteredModel.objects.get(name="aki-risk")
    assert model.retention_days == 90 and model.required_signoffs == ["pi_approval",
                                                                      "irb_approval"]
    assert ModelAccessGrant.objects.filter(model=model, user=personas.owner,
                                           role=ModelRole.OWNER).exists()


def test_it_shows_model_form_errors_next_to_the_fields(client_as):
    client = client_as("owner")
    response = client.post("/models/new/", {"name": "Bad Name!", "retention_days": "0"})
    assert response.status_code == 200
    assert field_errors(response, "retention_days")
    assert not RegisteredModel.objects.filter(name="Bad Name!").exists()
    response = client.post("/models/new/", {"name": MODEL, "retention_days": "30"})
    assert response.status_code == 200
    assert any("already exists" in e for e in field_errors(response, "name"))


@pytest.mark.parametrize("name", READ_ONLY + HIDDEN)
def test_it_refuses_the_model_form_to_non_creators(client_as, name):
    response = client_as(name).get("/models/new/", follow=True)
    assert_refused(response, message="permission to register models")
    assert response.redirect_chain[-1][0] == "/models/"


def test_it_refuses_a_model_post_from_a_non_creator_and_records_it(client_as):
    response = client_as("pi").post("/models/new/", {"name": "sneaky", "retention_days": "30"},
                                    follow=True)
    assert_refused(response, message="You lack the 'create_model' permission")
    assert not RegisteredModel.objects.filter(name="sneaky").exists()
    assert AuditEvent.objects.filter(action=Action.PERMISSION_DENIED,
                                     actor_username="pi").exists()


# -- model detail -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", WRITERS)
def test_it_shows_the_model_page_with_write_buttons_to_writers(client_as, version, name):
    response = client_as(name).get(model_url())
    assert response.status_code == 200
    body = text(response)
    assert f'href="{model_url("versions/new/")}"' in body
    assert f'href="{version_url()}"' in body
    assert version.content_hash[:12] in body


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_shows_the_model_page_read_only_to_members(client_as, version, name):
    response = client_as(name).get(model_url())
    assert response.status_code == 200
    body = text(response)
    assert f'href="{version_url()}"' in body
    assert "Register a version" not in body
    assert f'href="{model_url("versions/new/")}"' not in body


@pytest.mark.parametrize(("name", "shown"), [("owner", True), ("pi", True), ("irb", True),
                                             ("auditor", True), ("clinician", False),
                                             ("reviewer", False)])
def test_it_shows_the_model_history_only_with_view_audit(client_as, name, shown):
    body = text(client_as(name).get(model_url()))
    assert ("<h2>History</h2>" in body) is shown


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_the_model_page_to_others(client_as, name):
    assert_404(client_as(name).get(model_url()))


def test_it_answers_404_for_an_unknown_model_as_for_a_hidden_one(client_as):
    assert_404(client_as("owner").get("/models/no-such-model/"))
