"""Every HTML page of the portal, per persona: allowed, read-only, hidden, anonymous.

Pages answer 404 to people who may not see the model (its existence does not
leak), send read-only members back with a message when they try to write, and
send anonymous visitors to the sign-in page.
"""

from __future__ import annotations

import hashlib
import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audits.models import Action, AuditEvent
from profiling import profile_file
from registry.models import DatasetVersion, ModelAccessGrant, ModelVersion, RegisteredModel
from registry.roles import ModelRole

from ..artifacts import FEATURES_SMALL, logistic_model, pickle_bytes, skops_bytes, training_csv
from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version

pytestmark = pytest.mark.django_db

MODEL = "sepsis-risk"
# Members of the model who may look but not register, edit or submit.
READ_ONLY = ("auditor", "pi", "irb", "clinician", "reviewer")
# Signed in, but with no role on the model: it must look as if it did not exist.
HIDDEN = ("viewer_other", "outsider")
WRITERS = ("owner", "admin")


# -- helpers ------------------------------------------------------------------------------------

@pytest.fixture
def client_as(personas):
    def make(name: str, **kwargs) -> Client:
        client = Client(**kwargs)
        client.force_login(personas.get(name))
        return client

    return make


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


@pytest.fixture
def version(personas, dataset):
    return register_version(
        personas.owner, personas.model, dataset, model_card="# Card\n\nIntended use: triage.",
        metrics={"overall": {"auc": 0.97}})


def model_url(suffix: str = "") -> str:
    return f"/models/{MODEL}/{suffix}"


def version_url(suffix: str = "", number: int = 1) -> str:
    return f"/models/{MODEL}/versions/{number}/{suffix}"


def text(response) -> str:
    return html.unescape(response.content.decode())


def flashes(response) -> list[str]:
    """The flash messages rendered on a page (after following a redirect)."""
    return [html.unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(
        r'<li class="msg msg-[a-z]+">(.*?)</li>', response.content.decode(), re.S)]


def field_errors(response, name: str) -> list[str]:
    """Error messages rendered inside the form row of field ``name`` (so: next to it)."""
    page = response.content.decode()
    rows = re.split(r'(?=<div class="field[ "])', page)
    row = next((r for r in rows if f'id="id_{name}"' in r), None)
    assert row is not None, f"no form row for {name}"
    row = row.split("</div>", 1)[0]
    return [html.unescape(e) for e in re.findall(r'<p class="error"[^>]*>(.*?)</p>', row, re.S)]


def assert_404(response) -> None:
    assert response.status_code == 404
    assert "Not found" in text(response)


def assert_refused(response, *, message: str) -> None:
    """Read-only members are sent back with an error message, not shown a 500 or the form."""
    assert response.redirect_chain, "expected a redirect"
    assert response.status_code == 200
    assert any(message in m for m in flashes(response)), flashes(response)


def version_form(dataset, *, data: bytes | None = None, name: str = "model.skops", **fields):
    form = {"artifact": SimpleUploadedFile(name, data or skops_bytes(logistic_model())),
            "dataset": str(dataset.pk), "features": "\n".join(FEATURES_SMALL),
            "confidence_threshold": "0.7", "ood_policy": "review"}
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def dataset_form(**fields) -> dict:
    form = {"name": "icu-cohort", "version": "2025.1", "source": "ICU registry, site B",
            "inclusion_criteria": "adults", "date_start": "2021-01-01", "date_end": "2024-06-30",
            "protocol_number": "IRB-2025-007", "deidentification": "Expert determination"}
    form.update(fields)
    return form


def ragged_csv() -> bytes:
    return b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n"


# -- anonymous visitors ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/", "/models/", "/models/new/", model_url(), model_url("versions/new/"), version_url(),
    version_url("edit/"), version_url("artifact/"), "/datasets/", "/datasets/new/",
    "/datasets/1/", "/audit/verify/",
])
def test_it_sends_anonymous_visitors_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_it_sends_an_anonymous_submit_to_sign_in_and_changes_nothing(client, personas, version):
    response = client.post(version_url("submit/"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    version.refresh_from_db()
    assert version.state == "draft"


def test_it_answers_healthz_without_signing_in(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    from django.db import connection

    assert response.json() == {"status": "ok", "database": connection.vendor}
    assert "no-cache" in response["Cache-Control"]
    assert client.post("/healthz/").status_code == 405


def test_it_serves_the_api_docs_to_signed_in_users(client, personas):
    assert client.get("/api/docs/").status_code == 401
    assert client.get("/api/schema/").status_code == 401
    client.force_login(personas.clinician)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert "swagger" in text(response).lower()
    assert client.get("/api/schema/").status_code == 200


# -- sign in ----------------------------------------------------------------------------------------

def test_it_shows_the_sign_in_form(client):
    response = client.get("/login/")
    assert response.status_code == 200
    body = text(response)
    assert 'name="username"' in body and 'name="password"' in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_it_signs_in_and_follows_next(client, personas):
    response = client.post("/login/", {"username": "owner", "password": PASSWORD,
                                       "next": model_url()})
    assert response.status_code == 302 and response["Location"] == model_url()
    assert client.get(model_url()).status_code == 200


def test_it_signs_in_from_the_bare_login_page_and_lands_on_the_dashboard(client, personas):
    # The form's hidden "next" is what the page rendered: the bare /login/ (where sign-out
    # lands) renders a default rather than leaving the redirect to settings.
    form = text(client.get("/login/"))
    next_value = re.search(r'name="next" value="([^"]*)"', form).group(1)
    response = client.post("/login/", {"username": "owner", "password": PASSWORD,
                                       "next": next_value}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert "Awaiting your sign-off" in text(response)


def test_it_sends_a_signed_in_user_from_the_login_page_to_the_dashboard(client_as):
    response = client_as("owner").get("/login/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"


def test_it_refuses_a_wrong_password_with_a_message(client, personas):
    response = client.post("/login/", {"username": "owner", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text(response)
    assert "_auth_user_id" not in client.session


def test_it_refuses_sign_in_without_the_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "owner", "password": PASSWORD})
    assert response.status_code == 403


def test_it_signs_out_with_post_only(client_as):
    client = client_as("owner")
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/models/").status_code == 302


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


# -- audit verify -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("admin", "auditor", "owner", "pi", "irb"))
def test_it_verifies_the_audit_chain_for_those_with_view_audit(client_as, version, name):
    response = client_as(name).get("/audit/verify/")
    assert response.status_code == 200
    body = text(response)
    assert "The hash chain is intact" in body
    checked = AuditEvent.objects.count()
    assert f"{checked} events checked" in body


@pytest.mark.parametrize("name", ("clinician", "reviewer") + HIDDEN)
def test_it_refuses_the_audit_page_without_view_audit(client_as, name):
    response = client_as(name).get("/audit/verify/", follow=True)
    assert_refused(response, message="needs the view_audit permission")
    assert response.redirect_chain[-1][0] == "/"


# -- error pages ----------------------------------------------------------------------------------

def test_it_renders_the_404_page_in_the_layout(client_as):
    response = client_as("owner").get("/no/such/page/")
    assert_404(response)
    assert 'class="topbar"' in text(response) and "Back to your models" in text(response)

