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


@pytest.mark.django_db
def test_insert_params_are_what_django_would_send(personas):
    """core.rawsql.insert_params skips get_db_prep_save only where it changes nothing."""
    import uuid
    from datetime import UTC, datetime

    from psycopg.types.json import Jsonb

    from core.rawsql import _insert_sql, insert_params
    from inference.models import Prediction

    from ..inference.helpers import released_version

    version = released_version(personas)
    for extra in ({}, {"score": 1, "latency_ms": 2, "row_index": 3, "batch_id": None,
                       "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}):
        values = {"public_id": uuid.uuid4(), "model_id": personas.model.pk,
                      "version_id": version.pk, "input_sha256": "a" * 64, "input": {"x": [1, 2.5]},
                      "label": "benign", "score": 0.25, "confidence": 0.75,
                      "probabilities": {"benign": 0.75}, "routing": "auto", "reason": "", "ood": [],
                      "requester_id": personas.clinician.pk, "runtime": "onnx",
                      "created_at": datetime.now(UTC), "latency_ms": 1.5, "row_hash": "b" * 64}
        obj = Prediction(**{**values, **extra})
        _sql, fields = _insert_sql(Prediction, connection, None)
        fast = insert_params(connection, obj, fields)
        slow = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
        assert len(fast) == len(slow)
        for f, a, b in zip(fields, fast, slow, strict=True):
            if isinstance(a, Jsonb):
                assert isinstance(b, Jsonb) and a.obj == b.obj, f.name
            else:
                assert a == b and type(a) is type(b), f.name
