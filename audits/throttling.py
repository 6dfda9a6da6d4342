"""Password throttling, counted from the audit trail itself; request rates of the
costly audit endpoints.

Wrong passwords are already recorded — ``auth.login_failed`` at sign-in,
``release.signoff_password_failed`` when a signer re-enters theirs — so counting
them works across every web process and survives restarts, with no extra store.
Both count toward one lock: guessing a password through the sign-off form is
guessing it all the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rest_framework.throttling import UserRateThrottle

from .models import Action, AuditEvent

_FAILURES = Q(action=Action.LOGIN_FAILED) | Q(action=Action.SIGNOFF_PASSWORD_FAILED)
# Evidence that a username works from an address: it signed in, or exchanged its
# password for an API token, from there.
_SUCCESSES = (Action.LOGIN, Action.TOKEN_CREATED)
# Failures read per key beyond its allowance: the wait reaches its cap long before.
_MAX_DOUBLINGS = 24


def password_lock_seconds(*, username: str | None, address: str | None) -> int:
    """Seconds until another password attempt is allowed for this username from this
    address (0: now).

    Wrong passwords within ATTEST_LOGIN_WINDOW_MINUTES are counted twice over:

    1. per username, from any address: ATTEST_LOGIN_MAX_FAILURES are free;
    2. per client address (as ``core.middleware.client_address`` derives it), whatever
       the username: ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS are free. A username that
       has signed in from this address within ATTEST_LOGIN_FAMILIAR_DAYS is not held
       back by this count: behind a proxy Attest is not told about, or a ward's NAT,
       every user shares one address, and one person's (or one attacker's) wrong
       passwords must not lock out everyone who works there. Their own username's
       count still applies to them.

    Past its allowance a key backs off rather than locking for the whole window: the
    next attempt waits ATTEST_LOGIN_BACKOFF_SECONDS after the last failure, and each
    further failure doubles the wait, up to the window. Attempts refused while waiting
    are recorded apart (``auth.login_throttled``) and do not count.
    """
    window = timedelta(minutes=settings.ATTEST_LOGIN_WINDOW_MINUTES)
    now = timezone.now()
    recent = AuditEvent.objects.filter(_FAILURES, time__gte=now - window)
    wait = 0.0
    if username:
        # A failed sign-in names the username it tried (object_repr); a failed sign-off
        # is made by a signed-in user (actor_username).
        by_user = (Q(action=Action.LOGIN_FAILED, object_repr=username)
                   | Q(action=Action.SIGNOFF_PASSWORD_FAILED, actor_username=username))
        wait = _backoff(recent.filter(by_user), settings.ATTEST_LOGIN_MAX_FAILURES, now, window)
    if address:
        by_address = _backoff(recent.filter(remote_addr=address),
                              settings.ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS, now, window)
        if by_address > wait and not (username and _familiar(username, address, now)):
            wait = by_address
    return max(1, int(wait + 0.999)) if wait > 0 else 0


def _backoff(failures, allowance: int, now: datetime, window: timedelta) -> float:
    """Seconds still to wait after these failures (0 within the allowance)."""
    times = list(failures.order_by("-seq").values_list("time", flat=True)
                 [:allowance + _MAX_DOUBLINGS])
    if len(times) < allowance:
        return 0.0
    delay = min(settings.ATTEST_LOGIN_BACKOFF_SECONDS * 2 ** (len(times) - allowance),
                window.total_seconds())
    return max(0.0, (times[0] + timedelta(seconds=delay) - now).total_seconds())


def _familiar(username: str, address: str, now: datetime) -> bool:
    since = now - timedelta(days=settings.ATTEST_LOGIN_FAMILIAR_DAYS)
    return AuditEvent.objects.filter(actor_username=username, action__in=_SUCCESSES,
                                     remote_addr=address, time__gte=since).exists()


# -- request rates of the costly audit endpoints ---------------------------------------

class _PerUserRate(UserRateThrottle):
    """DRF's per-user throttle at a rate read from settings when it is made (DRF reads
    its rates once, at import). Pages use it too (``page_allows``): one count per user."""

    setting = ""

    def get_rate(self) -> str:
        return getattr(settings, self.setting)


class AuditVerifyThrottle(_PerUserRate):
    scope = "audit_verify"
    setting = "ATTEST_AUDIT_VERIFY_RATE"


class AuditCheckpointThrottle(_PerUserRate):
    scope = "audit_checkpoint"
    setting = "ATTEST_AUDIT_CHECKPOINT_RATE"


def page_allows(throttle_class: type[_PerUserRate], request) -> int:
    """For a page: 0 when the request may go ahead (and is counted), else the seconds
    to wait."""
    throttle = throttle_class()
    if throttle.allow_request(request, None):
        return 0
    return max(1, int(throttle.wait() or 1))
