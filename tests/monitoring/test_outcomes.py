"""Observed outcomes: recorded by API and CSV (all rows or none, per-row errors, audited),
and the live figures they give equal scikit-learn's on the same arrays."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from inference.models import Prediction
from inference.services import review_decide
from monitoring.models import Outcome, OutcomeUpload
from monitoring.services import monitoring_policy_update

from ..conftest import api_as
from ..inference.helpers import released_version
from ..pages import text
from .helpers import count_and_run, labelled_sample, log_rows, record

pytestmark = pytest.mark.django_db


def _outcomes_url(personas) -> str:
    return f"/api/v1/models/{personas.model.name}/outcomes/"


def _csv(lines: list[str]) -> SimpleUploadedFile:
    return SimpleUploadedFile("outcomes.csv", ("\n".join(lines) + "\n").encode(),
                              content_type="text/csv")


def test_live_auc_brier_and_calibration_equal_scikit_learns_on_the_same_arrays(personas):
    version = released_version(personas, confidence_threshold=0.6)
    rows, y = labelled_sample(600, seed=11)
    results = log_rows(personas, rows)
    half = slice(0, 400)  # outcomes for part of them only
    body = {"outcomes": [{"prediction_id": str(r.prediction.public_id),
                          "outcome": "malignant" if t else "benign",
                          "outcome_date": r.prediction.created_at.date().isoformat()}
                         for r, t in zip(results[half], y[half], strict=True)]}
    response = api_as(personas.clinician).post(_outcomes_url(personas), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["recorded"] == 400
    run = count_and_run(version)
    perf = run.figures.get(window="7d", signal="performance").detail
    scores = np.array([r.prediction.score for r in results[half]])
    assert perf["observed"]["n"] == 400
    assert perf["observed"]["auc"] == pytest.approx(roc_auc_score(y[half], scores), abs=1e-12)
    assert perf["observed"]["brier"] == pytest.approx(brier_score_loss(y[half], scores),
                                                      abs=1e-12)
    prob_true, prob_pred = calibration_curve(y[half], scores, n_bins=10)
    bins = perf["observed"]["calibration"]["bins"]
    assert [b["observed_rate"] for b in bins] == pytest.approx(list(prob_true), abs=1e-12)
    assert [b["mean_score"] for b in bins] == pytest.approx(list(prob_pred), abs=1e-12)
    predicted = np.array([r.prediction.label == "malignant" for r in results[half]])
    sensitivity = (predicted & (y[half] == 1)).sum() / (y[half] == 1).sum()
    assert perf["observed"]["sensitivity"] == pytest.approx(sensitivity)
    # audited: one event for the upload, with its digest and counts
    event = AuditEvent.objects.get(action=Action.OUTCOMES_RECORDED)
    assert event.details["rows"] == 400 and event.details["by_version"] == {"v1": 400}
    assert event.actor_username == "clinician" and len(event.details["sha256"]) == 64
    assert verify_chain().ok


def test_unknown_ids_and_duplicates_are_refused_per_row_and_nothing_is_recorded(personas):
    released_version(personas, confidence_threshold=0.6)
    rows, y = labelled_sample(5, seed=2)
    results = log_rows(personas, rows)
    first, second = (str(r.prediction.public_id) for r in results[:2])
    record(personas, results[4:], y[4:])  # the last one already has its outcome
    other_model_prediction = uuid.uuid4()
    today = results[0].prediction.created_at.date().isoformat()
    upload = _csv(["prediction_id,outcome,outcome_date",
                   f"{first},malignant,{today}",
                   f"{second},benign,{today}",
                   f"{first},benign,{today}",  # named twice
                   f"{other_model_prediction},benign,{today}",  # unknown
                   f"not-an-id,benign,{today}",
                   f"{results[4].prediction.public_id},benign,{today}",  # already recorded
                   f"{results[3].prediction.public_id},maybe,{today}",
                   f"{results[2].prediction.public_id},1,2001-01-01"])
    response = api_as(personas.owner).post(_outcomes_url(personas), {"file": upload},
                                           format="multipart")
    assert response.status_code == 400
    errors = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert errors == {("row 4.prediction_id", "duplicate"),
                      ("row 5.prediction_id", "unknown_prediction"),
                      ("row 6.prediction_id", "invalid_id"),
                      ("row 7.prediction_id", "duplicate_outcome"),
                      ("row 8.outcome", "invalid_outcome"),
                      ("row 9.outcome_date", "invalid_date")}
    messages = " ".join(e["message"] for e in response.json()["errors"])
    assert "appears twice" in messages and "line 2" in messages
    assert Outcome.objects.count() == 1 and OutcomeUpload.objects.count() == 1
    # the same over JSON names the list positions
    response = api_as(personas.owner).post(_outcomes_url(personas), {"outcomes": [
        {"prediction_id": first, "outcome": "malignant", "outcome_date": today},
        {"prediction_id": first, "outcome": "malignant", "outcome_date": today},
        {"prediction_id": str(other_model_prediction), "outcome": "malignant",
         "outcome_date": today, "note": "x"}]}, format="json")
    assert response.status_code == 400
    assert {(e["field"], e["code"]) for e in response.json()["errors"]} == {
        ("outcomes.1.prediction_id", "duplicate"), ("outcomes.2.note", "unknown_field"),
        ("outcomes.2.prediction_id", "unknown_prediction")}


def test_a_prediction_of_another_model_is_unknown_here(personas):
    released_version(personas, confidence_threshold=0.6)
    rows, _y = labelled_sample(1, seed=3)
    result = log_rows(personas, rows)[0]
    Prediction.objects.filter(pk=result.prediction.pk)  # exists, but on sepsis-risk
    response = api_as(personas.admin).post(
        f"/api/v1/models/{personas.other_model.name}/outcomes/",
        {"outcomes": [{"prediction_id": str(result.prediction.public_id), "outcome": "1",
                       "outcome_date": result.prediction.created_at.date().isoformat()}]},
        format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_prediction"


def test_the_csv_page_lists_refused_rows_beside_the_form(client_as, personas):
    released_version(personas, confidence_threshold=0.6)
    rows, _y = labelled_sample(2, seed=4)
    results = log_rows(personas, rows)
    pid = results[0].prediction.public_id
    today = results[0].prediction.created_at.date().isoformat()
    page = client_as("clinician").post(f"/models/{personas.model.name}/outcomes/", {
        "file": _csv(["prediction_id,outcome,outcome_date", f"{pid},benign,{today}",
                      f"{pid},benign,{today}"])})
    assert page.status_code == 200
    assert "Nothing was recorded" in text(page) and "row 3.prediction_id" in text(page)
    assert not Outcome.objects.exists()
    page = client_as("clinician").post(f"/models/{personas.model.name}/outcomes/", {
        "file": _csv(["prediction_id;outcome;outcome_date", f"{pid};benign;{today}"])})
    assert "semicolon" in text(page)
    done = client_as("clinician").post(f"/models/{personas.model.name}/outcomes/", {
        "file": _csv(["prediction_id,outcome,outcome_date", f"{pid},benign,{today}"])},
        follow=True)
    assert "1 outcomes recorded" in text(done)
    assert Outcome.objects.get().label == "benign"


def test_reviewers_final_labels_are_not_outcomes(personas):
    version = released_version(personas, confidence_threshold=0.99)  # most go to review
    rows, y = labelled_sample(80, seed=6)
    results = log_rows(personas, rows)
    reviewed = [r for r in results if r.review is not None]
    assert len(reviewed) > 30
    for r in reviewed:  # the reviewer always says malignant
        if r.prediction.label != "malignant":
            review_decide(user=personas.reviewer, item=r.review, decision="override",
                          final_label="malignant", reason_code="clinical_judgement")
        else:
            review_decide(user=personas.reviewer, item=r.review, decision="accept")
    record(personas, results, y)
    run = count_and_run(version)
    perf = run.figures.get(window="7d", signal="performance").detail["observed"]
    scores = np.array([r.prediction.score for r in results])
    assert perf["auc"] == pytest.approx(roc_auc_score(y, scores))
    labels = np.array([r.prediction.label == "malignant" for r in results])
    assert perf["accuracy"] == pytest.approx((labels == (y == 1)).mean())
    overrides = run.figures.get(window="30d", signal="overrides").detail
    assert overrides["top_direction"]["reviewer_decided"] == "malignant"


def test_outcomes_per_subgroup_come_from_the_policys_rules(personas):
    version = released_version(personas, confidence_threshold=0.6)
    monitoring_policy_update(user=personas.owner, model=personas.model, subgroups=[
        {"name": "large", "feature": "mean radius", "op": ">=", "value": 15.0},
        {"name": "small", "feature": "mean radius", "op": "<", "value": 15.0}])
    rows, y = labelled_sample(300, seed=9)
    results = log_rows(personas, rows)
    record(personas, results, y)
    run = count_and_run(version)
    groups = {g["name"]: g for g in
              run.figures.get(window="7d", signal="performance").detail["observed"]["subgroups"]}
    large = rows["mean radius"].to_numpy() >= 15.0
    assert groups["large"]["n"] == int(large.sum()) and groups["small"]["n"] == int((~large).sum())
    predicted = np.array([r.prediction.label == "malignant" for r in results])
    assert groups["large"]["error_rate"] == pytest.approx((predicted[large] != (y[large] == 1))
                                                          .mean())
    spread = run.figures.get(window="30d", signal="subgroup_error_spread").detail
    assert spread["value"] == pytest.approx(abs(groups["large"]["error_rate"]
                                                - groups["small"]["error_rate"]))


@pytest.mark.parametrize("who,status", [("clinician", 201), ("owner", 201), ("admin", 201),
                                        ("reviewer", 403), ("pi", 403), ("irb", 403),
                                        ("auditor", 403), ("outsider", 404),
                                        ("viewer_other", 404)])
def test_who_may_record_outcomes(personas, who, status):
    released_version(personas, confidence_threshold=0.6)
    rows, y = labelled_sample(1, seed=1)
    result = log_rows(personas, rows)[0]
    response = api_as(personas.get(who)).post(_outcomes_url(personas), {"outcomes": [
        {"prediction_id": str(result.prediction.public_id), "outcome": int(y[0]),
         "outcome_date": result.prediction.created_at.date().isoformat()}]}, format="json")
    assert response.status_code == status, response.json()
    assert Outcome.objects.count() == (1 if status == 201 else 0)


def test_outcome_bodies_that_are_not_lists_are_structured_400s(personas):
    released_version(personas, confidence_threshold=0.6)
    client = api_as(personas.owner)
    for body in ({}, {"outcomes": []}, {"outcomes": "x"}, {"outcomes": [1]}, {"rows": []}):
        response = client.post(_outcomes_url(personas), body, format="json")
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["code"]
    response = client.post(_outcomes_url(personas), {"file": io.BytesIO(b"\xff\xfe")},
                           format="multipart")
    assert response.status_code == 400


def test_subgroups_defined_after_the_outcomes_are_decided_again_from_kept_inputs(personas):
    version = released_version(personas, confidence_threshold=0.6)
    rows, y = labelled_sample(60, seed=12)
    results = log_rows(personas, rows)
    record(personas, results, y)
    Prediction.objects.filter(pk=results[0].prediction.pk).update(input=None,
                                                                  purged_at=results[0]
                                                                  .prediction.created_at)
    monitoring_policy_update(user=personas.owner, model=personas.model, subgroups=[
        {"name": "large", "feature": "mean radius", "op": ">=", "value": 15.0}])
    event = AuditEvent.objects.get(action=Action.MONITORING_POLICY_UPDATED)
    assert event.details == {"outcomes_regrouped": 59}  # the purged one keeps its (none)
    run = count_and_run(version)
    observed = run.figures.get(window="7d", signal="performance").detail["observed"]
    large = rows["mean radius"].to_numpy()[1:] >= 15.0
    assert observed["subgroups"][0]["n"] == int(large.sum())
