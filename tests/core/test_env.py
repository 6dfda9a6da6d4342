from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import database_from_url, env_bool, env_float, env_int, env_list


def test_production_hashes_passwords_with_argon2():
    from portal import settings as project_settings

    assert project_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


@pytest.mark.parametrize("value,expected", [("true", True), ("0", False), ("Yes", True),
                                            ("off", False), ("", True)])
def test_env_bool_reads_clear_values(monkeypatch, value, expected):
    monkeypatch.setenv("X_FLAG", value)
    assert env_bool("X_FLAG", True) is expected


def test_env_helpers_refuse_bad_values_loudly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match=">= 1"):
        env_int("X_INT", 1, minimum=1)
    for bad, reason in (("nan", ">= 0"), ("-1", ">= 0"), ("inf", "<= 60"), ("61", "<= 60")):
        monkeypatch.setenv("X_FLOAT", bad)
        with pytest.raises(ImproperlyConfigured, match=reason):
            env_float("X_FLOAT", 1.0, minimum=0.0, maximum=60.0)
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_list("X_LIST", []) == ["a", "b", "c"]


def test_database_urls():
    pg = database_from_url("postgres://u:p%40ss@db.example:5433/attest?sslmode=require")
    assert (pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "attest", "u", "p@ss", "db.example", "5433")
    assert pg["OPTIONS"] == {"sslmode": "require"}
    assert database_from_url("sqlite:////var/lib/attest.db")["NAME"] == "/var/lib/attest.db"
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://x/y")
    with pytest.raises(ImproperlyConfigured):
        database_from_url("postgres://u@h:5432/")


def _settings_in_child(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-c", "import portal.settings as s; print(len(s.SECRET_KEY_FALLBACKS), "
         "s.EMAIL_USE_TLS, s.EMAIL_HOST_USER)"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", **env})


def test_old_secret_keys_and_smtp_login_come_from_the_environment(tmp_path):
    ok = _settings_in_child({"ATTEST_DATA_DIR": str(tmp_path), "ATTEST_SECRET_KEY": "n" * 40,
                             "ATTEST_SECRET_KEY_FALLBACKS": f"{'a' * 40},{'b' * 40}",
                             "ATTEST_EMAIL_STARTTLS": "true", "ATTEST_EMAIL_USER": "mailer"})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["2", "True", "mailer"]
    short = _settings_in_child({"ATTEST_DATA_DIR": str(tmp_path),
                                "ATTEST_SECRET_KEY_FALLBACKS": "short"})
    assert short.returncode != 0 and "ATTEST_SECRET_KEY_FALLBACKS" in short.stderr
    both = _settings_in_child({"ATTEST_DATA_DIR": str(tmp_path), "ATTEST_EMAIL_STARTTLS": "1",
                               "ATTEST_EMAIL_SSL": "1"})
    assert both.returncode != 0 and "at most one" in both.stderr
