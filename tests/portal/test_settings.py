from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import database_from_url, env_bool, env_int, env_list


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
