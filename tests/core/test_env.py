from __future__ import annotations

import json
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


_SECURITY = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
             "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS")


def _security_settings(env: dict[str, str]) -> dict:
    root = Path(__file__).resolve().parents[2]
    names = ", ".join(f"{n!r}: s.{n}" for n in _SECURITY)
    done = subprocess.run(
        [sys.executable, "-c", f"import json, portal.settings as s; print(json.dumps({{{names}}}))"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_production_deployment_defaults_to_https_only(tmp_path):
    production = {"ATTEST_DATA_DIR": str(tmp_path), "ATTEST_REQUIRE_SECRET_KEY": "true",
                  "ATTEST_SECRET_KEY": "p" * 40}
    assert _security_settings(production) == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True}
    overridden = _security_settings({**production, "ATTEST_SSL_REDIRECT": "false",
                                     "ATTEST_HSTS_SECONDS": "0", "ATTEST_SECURE_COOKIES": "0"})
    assert not overridden["SECURE_SSL_REDIRECT"] and overridden["SECURE_HSTS_SECONDS"] == 0
    assert not overridden["SESSION_COOKIE_SECURE"]
    embedded = _security_settings({"ATTEST_DATA_DIR": str(tmp_path)})
    assert not any(embedded.values())


@pytest.mark.parametrize("name,value", [
    ("ATTEST_SECRET_KEY", "change-me"),
    ("ATTEST_SECRET_KEY", "change-me-" + "x" * 40),
    ("DATABASE_URL", "postgres://attest_app:change-me@postgres:5432/attest"),
    ("CELERY_BROKER_URL", "redis://:change-me@redis:6379/0"),
    ("AWS_SECRET_ACCESS_KEY", "change-me"),
    ("ATTEST_EMAIL_PASSWORD", "CHANGE-ME"),
])
def test_the_example_placeholder_is_refused_as_a_secret(tmp_path, name, value):
    started = _settings_in_child({"ATTEST_DATA_DIR": str(tmp_path), name: value})
    assert started.returncode != 0
    assert "placeholder 'change-me'" in started.stderr


def test_every_placeholder_of_the_example_env_file_is_one_the_app_refuses():
    root = Path(__file__).resolve().parents[2]
    example = (root / "deploy" / "env.example").read_text()
    placeholders = {line.split("=", 1)[1] for line in example.splitlines()
                    if "=" in line and not line.startswith("#") and "change" in line.lower()}
    assert placeholders == {"change-me"}


def test_rate_limits_count_in_a_shared_cache_when_one_is_configured(tmp_path):
    root = Path(__file__).resolve().parents[2]

    def backend(env):
        return subprocess.run(
            [sys.executable, "-c", "import portal.settings as s; print(s.CACHES['default']"
             "['BACKEND'].rsplit('.', 1)[-1])"], cwd=root, capture_output=True, text=True,
            timeout=120, env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings",
                              "ATTEST_DATA_DIR": str(tmp_path), **env})

    assert backend({}).stdout.strip() == "LocMemCache"
    assert backend({"ATTEST_CACHE_URL": "redis://:s3cret@redis:6379/1"}).stdout.strip() == \
        "RedisCache"
    assert "placeholder" in backend({"ATTEST_CACHE_URL": "redis://:change-me@redis:6379/1"}).stderr
    assert "redis://" in backend({"ATTEST_CACHE_URL": "memcached://x"}).stderr
