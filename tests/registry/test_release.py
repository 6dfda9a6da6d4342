from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from registry.models import ModelVersion, Signature

from ..conftest import api_as
from ..personas import PASSWORD
from .helpers import register_dataset, register_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


def _url(personas, n, suffix=""):
    return f"/api/v1/models/{personas.model.name}/versions/{n}/{suffix}"


def _submit(personas, dataset, **metadata):
    version = register_version(personas.owner, personas.model, dataset, **metadata)
    response = api_as(personas.owner).post(_url(personas, version.number, "submit/"))
    assert response.status_code == 200, response.json()
    return ModelVersion.objects.get(pk=version.pk)


def _sign(personas, who, n, meaning, decision="approve", password=PASSWORD, **extra):
    return api_as(personas.get(who)).post(_url(personas, n, "signoffs/"), {
        "meaning": meaning, "decision": decision, "password": password,
        "comment": extra.pop("comment", "Reviewed."), **extra}, format="json")


def _release(personas, dataset, **metadata) -> ModelVersion:
    version = _submit(personas, dataset, **metadata)
    assert _sign(personas, "pi", version.number, "pi_approval").status_code == 201
    assert _sign(personas, "irb", version.number, "irb_approval").status_code == 201
    response = api_as(personas.owner).post(_url(personas, version.number, "promote/"))
    assert response.status_code == 200, response.json()
    return ModelVersion.objects.get(pk=version.pk)


def test_the_full_lifecycle_through_the_api(personas, dataset):
    v1 = _release(personas, dataset)
    assert v1.state == "production"
    v2 = _submit(personas, dataset, confidence_threshold=0.7)
    assert _sign(personas, "pi", 2, "pi_approval").json()["state"] == "in_review"
    signed = _sign(personas, "irb", 2, "irb_approval").json()
    assert signed["state"] == "approved"
    manifest = {row["meaning"]: row for row in signed["manifest"]}
    assert manifest["pi_approval"]["signer"] == "pi" and manifest["pi_approval"]["role"] == "approver"
    assert manifest["irb_approval"]["content_hash"] == v2.content_hash
    assert all(row["bound_to_current_content"] for row in signed["manifest"])
    promoted = api_as(personas.owner).post(_url(personas, 2, "promote/")).json()
    assert promoted["state"] == "production"
    assert ModelVersion.objects.get(pk=v1.pk).state == "superseded"
    model = api_as(personas.clinician).get(f"/api/v1/models/{personas.model.name}/").json()
    assert model["production_version"] == 2
    rolled = api_as(personas.owner).post(f"/api/v1/models/{personas.model.name}/rollback/", {
        "to_version": 1, "reason": "v2 over-triggers in the ED pilot"}, format="json")
    assert rolled.status_code == 200 and rolled.json()["state"] == "production"
    assert ModelVersion.objects.get(pk=v2.pk).state == "superseded"
    event = AuditEvent.objects.filter(action=Action.VERSION_ROLLED_BACK).get()
    assert event.reason == "v2 over-triggers in the ED pilot" and event.actor == personas.owner
    assert verify_chain().ok


def test_a_rejection_ends_the_review(personas, dataset):
    _submit(personas, dataset)
    response = _sign(personas, "irb", 1, "irb_approval", decision="reject",
                     comment="Consent does not cover this use.")
    assert response.json()["state"] == "rejected"
    again = _sign(personas, "pi", 1, "pi_approval")
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "not_in_review"
    assert api_as(personas.owner).post(_url(personas, 1, "promote/")).status_code == 409


def test_a_rejection_needs_a_reason(personas, dataset):
    _submit(personas, dataset)
    response = _sign(personas, "irb", 1, "irb_approval", decision="reject", comment="")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "comment"


def test_a_wrong_password_is_refused_and_audited(personas, dataset):
    _submit(personas, dataset)
    response = _sign(personas, "pi", 1, "pi_approval", password="not-my-password")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {"field": "password", "code": "wrong_password",
                                            "message": "The password is not correct. Signing "
                                                       "needs your own password."}
    assert not Signature.objects.exists()
    assert AuditEvent.objects.filter(action=Action.SIGNOFF_PASSWORD_FAILED,
                                     actor=personas.pi).count() == 1


def test_wrong_sign_off_passwords_lock_signing_and_sign_in_alike(personas, dataset, settings,
                                                                client):
    """Guessing a password through the sign-off form counts toward the sign-in lock."""
    settings.ATTEST_LOGIN_MAX_FAILURES = 3
    _submit(personas, dataset)
    for _ in range(3):
        assert _sign(personas, "pi", 1, "pi_approval", password="guess").status_code == 400
    response = _sign(personas, "pi", 1, "pi_approval")  # even the right password now
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response.json()["errors"][0]["code"] == "locked"
    assert response.json()["retry_after"] == int(response["Retry-After"])
    assert not Signature.objects.exists()
    assert AuditEvent.objects.filter(action=Action.LOGIN_THROTTLED, actor=personas.pi,
                                     details__during="signoff").count() == 1
    # ... and signing in with the right password is refused too, for the same window.
    assert not client.login(username=personas.pi.username, password=PASSWORD)
    # Another signer is not affected.
    assert _sign(personas, "irb", 1, "irb_approval").status_code == 201


def test_signing_the_same_meaning_twice_is_refused(personas, dataset):
    _submit(personas, dataset, )
    assert _sign(personas, "pi", 1, "pi_approval").status_code == 201
    response = _sign(personas, "pi", 1, "pi_approval")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "already_signed"


def test_signing_needs_the_role_for_the_meaning(personas, dataset):
    _submit(personas, dataset)
    response = _sign(personas, "irb", 1, "pi_approval")
    assert response.status_code == 403 and response.json()["errors"][0]["code"] == "wrong_role"
    assert _sign(personas, "clinician", 1, "pi_approval").status_code == 403
    assert _sign(personas, "outsider", 1, "pi_approval").status_code == 404
    unknown = _sign(personas, "pi", 1, "dsmb_approval")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["code"] == "unknown_meaning"


def test_drafts_and_rejected_versions_cannot_be_signed(personas, dataset):
    register_version(personas.owner, personas.model, dataset)
    response = _sign(personas, "pi", 1, "pi_approval")
    assert response.status_code == 409 and response.json()["state"] == "draft"


def test_the_signer_must_have_seen_the_current_hash(personas, dataset):
    _submit(personas, dataset)
    response = _sign(personas, "pi", 1, "pi_approval", content_hash="0" * 64)
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "hash_mismatch"


def test_nothing_about_a_submitted_version_changes_through_any_path(personas, dataset):
    version = _submit(personas, dataset)
    frozen = (version.content_hash, version.model_card, version.input_schema)
    client = api_as(personas.owner)
    for changes in ({"model_card": "x"}, {"input_schema": ["mean radius"]},
                    {"confidence_threshold": 0.1}, {"dataset": dataset.pk}):
        assert client.patch(_url(personas, 1), changes, format="json").status_code == 409
    from django.test import Client

    page = Client()
    page.force_login(personas.owner)
    page.post(f"/models/{personas.model.name}/versions/1/edit/", {
        "confidence_threshold": 0.1, "ood_policy": "reject", "model_card": "changed"})
    from core.errors import Conflict
    from registry.services import model_version_update

    with pytest.raises(Conflict):
        model_version_update(user=personas.owner, version=version, changes={"runbook": "x"})
    version.refresh_from_db()
    assert (version.content_hash, version.model_card, version.input_schema) == frozen


def test_signatures_are_append_only(personas, dataset):
    _submit(personas, dataset)
    _sign(personas, "pi", 1, "pi_approval")
    signature = Signature.objects.get()
    with pytest.raises(TypeError):
        signature.save()
    with pytest.raises(TypeError):
        Signature.objects.all().delete()
    from django.db import DatabaseError, connection, transaction

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("UPDATE registry_signature SET comment = 'forged'")


def test_only_approved_versions_are_promoted_and_rollback_needs_a_reason(personas, dataset):
    _submit(personas, dataset)
    response = api_as(personas.owner).post(_url(personas, 1, "promote/"))
    assert response.status_code == 409
    assert response.json()["state"] == "in_review"
    rollback = api_as(personas.owner).post(f"/api/v1/models/{personas.model.name}/rollback/",
                                           {"to_version": 1, "reason": " "}, format="json")
    assert rollback.status_code == 400
    rollback = api_as(personas.owner).post(f"/api/v1/models/{personas.model.name}/rollback/",
                                           {"to_version": 1, "reason": "bad"}, format="json")
    assert rollback.status_code == 409
    assert api_as(personas.pi).post(_url(personas, 1, "promote/")).status_code == 403


def test_shadow_runs_for_one_candidate_at_a_time(personas, dataset):
    _submit(personas, dataset)
    _submit(personas, dataset)
    client = api_as(personas.owner)
    assert client.post(_url(personas, 1, "shadow/")).json()["shadow"] is True
    busy = client.post(_url(personas, 2, "shadow/"))
    assert busy.status_code == 409 and busy.json()["errors"][0]["code"] == "shadow_busy"
    assert client.delete(_url(personas, 1, "shadow/")).json()["shadow"] is False
    assert client.post(_url(personas, 2, "shadow/")).status_code == 200
    draft = register_version(personas.owner, personas.model, dataset)
    assert client.post(_url(personas, draft.number, "shadow/")).status_code == 409
    assert api_as(personas.clinician).post(_url(personas, 2, "shadow/")).status_code == 403


def test_shadow_ends_when_the_version_is_promoted(personas, dataset):
    _submit(personas, dataset)
    api_as(personas.owner).post(_url(personas, 1, "shadow/"))
    _sign(personas, "pi", 1, "pi_approval")
    _sign(personas, "irb", 1, "irb_approval")
    promoted = api_as(personas.owner).post(_url(personas, 1, "promote/")).json()
    assert promoted["state"] == "production" and promoted["shadow"] is False


def test_signers_are_notified_and_see_it_on_their_dashboard(personas, dataset, django_capture_on_commit_callbacks):
    personas.pi.email = "pi@example.org"
    personas.pi.save()
    with django_capture_on_commit_callbacks(execute=True):
        _submit(personas, dataset)
    subjects = [m.subject for m in mail.outbox]
    assert any("awaits your pi_approval" in s for s in subjects)
    assert any("irb_approval" in s for s in subjects)
    from registry.selectors import versions_awaiting_signoff

    waiting = versions_awaiting_signoff(user=personas.pi)
    assert [(v.number, meanings) for v, meanings in waiting] == [(1, ["pi_approval"])]
    assert versions_awaiting_signoff(user=personas.owner) == []


def test_production_at_a_moment_comes_from_the_trail(personas, dataset):
    before = timezone.now()
    _release(personas, dataset)
    middle = timezone.now()
    _release(personas, dataset)
    url = f"/api/v1/models/{personas.model.name}/production/"
    client = api_as(personas.auditor)
    assert client.get(url, {"at": before.isoformat()}).json()["version"] is None
    then = client.get(url, {"at": middle.isoformat()}).json()
    assert then["version"] == "v1"
    assert {a["meaning"]: a["signer"] for a in then["approvals"]} == {
        "pi_approval": "pi", "irb_approval": "irb"}
    now = client.get(url).json()
    assert now["version"] == "v2" and now["by"] == "owner"
    assert client.get(url, {"at": "yesterday"}).status_code == 400


def test_retire_and_discard(personas, dataset):
    _release(personas, dataset)
    draft = register_version(personas.owner, personas.model, dataset)
    client = api_as(personas.owner)
    assert client.post(_url(personas, draft.number, "discard/")).json()["state"] == "discarded"
    retired = client.post(_url(personas, 1, "retire/"), {"reason": "study closed"}, format="json")
    assert retired.json()["state"] == "retired"
    assert api_as(personas.clinician).get(
        f"/api/v1/models/{personas.model.name}/").json()["production_version"] is None
    assert client.post(_url(personas, 1, "retire/")).status_code == 409


def test_the_service_layer_refuses_concurrent_promotes_by_constraint(personas, dataset):
    """Even bypassing the lock, the database keeps one production version."""
    from django.db import IntegrityError, transaction

    v1 = _release(personas, dataset)
    v2 = _submit(personas, dataset)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(state="production")
    assert ModelVersion.objects.filter(state="production").get().pk == v1.pk



def test_production_at_an_impossible_moment_is_a_400(personas, dataset):
    url = f"/api/v1/models/{personas.model.name}/production/"
    response = api_as(personas.auditor).get(url, {"at": "9999-12-31T23:59:59-23:59"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_date"
    assert response.json()["errors"][0]["field"] == "at"
    page = Client()
    page.force_login(personas.owner)
    shown = page.get(f"/models/{personas.model.name}/", {"at": "9999-12-31T23:59:59-23:59"})
    assert shown.status_code == 200 and b"outside the years 1 to 9999" in shown.content


def test_the_release_history_needs_view_audit_on_the_api_as_on_the_page(personas, dataset):
    """The trail-derived "in production at" answer follows the page's rule."""
    _release(personas, dataset)
    url = f"/api/v1/models/{personas.model.name}/production/"
    for who in ("admin", "auditor", "owner", "pi", "irb"):
        assert api_as(personas.get(who)).get(url).json()["version"] == "v1", who
    for who in ("clinician", "reviewer"):  # may view the model, not its trail
        response = api_as(personas.get(who)).get(url)
        assert response.status_code == 403, who
        assert response.json()["errors"][0]["code"] == "permission_denied"
        page = Client()
        page.force_login(personas.get(who))
        shown = page.get(f"/models/{personas.model.name}/", {"at": timezone.now().isoformat()})
        assert shown.status_code == 200 and shown.context["point_in_time"] is None
    for who in ("viewer_other", "outsider"):
        assert api_as(personas.get(who)).get(url).status_code == 404
