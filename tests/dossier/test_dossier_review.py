"""The IRB signs a compliance dossier (issue 19): ``irb_dossier_review``, re-authenticated
like every signature, bound to the dossier's sha256 and the version's content hash,
audited with it; shown on the dossier's page, the version page and later dossiers'
sign-off manifests; reconciled with its event. It does not approve a release."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from audits.models import Action, AuditEvent
from audits.reconcile import reconcile
from audits.triggers import run as run_triggers
from core.errors import Conflict, ValidationFailed
from dossier.models import Dossier, DossierStatus
from dossier.services import dossier_build, dossier_request, dossier_review_sign
from registry import release
from registry.models import Signature, VersionState
from registry.selectors import production_at
from registry.storage import artifact_storage

from ..conftest import api_as
from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version
from .helpers import (
    CARD,
    RUNBOOK,
    pdf_text,
    scripted_history,
    stand_in_dossier,
    version_missing_irb,
)

pytestmark = pytest.mark.django_db

MEANING = "irb_dossier_review"


def _built(version, user) -> Dossier:
    """A real dossier of ``version``, rendered and stored (the job run here)."""
    dossier = dossier_request(user=user, version=version)
    assert dossier_build(dossier_id=dossier.pk) == DossierStatus.COMPLETED
    return Dossier.objects.select_related("version__model").get(pk=dossier.pk)


def _sign(user, dossier, **body):
    return api_as(user).post(f"/api/v1/dossiers/{dossier.public_id}/signoffs/",
                             {"decision": "approve", "password": PASSWORD, **body},
                             format="json")


def _codes(response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


@pytest.fixture
def submitted(personas):
    """A version in review: the PI approved, the IRB has not signed irb_approval yet."""
    return version_missing_irb(personas, irb_decision=None)


# -- signing ----------------------------------------------------------------------------------

def test_the_irb_signs_a_dossier_bound_to_its_sha256(personas):
    version = scripted_history(personas, predictions=3)
    dossier = _built(version, personas.owner)
    response = _sign(personas.irb, dossier, comment="read in full",
                     sha256=dossier.sha256, content_hash=version.content_hash)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sha256"] == dossier.sha256 and body["content_hash"] == version.content_hash
    [row] = body["signatures"]
    assert row["meaning"] == MEANING and row["status"] == "approve" and row["signer"] == "irb"
    assert row["covers"] == "document"
    assert row["document"] == {"type": "dossier", "ref": str(dossier.public_id),
                               "sha256": dossier.sha256,
                               "url": f"/dossiers/{dossier.public_id}/"}

    sig = Signature.objects.get(meaning=MEANING)
    assert (sig.document_sha256, sig.document_ref) == (dossier.sha256, str(dossier.public_id))
    assert sig.content_hash == version.content_hash and sig.role == "irb"
    assert sig.printed_name == "Irb Test" and sig.comment == "read in full"
    event = AuditEvent.objects.filter(action=Action.SIGNOFF_RECORDED,
                                      version_id=version.pk).order_by("-seq").first()
    assert event.after["meaning"] == MEANING and event.actor_username == "irb"
    assert event.after["document_sha256"] == dossier.sha256
    assert event.after["document_ref"] == str(dossier.public_id)
    assert event.after["content_hash"] == version.content_hash
    assert event.details == {"signature_id": sig.pk}
    # A dossier review approves no release: the version stays where it was.
    version.refresh_from_db()
    assert version.state == VersionState.PRODUCTION
    approvals = production_at(model=personas.model, when=timezone.now())["approvals"]
    assert sorted(a["meaning"] for a in approvals) == ["irb_approval", "pi_approval"]
    assert reconcile().ok


def test_a_later_dossier_lists_the_review_and_the_hash_it_covers(personas):
    version = scripted_history(personas, predictions=3)
    first = _built(version, personas.owner)
    assert not [r for r in first.snapshot["signoffs"] if r["meaning"] == MEANING]
    dossier_review_sign(user=personas.irb, dossier=first, decision="approve", password=PASSWORD)
    later = _built(version, personas.owner)
    [row] = [r for r in later.snapshot["signoffs"] if r["meaning"] == MEANING]
    assert row["document"]["sha256"] == first.sha256 and not row["required"]
    text = api_as(personas.irb).get(f"/api/v1/dossiers/{later.public_id}/pdf/").content
    squashed = "".join(pdf_text(text).split())
    assert f"dossiersha256{first.sha256},ofcontenthash{version.content_hash}" in squashed
    # the release sign-offs still state the content hash they cover
    assert f"contenthash{version.content_hash}" in squashed
    # the review is a release event of the version, named with the dossier it covers
    assert f"{MEANING}approveofdossier{first.sha256[:16]}" in squashed


def test_a_wrong_password_is_refused_and_recorded(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    response = _sign(personas.irb, dossier, password="not-it")
    assert response.status_code == 400 and _codes(response) == ["wrong_password"]
    assert not Signature.objects.filter(meaning=MEANING).exists()
    failed = AuditEvent.objects.get(action=Action.SIGNOFF_PASSWORD_FAILED)
    assert failed.details["document_sha256"] == dossier.sha256
    assert failed.details["meaning"] == MEANING and failed.actor_username == "irb"


def test_a_rejection_needs_a_reason_like_every_signoff(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    response = _sign(personas.irb, dossier, decision="reject")
    assert response.status_code == 400 and _codes(response) == ["required"]
    response = _sign(personas.irb, dossier, decision="reject",
                     comment="the override analysis omits the night shift")
    assert response.status_code == 201
    assert response.json()["signatures"][0]["status"] == "reject"
    # rejecting the dossier rejects no release either
    submitted.refresh_from_db()
    assert submitted.state == VersionState.IN_REVIEW


@pytest.mark.parametrize("who, status", [
    ("pi", 403), ("owner", 403), ("admin", 403), ("auditor", 403),
    # those who may not read the version's dossiers do not learn it exists
    ("clinician", 404), ("reviewer", 404), ("viewer_other", 404), ("outsider", 404)])
def test_only_the_irb_signs(personas, submitted, who, status):
    dossier = stand_in_dossier(submitted, personas.owner)
    response = _sign(personas.get(who), dossier)
    assert response.status_code == status, response.content
    assert not Signature.objects.filter(meaning=MEANING).exists()
    if status == 403 and who == "pi":
        assert "irb" in response.json()["errors"][0]["message"]


def test_anonymous_is_401(personas, submitted, api):
    dossier = stand_in_dossier(submitted, personas.owner)
    response = api.post(f"/api/v1/dossiers/{dossier.public_id}/signoffs/",
                        {"decision": "approve", "password": PASSWORD}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("status", [DossierStatus.QUEUED, DossierStatus.RUNNING,
                                    DossierStatus.FAILED])
def test_a_dossier_not_completed_is_refused(personas, submitted, status):
    dossier = stand_in_dossier(submitted, personas.owner, status=status)
    response = _sign(personas.irb, dossier)
    assert response.status_code == 409 and _codes(response) == ["not_completed"]


def test_a_dossier_whose_stored_bytes_changed_is_refused(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    store = artifact_storage()  # local files or S3: through the storage API
    store.delete(dossier.storage_key)
    store.save(dossier.storage_key, ContentFile(b"%PDF-1.7 review stand-iX"))
    response = _sign(personas.irb, dossier)
    assert response.status_code == 409 and _codes(response) == ["dossier_changed"]
    assert not Signature.objects.filter(meaning=MEANING).exists()
    assert not AuditEvent.objects.filter(action=Action.SIGNOFF_PASSWORD_FAILED).exists()
    # the refusal is itself evidence: who tried, what was refused, both hashes
    event = AuditEvent.objects.get(action=Action.DOSSIER_INTEGRITY_FAILED)
    assert event.actor_username == "irb" and event.version_label == submitted.label
    assert event.details["refused"] == "sign"
    assert event.details["expected_sha256"] == dossier.sha256
    assert event.details["actual_sha256"] == hashlib.sha256(b"%PDF-1.7 review stand-iX").hexdigest()


@pytest.mark.parametrize("path, refused", [("pdf", "download"), ("evidence", "evidence")])
def test_a_changed_dossier_is_not_downloaded_and_the_refusal_is_audited(personas, submitted,
                                                                        path, refused):
    dossier = stand_in_dossier(submitted, personas.owner)
    store = artifact_storage()
    store.delete(dossier.storage_key)
    store.save(dossier.storage_key, ContentFile(b"%PDF-1.7 something else"))
    response = api_as(personas.auditor).get(f"/api/v1/dossiers/{dossier.public_id}/{path}/")
    assert response.status_code == 409 and _codes(response) == ["dossier_changed"]
    assert not AuditEvent.objects.filter(action=Action.DOSSIER_DOWNLOADED).exists()
    event = AuditEvent.objects.get(action=Action.DOSSIER_INTEGRITY_FAILED)
    assert event.actor_username == "auditor" and event.details["refused"] == refused


def test_a_dossier_of_another_version_or_content_is_refused(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    other = register_version(personas.owner, personas.model, submitted.dataset)
    with pytest.raises(Conflict) as refused:
        dossier_review_sign(user=personas.irb, dossier=dossier, version=other,
                            decision="approve", password=PASSWORD)
    assert refused.value.items[0].code == "other_version"
    # the sha256 or content hash the signer read must be the dossier's and the version's
    assert _codes(_sign(personas.irb, dossier, sha256="0" * 64)) == ["hash_mismatch"]
    assert _codes(_sign(personas.irb, dossier, content_hash="0" * 64)) == ["hash_mismatch"]
    # a dossier rendered from other content (a draft since changed) states other evidence
    stale = stand_in_dossier(submitted, personas.owner, data=b"%PDF-1.7 stale",
                      content_hash="f" * 64)
    response = _sign(personas.irb, stale)
    assert response.status_code == 409 and _codes(response) == ["stale_dossier"]
    assert not Signature.objects.filter(meaning=MEANING).exists()


def test_a_dossier_of_an_unsubmitted_version_is_refused(personas):
    draft = register_version(personas.owner, personas.model, register_dataset(personas.owner),
                             model_card=CARD, runbook=RUNBOOK)
    dossier = stand_in_dossier(draft, personas.owner)
    response = _sign(personas.irb, dossier)
    assert response.status_code == 409 and _codes(response) == ["not_submitted"]


def test_one_signature_per_irb_member_per_dossier(personas, submitted):
    first = stand_in_dossier(submitted, personas.owner, data=b"%PDF-1.7 first")
    second = stand_in_dossier(submitted, personas.owner, data=b"%PDF-1.7 second")
    assert _sign(personas.irb, first).status_code == 201
    again = _sign(personas.irb, first)
    assert again.status_code == 409 and _codes(again) == ["already_signed"]
    # another dossier of the version can be signed: it is another document
    assert _sign(personas.irb, second).status_code == 201
    assert Signature.objects.filter(meaning=MEANING).count() == 2


def test_the_review_neither_counts_towards_nor_bars_the_release_signoff(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    dossier_review_sign(user=personas.irb, dossier=dossier, decision="approve",
                        password=PASSWORD)
    submitted.refresh_from_db()
    assert submitted.state == VersionState.IN_REVIEW  # irb_approval is still missing
    assert release.signable_meanings(user=personas.irb, version=submitted) == ["irb_approval"]
    release.signoff_record(user=personas.irb, version=submitted, meaning="irb_approval",
                           decision="approve", password=PASSWORD)
    submitted.refresh_from_db()
    assert submitted.state == VersionState.APPROVED


def test_the_meaning_is_no_release_signoff(personas, submitted):
    with pytest.raises(ValidationFailed) as refused:
        release.signoff_record(user=personas.irb, version=submitted, meaning=MEANING,
                               decision="approve", password=PASSWORD)
    assert refused.value.items[0].code == "document_meaning"
    with pytest.raises(ValidationFailed) as refused:
        release.release_policy_update(user=personas.admin, model=personas.model,
                                      required_signoffs=["pi_approval", MEANING])
    assert refused.value.items[0].code == "document_meaning"


# -- pages ------------------------------------------------------------------------------------

def test_the_dossier_page_lists_signatures_and_offers_the_irb_a_form(personas, submitted,
                                                                    client_as):
    dossier = stand_in_dossier(submitted, personas.owner)
    page = f"/dossiers/{dossier.public_id}/"
    sign = f"/dossiers/{dossier.public_id}/sign/"
    html = client_as("irb").get(page).content.decode()
    assert f'action="{sign}"' in html and "csrfmiddlewaretoken" in html
    assert 'type="password"' in html and "No one has signed this dossier." in html
    for who in ("pi", "auditor", "owner"):  # readers who may not sign see no form
        other = client_as(who).get(page).content.decode()
        assert f'action="{sign}"' not in other

    # the form needs the CSRF token
    strict = client_as("irb", enforce_csrf_checks=True)
    assert strict.post(sign, {"decision": "approve", "password": PASSWORD}).status_code == 403

    fields = {"decision": "approve", "password": PASSWORD, "comment": "",
              "sha256": dossier.sha256, "content_hash": submitted.content_hash}
    wrong = client_as("irb").post(sign, {**fields, "password": "nope"})
    assert wrong.status_code == 200
    assert "The password is not correct" in wrong.content.decode()
    signed = client_as("irb").post(sign, fields)
    assert signed.status_code == 302 and signed["Location"] == page
    html = client_as("irb").get(page).content.decode()
    assert MEANING in html and "Irb Test (irb)" in html
    assert f"dossier {dossier.sha256[:12]}" in html
    assert 'action="{sign}"' not in html and "You have signed this dossier" in html
    # signed once: tried again, the refusal is stated above the form
    again = client_as("irb").post(sign, fields).content.decode()
    assert "You have already signed" in again
    # a reader who may not sign is sent back with the reason
    denied = client_as("pi").post(sign, fields, HTTP_REFERER=f"http://testserver{page}")
    assert denied.status_code == 302 and denied["Location"] == f"http://testserver{page}"
    assert client_as("clinician").post(sign, fields).status_code == 404


def test_the_version_page_says_which_hash_each_signature_covers(personas, submitted,
                                                                client_as):
    dossier = stand_in_dossier(submitted, personas.owner)
    dossier_review_sign(user=personas.irb, dossier=dossier, decision="approve",
                        password=PASSWORD)
    html = client_as("pi").get(
        f"/models/{personas.model.name}/versions/{submitted.number}/").content.decode()
    assert f"content hash {submitted.content_hash[:16]}" in html  # pi_approval
    assert f'<a href="/dossiers/{dossier.public_id}/"' in html
    assert f"dossier {dossier.sha256[:12]}" in html
    assert "Hash covered" in html


# -- the reconciler ---------------------------------------------------------------------------

def _behind_the_apps_back(sql: str, params) -> None:
    run_triggers(connection, install=False, table="registry_signature")
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        run_triggers(connection, install=True, table="registry_signature")


def test_the_reconciler_catches_an_edited_document_sha256(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    sig = dossier_review_sign(user=personas.irb, dossier=dossier, decision="approve",
                              password=PASSWORD)
    assert reconcile().ok
    # pointed at another document, as if the IRB had signed that one
    _behind_the_apps_back("UPDATE registry_signature SET document_sha256 = %s WHERE id = %s",
                          ("e" * 64, sig.pk))
    [finding] = reconcile().findings
    assert finding.object_id == str(sig.pk)
    assert f"document sha256 '{'e' * 64}' but the event recorded '{dossier.sha256}'" \
        in finding.problem
    # cleared, so it passes for a release sign-off: still paired with its event, named
    _behind_the_apps_back("UPDATE registry_signature SET document_sha256 = '' WHERE id = %s",
                          (sig.pk,))
    [finding] = reconcile().findings
    assert f"but the event recorded '{dossier.sha256}'" in finding.problem


def test_the_reconciler_names_a_review_without_its_row(personas, submitted):
    dossier = stand_in_dossier(submitted, personas.owner)
    sig = dossier_review_sign(user=personas.irb, dossier=dossier, decision="approve",
                              password=PASSWORD)
    _behind_the_apps_back("DELETE FROM registry_signature WHERE id = %s", (sig.pk,))
    [finding] = reconcile().findings
    assert f"records '{MEANING}' by irb, but no signature row holds it" in finding.problem
