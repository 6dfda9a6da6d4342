"""The clinical journey in a real browser: a clinician types an input with a mistake,
reads the errors beside the fields, corrects it, gets a prediction held for review; a
reviewer finds it in the queue and overrides it with a reason; the clinician's page
then leads with the reviewer's label. The clinician cannot decide their own item."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inference.models import Prediction, ReviewItem

from ..inference.helpers import released_version, typical_input
from .test_release_journey import MODEL, _person

pytestmark = pytest.mark.browser


def test_the_clinical_journey(browser, live_server, transactional_db, personas, tmp_path):
    version = released_version(personas, confidence_threshold=1.0)  # every answer reviewed
    row = typical_input(version)
    labels = version.output_schema["labels"]

    clinician = _person(browser, live_server, "clinician")
    clinician.goto(f"{live_server.url}/models/{MODEL}/")
    clinician.get_by_role("link", name="Predict", exact=True).click()
    expect(clinician.get_by_role("heading", level=1)).to_have_text(f"Predict with {MODEL}")
    for name, value in row.items():
        clinician.get_by_label(name, exact=True).fill(str(value))
    clinician.get_by_label("mean radius", exact=True).fill("1,5")  # a decimal comma: refused, not guessed
    clinician.get_by_role("button", name="Predict").click()
    field = clinician.get_by_label("mean radius", exact=True)
    expect(field).to_have_value("1,5")
    expect(field).to_have_accessible_description(
        re.compile(r"mean radius must be a number\..*dot for decimals"))
    assert not Prediction.objects.exists()
    field.fill(str(row["mean radius"]))
    clinician.get_by_role("button", name="Predict").click()
    expect(clinician.locator("h1 .badge")).to_have_text("sent to human review")
    expect(clinician.get_by_text("Do not act on this prediction")).to_be_visible()
    prediction = Prediction.objects.get()
    item = ReviewItem.objects.get(prediction=prediction)

    # The clinician also reviews on this model, but not their own request.
    clinician.goto(f"{live_server.url}/reviews/{item.pk}/")
    expect(clinician.get_by_text("another reviewer decides it")).to_be_visible()
    expect(clinician.get_by_role("button", name="Record decision")).to_have_count(0)

    reviewer = _person(browser, live_server, "reviewer")
    reviewer.goto(f"{live_server.url}/reviews/")
    expect(reviewer.get_by_text("1 item awaiting review.")).to_be_visible()
    reviewer.get_by_role("link", name=f"Review item {item.pk}").click()
    expect(reviewer.get_by_role("heading", level=1)).to_contain_text(
        f"said “{prediction.label}”")
    other = next(lb for lb in labels if lb != prediction.label)
    expect(reviewer.get_by_role("group", name="Decision")).to_be_visible()  # a labelled group
    reviewer.get_by_label("Override").check()
    reviewer.get_by_role("button", name="Record decision").click()
    expect(reviewer.get_by_label("Final label")).to_have_accessible_description(
        re.compile("Choose the final label"))  # the error beside the field
    reviewer.get_by_label("Final label").select_option(other)
    reviewer.get_by_label("Reason").select_option("clinical_judgement")
    reviewer.get_by_label("Comment").fill("Histology disagrees.")
    reviewer.get_by_role("button", name="Record decision").click()
    expect(reviewer.locator("ul.messages")).to_contain_text("Decision recorded.")
    expect(reviewer.locator("p.empty")).to_have_text("Nothing awaits review.")

    clinician.goto(f"{live_server.url}/predictions/{prediction.public_id}/")
    expect(clinician.get_by_role("heading", level=1)).to_contain_text(other)
    expect(clinician.locator("h1 .badge")).to_have_text("overridden by a reviewer")
    expect(clinician.locator("p.msg")).to_contain_text(
        f"the model said “{prediction.label}”, the reviewer decided “{other}”")
    expect(clinician.get_by_text("Do not act on this prediction")).to_have_count(0)
    clinician.screenshot(path=tmp_path / "prediction-overridden.png", full_page=True)
    # ... and finds it again under My predictions, where it stands.
    clinician.get_by_role("link", name="My predictions").click()
    expect(clinician.locator("table.data tbody tr")).to_have_count(1)
    expect(clinician.locator("table.data tbody tr")).to_contain_text(
        f"overridden by reviewer (model said {prediction.label})")
