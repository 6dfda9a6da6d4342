from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import FieldError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from audits.models import Action, AuditEvent
from core.clock import replayed_time
from core.hashing import canonical_bytes
from inference.log import anchor_predictions, verify_prediction_log
from inference.models import Prediction, ReviewItem
from inference.services import prediction_inputs_purge
from inference.triggers import run as run_triggers

from ..conftest import api_as
from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


def _routed(personas, n=1):
    version = released_version(personas, confidence_threshold=1.0)  # everything to review
    ids = []
    for _ in range(n):
        body = api_as(personas.clinician).post(
            f"/api/v1/models/{personas.model.name}/predict/", {"inputs": typical_input(version)},
            format="json").json()
        ids.append(body["review_id"])
    return version, ids


def _decide(personas, item_id, who="reviewer", **body):
    return api_as(personas.get(who)).post(f"/api/v1/reviews/{item_id}/decision/", body,
                                          format="json")


def test_reviewers_see_open_items_oldest_first_with_the_reason(personas):
    _version, ids = _routed(personas, 3)
    body = api_as(personas.reviewer).get("/api/v1/reviews/").json()
    assert [r["id"] for r in body["results"]] == ids
    first = body["results"][0]
    assert first["prediction"]["reason"].startswith("low_confidence")
    assert "input" in first["prediction"]  # reviewers hold view_predictions
    assert api_as(personas.outsider).get("/api/v1/reviews/").json()["results"] == []


def test_accept_and_override_are_recorded_and_analysed(personas):
    version, ids = _routed(personas, 3)
    model_label = ReviewItem.objects.get(pk=ids[0]).prediction.label
    other = next(lb for lb in version.output_schema["labels"] if lb != model_label)
    assert _decide(personas, ids[0], decision="accept").json()["final_label"] == model_label
    overridden = _decide(personas, ids[1], decision="override", final_label=other,
                         reason_code="clinical_judgement", comment="Biopsy disagrees.")
    assert overridden.status_code == 200 and overridden.json()["final_label"] == other
    event = AuditEvent.objects.filter(action=Action.REVIEW_DECIDED).order_by("-seq").first()
    assert event.after["final_label"] == other and event.actor == personas.reviewer
    stats = api_as(personas.owner).get(
        f"/api/v1/models/{personas.model.name}/review-stats/").json()["versions"][0]
    assert stats["open"] == 1 and stats["decided"] == 2 and stats["override_rate"] == 0.5
    assert stats["direction"] == {model_label: {other: 1}}
    assert stats["oldest_open_age_seconds"] >= 0


@pytest.mark.parametrize("body,field", [
    ({"decision": "maybe"}, "decision"),
    ({"decision": "override", "final_label": "nonsense", "reason_code": "other"}, "final_label"),
    ({"decision": "override", "final_label": "malignant"}, "reason_code"),
])
def test_bad_decisions_are_structured_errors(personas, body, field):
    _version, ids = _routed(personas)
    response = _decide(personas, ids[0], **body)
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}
    assert ReviewItem.objects.get(pk=ids[0]).status == "open"


def test_an_item_is_decided_once_and_only_by_reviewers(personas):
    _version, ids = _routed(personas)
    assert _decide(personas, ids[0], who="pi", decision="accept").status_code == 404
    assert _decide(personas, ids[0], decision="accept").status_code == 200
    again = _decide(personas, ids[0], decision="accept")
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "already_decided"


def test_a_reviewed_prediction_says_how_it_was_decided(personas):
    """GET /api/v1/predictions/{id}/ gave the model's label only; the page said more."""
    version, ids = _routed(personas, 2)
    item = ReviewItem.objects.get(pk=ids[0])
    other = next(lb for lb in version.output_schema["labels"] if lb != item.prediction.label)
    _decide(personas, ids[0], decision="override", final_label=other,
            reason_code="clinical_judgement", comment="Biopsy disagrees.")
    url = f"/api/v1/predictions/{item.prediction.public_id}/"
    for who in ("clinician", "owner", "auditor", "reviewer"):
        body = api_as(personas.get(who)).get(url).json()
        assert body["label"] == item.prediction.label  # what the model said stays
        review = body["review"]
        assert review["status"] == "decided" and review["decision"] == "override"
        assert review["final_label"] == other and review["reason_code"] == "clinical_judgement"
        assert review["reviewer"] == "reviewer" and review["decided_at"]
        assert review["comment"] == "Biopsy disagrees." and review["id"] == ids[0]
    waiting = ReviewItem.objects.get(pk=ids[1]).prediction
    open_review = api_as(personas.clinician).get(
        f"/api/v1/predictions/{waiting.public_id}/").json()["review"]
    assert open_review["status"] == "open" and open_review["decision"] is None
    assert open_review["reviewer"] is None and open_review["decided_at"] is None
    assert api_as(personas.outsider).get(url).status_code == 404


def test_one_review_item_by_id_follows_the_queue_rules(personas):
    _version, ids = _routed(personas)
    _decide(personas, ids[0], decision="accept")
    for who in ("reviewer", "clinician", "admin"):  # they hold review on the model
        body = api_as(personas.get(who)).get(f"/api/v1/reviews/{ids[0]}/").json()
        assert body["id"] == ids[0] and body["decision"] == "accept"
        assert body["reviewer"] == "reviewer" and body["status"] == "decided"
    assert "input" in api_as(personas.reviewer).get(f"/api/v1/reviews/{ids[0]}/").json()[
        "prediction"]
    for who in ("owner", "pi", "auditor", "viewer_other", "outsider"):  # may not review it
        response = api_as(personas.get(who)).get(f"/api/v1/reviews/{ids[0]}/")
        assert response.status_code == 404 and response.json()["errors"][0]["code"] == \
            "not_found"
    for bad in ("999999", "nope"):
        assert api_as(personas.reviewer).get(f"/api/v1/reviews/{bad}/").status_code == 404


def test_the_review_pages(personas):
    _version, ids = _routed(personas)
    client = Client()
    client.force_login(personas.reviewer)
    assert b"Review queue" in client.get("/reviews/").content
    page = client.get(f"/reviews/{ids[0]}/")
    assert page.status_code == 200 and b"below the threshold" in page.content
    bad = client.post(f"/reviews/{ids[0]}/", {"decision": "override"})
    assert bad.status_code == 200 and b"An override needs a reason" in bad.content
    ok = client.post(f"/reviews/{ids[0]}/", {"decision": "accept"})
    assert ok.status_code == 302 and ReviewItem.objects.get(pk=ids[0]).status == "decided"
    other = Client()
    other.force_login(personas.outsider)
    assert other.get(f"/reviews/{ids[0]}/").status_code == 404


def test_purging_keeps_hashes_and_the_log_verifiable(personas):
    # Logged 400 days ago: the purge lets monitoring count rows first, and rows younger
    # than the log's settle time are never counted (nor purged) yet.
    with replayed_time(timezone.now() - timedelta(days=400)):
        _routed(personas, 2)
    anchor_predictions(settle=timedelta(0))
    assert prediction_inputs_purge() == {personas.model.name: 2}
    assert not Prediction.objects.filter(input__isnull=False).exists()
    assert all(p.input_sha256 for p in Prediction.objects.all())
    assert verify_prediction_log().ok
    event = AuditEvent.objects.get(action=Action.PREDICTION_INPUTS_PURGED)
    assert event.details["rows"] == 2 and event.details["retention_days"] == 365
    assert prediction_inputs_purge() == {}


def test_the_database_refuses_changes_other_than_a_purge(personas):
    _routed(personas)
    for sql in ("UPDATE inference_prediction SET label = 'forged'",
                "DELETE FROM inference_prediction"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql)
    with pytest.raises(TypeError):
        Prediction.objects.update(label="forged")


def test_a_changed_row_is_named_by_verification(personas):
    _routed(personas, 3)
    anchor_predictions(settle=timedelta(0))
    target = Prediction.objects.order_by("id")[1]
    run_triggers(connection, install=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE inference_prediction SET score = 0.001 WHERE id = %s",
                           [target.pk])
    finally:
        run_triggers(connection, install=True)
    verdict = verify_prediction_log()
    assert not verdict.ok and verdict.first_problem["id"] == target.pk


def test_a_deleted_row_breaks_its_chain_before_its_anchor(personas):
    _routed(personas, 3)
    anchor_predictions(settle=timedelta(0))
    target = Prediction.objects.order_by("id")[1]
    run_triggers(connection, install=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM inference_reviewitem WHERE prediction_id = %s", [target.pk])
            cursor.execute("DELETE FROM inference_prediction WHERE id = %s", [target.pk])
    finally:
        run_triggers(connection, install=True)
    verdict = verify_prediction_log()
    assert not verdict.ok and verdict.first_problem["id"] == target.pk + 1
    assert "chain" in verdict.first_problem["problem"]


def _stored_inputs() -> list[tuple[int, str, str]]:
    """(id, the input column's own text, input_sha256) of every row, by id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, CAST(input AS text), input_sha256 FROM inference_prediction "
                       "WHERE input IS NOT NULL ORDER BY id")
        return cursor.fetchall()


def _set_input_text(pk: int, text: str) -> None:
    run_triggers(connection, install=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE inference_prediction SET input = CAST(%s AS json) "
                           "WHERE id = %s" if connection.vendor == "postgresql" else
                           "UPDATE inference_prediction SET input = %s WHERE id = %s", [text, pk])
    finally:
        run_triggers(connection, install=True)


def test_a_stored_input_is_the_bytes_its_sha256_was_taken_over(personas):
    """The raw input is kept as its canonical JSON text (a json column on PostgreSQL, which
    keeps text as written; jsonb would reorder and reformat it), so anyone can re-hash it."""
    version, _ids = _routed(personas, 2)
    stored = _stored_inputs()
    assert len(stored) == 2
    for _pk, text, sha256 in stored:
        assert hashlib.sha256(text.encode()).hexdigest() == sha256
        assert text.encode() == canonical_bytes(typical_input(version))
    prediction = Prediction.objects.order_by("id").first()
    assert prediction.input == typical_input(version)  # read back as the value
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT data_type FROM information_schema.columns WHERE "
                           "table_name = 'inference_prediction' AND column_name = 'input'")
            assert cursor.fetchone()[0] == "json"
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.inputs_checked == 2 and verdict.legacy_inputs_unmatched == 0


def test_a_changed_input_is_named_by_verification(personas):
    _routed(personas, 3)
    pk, text, _sha = _stored_inputs()[1]
    value = Prediction.objects.get(pk=pk).input
    first = sorted(value)[0]
    value[first] = value[first] + 1
    _set_input_text(pk, canonical_bytes(value).decode())
    verdict = verify_prediction_log()
    assert not verdict.ok and verdict.first_problem == {
        "id": pk, "problem": "the stored input does not match its input_sha256"}
    with pytest.raises(CommandError, match=f"prediction {pk}: the stored input") as raised:
        call_command("verify_predictions")
    assert raised.value.returncode == 1


def test_inputs_stored_before_canonical_text_are_checked_by_value(personas, capsys):
    """Rows written while the column was jsonb (the migration keeps jsonb's spaced text)
    verify by their value; a value jsonb changed on the way in (-0.0 becomes 0.0) is
    counted, not called a forgery."""
    _routed(personas, 2)
    (pk, text, _sha), (other, other_text, _sha2) = _stored_inputs()
    spaced = text.replace(":", ": ").replace(",", ", ")
    _set_input_text(pk, spaced)
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.inputs_checked == 2 and verdict.legacy_inputs_unmatched == 0
    value = Prediction.objects.get(pk=other).input
    first = sorted(value)[0]
    value[first] = -0.0 if value[first] == 0 else value[first] * -1
    _set_input_text(other, canonical_bytes(value).decode().replace(",", ", "))
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.legacy_inputs_unmatched == 1
    call_command("verify_predictions")
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 predictions checked") and "1 inputs stored before" in out


def test_the_input_answers_only_isnull(personas):
    _routed(personas)
    assert Prediction.objects.filter(input__isnull=False).count() == 1
    with pytest.raises(FieldError):
        list(Prediction.objects.filter(input={"a": 1}))
