"""Where the client keeps the server URL and the API token.

The token is a credential: it lives in a file only its owner can read (mode 0600 in a
0700 directory), written atomically, or comes from the environment (``ATTEST_TOKEN``,
with ``ATTEST_URL``), which wins over the file so CI jobs need no file at all.

File: ``$ATTEST_CONFIG``, else ``$XDG_CONFIG_HOME/attest/config.json``, else
``~/.config/attest/config.json``::

    {"url": "https://attest.example.org", "token": "att_…", "username": "jdoe",
     "token_id": 12, "expires_at": "2027-03-01T10:00:00+00:00"}
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import AuthError, UsageError


@dataclass
class Settings:
    url: str | None = None
    token: str | None = None
    username: str | None = None
    token_id: int | None = None
    expires_at: str | None = None
    source: str = "none"  # "environment", the file's path, or "none"

    def expired(self, now: datetime | None = None) -> bool:
        if not self.expires_at:
            return False
        try:
            when = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when <= (now or datetime.now(UTC))


def config_path() -> Path:
    explicit = os.environ.get("ATTEST_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "attest" / "config.json"


def normalize_url(url: str) -> str:
    url = (url or "").strip()
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"not a server URL: {url!r} (use https://host or http://host:port)")
    return url.rstrip("/")


def load(path: Path | None = None) -> Settings:
    """Settings from the environment, else from the file (empty Settings when neither)."""
    env_token, env_url = os.environ.get("ATTEST_TOKEN"), os.environ.get("ATTEST_URL")
    path = path or config_path()
    stored: dict = {}
    if path.is_file():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"attest: warning: {path} is readable by other users; run chmod 600 {path}",
                  file=sys.stderr)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the client's configuration {path}: {exc}") from None
        if not isinstance(stored, dict):
            raise UsageError(f"{path} is not a configuration file of the attest client")
    if env_token:
        return Settings(url=normalize_url(env_url) if env_url else stored.get("url"),
                        token=env_token, source="environment")
    settings = Settings(**{k: stored.get(k) for k in ("url", "token", "username", "token_id",
                                                      "expires_at")},
                        source=str(path) if stored else "none")
    if env_url:
        settings.url = normalize_url(env_url)
    return settings


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write the file readable by its owner only, atomically (never half a token)."""
    path = path or config_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(settings).items() if k != "source" and v is not None}
        fd, temporary = tempfile.mkstemp(prefix=".config.", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
                handle.write("\n")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def forget(path: Path | None = None) -> bool:
    """Remove the stored token (the URL stays, for the next login)."""
    path = path or config_path()
    if not path.is_file():
        return False
    current = load(path) if not os.environ.get("ATTEST_TOKEN") else None
    url = current.url if current else None
    if url:
        save(Settings(url=url), path)
    else:
        path.unlink()
    return True


def require_login(settings: Settings) -> None:
    if not settings.url:
        raise AuthError("not logged in: run `attest login URL` (or set ATTEST_URL and "
                        "ATTEST_TOKEN)")
    if not settings.token:
        raise AuthError(f"not logged in to {settings.url}: run `attest login {settings.url}`")
    if settings.expired():
        raise AuthError(f"your API token expired on {settings.expires_at[:10]}: run "
                        f"`attest login {settings.url}` again")
