from __future__ import annotations

import pytest
from django.test import Client

from inference.models import Prediction

from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


def _as(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_form_is_generated_from_the_schema_and_predicts(personas):
    version = released_version(personas, confidence_threshold=0.5)
    client = _as(personas.clinician)
    url = f"/models/{personas.model.name}/predict/"
    page = client.get(url).content.decode()
    for feature in version.input_schema:
        assert f'name="{feature["name"]}"' in page
    assert "Validated range" in page
    response = client.post(url, {k: str(v) for k, v in typical_input(version).items()})
    assert response.status_code == 302
    prediction = Prediction.objects.get()
    result = client.get(response["Location"]).content.decode()
    assert prediction.input_sha256 in result and "Input" in result


def test_form_errors_show_next_to_the_fields(personas):
    version = released_version(personas)
    row = {k: str(v) for k, v in typical_input(version).items()}
    row["mean radius"] = "big"
    row["mean texture"] = ""
    response = _as(personas.clinician).post(f"/models/{personas.model.name}/predict/", row)
    assert response.status_code == 200
    form = response.context["form"]
    assert "mean radius must be a number." in form.errors["mean radius"]
    assert "mean texture is required." in form.errors["mean texture"]
    assert not Prediction.objects.exists()


def test_the_prediction_page_hides_raw_inputs_without_view_predictions(personas):
    version = released_version(personas)
    _as(personas.clinician).post(f"/models/{personas.model.name}/predict/",
                                 {k: str(v) for k, v in typical_input(version).items()})
    prediction = Prediction.objects.get()
    url = f"/predictions/{prediction.public_id}/"
    auditor_page = _as(personas.auditor).get(url).content.decode()
    assert "raw inputs need the view_predictions permission" in auditor_page
    assert str(typical_input(version)["mean radius"]) not in auditor_page
    assert _as(personas.outsider).get(url).status_code == 404


def test_no_production_version_sends_back_with_a_message(personas):
    response = _as(personas.clinician).get(f"/models/{personas.model.name}/predict/",
                                           follow=True)
    assert b"has no version in production" in response.content


def test_the_operations_page(personas):
    version = released_version(personas)
    _as(personas.clinician).post(f"/models/{personas.model.name}/predict/",
                                 {k: str(v) for k, v in typical_input(version).items()})
    page = _as(personas.owner).get(f"/models/{personas.model.name}/operations/")
    assert page.status_code == 200 and b"Predictions logged" in page.content
    assert _as(personas.outsider).get(f"/models/{personas.model.name}/operations/").status_code == 404
