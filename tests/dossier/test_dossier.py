"""The compliance dossier: generated from live evidence, gaps said plainly, reproducible,
downloadable by those who may read the audit trail, every step an audit event."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from pypdf import PdfReader

from audits.models import Action, AuditEvent
from dossier import render
from dossier.evidence import evidence_snapshot, json_ready
from dossier.models import Dossier, DossierStatus
from dossier.services import dossier_build, dossier_request, dossiers_resume_stale
from inference.models import Prediction
from registry.models import ModelVersion

from ..conftest import api_as
from ..registry.helpers import register_dataset, register_version
from .helpers import RUNBOOK, pdf_text, scripted_history, version_missing_irb

pytestmark = pytest.mark.django_db


def _squashed(text: str) -> str:
    """The text without whitespace: a hash a table cell wraps is still one string."""
    return "".join(text.split())


def _generate(personas, version, capture, who="owner"):
    with capture(execute=True):
        response = api_as(personas.get(who)).post(
            f"/api/v1/models/{version.model.name}/versions/{version.number}/dossiers/")
    return response


def _snapshot(version) -> dict:
    return json_ready(evidence_snapshot(version=version, at=timezone.now()))


def _question(snapshot: dict, number: int) -> dict:
    return next(q for q in snapshot["questions"] if q["number"] == number)


def _item(snapshot: dict, name: str) -> dict:
    return next(i for i in snapshot["checklist"] if i["item"] == name)


# -- a whole dossier --------------------------------------------------------------------------

def test_it_generates_a_dossier_that_states_the_live_evidence(
        personas, django_capture_on_commit_callbacks):
    version = scripted_history(personas)
    response = _generate(personas, version, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and response["Location"] == body["links"]["self"]

    status = api_as(personas.owner).get(body["links"]["self"]).json()
    assert status["status"] == "completed", status
    assert status["progress"] == {"done": 3, "total": 3, "step": None}
    dossier = Dossier.objects.get(public_id=body["id"])
    assert status["sha256"] == dossier.sha256 and status["evidence_at"]
    assert status["chain_head"]["hash"] == dossier.chain_head_hash

    download = api_as(personas.auditor).get(status["links"]["pdf"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"].startswith("attachment;")
    data = download.content
    assert hashlib.sha256(data).hexdigest() == status["sha256"]

    text = pdf_text(data)
    squashed = _squashed(text)
    n_predictions = Prediction.objects.filter(version=version).count()
    assert f"{personas.model.name} v{version.number}" in text
    assert version.content_hash in squashed
    assert version.artifact_sha256 in squashed
    assert version.dataset.sha256 in squashed
    assert dossier.chain_head_hash in squashed
    assert "below 0.8 are routed" in text
    assert f"of {n_predictions} logged predictions were routed to review" in text
    assert "Reviewers overrode 1 of 2 decided reviews (override rate 50.0%)" in text
    assert "v2 under-calls sepsis in the night shift" in text  # the rollback's reason
    assert "1 rollback(s)" in text
    snapshot = dossier.snapshot
    assert [q["status"] for q in snapshot["questions"]] == ["answered"] * 5, [
        (q["number"], q["why"][:2]) for q in snapshot["questions"] if q["status"] != "answered"]
    assert _item(snapshot, "Institutional sign-off")["status"] == "answered"
    assert _item(snapshot, "The five questions answered")["status"] == "answered"
    # the OOD rows (out of range) are counted by code from the log
    assert _question(snapshot, 2)["evidence"]["ood_flags_by_code"].get("out_of_range", 0) >= 2
    # no monitoring run and no explanation figures exist: both say gap
    assert snapshot["monitoring"]["status"] == "gap"
    assert snapshot["explanations"]["status"] == "gap"
    assert "never been monitored" in text


def test_request_generation_and_download_are_audit_events(
        personas, django_capture_on_commit_callbacks):
    version = scripted_history(personas, predictions=3)
    body = _generate(personas, version, django_capture_on_commit_callbacks).json()
    dossier = Dossier.objects.get(public_id=body["id"])
    api_as(personas.irb).get(f"/api/v1/dossiers/{body['id']}/pdf/")
    events = {e.action: e for e in AuditEvent.objects.filter(
        object_type="dossier.dossier", object_id=str(dossier.pk))}
    assert set(events) == {Action.DOSSIER_REQUESTED, Action.DOSSIER_GENERATED,
                           Action.DOSSIER_DOWNLOADED}
    assert events[Action.DOSSIER_REQUESTED].actor_username == "owner"
    generated = events[Action.DOSSIER_GENERATED].details
    assert generated["sha256"] == dossier.sha256
    assert generated["chain_head_hash"] == dossier.chain_head_hash
    assert generated["evidence_at"] == dossier.snapshot["cover"]["evidence_at"]
    assert events[Action.DOSSIER_DOWNLOADED].actor_username == "irb"
    assert events[Action.DOSSIER_DOWNLOADED].version_id == version.pk


# -- gaps ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("irb_decision", ["reject", None])
def test_a_missing_irb_signoff_is_a_gap_in_q1_and_the_checklist(personas, irb_decision):
    version = version_missing_irb(personas, irb_decision=irb_decision)
    snapshot = _snapshot(version)
    q1 = _question(snapshot, 1)
    assert q1["status"] == "gap"
    word = "rejected" if irb_decision else "missing"
    assert f"Required sign-off irb_approval is {word}." in q1["why"]
    signoff = _item(snapshot, "Institutional sign-off")
    assert signoff["status"] == "gap" and "Not approved: irb_approval." in signoff["why"]
    assert _item(snapshot, "The five questions answered")["status"] == "gap"
    text = pdf_text(render.dossier_pdf(snapshot))
    assert f"Required sign-off irb_approval is {word}." in text
    assert "never in production" in text


def test_a_version_with_no_runbook_has_a_gap_in_q5(personas):
    dataset = register_dataset(personas.owner)
    version = register_version(personas.owner, personas.model, dataset, runbook="")
    snapshot = _snapshot(version)
    q5 = _question(snapshot, 5)
    assert q5["status"] == "gap" and "The version has no runbook." in q5["why"]
    assert _item(snapshot, "Retraining procedure")["status"] == "gap"
    assert _item(snapshot, "Redeploy runbook")["status"] == "gap"
    assert "The version has no runbook." in pdf_text(render.dossier_pdf(snapshot))


def test_a_runbook_without_retraining_is_a_gap_and_with_it_is_answered(personas):
    dataset = register_dataset(personas.owner)
    without = register_version(personas.owner, personas.model, dataset,
                               runbook="## Redeploy\nRoll back from the model page.\n")
    assert _question(_snapshot(without), 5)["status"] == "gap"
    with_it = register_version(personas.owner, personas.model, dataset, runbook=RUNBOOK)
    assert _question(_snapshot(with_it), 5)["status"] == "answered"


def test_a_model_card_that_never_names_the_cohort_is_a_gap(personas):
    dataset = register_dataset(personas.owner)
    version = register_version(personas.owner, personas.model, dataset,
                               model_card="# Card\n\nIntended use: triage.")
    item = _item(_snapshot(version), "Model card describes training cohort")
    assert item["status"] == "gap" and "It does not name sepsis-cohort." in item["why"]


# -- reproducible -------------------------------------------------------------------------------

def test_the_same_snapshot_renders_to_the_same_bytes(personas):
    version = version_missing_irb(personas, irb_decision="approve")
    snapshot = _snapshot(version)
    first = render.dossier_pdf(snapshot)
    second = render.dossier_pdf(json_ready(snapshot))
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    # ... and a different instant is a different document (the date is in the file)
    later = {**snapshot, "cover": {**snapshot["cover"], "evidence_at":
                                   "2031-01-02T03:04:05+00:00"}}
    again = render.dossier_pdf(later)
    assert again != first
    meta = PdfReader(io.BytesIO(again)).metadata
    assert meta.creation_date.isoformat() == "2031-01-02T03:04:05+00:00"
    assert meta.modification_date == meta.creation_date
    assert meta.title == f"Compliance dossier: {personas.model.name} v{version.number}"


# -- permissions --------------------------------------------------------------------------------

def test_who_may_generate_and_read_dossiers(personas, django_capture_on_commit_callbacks):
    version = scripted_history(personas, predictions=3)
    base = f"/api/v1/models/{personas.model.name}/versions/{version.number}/dossiers/"
    body = _generate(personas, version, django_capture_on_commit_callbacks).json()
    detail, pdf = f"/api/v1/dossiers/{body['id']}/", f"/api/v1/dossiers/{body['id']}/pdf/"
    for who in ("outsider", "viewer_other"):
        client = api_as(personas.get(who))
        assert client.post(base).status_code == 404
        assert client.get(base).status_code == 404
        assert client.get(detail).status_code == 404
        assert client.get(pdf).status_code == 404
    for who in ("clinician", "reviewer"):  # members without view_audit / generate_dossier
        client = api_as(personas.get(who))
        response = client.post(base)
        assert response.status_code == 403
        assert response.json()["errors"][0]["code"] == "permission_denied"
        assert client.get(base).status_code == 403
        assert client.get(detail).status_code == 404
        assert client.get(pdf).status_code == 404
    denied = AuditEvent.objects.filter(action=Action.PERMISSION_DENIED,
                                       details__capability="generate_dossier")
    assert set(denied.values_list("actor_username", flat=True)) == {"clinician", "reviewer"}
    for who in ("auditor", "pi", "irb", "admin"):
        client = api_as(personas.get(who))
        assert client.get(detail).json()["status"] == "completed"
        assert client.get(base).json()["results"][0]["id"] == body["id"]
        assert client.get(pdf).status_code == 200
    from rest_framework.test import APIClient

    assert APIClient().get(detail).status_code == 401
    assert Dossier.objects.count() == 1  # the refused requests made nothing


def test_a_pdf_changed_in_storage_is_refused(personas, django_capture_on_commit_callbacks):
    from registry.storage import artifact_storage

    version = scripted_history(personas, predictions=3)
    body = _generate(personas, version, django_capture_on_commit_callbacks).json()
    dossier = Dossier.objects.get(public_id=body["id"])
    from django.core.files.base import ContentFile

    store = artifact_storage()  # local files or S3: through the storage API
    with store.open(dossier.storage_key, "rb") as handle:
        original = handle.read()
    store.delete(dossier.storage_key)
    store.save(dossier.storage_key, ContentFile(original[:100] + b"X" + original[101:]))
    response = api_as(personas.owner).get(f"/api/v1/dossiers/{body['id']}/pdf/")
    assert response.status_code == 409
    assert not AuditEvent.objects.filter(action=Action.DOSSIER_DOWNLOADED).exists()


# -- failure and resumption -------------------------------------------------------------------

def test_a_failed_render_ends_failed_with_the_error(personas, monkeypatch,
                                                    django_capture_on_commit_callbacks):
    def broken(snapshot):
        raise RuntimeError("no fonts here")

    monkeypatch.setattr(render, "dossier_pdf", broken)
    version = scripted_history(personas, predictions=3)
    body = _generate(personas, version, django_capture_on_commit_callbacks).json()
    status = api_as(personas.owner).get(f"/api/v1/dossiers/{body['id']}/").json()
    assert status["status"] == "failed"
    assert status["error"] == "RuntimeError: no fonts here"
    assert status["sha256"] is None and "pdf" not in status["links"]
    event = AuditEvent.objects.get(action=Action.DOSSIER_FAILED)
    assert event.details["step"] == "render" and "no fonts here" in event.details["error"]
    assert api_as(personas.owner).get(f"/api/v1/dossiers/{body['id']}/pdf/").status_code == 404


def test_a_stalled_build_is_resumed(personas, django_capture_on_commit_callbacks):
    version = scripted_history(personas, predictions=3)
    with django_capture_on_commit_callbacks(execute=False):  # the message is lost
        dossier = dossier_request(user=personas.owner, version=version)
    Dossier.objects.filter(pk=dossier.pk).update(
        status=DossierStatus.RUNNING, claim="dead-worker",
        updated_at=timezone.now() - timedelta(hours=1))
    assert dossier_build(dossier_id=dossier.pk) == "busy"  # held by the (dead) claim
    assert dossiers_resume_stale() == [dossier.pk]
    dossier.refresh_from_db()
    assert dossier.status == DossierStatus.COMPLETED and dossier.sha256
    assert dossiers_resume_stale() == []


# -- the version page ---------------------------------------------------------------------------

def test_the_version_page_lists_dossiers_and_offers_generate(
        personas, client_as, django_capture_on_commit_callbacks):
    version = scripted_history(personas, predictions=3)
    page = f"/models/{personas.model.name}/versions/{version.number}/"
    owner = client_as("owner")
    html = owner.get(page).content.decode()
    assert "Compliance dossier" in html and "Generate a compliance dossier" in html
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(f"{page}dossiers/")
    dossier = Dossier.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/dossiers/{dossier.public_id}/"
    html = owner.get(page).content.decode()
    assert dossier.sha256[:16] in html and f"/api/v1/dossiers/{dossier.public_id}/pdf/" in html
    assert f'href="/dossiers/{dossier.public_id}/"' in html
    auditor_html = client_as("auditor").get(page).content.decode()
    assert f"/api/v1/dossiers/{dossier.public_id}/pdf/" in auditor_html
    clinician_html = client_as("clinician").get(page).content.decode()
    assert "Compliance dossier" not in clinician_html
    refused = client_as("clinician").post(f"{page}dossiers/")
    assert refused.status_code == 302 and Dossier.objects.count() == 1


def test_a_dossier_page_follows_the_build_then_offers_the_pdf(
        personas, client_as, django_capture_on_commit_callbacks):
    version = scripted_history(personas, predictions=3)
    with django_capture_on_commit_callbacks(execute=False):  # queued: the job has not run
        dossier = dossier_request(user=personas.owner, version=version)
    url = f"/dossiers/{dossier.public_id}/"
    queued = client_as("owner").get(url).content.decode()
    assert '<meta http-equiv="refresh" content="3">' in queued
    assert '<progress id="dossier-progress" max="3" value="0"' in queued
    assert "/pdf/" not in queued and "not taken yet" in queued
    dossier_build(dossier_id=dossier.pk)
    dossier.refresh_from_db()
    assert dossier.status == DossierStatus.COMPLETED
    done = client_as("auditor").get(url).content.decode()
    assert 'http-equiv="refresh"' not in done
    assert dossier.sha256 in done and f"/api/v1/dossiers/{dossier.public_id}/pdf/" in done
    gaps = [q for q in dossier.snapshot["questions"] if q["status"] != "answered"]
    for q in gaps:
        assert f"Q{q['number']}." in done
    if not gaps:
        assert "each of the five evaluator questions is answered" in done
    for who in ("clinician", "outsider", "viewer_other"):
        assert client_as(who).get(url).status_code == 404, who
    assert client_as("owner").get("/dossiers/not-a-uuid/").status_code == 404


def test_a_draft_has_no_dossier_section(personas, client_as):
    version = register_version(personas.owner, personas.model, register_dataset(personas.owner))
    assert version.state == "draft"
    html = client_as("owner").get(
        f"/models/{personas.model.name}/versions/{version.number}/").content.decode()
    assert "Generate a compliance dossier" not in html
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_a_monitoring_run_and_a_purge_are_stated(personas):
    from ..inference.helpers import purge_later
    from ..monitoring.helpers import count_and_run

    version = scripted_history(personas, predictions=4)
    run = count_and_run(version)
    purged = purge_later()
    assert purged.get(personas.model.name)
    snapshot = _snapshot(version)
    monitoring = snapshot["monitoring"]
    assert monitoring["status"] == "answered"
    assert monitoring["computed_at"] == run.computed_at.isoformat()
    health = {r["signal"]: r for r in monitoring["health"]}
    assert health and set(health) == {r["signal"] for r in run.summary["health"]}
    # 4 live values: the histogram's cells are withheld (the day series are drawn)
    assert "histogram" not in {c["key"] for c in monitoring["charts"]}
    q4 = _question(snapshot, 4)
    assert len(q4["evidence"]["purges"]) == 1
    assert "1 purge event(s) recorded." in " ".join(q4["why"])
    text = _squashed(pdf_text(render.dossier_pdf(snapshot)))
    assert _squashed(f"Latest monitoring run computed {run.computed_at.isoformat()}") in text
    for row in health.values():  # the health table, a row per signal (cells wrap)
        assert _squashed(row["label"]) in text
    assert _squashed(f"{purged[personas.model.name]} raw inputs older than") in text


def test_stored_explanation_figures_are_stated(personas, monkeypatch,
                                               django_capture_on_commit_callbacks):
    from explain import reliability
    from explain.models import VersionExplanation
    from explain.services import version_explanation_request

    for key, value in (("rows", 4), ("lime_samples", 500), ("global_rows", 60)):
        monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, key, value)
    version = version_missing_irb(personas, irb_decision="approve")
    with django_capture_on_commit_callbacks(execute=True):
        version_explanation_request(version=version)
    stored = VersionExplanation.objects.get(version=version)
    snapshot = _snapshot(version)
    x = snapshot["explanations"]
    assert x["status"] == "answered" and x["content_sha256"] == stored.content_sha256
    top = stored.content["global_importance"]["features"][0]["feature"]
    assert x["global_importance"]["features"][0]["feature"] == top
    text = _squashed(pdf_text(render.dossier_pdf(snapshot)))
    assert stored.content_sha256 in text and _squashed(top) in text
    assert _squashed(stored.content["lime_stability"]["reading"]) in text


def test_the_monitoring_histogram_is_drawn_from_enough_live_values(personas):
    from ..monitoring.helpers import count_and_run, log_rows, training_like

    version = scripted_history(personas, predictions=2)
    log_rows(personas, training_like(60, seed=3, shift={"mean radius": 2.0}))
    count_and_run(version)
    snapshot = _snapshot(version)
    (chart,) = [c for c in snapshot["monitoring"]["charts"] if c["key"] == "histogram"]
    assert chart["svg"].startswith("<svg") and chart["n"] >= 60
    pdf = render.dossier_pdf(snapshot)
    assert _squashed(chart["title"]) in _squashed(pdf_text(pdf))
    assert render.dossier_pdf(snapshot) == pdf  # the chart is in the snapshot: same bytes
