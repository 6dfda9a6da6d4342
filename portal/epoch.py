"""The serving epoch: a value that changes with anything prediction authorization reads.

Triggers (PostgreSQL only) bump ``portal_servingepoch.value`` in the same transaction as
any INSERT, DELETE or TRUNCATE on, or UPDATE of a column that matters in, the tables
behind a prediction's authorization: API tokens (all but ``last_used_at``), users (all
but ``last_login``), group memberships, groups, model access grants, models and model
versions. Because the bump is a row update, it commits (or rolls back) with the change
that caused it, and a reader that sees the new value sees the change too.

The fast lane (``portal/serving.py``) reads the epoch *before* it reads a token and a
serving context into its caches, and inserts the prediction's log row only ``WHERE``
the epoch still has that value — one statement, so a cached authorization can only
produce an answer if nothing it depended on changed in between.

SQLite keeps no such triggers (Django rebuilds SQLite tables on ALTER and would drop
them silently), so there the lane does not cache (``available()`` is False).
"""

from __future__ import annotations

import functools

from django.db import connection

from core.rawsql import fetchone

TABLE = "portal_servingepoch"
FUNCTION = "attest_serving_epoch_bump"
# A new value is at least the current time in microseconds, so a table emptied (tests
# flush) and bumped again never returns to a value a cache may still hold.
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    INSERT INTO {TABLE} (id, value)
    VALUES (1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
    ON CONFLICT (id) DO UPDATE SET value = GREATEST({TABLE}.value + 1, EXCLUDED.value);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""  # noqa: S608
READ_SQL = f"SELECT COALESCE((SELECT value FROM {TABLE} WHERE id = 1), 0)"  # noqa: S608
GUARD_SQL = f"COALESCE((SELECT value FROM {TABLE} WHERE id = 1), 0) = %s"  # noqa: S608


def watched(apps) -> list[tuple[str, list[str] | None]]:
    """(table, columns whose UPDATE bumps — None for every column) for each watched table."""
    from django.conf import settings

    user = apps.get_model(settings.AUTH_USER_MODEL)
    token = apps.get_model("portal", "ApiToken")

    def columns_except(model, *skip: str) -> list[str]:
        return [f.column for f in model._meta.concrete_fields if f.name not in skip]

    return [
        (token._meta.db_table, columns_except(token, "last_used_at")),
        (user._meta.db_table, columns_except(user, "last_login")),
        (user.groups.through._meta.db_table, None),
        (apps.get_model("auth", "Group")._meta.db_table, None),
        (apps.get_model("registry", "ModelAccessGrant")._meta.db_table, None),
        (apps.get_model("registry", "RegisteredModel")._meta.db_table, None),
        (apps.get_model("registry", "ModelVersion")._meta.db_table, None),
    ]


def trigger_statements(apps, vendor: str, *, install: bool) -> list[str]:
    if vendor != "postgresql":
        return []
    out = [_PG_FUNCTION] if install else []
    for table, columns in watched(apps):
        name = f"{FUNCTION}_{table}"[:63]
        out.append(f'DROP TRIGGER IF EXISTS "{name}" ON "{table}";')
        if not install:
            continue
        update = "UPDATE" if columns is None else \
            "UPDATE OF " + ", ".join(f'"{c}"' for c in columns)
        out.append(f'CREATE TRIGGER "{name}" AFTER INSERT OR DELETE OR {update} ON "{table}" '
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();")
        out.append(f'CREATE TRIGGER "{name[:55]}_trunc" AFTER TRUNCATE ON "{table}" '
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();")
    if not install:
        out += [f'DROP TRIGGER IF EXISTS "{f"{FUNCTION}_{t}"[:55]}_trunc" ON "{t}";'
                for t, _ in watched(apps)]
        out.append(f"DROP FUNCTION IF EXISTS {FUNCTION}();")
    return out


@functools.cache
def _installed(alias: str) -> bool:
    """Every watched table has its trigger (asked once per process and database)."""
    from django.apps import apps

    names = [f"{FUNCTION}_{table}"[:63] for table, _ in watched(apps)]
    row = fetchone(connection, "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s) "
                   "AND NOT tgisinternal", [names])
    return row[0] == len(names)


def available() -> bool:
    """Whether the fast lane may cache: PostgreSQL with every trigger in place."""
    return connection.vendor == "postgresql" and _installed(connection.alias)


def read() -> int:
    """The current epoch; read it before the data a cache will hold."""
    return int(fetchone(connection, READ_SQL, [])[0])


def guard(value: int) -> tuple[str, list]:
    """A WHERE condition for a write that must happen only at epoch ``value``."""
    return GUARD_SQL, [value]
