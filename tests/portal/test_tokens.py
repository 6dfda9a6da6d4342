from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audits.models import Action, AuditEvent
from portal.models import ApiToken

from ..personas import PASSWORD

pytestmark = pytest.mark.django_db


def _token(api, username="owner", password=PASSWORD, **extra):
    return api.post("/api/v1/auth/tokens/", {"username": username, "password": password, **extra},
                    format="json")


def test_it_exchanges_a_password_for_a_token_shown_once(api, personas):
    response = _token(api, name="laptop", days=7)
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["token"]
    assert secret.startswith("att_") and body["name"] == "laptop"
    row = ApiToken.objects.get()
    assert secret not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
    assert timedelta(days=6, hours=23) < row.expires_at - timezone.now() <= timedelta(days=7)
    listing = api.get("/api/v1/auth/tokens/", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert "token" not in listing[0]
    assert AuditEvent.objects.filter(action=Action.TOKEN_CREATED, actor=personas.owner).count() == 1


def test_the_token_authenticates_and_first_use_is_recorded(api, personas):
    secret = _token(api).json()["token"]
    for _ in range(2):
        response = api.get("/api/v1/models/", HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert response.status_code == 200
    assert AuditEvent.objects.filter(action=Action.TOKEN_FIRST_USE).count() == 1
    assert ApiToken.objects.get().last_used_at is not None


def test_a_wrong_password_gets_no_token_and_is_recorded(api, personas):
    response = _token(api, password="wrong")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "invalid_credentials"
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.filter(action=Action.LOGIN_FAILED, object_repr="owner").exists()


@pytest.mark.parametrize("header", ["Bearer att_nope_nope", "Bearer garbage", "Token a b",
                                    "Bearer att_" + "x" * 200])
def test_bad_tokens_are_a_401(api, personas, header):
    response = api.get("/api/v1/models/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "authentication_failed"


def test_revoked_and_expired_tokens_stop_working(api, personas):
    first = _token(api).json()
    second = _token(api).json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {first['token']}"}
    assert api.delete(f"/api/v1/auth/tokens/{first['id']}/", **auth).status_code == 204
    assert api.get("/api/v1/models/", **auth).status_code == 401
    assert AuditEvent.objects.filter(action=Action.TOKEN_REVOKED).count() == 1
    ApiToken.objects.filter(pk=second["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get("/api/v1/models/",
                   HTTP_AUTHORIZATION=f"Bearer {second['token']}").status_code == 401


def test_users_cannot_revoke_each_others_tokens(api, personas):
    owner_token = _token(api).json()
    pi_token = _token(api, username="pi").json()
    response = api.delete(f"/api/v1/auth/tokens/{owner_token['id']}/",
                          HTTP_AUTHORIZATION=f"Bearer {pi_token['token']}")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=owner_token["id"]).revoked_at is None


def test_inactive_users_tokens_stop_working(api, personas):
    secret = _token(api).json()["token"]
    personas.owner.is_active = False
    personas.owner.save()
    assert api.get("/api/v1/models/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_token_requests_are_validated(api, personas):
    response = api.post("/api/v1/auth/tokens/", {"username": "owner"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "password"
    assert _token(api, days=1000).status_code == 400


def test_a_token_carries_global_auditing_and_its_removal_on_the_next_request(api, personas):
    """The token's query also says whether its user is a global auditor (no second query
    per request): membership counts at once, and leaving the group ends it at once."""
    from django.contrib.auth.models import Group

    from registry.roles import AUDITORS_GROUP

    auditors = Group.objects.get_or_create(name=AUDITORS_GROUP)[0]
    secret = _token(api, username="outsider").json()["token"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert api.get(f"/api/v1/models/{personas.model.name}/", **auth).status_code == 404
    auditors.user_set.add(personas.outsider)
    assert api.get(f"/api/v1/models/{personas.model.name}/", **auth).status_code == 200
    auditors.user_set.remove(personas.outsider)
    assert api.get(f"/api/v1/models/{personas.model.name}/", **auth).status_code == 404
