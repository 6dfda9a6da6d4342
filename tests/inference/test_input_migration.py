"""Migration 0007: Prediction.input from jsonb (JSONField) to canonical text (json)."""

from __future__ import annotations

import json

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from inference.log import verify_prediction_log
from inference.models import Prediction
from inference.triggers import run as run_triggers

from ..conftest import api_as
from .helpers import released_version, typical_input

BEFORE = [("inference", "0006_batch_chunk_seconds")]


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_rows_logged_before_the_change_keep_their_input_and_verify(transactional_db, personas):
    version = released_version(personas, confidence_threshold=0.0)
    row = typical_input(version)
    answer = api_as(personas.clinician).post(
        f"/api/v1/models/{personas.model.name}/predict/", {"inputs": row}, format="json")
    assert answer.status_code == 200
    # Every app's leaf, not only inference's: migrating inference back also unapplies the
    # migrations of apps that depend on it (monitoring's), and a later transactional test
    # on this worker would find their tables gone.
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    _migrate(BEFORE)
    try:
        # The row as the old column held it: jsonb on PostgreSQL, json.dumps' text on SQLite.
        run_triggers(connection, install=False)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("UPDATE inference_prediction SET input = "
                               "CAST(CAST(input AS text) AS jsonb)")
            else:
                cursor.execute("UPDATE inference_prediction SET input = %s", [json.dumps(row)])
            cursor.execute("SELECT CAST(input AS text) FROM inference_prediction")
            old_text = cursor.fetchone()[0]
        run_triggers(connection, install=True)
        assert ", " in old_text  # not canonical: spaced
    finally:
        _migrate(latest)
    prediction = Prediction.objects.get()
    assert prediction.input == row
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.inputs_checked == 1 and verdict.legacy_inputs_unmatched == 0
    # And a prediction after the change is stored canonical, beside the old one.
    api_as(personas.clinician).post(f"/api/v1/models/{personas.model.name}/predict/",
                                    {"inputs": row}, format="json")
    assert verify_prediction_log().inputs_checked == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgname = 'attest_prediction_guard'"
                       if connection.vendor == "postgresql" else
                       "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                       "AND name LIKE 'attest_prediction_%'")
        assert cursor.fetchall()  # the append-only triggers are back
