from __future__ import annotations

import pytest

from inference.log import anchor_predictions, verify_prediction_log
from inference.models import Prediction, RejectionCount, ReviewItem
from registry import release
from registry.services import model_version_submit

from ..artifacts import FEATURES_SMALL, logistic_model, skops_bytes
from ..conftest import api_as
from ..registry.helpers import register_dataset, register_version
from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


def _predict(personas, who="clinician", **body):
    return api_as(personas.get(who)).post(f"/api/v1/models/{personas.model.name}/predict/", body,
                                          format="json")


def test_a_valid_input_is_scored_routed_and_logged(personas):
    version = released_version(personas, confidence_threshold=0.5)
    response = _predict(personas, inputs=typical_input(version))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_version"] == version.number and body["label"] in ("benign", "malignant")
    assert body["routing"] == "auto" and body["reason"] is None
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    prediction = Prediction.objects.get(public_id=body["id"])
    assert prediction.input_sha256 == body["input_sha256"] and prediction.input is not None
    assert prediction.requester == personas.clinician and prediction.latency_ms > 0


def test_several_instances_in_one_request(personas):
    version = released_version(personas)
    row = typical_input(version)
    response = _predict(personas, instances=[row, {**row, "mean radius": row["mean radius"] + 1}])
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2 and Prediction.objects.count() == 2


def test_errors_come_back_all_at_once_per_field_and_are_counted(personas):
    version = released_version(personas)
    row = typical_input(version)
    row["mean radius"] = "large"
    del row["mean texture"]
    row["colour"] = "red"
    response = _predict(personas, inputs=row)
    assert response.status_code == 400
    errors = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert errors == {("inputs.mean radius", "invalid_type"), ("inputs.mean texture", "required"),
                      ("inputs.colour", "unknown_field")}
    assert not Prediction.objects.exists()
    counted = dict(RejectionCount.objects.values_list("code", "count"))
    assert counted == {"invalid_type": 1, "required": 1, "unknown_field": 1}


@pytest.mark.parametrize("body,field", [({}, "inputs"), ({"inputs": [1, 2]}, "inputs"),
                                        ({"inputs": {}, "instances": []}, "inputs"),
                                        ({"inputs": {}, "extra": 1}, "extra"),
                                        ({"instances": []}, "inputs")])
def test_malformed_bodies_are_structured_400s(personas, body, field):
    released_version(personas)
    response = _predict(personas, **body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_out_of_range_is_refused_under_the_reject_policy(personas):
    version = released_version(personas, ood_policy="reject")
    row = typical_input(version)
    row["mean radius"] = 500.0
    response = _predict(personas, inputs=row)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "ood_out_of_range" and error["field"] == "inputs.mean radius"
    assert RejectionCount.objects.get().code == "ood_out_of_range"


def test_out_of_range_is_scored_and_reviewed_under_the_review_policy(personas):
    version = released_version(personas, ood_policy="review", confidence_threshold=0.0)
    row = typical_input(version)
    row["mean radius"] = 500.0
    body = _predict(personas, inputs=row).json()
    assert body["routing"] == "review" and "ood:out_of_range:mean radius" in body["reason"]
    assert ReviewItem.objects.filter(prediction__public_id=body["id"]).exists()


def test_many_features_in_the_tails_are_out_of_distribution(personas):
    version = released_version(personas, ood_policy="review", confidence_threshold=0.0)
    columns = version.dataset.profile["columns"]
    row = {f: (columns[f]["p99"] + columns[f]["max"]) / 2 for f in FEATURES_SMALL}
    body = _predict(personas, inputs=row).json()
    assert "ood:tail" in body["reason"]


def test_low_confidence_goes_to_review(personas):
    version = released_version(personas, confidence_threshold=1.0)
    body = _predict(personas, inputs=typical_input(version)).json()
    assert body["routing"] == "review" and body["reason"].startswith("low_confidence")
    assert body["review_id"]


def test_no_production_version_is_a_409(personas):
    dataset = register_dataset(personas.owner)
    register_version(personas.owner, personas.model, dataset)
    response = _predict(personas, inputs={})
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "no_production_version"


def test_owners_may_target_a_version_and_clinicians_may_not(personas):
    version = released_version(personas)
    dataset = version.dataset
    draft = register_version(personas.owner, personas.model, dataset)
    row = typical_input(version)
    ok = _predict(personas, "owner", inputs=row, version=draft.number)
    assert ok.status_code == 200 and ok.json()["model_version"] == draft.number
    assert _predict(personas, "clinician", inputs=row, version=draft.number).status_code == 403


@pytest.mark.parametrize("persona,status", [("reviewer", 403), ("pi", 403), ("auditor", 403),
                                            ("outsider", 404), ("viewer_other", 404)])
def test_only_predictors_may_predict(personas, persona, status):
    version = released_version(personas)
    assert _predict(personas, persona, inputs=typical_input(version)).status_code == status


def test_the_shadow_version_scores_beside_production_and_is_never_returned(personas):
    version = released_version(personas)
    candidate = register_version(personas.owner, personas.model, version.dataset,
                                 data=skops_bytes(logistic_model(seed=2)))
    model_version_submit(user=personas.owner, version=candidate)
    release.shadow_start(user=personas.owner, version=candidate)
    body = _predict(personas, inputs=typical_input(version)).json()
    assert body["model_version"] == version.number and "shadow" not in str(body)
    prediction = Prediction.objects.get(public_id=body["id"])
    assert prediction.shadow_version == candidate
    assert prediction.shadow_output["version"] == candidate.number
    assert 0 <= prediction.shadow_output["score"] <= 1


def test_a_failing_shadow_never_affects_the_answer(personas, monkeypatch):
    version = released_version(personas)
    candidate = register_version(personas.owner, personas.model, version.dataset)
    model_version_submit(user=personas.owner, version=candidate)
    release.shadow_start(user=personas.owner, version=candidate)
    import inference.services as inference_services

    real = inference_services.version_model_load

    def broken(*, version, purpose="single"):
        if version.pk == candidate.pk:
            raise RuntimeError("shadow exploded")
        return real(version=version, purpose=purpose)

    monkeypatch.setattr(inference_services, "version_model_load", broken)
    response = _predict(personas, inputs=typical_input(version))
    assert response.status_code == 200
    assert Prediction.objects.get().shadow_output == {"version": candidate.number,
                                                      "error": "RuntimeError"}


def test_raw_inputs_are_shown_only_with_view_predictions(personas):
    version = released_version(personas)
    body = _predict(personas, inputs=typical_input(version)).json()
    url = f"/api/v1/predictions/{body['id']}/"
    clinician = api_as(personas.clinician).get(url).json()
    assert clinician["input"]["mean radius"] == typical_input(version)["mean radius"]
    auditor = api_as(personas.auditor).get(url).json()
    assert "input" not in auditor and auditor["input_sha256"] == body["input_sha256"]
    assert api_as(personas.outsider).get(url).status_code == 404
    assert api_as(personas.clinician).get("/api/v1/predictions/not-a-uuid/").status_code == 404


def test_the_log_is_anchored_and_verifies(personas):
    from datetime import timedelta

    version = released_version(personas)
    for _ in range(3):
        _predict(personas, inputs=typical_input(version))
    anchor = anchor_predictions(settle=timedelta(0))
    assert anchor.count == 3
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.checked == 3 and verdict.anchored == 3
    _predict(personas, inputs=typical_input(version))
    later = verify_prediction_log()
    assert later.ok and later.unanchored == 1
