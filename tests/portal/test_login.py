from __future__ import annotations

import pytest
from django.test import Client

from audits.models import Action, AuditEvent

from ..personas import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, password, username="owner"):
    return client.post("/login/", {"username": username, "password": password})


def test_it_signs_in_and_records_it(personas):
    client = Client()
    response = _login(client, PASSWORD)
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=Action.LOGIN, actor=personas.owner).count() == 1


def test_failures_are_recorded_without_the_password(personas):
    response = _login(Client(), "wrong-password")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    event = AuditEvent.objects.get(action=Action.LOGIN_FAILED)
    assert event.object_repr == "owner" and "wrong-password" not in str(event.details)


def test_repeated_failures_lock_the_account_for_a_while(personas, settings):
    settings.ATTEST_LOGIN_MAX_FAILURES = 3
    client = Client()
    for _ in range(3):
        _login(client, "wrong")
    response = _login(client, PASSWORD)  # right password, but locked
    assert response.status_code == 200
    assert b"Too many failed sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session
    # the API's password exchange is locked too
    api = Client().post("/api/v1/auth/tokens/", {"username": "owner", "password": PASSWORD},
                        content_type="application/json")
    assert api.status_code == 429 and int(api["Retry-After"]) > 0
    # another user is not affected
    assert _login(Client(), PASSWORD, username="pi").status_code == 302


def test_attempts_during_a_lock_do_not_extend_it(personas, settings):
    settings.ATTEST_LOGIN_MAX_FAILURES = 2
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    def attempt(password):
        return authenticate(RequestFactory().post("/login/"), username="owner", password=password)

    for _ in range(2):
        assert attempt("wrong") is None
    for _ in range(3):
        assert attempt(PASSWORD) is None
    assert AuditEvent.objects.filter(action=Action.LOGIN_FAILED).count() == 2
    assert AuditEvent.objects.filter(action=Action.LOGIN_THROTTLED).count() == 3


def test_many_failures_from_one_address_lock_that_address(personas, settings):
    settings.ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    for name in ("pi", "irb", "clinician", "reviewer"):
        _login(Client(), "wrong", username=name)
    response = _login(Client(), PASSWORD, username="owner")
    assert b"Too many failed sign-in attempts" in response.content
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert _login(other, PASSWORD, username="owner").status_code == 302
