"""The fast lane's cached authorization never outlives a change it depended on.

PostgreSQL only (the serving-epoch triggers exist there). A first request fills the
lane's cache; the second is answered from it (no serving-context read); then something
the authorization depends on changes — through the services, through the ORM, or by
raw SQL behind Django's back — and the very next request must see the change.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from inference.models import Prediction, RejectionCount, ReviewItem
from portal import epoch, serving
from portal.models import ApiToken
from portal.serving import PredictLane
from portal.tokens import api_token_create, api_token_revoke
from registry import release
from registry.models import ModelRole
from registry.services import access_revoke, model_version_submit

from ..inference.helpers import released_version, typical_input
from ..personas import PASSWORD
from ..portal.test_serving import _call, _environ, _refuse
from ..registry.helpers import register_dataset, register_version

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the serving epoch is kept by PostgreSQL triggers")
    assert epoch.available()
    serving.CACHE.clear()


@pytest.fixture
def reads(monkeypatch):
    """How many times the lane read a serving context itself (0 = answered from cache)."""
    counted = {"n": 0}
    real = serving.serving_context

    def counting(**kwargs):
        counted["n"] += 1
        return real(**kwargs)

    monkeypatch.setattr(serving, "serving_context", counting)
    return counted


def _ask(personas, token, body, app=None):
    raw = json.dumps(body).encode()
    path = f"/api/v1/models/{personas.model.name}/predict/"
    return _call(PredictLane(app or _refuse), _environ(path, raw, token=token))


def _django_app():
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _warm(personas, reads, version):
    _, token = api_token_create(user=personas.clinician, name="cached")
    body = {"inputs": typical_input(version)}
    assert _ask(personas, token, body).code == 200
    assert _ask(personas, token, body).code == 200
    assert reads["n"] == 1, "the second request was answered from the cache"
    return token, body


@pytest.mark.parametrize("change", ["revoke", "raw_sql_revoke", "deactivate", "grant_revoked",
                                    "raw_sql_grant_delete", "expired"])
def test_a_cached_authorization_ends_with_the_change(personas, reads, change):
    version = released_version(personas)
    token, body = _warm(personas, reads, version)
    row = ApiToken.objects.get(prefix=token.split("_")[1])
    if change == "revoke":
        api_token_revoke(user=personas.clinician, token_id=row.pk)
    elif change == "raw_sql_revoke":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE portal_apitoken SET revoked_at = now() WHERE id = %s", [row.pk])
    elif change == "deactivate":
        personas.clinician.is_active = False
        personas.clinician.save(update_fields=["is_active"])
    elif change == "grant_revoked":
        access_revoke(user=personas.owner, model=personas.model, grantee=personas.clinician,
                      role=ModelRole.CLINICIAN)
    elif change == "raw_sql_grant_delete":
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM registry_modelaccessgrant WHERE user_id = %s",
                           [personas.clinician.pk])
    elif change == "expired":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE portal_apitoken SET expires_at = now() - interval '1 second' "
                           "WHERE id = %s", [row.pk])
    before = Prediction.objects.count()
    answer = _ask(personas, token, body, app=_django_app())
    expected = 404 if "grant" in change else 401
    assert answer.code == expected, answer.content
    assert Prediction.objects.count() == before


def test_a_promotion_is_served_at_once(personas, reads):
    first = released_version(personas)
    token, body = _warm(personas, reads, first)
    second = register_version(personas.owner, personas.model, first.dataset)
    model_version_submit(user=personas.owner, version=second)
    for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
        release.signoff_record(user=personas.get(who), version=second, meaning=meaning,
                               decision="approve", password=PASSWORD)
    release.version_promote(user=personas.owner, version=second)
    answer = _ask(personas, token, body)
    assert answer.code == 200 and answer.json()["model_version"] == second.number


def test_an_unrelated_change_costs_one_fresh_read_and_writes_one_row(personas, reads):
    version = released_version(personas)
    token, body = _warm(personas, reads, version)
    before_epoch = epoch.read()
    register_dataset(personas.owner, version="2099.1")  # not watched: the epoch stays
    assert epoch.read() == before_epoch
    from django.contrib.auth.models import Group

    Group.objects.create(name="unrelated")  # watched table: the epoch moves
    assert epoch.read() != before_epoch
    before = Prediction.objects.count()
    assert _ask(personas, token, body).code == 200
    assert Prediction.objects.count() == before + 1, "the guarded INSERT wrote nothing"
    assert reads["n"] == 2
    assert _ask(personas, token, body).code == 200 and reads["n"] == 2


def test_last_used_updates_do_not_move_the_epoch(personas):
    released_version(personas)
    row, _ = api_token_create(user=personas.clinician, name="t")
    value = epoch.read()
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=row.created_at)
    personas.clinician.last_login = row.created_at
    personas.clinician.save(update_fields=["last_login"])
    assert epoch.read() == value
    ApiToken.objects.filter(pk=row.pk).update(name="renamed")
    assert epoch.read() != value


def test_refusals_and_reviews_from_a_warm_cache_are_written_and_counted_once(personas, reads):
    version = released_version(personas, confidence_threshold=0.9999)
    _, token = api_token_create(user=personas.clinician, name="cached")
    row = typical_input(version)
    assert _ask(personas, token, {"inputs": row}).code == 200  # fills the cache
    bad = _ask(personas, token, {"inputs": {**row, "mean radius": "large"}})
    assert bad.code == 400 and bad.json()["errors"][0]["code"] == "invalid_type"
    assert RejectionCount.objects.get(code="invalid_type").count == 1
    fresh_reads = reads["n"]  # the refusal was redone fresh, and refilled the cache
    reviewed = _ask(personas, token, {"inputs": row})
    assert reviewed.code == 200 and reviewed.json()["routing"] == "review"
    assert Prediction.objects.count() == 2 and ReviewItem.objects.count() == 2
    assert reads["n"] == fresh_reads, "the review item was written from the cache, not redone"
    item = ReviewItem.objects.get(prediction__public_id=reviewed.json()["id"])
    assert item.prediction.routing == "review"


def test_a_review_item_whose_guard_fails_is_written_once_by_the_fresh_path(personas, reads):
    from django.contrib.auth.models import Group

    version = released_version(personas, confidence_threshold=0.9999)
    _, token = api_token_create(user=personas.clinician, name="cached")
    body = {"inputs": typical_input(version)}
    assert _ask(personas, token, body).code == 200 and reads["n"] == 1
    Group.objects.create(name="unrelated")  # the epoch moves: the cached guard fails
    reviewed = _ask(personas, token, body)
    assert reviewed.code == 200 and reviewed.json()["routing"] == "review"
    assert reads["n"] == 2
    assert Prediction.objects.count() == 2 and ReviewItem.objects.count() == 2
    assert set(ReviewItem.objects.values_list("prediction_id", flat=True)) == set(
        Prediction.objects.values_list("pk", flat=True))
