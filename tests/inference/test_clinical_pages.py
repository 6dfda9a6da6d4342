"""What clinicians and reviewers read: decided predictions, numbers typed on the form,
out-of-distribution details, four eyes on the review queue, its pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings

from inference.models import Prediction, ReviewItem
from inference.selectors import ood_flags
from inference.services import review_decide
from inference.templatetags.inference_tags import reason_text
from inference.validation import check_input
from registry.services import model_version_submit
from registry.templatetags.registry_tags import percent

from ..conftest import api_as
from ..registry.helpers import register_version
from .helpers import purge_later, released_version, typical_input

pytestmark = pytest.mark.django_db


def _as(user):
    client = Client()
    client.force_login(user)
    return client


def _predict(personas, version, who="clinician", **changes):
    row = {**typical_input(version), **changes}
    body = api_as(personas.get(who)).post(f"/api/v1/models/{personas.model.name}/predict/",
                                          {"inputs": row}, format="json")
    assert body.status_code == 200, body.content
    return body.json()


# -- a decided prediction leads with the decision --------------------------------------------

def test_an_overridden_prediction_leads_with_the_reviewers_label(personas):
    version = released_version(personas, confidence_threshold=1.0)
    body = _predict(personas, version)
    other = next(lb for lb in version.output_schema["labels"] if lb != body["label"])
    url = f"/predictions/{body['id']}/"
    before = _as(personas.clinician).get(url).content.decode()
    assert "Do not act on this prediction" in before
    review_decide(user=personas.reviewer, item=ReviewItem.objects.get(pk=body["review_id"]),
                  decision="override", final_label=other, reason_code="clinical_judgement",
                  comment="Biopsy result.")
    after = _as(personas.clinician).get(url).content.decode()
    assert "Do not act on this prediction" not in after
    headline = re.search(r"<h1>(.*?)</h1>", after, re.S).group(1)
    assert other in headline and "overridden by a reviewer" in headline
    assert body["label"] not in headline
    assert f"the model said “{body['label']}”" in after and "Biopsy result." in after


def test_an_accepted_prediction_says_so(personas):
    version = released_version(personas, confidence_threshold=1.0)
    body = _predict(personas, version)
    review_decide(user=personas.reviewer, item=ReviewItem.objects.get(pk=body["review_id"]),
                  decision="accept")
    page = _as(personas.clinician).get(f"/predictions/{body['id']}/").content.decode()
    assert "accepted by a reviewer" in page and "Do not act" not in page


# -- numbers on the form ---------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["1,001", "1_000", "１０００", "1 001", "nan", "0x10"])
def test_the_form_refuses_numbers_it_would_have_to_guess(personas, typed):
    version = released_version(personas)
    row = {k: str(v) for k, v in typical_input(version).items()}
    row["mean radius"] = typed
    response = _as(personas.clinician).post(f"/models/{personas.model.name}/predict/", row)
    assert response.status_code == 200
    errors = response.context["form"].errors["mean radius"]
    assert "mean radius must be a number." in errors
    assert any("dot for decimals" in e for e in errors)
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("typed,stored", [("14.5", 14.5), (" 14 ", 14.0), ("1.45e1", 14.5),
                                          ("+14.", 14.0)])
def test_the_form_reads_plain_decimals(personas, typed, stored):
    version = released_version(personas)
    row = {k: str(v) for k, v in typical_input(version).items()}
    row["mean radius"] = typed
    response = _as(personas.clinician).post(f"/models/{personas.model.name}/predict/", row)
    assert response.status_code == 302
    assert Prediction.objects.get().input["mean radius"] == stored


def test_field_ids_are_valid_html_ids_that_help_text_points_at(personas):
    released_version(personas)
    page = _as(personas.clinician).get(f"/models/{personas.model.name}/predict/").content.decode()
    ids = re.findall(r' id="([^"]*)"', page)
    assert ids and all(" " not in i for i in ids)
    field = re.search(r'<input[^>]*name="mean radius"[^>]*>', page).group(0)
    described = re.search(r'aria-describedby="([^"]*)"', field).group(1)
    for target in described.split():
        assert f'id="{target}"' in page
    assert '<label for="id_mean_20_radius"' in page


# -- out-of-distribution details carry no input value ----------------------------------------

def test_flags_name_the_range_not_the_value(personas):
    version = released_version(personas)
    schema = version.input_schema
    row = {**typical_input(version), "mean radius": 123.456}
    flags = check_input(row, schema=schema, profile=version.dataset.profile, path="inputs").ood
    [flag] = [f for f in flags if f["code"] == "out_of_range"]
    assert "123.456" not in flag["message"] and "above the validated range" in flag["message"]


def test_a_range_with_one_bound_is_checked_and_shown(personas):
    version = released_version(personas)
    schema = [dict(f) for f in version.input_schema]
    schema[0]["max"] = None  # "at least min"
    row = {**typical_input(version), schema[0]["name"]: -5.0}
    checked = check_input(row, schema=schema, profile=version.dataset.profile, path="inputs")
    [flag] = [f for f in checked.ood if f["code"] == "out_of_range"]
    assert "below the validated range (≥ " in flag["message"]
    from inference.forms import PredictionForm
    form = PredictionForm(schema=schema)
    assert "Validated range ≥ " in form.fields[schema[0]["name"]].help_text


def test_readers_without_raw_inputs_see_no_values_in_the_flags(personas):
    version = released_version(personas, ood_policy="review", confidence_threshold=0.0)
    body = _predict(personas, version, **{"mean radius": 123.456})
    assert any(f["code"] == "out_of_range" for f in body["ood"])
    prediction = Prediction.objects.get(public_id=body["id"])
    # a flag logged before messages stopped quoting values (the log is append-only)
    legacy = Prediction(ood=[{"code": "out_of_range", "feature": "mean radius",
                              "message": "mean radius = 123.456 is outside the validated "
                                         "range 6.98–28.1."}], input={"mean radius": 123.456})
    assert "123.456" not in ood_flags(prediction=legacy, reveal=False)[0]["message"]
    assert ood_flags(prediction=legacy, reveal=True) == legacy.ood
    for who in ("auditor", "pi", "irb"):
        page = _as(personas.get(who)).get(f"/predictions/{body['id']}/").content.decode()
        assert "mean radius is outside the validated range." in page, who
        assert "confidence was never validated" in page, who
        api = api_as(personas.get(who)).get(f"/api/v1/predictions/{body['id']}/").json()
        assert "input" not in api and api["ood"][0]["message"] == \
            "mean radius is outside the validated range.", who
    owner = api_as(personas.owner).get(f"/api/v1/predictions/{body['id']}/").json()
    assert owner["ood"] == prediction.ood  # may see raw inputs: the flags as logged
    purge_later()
    purged = api_as(personas.owner).get(f"/api/v1/predictions/{body['id']}/").json()
    assert purged["input_purged"] and purged["ood"][0]["message"] == \
        "mean radius is outside the validated range."


# -- four eyes, late decisions, accept means the model's label -------------------------------

def test_whoever_requested_a_prediction_does_not_decide_its_review(personas):
    version = released_version(personas, confidence_threshold=1.0)
    body = _predict(personas, version, who="clinician")  # the clinician persona also reviews
    url = f"/reviews/{body['review_id']}/"
    page = _as(personas.clinician).get(url).content.decode()
    assert "another reviewer decides it" in page and "Record decision" not in page
    refused = api_as(personas.clinician).post(f"/api/v1/reviews/{body['review_id']}/decision/",
                                              {"decision": "accept"}, format="json")
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "own_prediction"
    posted = _as(personas.clinician).post(url, {"decision": "accept"}, follow=True)
    assert b"another reviewer decides it. Your decision was not recorded." in posted.content
    assert ReviewItem.objects.get(pk=body["review_id"]).status == "open"
    assert "Record decision" in _as(personas.reviewer).get(url).content.decode()
    with override_settings(ATTEST_REVIEW_OWN_PREDICTIONS=True):
        allowed = api_as(personas.clinician).post(
            f"/api/v1/reviews/{body['review_id']}/decision/", {"decision": "accept"},
            format="json")
        assert allowed.status_code == 200


def test_a_decision_made_meanwhile_is_said_not_swallowed(personas):
    version = released_version(personas, confidence_threshold=1.0)
    body = _predict(personas, version)
    url = f"/reviews/{body['review_id']}/"
    reviewer = _as(personas.reviewer)
    assert "Record decision" in reviewer.get(url).content.decode()
    review_decide(user=personas.admin, item=ReviewItem.objects.get(pk=body["review_id"]),
                  decision="accept")
    other = next(lb for lb in version.output_schema["labels"] if lb != body["label"])
    late = reviewer.post(url, {"decision": "override", "final_label": other,
                               "reason_code": "clinical_judgement"}, follow=True)
    assert b"This item was already decided. Your decision was not recorded." in late.content
    item = ReviewItem.objects.get(pk=body["review_id"])
    assert item.reviewer == personas.admin and item.decision == "accept"


def test_accept_with_another_label_is_refused(personas):
    version = released_version(personas, confidence_threshold=1.0)
    body = _predict(personas, version)
    other = next(lb for lb in version.output_schema["labels"] if lb != body["label"])
    response = api_as(personas.reviewer).post(f"/api/v1/reviews/{body['review_id']}/decision/",
                                              {"decision": "accept", "final_label": other},
                                              format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "final_label" and "override" in error["message"]
    same = api_as(personas.reviewer).post(f"/api/v1/reviews/{body['review_id']}/decision/",
                                          {"decision": "accept", "final_label": body["label"]},
                                          format="json")
    assert same.status_code == 200


def test_an_item_from_a_version_being_tested_says_so(personas):
    released = released_version(personas)
    candidate = register_version(personas.owner, personas.model, released.dataset,
                                 confidence_threshold=1.0)
    model_version_submit(user=personas.owner, version=candidate)
    body = api_as(personas.owner).post(
        f"/api/v1/models/{personas.model.name}/predict/",
        {"inputs": typical_input(candidate), "version": candidate.number}, format="json").json()
    queue = _as(personas.reviewer).get("/reviews/").content.decode()
    assert "in review: testing" in queue
    item = _as(personas.reviewer).get(f"/reviews/{body['review_id']}/").content.decode()
    assert "has never been in production" in item and "owner testing it (owner)" in item


# -- the queue in pages ------------------------------------------------------------------------

def test_the_queue_comes_in_pages_with_a_count(personas):
    version = released_version(personas, confidence_threshold=1.0)
    ids = [_predict(personas, version)["review_id"] for _ in range(5)]
    reviewer = api_as(personas.reviewer)
    first = reviewer.get("/api/v1/reviews/?limit=2").json()
    assert first["count"] == 5 and [r["id"] for r in first["results"]] == ids[:2]
    assert "offset=2" in first["next"] and "limit=2" in first["next"]
    second = reviewer.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == ids[2:4]
    last = reviewer.get("/api/v1/reviews/?limit=2&offset=4").json()
    assert [r["id"] for r in last["results"]] == ids[4:] and last["next"] is None
    for bad in ("limit=0", "limit=501", "limit=x", "offset=-1"):
        response = reviewer.get(f"/api/v1/reviews/?{bad}")
        assert response.status_code == 400, bad
        assert response.json()["errors"][0]["field"] == bad.split("=")[0]
    for item_id in ids[:3]:
        review_decide(user=personas.reviewer, item=ReviewItem.objects.get(pk=item_id),
                      decision="accept")
    decided = reviewer.get("/api/v1/reviews/?status=decided").json()
    assert [r["id"] for r in decided["results"]] == ids[2::-1]  # the most recent first


def test_the_queue_page_counts_and_pages(personas, monkeypatch):
    monkeypatch.setattr("inference.views.REVIEW_PAGE_SIZE", 2)
    version = released_version(personas, confidence_threshold=1.0)
    ids = [_predict(personas, version)["review_id"] for _ in range(3)]
    page = _as(personas.reviewer).get("/reviews/").content.decode()
    assert "3 items awaiting review; showing 1–2." in page and "Page 1 of 2" in page
    assert f"/reviews/{ids[2]}/" not in page
    second = _as(personas.reviewer).get("/reviews/?status=open&page=2").content.decode()
    assert f"/reviews/{ids[2]}/" in second
    assert _as(personas.reviewer).get("/reviews/?page=99&status=bogus").status_code == 200
    decided = _as(personas.reviewer).get("/reviews/?status=decided").content.decode()
    assert "No decisions yet." in decided


# -- words for people ------------------------------------------------------------------------

def test_reasons_and_shares_read_as_words():
    assert reason_text("low_confidence: 0.655 < threshold 0.850; ood:out_of_range:mean radius; "
                       "ood:tail") == (
        "Confidence 0.655, below the threshold 0.850; mean radius is outside the validated "
        "range; many features lie beyond the training data's 1st–99th percentiles")
    assert reason_text("") == "" and reason_text("something new") == "Something new"
    assert percent(0.999817) == ">99.9%" and percent(0.000183) == "<0.1%"
    assert percent(1) == "100.0%" and percent(0) == "0.0%" and percent(0.5) == "50.0%"


# -- my predictions --------------------------------------------------------------------------

def test_my_predictions_lists_ones_own_with_where_each_stands(personas, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from inference.batches import batch_submit
    from inference.tasks import batch_enqueue, run_batch
    from registry.models import ModelRole
    from registry.services import access_revoke

    version = released_version(personas, confidence_threshold=1.0)
    first = _predict(personas, version)
    second = _predict(personas, version)
    other = next(lb for lb in version.output_schema["labels"] if lb != second["label"])
    review_decide(user=personas.reviewer, item=ReviewItem.objects.get(pk=second["review_id"]),
                  decision="override", final_label=other, reason_code="clinical_judgement")
    someone_else = _predict(personas, version, who="owner")
    row = typical_input(version)
    job = batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model, upload=SimpleUploadedFile(
        "b.csv", (",".join(row) + "\n" + ",".join(str(v) for v in row.values()) + "\n").encode()))
    run_batch.apply(args=[job.pk])
    assert Prediction.objects.filter(batch=job).count() == 1

    clinician = _as(personas.clinician)
    home = clinician.get("/").content.decode()
    assert 'href="/predictions/"' in home  # in the navigation
    page = clinician.get("/predictions/").content.decode()
    assert "2 predictions" in page  # the batch row and the owner's are not listed
    assert page.index(second["id"]) < page.index(first["id"])  # newest first
    assert someone_else["id"] not in page
    assert "awaiting review" in page
    assert f"overridden by reviewer (model said {second['label']})" in page

    monkeypatch.setattr("inference.views.PREDICTION_PAGE_SIZE", 1)
    assert first["id"] in clinician.get("/predictions/?page=2").content.decode()
    assert "Page 2 of 2" in clinician.get("/predictions/?page=abc&page=2").content.decode()

    access_revoke(user=personas.owner, model=personas.model, grantee=personas.clinician,
                  role=ModelRole.CLINICIAN)
    gone = clinician.get("/predictions/").content.decode()
    assert "You have not asked for a prediction yet." in gone
    assert 'href="/predictions/"' not in clinician.get("/").content.decode()
    assert "not asked for a prediction" in _as(personas.outsider).get(
        "/predictions/").content.decode()


def test_the_version_page_shows_ranges_as_the_form_does(personas):
    version = released_version(personas)
    owner = _as(personas.owner)
    form = owner.get(f"/models/{personas.model.name}/predict/").content.decode()
    page = owner.get(f"/models/{personas.model.name}/versions/{version.number}/").content.decode()
    for feature in version.input_schema:
        placeholder = re.search(rf'name="{feature["name"]}"[^>]*placeholder="([^"]+)"|'
                                rf'placeholder="([^"]+)"[^>]*name="{feature["name"]}"', form)
        shown = next(g for g in placeholder.groups() if g)
        assert f"<td>{shown}</td>" in page, feature["name"]
