"""Sign-in throttling: see audits.throttling (sign-in and sign-off failures share a lock)."""

from __future__ import annotations

from audits.throttling import password_lock_seconds


def login_lock_seconds(*, username: str | None, address: str | None) -> int:
    """Seconds until another sign-in attempt is allowed (0: now)."""
    return password_lock_seconds(username=username, address=address)
