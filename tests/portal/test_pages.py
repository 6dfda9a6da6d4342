"""The shell's pages per persona: anonymous visitors, sign-in, error pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from ..pages import (
    assert_404,
    model_url,
    text,
    version_url,
)
from ..personas import PASSWORD

pytestmark = pytest.mark.django_db


# -- anonymous visitors ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/", "/models/", "/models/new/", model_url(), model_url("versions/new/"), version_url(),
    version_url("edit/"), version_url("artifact/"), "/datasets/", "/datasets/new/",
    "/datasets/1/", "/audit/verify/",
])
def test_it_sends_anonymous_visitors_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_it_sends_an_anonymous_submit_to_sign_in_and_changes_nothing(client, personas, version):
    response = client.post(version_url("submit/"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    version.refresh_from_db()
    assert version.state == "draft"


def test_it_answers_healthz_without_signing_in(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    from django.db import connection

    assert response.json() == {"status": "ok", "database": connection.vendor}
    assert "no-cache" in response["Cache-Control"]
    assert client.post("/healthz/").status_code == 405


def test_it_serves_the_api_docs_to_signed_in_users(client, personas):
    assert client.get("/api/docs/").status_code == 401
    assert client.get("/api/schema/").status_code == 401
    client.force_login(personas.clinician)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert "swagger" in text(response).lower()
    assert client.get("/api/schema/").status_code == 200


# -- sign in ----------------------------------------------------------------------------------------

def test_it_shows_the_sign_in_form(client):
    response = client.get("/login/")
    assert response.status_code == 200
    body = text(response)
    assert 'name="username"' in body and 'name="password"' in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_it_signs_in_and_follows_next(client, personas):
    response = client.post("/login/", {"username": "owner", "password": PASSWORD,
                                       "next": model_url()})
    assert response.status_code == 302 and response["Location"] == model_url()
    assert client.get(model_url()).status_code == 200


def test_it_signs_in_from_the_bare_login_page_and_lands_on_the_dashboard(client, personas):
    # The form's hidden "next" is what the page rendered: the bare /login/ (where sign-out
    # lands) renders a default rather than leaving the redirect to settings.
    form = text(client.get("/login/"))
    next_value = re.search(r'name="next" value="([^"]*)"', form).group(1)
    response = client.post("/login/", {"username": "owner", "password": PASSWORD,
                                       "next": next_value}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert "Awaiting your sign-off" in text(response)


def test_it_sends_a_signed_in_user_from_the_login_page_to_the_dashboard(client_as):
    response = client_as("owner").get("/login/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"


def test_it_refuses_a_wrong_password_with_a_message(client, personas):
    response = client.post("/login/", {"username": "owner", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text(response)
    assert "_auth_user_id" not in client.session


def test_it_refuses_sign_in_without_the_csrf_token(personas):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "owner", "password": PASSWORD})
    assert response.status_code == 403


def test_it_signs_out_with_post_only(client_as):
    client = client_as("owner")
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/models/").status_code == 302


# -- error pages ----------------------------------------------------------------------------------

def test_it_renders_the_404_page_in_the_layout(client_as):
    response = client_as("owner").get("/no/such/page/")
    assert_404(response)
    assert 'class="topbar"' in text(response) and "Back to your models" in text(response)
