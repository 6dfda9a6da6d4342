"""Password throttling, counted from the audit trail itself.

Wrong passwords are already recorded — ``auth.login_failed`` at sign-in,
``release.signoff_password_failed`` when a signer re-enters theirs — so counting
them works across every web process and survives restarts, with no extra store.
Both count toward one lock: guessing a password through the sign-off form is
guessing it all the same.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rest_framework.throttling import UserRateThrottle

from .models import Action, AuditEvent

_FAILURES = Q(action=Action.LOGIN_FAILED) | Q(action=Action.SIGNOFF_PASSWORD_FAILED)


def password_lock_seconds(*, username: str | None, address: str | None) -> int:
    """Seconds until another password attempt is allowed for this username or address
    (0: now)."""
    window = timedelta(minutes=settings.ATTEST_LOGIN_WINDOW_MINUTES)
    since = timezone.now() - window
    recent = AuditEvent.objects.filter(_FAILURES, time__gte=since)
    # A failed sign-in names the username it tried (object_repr); a failed sign-off is
    # made by a signed-in user (actor_username).
    by_user = (Q(action=Action.LOGIN_FAILED, object_repr=username)
               | Q(action=Action.SIGNOFF_PASSWORD_FAILED, actor_username=username))
    # One address may serve a whole ward behind NAT: it gets a larger allowance.
    for condition, limit in (
            (by_user if username else None, settings.ATTEST_LOGIN_MAX_FAILURES),
            (Q(remote_addr=address) if address else None,
             settings.ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS)):
        if condition is None:
            continue
        times = list(recent.filter(condition).order_by("-seq").values_list("time", flat=True)[:limit])
        if len(times) >= limit:
            unlock = times[-1] + window
            return max(1, int((unlock - timezone.now()).total_seconds()))
    return 0


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
