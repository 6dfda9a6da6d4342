"""A version's figures on its pages and through the API (the dossier reads the API)."""

from __future__ import annotations

import pytest

from explain import reliability
from explain.models import ExplanationJob, VersionExplanation
from registry.services import model_version_submit

from ..conftest import api_as
from ..pages import text
from .helpers import draft_of, forest

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_figures(monkeypatch, settings):
    settings.ATTEST_EXPLAIN_ON_SUBMIT = True
    monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, "rows", 4)
    monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, "lime_samples", 500)
    monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, "global_rows", 60)


def _url(version) -> str:
    return f"/api/v1/models/{version.model.name}/versions/{version.number}/explanations/"


def test_figures_show_on_the_version_and_review_pages_and_in_the_api(
        personas, dataset, small_figures, client_as, django_capture_on_commit_callbacks):
    version = draft_of(personas, dataset, forest())
    with django_capture_on_commit_callbacks(execute=True):
        model_version_submit(user=personas.owner, version=version)
    figures = VersionExplanation.objects.get()
    for who in ("owner", "pi", "irb", "auditor", "clinician"):
        for suffix in ("", "review/"):
            page = text(client_as(who).get(f"/models/{version.model.name}/versions/"
                                           f"{version.number}/{suffix}"))
            assert "Explanations: global importance and reliability" in page
            assert 'class="explain-chart"' in page and "Global importance: mean |SHAP|" in page
            assert figures.content["lime_stability"]["reading"].capitalize() in page
    body = api_as(personas.pi).get(_url(version))
    assert body.status_code == 200
    data = body.json()
    assert data["status"] == "completed" and data["content_sha256"] == figures.content_sha256
    assert data["content"]["lime_stability"]["seeds"] == [0, 1, 2, 3, 4]
    assert data["background_source"] == "synthetic_profile" and data["explainer"] == "tree"


def test_progress_shows_while_they_compute(personas, dataset, small_figures, client_as,
                                           monkeypatch, django_capture_on_commit_callbacks):
    from explain import services

    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: None)  # worker busy
    version = draft_of(personas, dataset, forest())
    with django_capture_on_commit_callbacks(execute=True):
        model_version_submit(user=personas.owner, version=version)
    job = ExplanationJob.objects.get()
    ExplanationJob.objects.filter(pk=job.pk).update(status="running", progress_done=3,
                                                    progress_total=5, stage="LIME stability")
    page = text(client_as("pi").get(f"/models/{version.model.name}/versions/{version.number}/"))
    assert "<progress" in page and "(60 %)" in page and "LIME stability" in page
    response = api_as(personas.pi).get(_url(version))
    assert response.status_code == 202 and response.json()["job"]["progress"]["done"] == 3


def test_owners_may_ask_for_missing_figures_others_may_not(personas, dataset, client_as,
                                                           django_capture_on_commit_callbacks,
                                                           monkeypatch):
    from explain import services

    sent = []
    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: sent.append(job_id))
    version = draft_of(personas, dataset, forest())
    model_version_submit(user=personas.owner, version=version)  # figures off on submit here
    page = text(client_as("owner").get(f"/models/{version.model.name}/versions/1/"))
    assert "Not computed yet" in page and "Compute the explanation figures" in page
    assert "Compute the explanation figures" not in text(
        client_as("pi").get(f"/models/{version.model.name}/versions/1/"))
    assert api_as(personas.pi).post(_url(version)).status_code == 403
    assert api_as(personas.outsider).post(_url(version)).status_code == 404
    assert api_as(personas.outsider).get(_url(version)).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(personas.owner).post(_url(version))
    assert response.status_code == 202 and len(sent) == 1
    with django_capture_on_commit_callbacks(execute=True):
        again = client_as("owner").post(f"/models/{version.model.name}/versions/1/"
                                        "explanations/")
    assert again.status_code == 302 and len(sent) == 1  # joined the job under way
    assert client_as("pi").post(f"/models/{version.model.name}/versions/1/explanations/",
                                follow=True).status_code == 200
    assert ExplanationJob.objects.count() == 1
    assert client_as("outsider").post(
        f"/models/{version.model.name}/versions/1/explanations/").status_code == 404


def test_a_draft_has_no_figures_section(personas, dataset, client_as):
    version = draft_of(personas, dataset, forest())
    page = text(client_as("owner").get(f"/models/{version.model.name}/versions/1/"))
    assert "Explanations: global importance" not in page


def test_the_backfill_command_asks_for_missing_figures(personas, dataset, monkeypatch):
    import io

    from django.core.management import call_command

    from explain import services

    sent = []
    monkeypatch.setattr(services, "enqueue", lambda job_id, queue: sent.append(job_id))
    version = draft_of(personas, dataset, forest())
    model_version_submit(user=personas.owner, version=version)  # figures off on submit here
    out = io.StringIO()
    call_command("explain_versions", stdout=out)
    assert "1 version(s): explanation figures queued" in out.getvalue()
    assert ExplanationJob.objects.filter(kind="version", version=version).count() == 1
    call_command("explain_versions", stdout=out)  # the job under way is joined
    assert ExplanationJob.objects.filter(kind="version", version=version).count() == 1
