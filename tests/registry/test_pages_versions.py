"""The version pages per persona: detail, register, edit, submit, artifact download.

Read-only members are sent back with a message when they try to write; people who may
not see the model get 404 (its existence does not leak)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from audits.models import Action, AuditEvent
from registry.models import ModelVersion
from registry.roles import ModelRole

from ..artifacts import FEATURES_SMALL, logistic_model, pickle_bytes, skops_bytes
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
    version_form,
    version_url,
)
from ..registry.helpers import register_version

pytestmark = pytest.mark.django_db


# -- version detail ---------------------------------------------------------------------------------

def test_it_shows_the_version_page_with_draft_actions_to_the_owner(client_as, version):
    response = client_as("owner").get(version_url())
    assert response.status_code == 200
    body = text(response)
    assert version.content_hash in body
    assert version.artifact_sha256 in body
    assert "state-draft" in body
    assert f'href="{version_url("edit/")}"' in body
    assert f'action="{version_url("submit/")}"' in body
    assert f'href="{version_url("artifact/")}"' in body
    for feature in FEATURES_SMALL:
        assert feature in body


@pytest.mark.parametrize(("name", "download"), [("auditor", True), ("pi", True), ("irb", False),
                                                ("clinician", False), ("reviewer", False)])
def test_it_shows_the_version_page_without_write_buttons_to_members(client_as, version, name,
                                                                     download):
    response = client_as(name).get(version_url())
    assert response.status_code == 200
    body = text(response)
    assert version.content_hash in body
    assert "Edit draft" not in body and "Submit for review" not in body
    assert f'action="{version_url("submit/")}"' not in body
    assert (f'href="{version_url("artifact/")}"' in body) is download


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_the_version_page_to_others(client_as, version, name):
    assert_404(client_as(name).get(version_url()))


@pytest.mark.parametrize("number", ["2", "x"])
def test_it_answers_404_for_unknown_versions(client_as, version, number):
    assert_404(client_as("owner").get(f"/models/{MODEL}/versions/{number}/"))


def test_it_sanitizes_markdown_in_the_model_card(client_as, personas, dataset):
    register_version(personas.owner, personas.model, dataset, model_card=(
        "# Card\n\n<script>alert('card')</script>\n\n"
        "<img src=x onerror=alert(1)>\n\n[click](javascript:alert(2))\n\n**bold**"),
        runbook="<script>alert('runbook')</script>\n\n1. roll back")
    response = client_as("pi").get(version_url())
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script" not in page.lower()
    assert "onerror" not in page and "javascript:" not in page
    assert "<h1>Card</h1>" in page and "<strong>bold</strong>" in page
    assert "<li>roll back</li>" in page


def test_it_escapes_html_in_plain_text_fields(client_as, personas, dataset):
    register_version(personas.owner, personas.model, dataset,
                     description="<b onmouseover=alert(1)>hi</b>")
    page = client_as("owner").get(version_url()).content.decode()
    assert "<b onmouseover" not in page
    assert "&lt;b onmouseover=alert(1)&gt;hi&lt;/b&gt;" in page


# -- version register ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", WRITERS)
def test_it_shows_the_register_form_with_visible_datasets(client_as, dataset, name):
    response = client_as(name).get(model_url("versions/new/"))
    assert response.status_code == 200
    body = text(response)
    assert 'enctype="multipart/form-data"' in body
    assert f'<option value="{dataset.pk}">sepsis-cohort @ 2024.1 (569 rows)</option>' in body


def test_it_registers_a_version_from_the_form(client_as, dataset):
    data = skops_bytes(logistic_model())
    response = client_as("owner").post(model_url("versions/new/"), version_form(
        dataset, data=data, description="First cut", model_card="## Intended use\n\nTriage.",
        labels="benign, malignant", positive_label="malignant",
        metrics=json.dumps({"overall": {"auc": 0.93, "sensitivity": 0.9}})), follow=True)
    assert response.redirect_chain == [(version_url(), 302)]
    version = ModelVersion.objects.get(model__name=MODEL, number=1)
    assert version.state == "draft" and version.confidence_threshold == 0.7
    assert version.dataset == dataset and version.created_by.username == "owner"
    assert [f["name"] for f in version.input_schema] == FEATURES_SMALL
    assert version.output_schema["positive_label"] == "malignant"
    assert version.metrics["overall"]["auc"] == 0.93
    assert version.artifact_sha256 == hashlib.sha256(data).hexdigest()
    [message] = flashes(response)
    assert message.startswith("Version 1 registered as a draft; its dry run succeeded.")
    assert version.content_hash[:12] in message
    body = text(response)
    assert version.content_hash in body and "<h2>Intended use</h2>" in body


def test_it_shows_a_pickle_refusal_next_to_the_file_field(client_as, dataset):
    response = client_as("owner").post(model_url("versions/new/"),
                                       version_form(dataset, data=pickle_bytes()))
    assert response.status_code == 200
    [error] = field_errors(response, "artifact")
    assert "refuses" in error and "skops" in error
    assert not ModelVersion.objects.exists()


def test_it_refuses_a_pickle_named_pkl_and_points_to_skops(client_as, dataset):
    response = client_as("owner").post(model_url("versions/new/"),
                                       version_form(dataset, data=pickle_bytes(), name="model.pkl"))
    assert response.status_code == 200
    errors = field_errors(response, "artifact") + field_errors(response, "artifact_format")
    assert errors and all("skops" in e for e in errors)
    assert not ModelVersion.objects.exists()


def test_it_shows_schema_errors_next_to_the_input_schema_field(client_as, dataset):
    schema = [{"name": f, "type": "number"} for f in FEATURES_SMALL]
    schema[0].update(min=30, max=5)
    response = client_as("owner").post(model_url("versions/new/"), version_form(
        dataset, features=None, input_schema=json.dumps(schema)))
    assert response.status_code == 200
    errors = field_errors(response, "input_schema")
    assert any("min 30 greater than max 5" in e for e in errors), errors
    assert not ModelVersion.objects.exists()


def test_it_links_help_and_errors_to_their_inputs(client_as, dataset):
    # Screen readers announce an input's help and errors through aria-describedby.
    response = client_as("owner").post(model_url("versions/new/"), version_form(
        dataset, confidence_threshold="2"))
    page = response.content.decode()
    described = re.search(r'<input[^>]*id="id_confidence_threshold"[^>]*>', page).group(0)
    ids = re.search(r'aria-describedby="([^"]+)"', described).group(1).split()
    assert ids == ["id_confidence_threshold_helptext", "id_confidence_threshold_error"]
    for element_id in ids:
        assert f'id="{element_id}"' in page
    assert 'aria-invalid="true"' in described


def test_it_shows_invalid_json_next_to_the_input_schema_field(client_as, dataset):
    response = client_as("owner").post(model_url("versions/new/"), version_form(
        dataset, input_schema='[{"name": "mean radius",'))
    assert response.status_code == 200
    assert any(e.startswith("Not valid JSON") for e in field_errors(response, "input_schema"))


def test_it_shows_a_missing_dataset_next_to_the_dataset_field(client_as, dataset):
    form = version_form(dataset)
    del form["dataset"]
    response = client_as("owner").post(model_url("versions/new/"), form)
    assert response.status_code == 200
    assert field_errors(response, "dataset") == ["This field is required."]
    assert "Please correct the fields marked below." in text(response)
    assert not ModelVersion.objects.exists()


def test_it_keeps_datasets_the_user_cannot_see_out_of_the_form(client_as, personas, dataset):
    from registry import services

    services.access_grant(user=personas.owner, model=personas.model, grantee=personas.outsider,
                          role=ModelRole.OWNER)
    response = client_as("outsider").post(model_url("versions/new/"), version_form(dataset))
    assert response.status_code == 200
    assert field_errors(response, "dataset")  # not a valid choice: owner's dataset is unused
    assert f'<option value="{dataset.pk}"' not in text(response)


def test_it_refuses_a_register_post_without_the_csrf_token(client_as, dataset):
    client = client_as("owner", enforce_csrf_checks=True)
    response = client.post(model_url("versions/new/"), version_form(dataset))
    assert response.status_code == 403
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_refuses_the_register_form_to_read_only_members(client_as, dataset, name):
    response = client_as(name).get(model_url("versions/new/"), follow=True)
    assert_refused(response, message="You lack the 'register_version' permission on sepsis-risk")
    assert response.redirect_chain[-1][0] == "/models/"


def test_it_sends_a_refused_member_back_to_the_page_they_came_from(client_as, dataset):
    response = client_as("pi").get(model_url("versions/new/"),
                                   HTTP_REFERER=f"http://testserver{model_url()}")
    assert response.status_code == 302 and response["Location"] == f"http://testserver{model_url()}"


def test_it_never_sends_a_refused_member_to_another_site(client_as, dataset):
    response = client_as("pi").get(model_url("versions/new/"),
                                    HTTP_REFERER="https://evil.example/phish")
    assert response.status_code == 302 and response["Location"] == "/models/"


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_refuses_a_register_post_from_read_only_members(client_as, dataset, name):
    response = client_as(name).post(model_url("versions/new/"), version_form(dataset),
                                    follow=True)
    assert_refused(response, message="You lack the 'register_version' permission")
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_the_register_form_to_others(client_as, dataset, name):
    client = client_as(name)
    assert_404(client.get(model_url("versions/new/")))
    assert_404(client.post(model_url("versions/new/"), version_form(dataset)))
    assert not ModelVersion.objects.exists()


# -- version edit -----------------------------------------------------------------------------------

def test_it_shows_the_edit_form_filled_in(client_as, version):
    response = client_as("owner").get(version_url("edit/"))
    assert response.status_code == 200
    body = text(response)
    assert 'value="0.8"' in body  # the default threshold
    assert '"mean radius"' in body  # the input schema as JSON
    assert "Intended use: triage." in body


def _edit_form(version, **changes) -> dict:
    form = {"description": version.description, "confidence_threshold": version.confidence_threshold,
            "ood_policy": version.ood_policy, "code_reference": version.code_reference,
            "input_schema": json.dumps(version.input_schema),
            "hyperparameters": json.dumps(version.hyperparameters),
            "metrics": json.dumps(version.metrics), "model_card": version.model_card,
            "runbook": version.runbook}
    form.update(changes)
    return form


def test_it_saves_a_draft_edit(client_as, version):
    before = version.content_hash
    response = client_as("owner").post(version_url("edit/"), _edit_form(
        version, confidence_threshold="0.65", runbook="Roll back to v0."), follow=True)
    assert response.redirect_chain == [(version_url(), 302)]
    version.refresh_from_db()
    assert version.confidence_threshold == 0.65 and version.runbook == "Roll back to v0."
    assert version.content_hash != before
    [message] = flashes(response)
    assert message == f"Draft saved. New content hash {version.content_hash[:12]}…"
    assert AuditEvent.objects.filter(action=Action.VERSION_UPDATED, actor_username="owner").exists()


def test_it_says_so_when_an_edit_changes_nothing(client_as, version):
    response = client_as("owner").post(version_url("edit/"), _edit_form(version), follow=True)
    assert flashes(response) == ["Nothing changed."]


def test_it_shows_edit_errors_next_to_the_fields(client_as, version):
    schema = [dict(f) for f in version.input_schema]
    schema[1].update(min=50, max=10)
    response = client_as("owner").post(version_url("edit/"), _edit_form(
        version, input_schema=json.dumps(schema), confidence_threshold="1.5"))
    assert response.status_code == 200
    assert field_errors(response, "confidence_threshold")
    response = client_as("owner").post(version_url("edit/"), _edit_form(
        version, input_schema=json.dumps(schema)))
    assert response.status_code == 200
    assert any("greater than max" in e for e in field_errors(response, "input_schema"))
    before = version.content_hash
    version.refresh_from_db()
    assert version.content_hash == before


def test_it_refuses_to_edit_a_submitted_version(client_as, version):
    client = client_as("owner")
    client.post(version_url("submit/"), follow=True)  # follow: consume its flash message
    response = client.get(version_url("edit/"), follow=True)
    assert response.redirect_chain == [(version_url(), 302)]
    assert flashes(response) == ["Version 1 is in review: its content is frozen."]
    response = client.post(version_url("edit/"), _edit_form(version, runbook="late"), follow=True)
    assert flashes(response) == ["Version 1 is in review: its content is frozen."]
    version.refresh_from_db()
    assert version.runbook == ""


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_refuses_the_edit_form_to_read_only_members(client_as, version, name):
    client = client_as(name)
    response = client.get(version_url("edit/"), follow=True)
    assert_refused(response, message="You lack the 'edit_draft' permission")
    response = client.post(version_url("edit/"), _edit_form(version, runbook="x"), follow=True)
    assert_refused(response, message="You lack the 'edit_draft' permission")
    version.refresh_from_db()
    assert version.runbook == ""


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_the_edit_form_to_others(client_as, version, name):
    client = client_as(name)
    assert_404(client.get(version_url("edit/")))
    assert_404(client.post(version_url("edit/"), _edit_form(version, runbook="x")))


# -- version submit ---------------------------------------------------------------------------------

def test_it_submits_a_draft_for_review(client_as, version):
    response = client_as("owner").post(version_url("submit/"), follow=True)
    assert response.redirect_chain == [(version_url(), 302)]
    version.refresh_from_db()
    assert version.state == "in_review" and version.submitted_by.username == "owner"
    [message] = flashes(response)
    assert message == (f"Version 1 submitted for review. Content hash {version.content_hash} "
                       "is now fixed.")
    body = text(response)
    assert "In review" in body and "Submit for review" not in body and "Edit draft" not in body


def test_it_says_why_a_second_submit_is_refused(client_as, version):
    client = client_as("owner")
    client.post(version_url("submit/"), follow=True)
    response = client.post(version_url("submit/"), follow=True)
    assert response.redirect_chain == [(version_url(), 302)]
    [message] = flashes(response)
    assert "in_review" in message or "in review" in message.lower()


def test_it_refuses_submit_by_get(client_as, version):
    assert client_as("owner").get(version_url("submit/")).status_code == 405


def test_it_refuses_a_submit_without_the_csrf_token(client_as, version):
    response = client_as("owner", enforce_csrf_checks=True).post(version_url("submit/"))
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.state == "draft"


@pytest.mark.parametrize("name", READ_ONLY)
def test_it_refuses_submit_from_read_only_members_and_records_it(client_as, version, name):
    response = client_as(name).post(version_url("submit/"), follow=True)
    assert_refused(response, message="You lack the 'submit_version' permission on sepsis-risk")
    version.refresh_from_db()
    assert version.state == "draft"
    assert AuditEvent.objects.filter(action=Action.PERMISSION_DENIED, actor_username=name).exists()


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_submit_to_others(client_as, version, name):
    assert_404(client_as(name).post(version_url("submit/")))
    version.refresh_from_db()
    assert version.state == "draft"


# -- artifact download ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("owner", "admin", "pi", "auditor"))
def test_it_downloads_the_artifact_for_those_allowed(client_as, version, name):
    response = client_as(name).get(version_url("artifact/"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="sepsis-risk-v1.skops"'
    assert hashlib.sha256(response.content).hexdigest() == version.artifact_sha256
    assert AuditEvent.objects.filter(action=Action.ARTIFACT_DOWNLOADED,
                                     actor_username=name).exists()


@pytest.mark.parametrize("name", ("irb", "clinician", "reviewer"))
def test_it_refuses_the_artifact_to_members_without_download(client_as, version, name):
    response = client_as(name).get(version_url("artifact/"), follow=True)
    assert_refused(response, message="You lack the 'download_artifact' permission")


@pytest.mark.parametrize("name", HIDDEN)
def test_it_answers_404_for_the_artifact_to_others(client_as, version, name):
    assert_404(client_as(name).get(version_url("artifact/")))
