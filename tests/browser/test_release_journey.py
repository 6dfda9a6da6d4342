"""The release journey in a real browser, one browser context per person:
owner registers and submits → PI signs → IRB signs → owner promotes → a
clinician sees the new production version → owner rolls back with a reason →
the model page's history shows every step."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from registry import release
from registry.models import ModelVersion
from registry.services import model_version_submit

from ..artifacts import logistic_model, skops_bytes
from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version

pytestmark = pytest.mark.browser

MODEL = "sepsis-risk"


def _released_v1(personas, dataset) -> ModelVersion:
    v1 = register_version(personas.owner, personas.model, dataset)
    model_version_submit(user=personas.owner, version=v1)
    for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
        release.signoff_record(user=personas.get(who), version=v1, meaning=meaning,
                               decision="approve", password=PASSWORD)
    return release.version_promote(user=personas.owner, version=v1)


def _person(browser, live_server, username):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    return page


def _sign(page, live_server, meaning: str, comment: str) -> None:
    expect(page.get_by_text(f"{MODEL} v2")).to_be_visible()  # on the dashboard
    page.get_by_role("link", name=f"{MODEL} v2").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Review {MODEL} v2")
    version = ModelVersion.objects.get(model__name=MODEL, number=2)
    expect(page.locator("#content-hash")).to_have_text(version.content_hash)
    page.get_by_label("I sign as").select_option(meaning)
    page.get_by_label("Approve the release").check()
    page.get_by_label("Comment").fill(comment)
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Sign electronically").click()
    expect(page.get_by_role("status")).to_contain_text(f"Signed: {meaning} — approve")


def test_the_release_journey(browser, live_server, transactional_db, personas, tmp_path):
    dataset = register_dataset(personas.owner)
    _released_v1(personas, dataset)
    artifact = tmp_path / "v2.skops"
    artifact.write_bytes(skops_bytes(logistic_model(seed=1)))

    # Owner registers v2 and submits it.
    owner = _person(browser, live_server, "owner")
    owner.goto(f"{live_server.url}/models/{MODEL}/versions/new/")
    owner.get_by_label("Artifact").set_input_files(artifact)
    owner.get_by_label("Training dataset version").select_option(str(dataset.pk))
    owner.get_by_role("button", name="Register version").click()
    expect(owner).to_have_url(f"{live_server.url}/models/{MODEL}/versions/2/")
    owner.get_by_role("button", name="Submit for review").click()
    expect(owner.locator("h1 .badge")).to_have_text("In review")

    # PI, then IRB, sign from their dashboards with their passwords.
    pi = _person(browser, live_server, "pi")
    _sign(pi, live_server, "pi_approval", "Metrics hold in every subgroup.")
    expect(pi.locator("h1 .badge")).to_have_text("In review")
    irb = _person(browser, live_server, "irb")
    _sign(irb, live_server, "irb_approval", "Within protocol IRB-2024-001.")
    expect(irb.locator("h1 .badge")).to_have_text("Approved")
    expect(irb.locator("table.manifest")).to_contain_text("Pi Test (pi)")

    # Owner promotes.
    owner.reload()
    owner.get_by_role("button", name="Promote to production").click()
    expect(owner.locator("h1 .badge")).to_have_text("Production")

    # A clinician sees v2 in production.
    clinician = _person(browser, live_server, "clinician")
    clinician.goto(f"{live_server.url}/models/{MODEL}/")
    expect(clinician.locator("dt:text-is('In production') + dd")).to_have_text("v2")

    # Owner rolls back to v1 with a reason, in one action.
    owner.goto(f"{live_server.url}/models/{MODEL}/")
    owner.get_by_label("Roll back to").select_option("1")
    owner.get_by_label("Reason").fill("v2 over-triggers alerts in the ED pilot")
    owner.get_by_role("button", name="Roll back now").click()
    expect(owner.get_by_role("status")).to_contain_text("v1 is in production again")
    expect(owner.locator("dt:text-is('In production') + dd")).to_have_text("v1")

    # The model page's history shows every step.
    history = owner.locator("h2:text-is('History') + table")
    for step in ("Model version registered", "Version submitted for review", "Sign-off recorded",
                 "Version approved", "Version promoted to production", "Version superseded",
                 "Rolled back"):
        expect(history).to_contain_text(step)
    clinician.reload()
    expect(clinician.locator("dt:text-is('In production') + dd")).to_have_text("v1")
    owner.screenshot(path=tmp_path / "model-after-rollback.png", full_page=True)
    assert re.search(r"v1", owner.locator("dt:text-is('In production') + dd").inner_text())
