"""Sign-in throttling, counted from the audit trail itself.

Failures are already recorded as ``auth.login_failed`` events, so counting them
works across every web process and survives restarts, with no extra store.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from audits.models import Action, AuditEvent


def login_lock_seconds(*, username: str | None, address: str | None) -> int:
    """Seconds until another attempt is allowed for this username or address (0: now)."""
    window = timedelta(minutes=settings.ATTEST_LOGIN_WINDOW_MINUTES)
    since = timezone.now() - window
    recent = AuditEvent.objects.filter(action=Action.LOGIN_FAILED, time__gte=since)
    # One address may serve a whole ward behind NAT: it gets a larger allowance.
    for condition, limit in (
            (Q(object_repr=username) if username else None, settings.ATTEST_LOGIN_MAX_FAILURES),
            (Q(remote_addr=address) if address else None,
             settings.ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS)):
        if condition is None:
            continue
        times = list(recent.filter(condition).order_by("-seq").values_list("time", flat=True)[:limit])
        if len(times) >= limit:
            unlock = times[-1] + window
            return max(1, int((unlock - timezone.now()).total_seconds()))
    return 0
