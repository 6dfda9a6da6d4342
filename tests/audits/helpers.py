"""Shared by the audit-trail tests."""

from __future__ import annotations

from django.db import connection

from audits.triggers import run as run_triggers


def raw_sql(sql: str, params=()) -> None:
    """Go around Django and the triggers, as someone with database access could."""
    run_triggers(connection, install=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        run_triggers(connection, install=True)
