"""Typed readers for environment variables.

Each helper refuses a malformed value with ``ImproperlyConfigured`` naming the
variable, so a typo in a deployment fails at start-up instead of silently
falling back to a default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {number}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if number != number or (minimum is not None and number < minimum):
        raise ImproperlyConfigured(f"{name} must be a number >= {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be a number <= {maximum}, got {value!r}")
    return number


_RATE = re.compile(r"^(\d+)/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """A request rate, ``N/period`` (period: s, min, hour or day), as DRF's throttles read it."""
    value = (os.environ.get(name) or "").strip() or default
    match = _RATE.match(value)
    if not match or int(match.group(1)) < 1:
        raise ImproperlyConfigured(f"{name} must look like 10/hour (a positive count per s, "
                                   f"min, hour or day), got {value!r}")
    return value


# What deploy/env.example puts where a secret goes.
PLACEHOLDERS = ("change-me", "changeme")


def refuse_placeholder(what: str, value: str | None) -> None:
    """Refuse to start with a secret still set to the example's placeholder."""
    if value and any(p in value.strip().lower() for p in PLACEHOLDERS):
        raise ImproperlyConfigured(f"{what} is still the example's placeholder 'change-me': "
                                   "replace it (e.g. with `openssl rand -hex 32`)")


def url_password(url: str | None) -> str | None:
    """The password inside a URL such as redis://:PASSWORD@host:6379/0."""
    if not url:
        return None
    try:
        password = urlparse(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def database_from_url(url: str) -> dict:
    """Translate ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` to Django's dict."""
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql"}:
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL must name a database: postgres://user@host:5432/NAME")
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
        }
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif url.startswith("sqlite:///"):
            path = path.lstrip("/")
        if not path:
            raise ImproperlyConfigured("DATABASE_URL sqlite:/// must name a file")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use postgres:// or sqlite:///)"
    )
