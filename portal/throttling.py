"""Sign-in throttling: see audits.throttling (sign-in and sign-off failures share a lock,
keyed on the username and on the client address, with back-off)."""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle

from audits.throttling import password_lock_seconds
from core.middleware import client_address


def login_lock_seconds(*, username: str | None, address: str | None) -> int:
    """Seconds until another sign-in attempt is allowed (0: now)."""
    return password_lock_seconds(username=username, address=address)


def wait_text(seconds: int) -> str:
    """'40 seconds', '1 minute', '15 minutes'."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class TokenThrottle(AnonRateThrottle):
    """Password-for-token exchanges per client address. The address is the one the rest of
    Attest uses (core.middleware.client_address: X-Forwarded-For only from a trusted proxy);
    DRF's own would read X-Forwarded-For from anyone, and a client rotating it was never
    limited."""

    rate = "20/min"

    def get_ident(self, request) -> str:
        return client_address(getattr(request, "_request", request)) or "unknown"
