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


PROXY = "10.0.0.1"  # a reverse proxy Attest is not told about (ATTEST_TRUSTED_PROXIES empty)


def _via_proxy(client_ip: str) -> Client:
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=client_ip)


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves: events are recorded and throttles read at its time."""
    from datetime import timedelta

    from django.utils import timezone

    class Clock:
        now = timezone.now()

        def advance(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

    fake = Clock()
    monkeypatch.setattr(timezone, "now", lambda: fake.now)
    return fake


def test_wrong_passwords_through_an_untrusted_proxy_do_not_lock_out_its_regular_users(
        personas, settings):
    """26 wrong passwords from one address used to lock out everyone behind it."""
    assert settings.ATTEST_TRUSTED_PROXIES == []
    for name in ("pi", "irb"):  # they have signed in from behind the proxy before
        assert _login(_via_proxy("192.168.1.20"), PASSWORD, username=name).status_code == 302
    for i in range(26):  # someone sprays wrong passwords from behind it
        _login(_via_proxy(f"203.0.113.{i}"), "wrong", username=f"guess{i}")
    assert AuditEvent.objects.filter(action=Action.LOGIN_FAILED, remote_addr=PROXY).count() == 25
    for name in ("pi", "irb"):
        assert _login(_via_proxy("192.168.1.21"), PASSWORD, username=name).status_code == 302
    # Someone never seen behind it waits a back-off from the last failure, not the window.
    response = _login(_via_proxy("192.168.1.22"), PASSWORD, username="owner")
    assert b"Too many failed sign-in attempts. Try again in 1 minute," in response.content


def test_the_lock_backs_off_from_the_last_failure(personas, settings, clock):
    from audits.throttling import password_lock_seconds

    settings.ATTEST_LOGIN_MAX_FAILURES = 3
    settings.ATTEST_LOGIN_BACKOFF_SECONDS = 60
    waits = []
    for _ in range(6):
        assert password_lock_seconds(username="owner", address=None) == 0
        _login(Client(), "wrong")
        waits.append(password_lock_seconds(username="owner", address=None))
        clock.advance(waits[-1])  # the next try comes when the wait is over
    assert waits == [0, 0, 60, 120, 240, 480]
    assert _login(Client(), PASSWORD).status_code == 302
    assert not AuditEvent.objects.filter(action=Action.LOGIN_THROTTLED).exists()


def test_the_back_off_is_at_most_the_window(personas, settings, clock):
    from audits.services import audit_event_record
    from audits.throttling import password_lock_seconds

    settings.ATTEST_LOGIN_MAX_FAILURES = 1
    settings.ATTEST_LOGIN_WINDOW_MINUTES = 3
    waits = []
    for _ in range(4):
        audit_event_record(action=Action.LOGIN_FAILED, object_type="auth.user",
                           object_repr="owner")
        waits.append(password_lock_seconds(username="owner", address=None))
    assert waits == [60, 120, 180, 180]
    clock.advance(181)  # the failures leave the window
    assert password_lock_seconds(username="owner", address=None) == 0


def test_sign_off_password_failures_still_count_toward_the_sign_in_lock(personas, settings):
    from audits.services import audit_event_record
    from core.context import acting_as

    settings.ATTEST_LOGIN_MAX_FAILURES = 2
    with acting_as(personas.pi):
        for _ in range(2):
            audit_event_record(action=Action.SIGNOFF_PASSWORD_FAILED, object_type="v")
    response = _login(Client(), PASSWORD, username="pi")
    assert b"Too many failed sign-in attempts" in response.content


def test_the_token_endpoint_limits_per_client_address_not_per_forwarded_header(personas):
    """Rotating X-Forwarded-For gave an unlimited number of password exchanges."""
    statuses = []
    for i in range(22):
        client = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        statuses.append(client.post("/api/v1/auth/tokens/", {
            "username": f"nobody{i}", "password": "x"}, content_type="application/json"
        ).status_code)
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429, 429]
    other = Client(REMOTE_ADDR="198.51.100.8").post(
        "/api/v1/auth/tokens/", {"username": "owner", "password": PASSWORD},
        content_type="application/json")
    assert other.status_code == 201


def test_the_token_endpoint_believes_a_trusted_proxy(personas, settings):
    settings.ATTEST_TRUSTED_PROXIES = [PROXY]
    for i in range(21):
        response = _via_proxy(f"203.0.113.{i}").post("/api/v1/auth/tokens/", {
            "username": f"nobody{i}", "password": "x"}, content_type="application/json")
        assert response.status_code == 401  # each client has its own count


def test_check_deploy_warns_behind_a_proxy_without_trusted_proxies(settings):
    from django.core.checks import run_checks

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ATTEST_TRUSTED_PROXIES = []
    ids = [m.id for m in run_checks(include_deployment_checks=True)]
    assert "attest.W001" in ids
    settings.ATTEST_TRUSTED_PROXIES = ["10.0.0.1"]
    assert "attest.W001" not in [m.id for m in run_checks(include_deployment_checks=True)]
