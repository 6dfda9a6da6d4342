from __future__ import annotations

import pytest
from django.test import Client

from inference.models import Prediction
from registry import release
from registry.services import model_version_submit

from ..registry.helpers import register_dataset, register_version
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


def test_owners_test_a_version_on_the_form_before_it_is_released(personas):
    released = released_version(personas)
    candidate = register_version(personas.owner, personas.model, released.dataset)
    model_version_submit(user=personas.owner, version=candidate)
    discarded = register_version(personas.owner, personas.model, released.dataset)
    release.version_discard(user=personas.owner, version=discarded)
    owner = _as(personas.owner)
    url = f"/models/{personas.model.name}/predict/"
    detail = owner.get(f"/models/{personas.model.name}/versions/{candidate.number}/").content
    assert f'href="{url}?version={candidate.number}"'.encode() in detail
    page = owner.get(url).content.decode()
    assert 'name="version"' in page and f'value="{candidate.number}"' in page
    assert f'value="{discarded.number}"' not in page  # discarded: not offered
    testing = owner.get(f"{url}?version={candidate.number}").content.decode()
    assert "Testing" in testing and f"v{candidate.number}" in testing
    assert "not the production version" in testing
    response = owner.post(f"{url}?version={candidate.number}",
                          {k: str(v) for k, v in typical_input(candidate).items()})
    assert response.status_code == 302
    assert Prediction.objects.get().version_id == candidate.pk
    # the production version without a choice, as for everyone
    owner.post(url, {k: str(v) for k, v in typical_input(released).items()})
    assert Prediction.objects.latest("id").version_id == released.pk


@pytest.mark.parametrize("choice", ["999", "abc", "-1", "1e309"])
def test_an_unknown_version_sends_the_owner_back_with_a_message(personas, choice):
    released_version(personas)
    response = _as(personas.owner).get(f"/models/{personas.model.name}/predict/?version={choice}",
                                       follow=True)
    assert response.status_code == 200
    assert f"has no version {choice}".encode() in response.content
    assert response.redirect_chain[-1][0] == f"/models/{personas.model.name}/predict/"


def test_a_discarded_version_is_refused_on_the_form(personas):
    released = released_version(personas)
    discarded = register_version(personas.owner, personas.model, released.dataset)
    release.version_discard(user=personas.owner, version=discarded)
    url = f"/models/{personas.model.name}/predict/?version={discarded.number}"
    response = _as(personas.owner).get(url, follow=True)
    assert b"is discarded" in response.content
    assert _as(personas.owner).post(url, {"x": "1"}).status_code == 302
    assert not Prediction.objects.exists()


def test_clinicians_cannot_choose_a_version(personas):
    released = released_version(personas)
    candidate = register_version(personas.owner, personas.model, released.dataset)
    url = f"/models/{personas.model.name}/predict/"
    page = _as(personas.clinician).get(url).content.decode()
    assert 'name="version"' not in page
    response = _as(personas.clinician).post(f"{url}?version={candidate.number}",
                                            {k: str(v) for k, v in typical_input(candidate).items()},
                                            follow=True)
    assert b"Only the model&#x27;s owners may target a specific version." in response.content
    assert not Prediction.objects.exists()


def test_without_production_owners_are_offered_the_versions_to_test(personas):
    dataset = register_dataset(personas.owner)
    candidate = register_version(personas.owner, personas.model, dataset)
    response = _as(personas.owner).get(f"/models/{personas.model.name}/predict/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "has no version in production" in page and f'value="{candidate.number}"' in page
    assert 'type="submit" class="primary"' not in page  # no form until a version is chosen
