"""Explanations of predictions over the API: inline, cached, jobs, permissions, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audits.models import Action, AuditEvent
from explain.models import Explanation, ExplanationJob
from inference.models import Prediction

from ..conftest import api_as
from ..explain.helpers import forest, released_of
from .helpers import purge_later, typical_input

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Explanation jobs run in-process on commit, also in the layer with a real broker."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


def _predict(personas, version, who="clinician", **extra):
    return api_as(personas.get(who)).post(
        f"/api/v1/models/{personas.model.name}/predict/",
        {"inputs": typical_input(version), **extra}, format="json")


def _url(prediction_id: str) -> str:
    return f"/api/v1/predictions/{prediction_id}/explanations/"


def _total(content: dict) -> float:
    return content["base_value"] + sum(c["contribution"] for c in content["contributions"])


def test_predict_answers_an_inline_shap_explanation_that_adds_up(personas):
    version = released_of(personas, forest())
    body = _predict(personas, version, explain="shap").json()
    explanation = body["explanation"]
    content = explanation["content"]
    assert explanation["explainer"] == "tree" and explanation["units"] == "probability"
    assert abs(_total(content) - content["output_value"]) < 1e-6
    # the same number the prediction reports (the forest is served by the same estimator
    # or an ONNX conversion proved equal to 1e-5)
    assert abs(content["output_value"] - body["score"]) < 1e-5
    assert explanation["values"]["inputs"] == typical_input(version)
    assert AuditEvent.objects.filter(action=Action.EXPLANATION_CREATED).count() == 1


def test_an_unexplained_prediction_answers_as_before(personas):
    version = released_of(personas)
    body = _predict(personas, version).json()
    assert "explanation" not in body and not Explanation.objects.exists()


def test_predict_refuses_an_unknown_explain_before_logging_anything(personas):
    version = released_of(personas)
    response = _predict(personas, version, explain="lime")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "explain"
    assert not Prediction.objects.exists()


def test_an_expensive_model_is_not_explained_inline_but_says_where_to_ask(personas, settings):
    settings.ATTEST_EXPLAIN_INLINE_MS = 0.0
    version = released_of(personas, forest())
    body = _predict(personas, version, explain="shap").json()
    assert body["explanation"]["status"] == "not_inline"
    assert body["explanation"]["explanations_url"] == _url(body["id"])
    assert "worker" in body["explanation"]["reason"] and not Explanation.objects.exists()


def test_the_same_prediction_and_method_give_the_byte_identical_stored_explanation(personas):
    version = released_of(personas)
    prediction_id = _predict(personas, version).json()["id"]
    client = api_as(personas.clinician)
    first = client.post(_url(prediction_id), {"method": "shap"}, format="json")
    again = client.post(_url(prediction_id), {"method": "shap"}, format="json")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    stored = Explanation.objects.get()
    assert first.json()["content_sha256"] == stored.content_sha256
    assert AuditEvent.objects.filter(action=Action.EXPLANATION_CREATED).count() == 1
    # the stored text itself, as the database holds it
    from django.db import connection

    with connection.cursor() as cursor:
        # as text: PostgreSQL's driver would parse the json column
        cursor.execute("SELECT CAST(content AS TEXT) FROM explain_explanation WHERE id = %s",
                       [stored.pk])
        text = cursor.fetchone()[0]
    from core.hashing import canonical_bytes, sha256_text

    assert text == canonical_bytes(stored.content).decode() and sha256_text(text) == \
        stored.content_sha256


def test_lime_runs_as_a_job_202_with_a_status_url_then_the_result(
        personas, django_capture_on_commit_callbacks):
    version = released_of(personas)
    prediction_id = _predict(personas, version).json()["id"]
    client = api_as(personas.clinician)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(prediction_id), {"method": "lime",
                                                      "parameters": {"samples": 800}},
                               format="json")
    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == body["status_url"] and body["method"] == "lime"
    status = client.get(body["status_url"])
    assert status.status_code == 200  # eager in tests: done by now
    result = status.json()
    assert result["status"] == "completed" and result["explanation"]["method"] == "lime"
    explanation = result["explanation"]
    assert explanation["seed"] == 0 and explanation["samples"] == 800
    assert explanation["library_versions"]["lime"]
    listed = client.get(_url(prediction_id)).json()
    assert [e["method"] for e in listed["explanations"]] == ["lime"]
    # asking again answers the stored one at once
    again = client.post(_url(prediction_id), {"method": "lime", "parameters": {"samples": 800}},
                        format="json")
    assert again.status_code == 200 and again.json()["id"] == explanation["id"]


@pytest.mark.parametrize("body,field", [
    ({"method": "kernel"}, "method"), ({"method": "lime", "parameters": {"samples": 5}},
                                       "parameters.samples"),
    ({"method": "shap", "parameters": {"colour": 1}}, "parameters"),
    ({"method": "shap", "extra": 1}, "extra")])
def test_bad_requests_are_400_with_the_field(personas, body, field):
    version = released_of(personas)
    prediction_id = _predict(personas, version).json()["id"]
    response = api_as(personas.clinician).post(_url(prediction_id), body, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("who", ["outsider", "viewer_other"])
def test_those_who_may_not_see_the_prediction_get_404(personas, who):
    version = released_of(personas)
    prediction_id = _predict(personas, version).json()["id"]
    client = api_as(personas.get(who))
    assert client.get(_url(prediction_id)).status_code == 404
    assert client.post(_url(prediction_id), {"method": "shap"}, format="json").status_code == 404


@pytest.mark.parametrize("who", ["auditor", "pi", "irb"])
def test_those_who_see_the_prediction_without_view_predictions_get_no_values(personas, who):
    version = released_of(personas)
    prediction_id = _predict(personas, version, explain="shap").json()["id"]
    as_reviewer = api_as(personas.reviewer).get(_url(prediction_id)).json()["explanations"][0]
    as_auditor = api_as(personas.get(who)).get(_url(prediction_id)).json()["explanations"][0]
    assert as_reviewer["values"]["inputs"] == typical_input(version)
    assert "values" not in as_auditor and as_auditor["content"] == as_reviewer["content"]
    # the content is value-free: features and contributions, no input value
    assert set(as_auditor["content"]) >= {"contributions", "base_value", "output_value"}
    assert all(set(c) == {"feature", "contribution"} for c in as_auditor["content"]
               ["contributions"])


def test_purging_the_raw_input_removes_values_from_explanations_and_refuses_new_ones(personas):
    version = released_of(personas)
    prediction_id = _predict(personas, version, explain="shap").json()["id"]
    stored = Explanation.objects.get()
    contributions = stored.content["contributions"]
    later = timezone.now() + timedelta(days=personas.model.retention_days + 1)
    purge_later(now=later)
    stored.refresh_from_db()
    assert stored.values is None and stored.values_purged_at is not None
    assert stored.content["contributions"] == contributions
    body = api_as(personas.clinician).get(_url(prediction_id)).json()
    assert body["input_purged"] and body["explanations"][0]["values_purged"]
    assert "values" not in body["explanations"][0]
    refused = api_as(personas.clinician).post(_url(prediction_id), {"method": "lime"},
                                              format="json")
    assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == "input_purged"
    assert "retention" in refused.json()["errors"][0]["message"]
    # the stored SHAP one is still answered, value-free
    kept = api_as(personas.clinician).post(_url(prediction_id), {"method": "shap"},
                                           format="json")
    assert kept.status_code == 200 and "values" not in kept.json()
    assert AuditEvent.objects.filter(action=Action.EXPLANATION_VALUES_PURGED).count() == 1


def test_a_value_still_logged_by_a_later_prediction_is_kept(personas):
    version = released_of(personas)
    _predict(personas, version, explain="shap")
    later = timezone.now() + timedelta(days=personas.model.retention_days + 1)
    # a second, newer prediction of the same input is within retention at `later`
    from unittest import mock

    with mock.patch("django.utils.timezone.now", return_value=later - timedelta(days=1)):
        _predict(personas, version)
    purge_later(now=later)
    assert Explanation.objects.get().values is not None


def test_a_job_for_a_purged_input_fails_with_the_reason(personas, settings, monkeypatch):
    version = released_of(personas)
    prediction_id = _predict(personas, version).json()["id"]
    monkeypatch.setattr("explain.services.enqueue", lambda job_id, queue: None)  # no worker
    response = api_as(personas.clinician).post(_url(prediction_id), {"method": "lime"},
                                               format="json")
    assert response.status_code == 202
    listed = api_as(personas.clinician).get(_url(prediction_id))
    assert listed.status_code == 202  # pending
    assert listed.json()["jobs"][0]["status_url"] == response.json()["status_url"]
    purge_later()
    assert api_as(personas.clinician).get(_url(prediction_id)).status_code == 200
    job = ExplanationJob.objects.get()
    assert job.status == "failed" and job.error_code == "input_purged" and job.input is None
