"""An owner registers a model version and submits it, in a real browser.

Chromium (Debian's, see conftest.py) against pytest-django's live_server, so the
whole stack runs: sign-in form, CSRF, multipart upload, artifact checks and the
dry run, flash messages, the lifecycle transition and the CSS.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from registry.models import ModelVersion

from ..artifacts import logistic_model, skops_bytes
from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version
from .conftest import find_chromium, on_ci

pytestmark = pytest.mark.browser

MODEL = "sepsis-risk"


def sign_in(page, username: str = "owner") -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def state_badge(page):
    return page.locator("h1 .badge")


@pytest.mark.browser
def test_it_finds_chromium_to_drive():
    """A run without a browser must say so: a failure on CI, a skip with the reason elsewhere."""
    path, reason = find_chromium()
    if path is None:
        if on_ci():
            pytest.fail(f"Browser tests cannot run on CI: {reason}.", pytrace=False)
        pytest.skip(reason)


@pytest.mark.browser
def test_it_registers_and_submits_a_version(page, live_server, transactional_db, personas,
                                            tmp_path):
    dataset = register_dataset(personas.owner)
    artifact = tmp_path / "sepsis.skops"
    artifact.write_bytes(skops_bytes(logistic_model()))

    # 1. Sign in through the form; the login page sends the owner on to the model.
    page.goto(f"{live_server.url}/models/{MODEL}/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    sign_in(page)
    expect(page).to_have_url(f"{live_server.url}/models/{MODEL}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(MODEL)
    expect(page.get_by_text("No versions yet.")).to_be_visible()

    # 2. The register form: file, training dataset, threshold.
    page.get_by_role("link", name="Register a version").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Register a version of {MODEL}")
    page.get_by_label("Artifact").set_input_files(artifact)
    page.get_by_label("Training dataset version").select_option(
        label=f"{dataset.name} @ {dataset.version} ({dataset.row_count:,} rows)")
    page.get_by_label("Confidence threshold").fill("0.75")
    page.get_by_role("button", name="Register version").click()

    # 3. The version page: a draft, its content hash, the flash message.
    expect(page).to_have_url(f"{live_server.url}/models/{MODEL}/versions/1/")
    version = ModelVersion.objects.get(model__name=MODEL, number=1)
    assert version.confidence_threshold == 0.75 and version.dataset_id == dataset.pk
    expect(state_badge(page)).to_have_text(re.compile("draft", re.I))
    expect(page.get_by_role("status")).to_contain_text("Version 1 registered as a draft")
    hash_cell = page.locator("dt:text-is('Content hash') + dd .hash")
    expect(hash_cell).to_contain_text(version.content_hash)
    # The full 64-character hash wraps inside its cell instead of pushing the page wider.
    box, page_width = hash_cell.bounding_box(), page.evaluate("document.documentElement.clientWidth")
    assert box["x"] + box["width"] <= page_width

    shot = tmp_path / "version-draft.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # 4. Submit for review: the state changes and the hash is now fixed.
    page.get_by_role("button", name="Submit for review").click()
    expect(state_badge(page)).to_have_text("In review")
    expect(page.get_by_role("status")).to_contain_text("submitted for review")
    expect(page.get_by_role("button", name="Submit for review")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit draft")).to_have_count(0)
    version.refresh_from_db()
    assert version.state == "in_review" and version.submitted_by == personas.owner
    expect(page.locator("dt:text-is('Content hash') + dd .hash")).to_contain_text(version.content_hash)
    page.screenshot(path=tmp_path / "version-in-review.png", full_page=True)


@pytest.mark.browser
def test_it_shows_register_errors_next_to_the_fields(page, live_server, transactional_db,
                                                     personas, tmp_path):
    register_dataset(personas.owner)
    not_a_model = tmp_path / "model.skops"
    not_a_model.write_bytes(b"definitely not a zip archive")
    page.goto(f"{live_server.url}/models/{MODEL}/versions/new/")
    sign_in(page)
    page.get_by_label("Artifact").set_input_files(not_a_model)
    page.get_by_role("button", name="Register version").click()

    expect(page.get_by_role("alert").first).to_contain_text("Please correct the fields")
    expect(page.locator(".field.has-error")).to_have_count(1)  # the dataset is missing
    expect(page.locator(".field.has-error")).to_contain_text("Training dataset version")
    assert not ModelVersion.objects.exists()
    page.screenshot(path=tmp_path / "register-errors.png", full_page=True)


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_it_fits_the_version_page_in_the_window(page, live_server, transactional_db, personas,
                                                tmp_path, width):
    """Long hashes, code references and code blocks wrap or scroll inside their box."""
    register_version(
        personas.owner, personas.model, register_dataset(personas.owner),
        code_reference="git@git.example.org:lab/sepsis-model@" + "3f2a1c9d8e7f6a5b" * 3,
        model_card="```\n" + "x" * 300 + "\n```",
        metrics={"overall": {"auc": 0.9}, "subgroups": [{"name": "age ≥ 65", "n": 120,
                                                        "metrics": {"auc": 0.88}}]})
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/models/{MODEL}/versions/1/")
    sign_in(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("v1")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=tmp_path / f"version-{width}.png", full_page=True)


@pytest.mark.browser
def test_it_signs_in_with_the_keyboard_only(page, live_server, transactional_db, personas):
    page.goto(f"{live_server.url}/models/")
    expect(page).to_have_url(re.compile(r"/login/"))

    def focused(attribute: str = "name") -> str | None:
        return page.evaluate(f"document.activeElement && document.activeElement.getAttribute("
                             f"'{attribute}')")

    # Django's sign-in form autofocuses the username; either way, Tab must get there.
    for _ in range(8):
        if focused() == "username":
            break
        page.keyboard.press("Tab")
    assert focused() == "username", "Tab never reached the username field"
    # Keyboard focus is visible (the focus ring from attest.css).
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.type("owner")
    page.keyboard.press("Tab")
    assert focused() == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    expect(page).to_have_url(f"{live_server.url}/models/")
    expect(page.get_by_role("link", name=MODEL, exact=True)).to_be_visible()
