from __future__ import annotations

import pytest
from django.test import Client

from audits.models import Action, AuditEvent
from portal.models import ApiToken
from registry.models import ModelAccessGrant

from ..conftest import api_as

pytestmark = pytest.mark.django_db


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_owners_grant_and_revoke_on_the_access_page(personas):
    client = _as(personas.owner)
    url = f"/models/{personas.model.name}/access/"
    page = client.get(url)
    assert page.status_code == 200 and b"Grant a role" in page.content
    response = client.post(url, {"username": "outsider", "role": "viewer"})
    assert response.status_code == 302
    assert ModelAccessGrant.objects.filter(user=personas.outsider, role="viewer").exists()
    granted = AuditEvent.objects.filter(action=Action.ACCESS_GRANTED).order_by("-seq").first()
    assert granted.before is None and granted.after == {"user": "outsider", "role": "viewer"}
    client.post(url, {"username": "outsider", "role": "viewer", "revoke": "1"})
    assert not ModelAccessGrant.objects.filter(user=personas.outsider).exists()
    revoked = AuditEvent.objects.filter(action=Action.ACCESS_REVOKED).get()
    assert revoked.before == {"user": "outsider", "role": "viewer"} and revoked.after is None


def test_the_access_form_reports_unknown_users_and_the_last_owner(personas):
    client = _as(personas.owner)
    url = f"/models/{personas.model.name}/access/"
    response = client.post(url, {"username": "nobody", "role": "viewer"})
    assert response.status_code == 200 and b"No active user by that name" in response.content
    client.post(url, {"username": "owner", "role": "owner", "revoke": "1"}, follow=True)
    assert ModelAccessGrant.objects.filter(user=personas.owner, role="owner").exists()


@pytest.mark.parametrize("persona,status,can_manage", [
    ("admin", 200, True), ("owner", 200, True), ("auditor", 200, False), ("pi", 200, False),
    ("clinician", 200, False), ("outsider", 404, False), ("viewer_other", 404, False)])
def test_who_sees_and_manages_the_access_page(personas, persona, status, can_manage):
    client = _as(personas.get(persona))
    url = f"/models/{personas.model.name}/access/"
    response = client.get(url)
    assert response.status_code == status
    if status == 200:
        assert (b"Grant a role" in response.content) is can_manage
    post = client.post(url, {"username": "outsider", "role": "owner"})
    if not can_manage:
        assert post.status_code in (302, 404)
        assert not ModelAccessGrant.objects.filter(user=personas.outsider).exists()


def test_grants_through_the_api(personas):
    url = f"/api/v1/models/{personas.model.name}/access/"
    assert api_as(personas.owner).post(url, {"user": "outsider", "role": "reviewer"},
                                       format="json").status_code == 201
    assert api_as(personas.outsider).get(f"/api/v1/models/{personas.model.name}/").status_code == 200
    roles = api_as(personas.pi).get(url).json()["roles"]
    assert "manage_access" in roles["owner"] and "sign_release" in roles["approver"]
    assert api_as(personas.pi).post(url, {"user": "outsider", "role": "owner"},
                                    format="json").status_code == 403
    bad = api_as(personas.owner).post(url, {"user": "outsider", "role": "king"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "role"
    assert api_as(personas.owner).delete(url, {"user": "outsider", "role": "reviewer"},
                                         format="json").status_code == 200
    assert api_as(personas.outsider).get(f"/api/v1/models/{personas.model.name}/").status_code == 404


def test_the_account_page_creates_a_token_shown_once_and_revokes_it(personas):
    client = _as(personas.clinician)
    response = client.post("/account/", {"name": "notebook", "days": 30})
    assert response.status_code == 200 and b"will not be shown again" in response.content
    token = ApiToken.objects.get(user=personas.clinician)
    secret = response.context["secret"]
    assert secret.startswith(f"att_{token.prefix}_")
    again = client.get("/account/")
    assert secret.encode() not in again.content
    client.post("/account/", {"revoke": str(token.pk)})
    token.refresh_from_db()
    assert token.revoked_at is not None
    other = _as(personas.pi)
    other.post("/account/", {"revoke": str(token.pk)})  # not theirs: refused quietly
    assert AuditEvent.objects.filter(action=Action.TOKEN_REVOKED).count() == 1
