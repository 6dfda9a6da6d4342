"""Explanations on the prediction page and the review item: a server-drawn SVG with a
text alternative, the top contributions in words against the training profile, input
values only for those who may see them, the OOD caveat."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from explain.models import Explanation
from inference.models import ReviewItem

from ..conftest import api_as
from ..explain.helpers import forest, released_of
from ..pages import text
from .helpers import purge_later, typical_input

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Explanation jobs run in-process on commit, also in the layer with a real broker."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _predict(personas, version, **changes) -> dict:
    row = {**typical_input(version), **changes}
    response = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/predict/", {"inputs": row}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _svg(page: str) -> str:
    match = re.search(r'<svg [^>]*class="explain-chart".*?</svg>', page, re.S)
    assert match, "no explanation chart"
    return match.group(0)


def test_the_prediction_page_explains_in_a_chart_and_in_words(personas):
    version = released_of(personas, forest())
    prediction = _predict(personas, version, **{"mean radius": 19.5})
    page = text(_as(personas.clinician).get(f"/predictions/{prediction['id']}/"))
    svg = _svg(page)
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg and "<script" not in svg
    assert "model output" in svg and "base" in svg
    # words against the training profile, with the value the clinician may see
    assert re.search(r"Mean radius 19\.5 \(training median 13\.\d+\) (raised|lowered) the "
                     r"probability of malignant by 0\.\d+", page), page
    assert "Base value plus contributions equals the model's output" in page
    assert Explanation.objects.count() == 1  # computed once, on the first view
    _as(personas.clinician).get(f"/predictions/{prediction['id']}/")
    assert Explanation.objects.count() == 1


def test_those_without_view_predictions_see_the_contributions_but_not_the_values(personas):
    version = released_of(personas, forest())
    prediction = _predict(personas, version, **{"mean radius": 19.5})
    page = text(_as(personas.auditor).get(f"/predictions/{prediction['id']}/"))
    assert "19.5" not in page and "Mean radius (training median" not in page
    assert re.search(r"Mean radius (raised|lowered) the probability of malignant", page)
    assert "view_predictions permission" in page
    _svg(page)


def test_outsiders_get_404_for_the_page_and_the_explain_button(personas):
    version = released_of(personas)
    prediction = _predict(personas, version)
    for who in ("outsider", "viewer_other"):
        client = _as(personas.get(who))
        assert client.get(f"/predictions/{prediction['id']}/").status_code == 404
        assert client.post(f"/predictions/{prediction['id']}/explain/",
                           {"method": "lime"}).status_code == 404


def test_the_ood_caveat_applies_to_explanations(personas):
    version = released_of(personas, forest())
    top = version.dataset.profile["columns"]["mean radius"]["max"]
    prediction = _predict(personas, version, **{"mean radius": top * 1.5})
    assert prediction["ood"] and prediction["ood"][0]["code"] == "out_of_range"
    page = text(_as(personas.clinician).get(f"/predictions/{prediction['id']}/"))
    assert "read this explanation with the same caution as the confidence" in page
    normal = _predict(personas, version)
    page = text(_as(personas.clinician).get(f"/predictions/{normal['id']}/"))
    assert "read this explanation with the same caution" not in page


def test_lime_is_asked_for_with_a_button_and_shown_when_done(
        personas, django_capture_on_commit_callbacks):
    version = released_of(personas)
    prediction = _predict(personas, version)
    client = _as(personas.clinician)
    page = text(client.get(f"/predictions/{prediction['id']}/"))
    assert 'value="lime"' in page and 'value="shap"' not in page  # SHAP shown already
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/predictions/{prediction['id']}/explain/", {"method": "lime"})
    assert response.status_code == 302
    page = text(client.get(response["Location"]))
    assert "LIME's local estimate of the probability of malignant" in page
    assert page.count('class="explain-chart"') == 2


def test_the_review_item_shows_the_explanation_beside_the_input(personas):
    version = released_of(personas, forest(), confidence_threshold=0.999)
    prediction = _predict(personas, version)
    assert prediction["routing"] == "review"
    item = ReviewItem.objects.get()
    page = text(_as(personas.reviewer).get(f"/reviews/{item.pk}/"))
    _svg(page)
    assert "Why the model said this" in page and "training median" in page


def test_after_the_purge_the_page_keeps_the_contributions_without_values(personas):
    version = released_of(personas, forest())
    prediction = _predict(personas, version, **{"mean radius": 19.5})
    _as(personas.clinician).get(f"/predictions/{prediction['id']}/")
    purge_later()
    page = text(_as(personas.clinician).get(f"/predictions/{prediction['id']}/"))
    _svg(page)
    assert "19.5" not in page and "purged with the raw input" in page
    assert 'value="lime"' not in page  # nothing new can be made
