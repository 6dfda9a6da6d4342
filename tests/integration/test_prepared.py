"""Prepared statements on the prediction path survive a migration that changes a table."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from core.rawsql import fetchone

pytestmark = [pytest.mark.integration]


def test_a_statement_prepared_before_a_column_changed_type_runs_again(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (a integer)")
        cursor.execute("INSERT INTO prepared_probe VALUES (7)")
    try:
        sql = "SELECT a FROM prepared_probe WHERE a = %s"
        assert fetchone(connection, sql, [7]) == (7,)
        assert fetchone(connection, sql, [7]) == (7,)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] >= 1, "the statement was prepared"
        params = connection.get_connection_params()
        conninfo = {k: v for k, v in params.items()
                    if k not in ("cursor_factory", "context", "prepare_threshold")}
        with psycopg.connect(**conninfo, autocommit=True) as other:  # a migration elsewhere
            other.execute("ALTER TABLE prepared_probe ALTER COLUMN a TYPE bigint")
        assert fetchone(connection, sql, [7]) == (7,)
        assert fetchone(connection, sql, [7]) == (7,)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE prepared_probe")
