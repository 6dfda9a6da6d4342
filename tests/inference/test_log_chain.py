"""The prediction log is tamper-evident before any anchor: each model's rows form a hash
chain ending at a recorded head, and verify_predictions fails on an edit (even one whose
row hash was recomputed), a deletion, a reorder, a removed tail, and on rows left
unanchored beyond the window (issue 15 §3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from core.clock import replayed_time
from inference import batches
from inference.log import (
    anchor_predictions,
    chain_link,
    prediction_row_hash,
    verify_prediction_log,
)
from inference.models import CHAIN_GENESIS, BatchJob, Prediction, PredictionChainHead
from inference.triggers import run as run_triggers

from ..conftest import api_as
from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


def _predict(personas, n: int, version=None):
    version = version or released_version(personas)
    for _ in range(n):
        response = api_as(personas.clinician).post(
            f"/api/v1/models/{personas.model.name}/predict/",
            {"inputs": typical_input(version)}, format="json")
        assert response.status_code == 200, response.content
    return version


def _tamper(*statements: tuple[str, list]) -> None:
    """What someone with the database file does: triggers off, rows changed, triggers on."""
    run_triggers(connection, install=False)
    try:
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
    finally:
        run_triggers(connection, install=True)


def _rows():
    return list(Prediction.objects.order_by("id"))


def test_each_row_covers_the_one_before_it_and_the_head_the_last(personas):
    _predict(personas, 3)
    rows = _rows()
    previous = CHAIN_GENESIS
    for row in rows:
        assert row.chain_hash == chain_link(previous, row.row_hash)
        previous = row.chain_hash
    head = PredictionChainHead.objects.get(model=personas.model)
    assert (head.head, head.count, head.last_id) == (previous, 3, rows[-1].pk)
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.chains == 1 and verdict.anchored == 0
    assert verdict.unanchored == 3 and not verdict.overdue


def test_a_label_changed_with_its_row_hash_recomputed_is_caught_unanchored(personas):
    _predict(personas, 3)
    target = _rows()[1]
    target.label = "forged" if target.label != "forged" else "other"
    forged_hash = prediction_row_hash(target)
    _tamper(("UPDATE inference_prediction SET label = %s, row_hash = %s WHERE id = %s",
             [target.label, forged_hash, target.pk]))
    verdict = verify_prediction_log()
    assert not verdict.ok and verdict.first_problem["id"] == target.pk
    assert "chain" in verdict.first_problem["problem"]
    with pytest.raises(CommandError, match=f"prediction {target.pk}: row does not follow") \
            as raised:
        call_command("verify_predictions")
    assert raised.value.returncode == 1


def test_deleted_rows_are_caught_unanchored(personas):
    _predict(personas, 4)
    rows = _rows()
    _tamper(*[("DELETE FROM inference_prediction WHERE id = %s", [r.pk]) for r in rows[1:3]])
    verdict = verify_prediction_log()
    assert not verdict.ok and verdict.first_problem["id"] == rows[3].pk


def test_removing_the_newest_rows_does_not_match_the_head(personas):
    _predict(personas, 3)
    newest = _rows()[-1]
    _tamper(("DELETE FROM inference_prediction WHERE id = %s", [newest.pk]))
    verdict = verify_prediction_log()
    assert not verdict.ok and "recorded head" in verdict.first_problem["problem"]


def test_a_reorder_is_caught(personas):
    """Two rows' contents swapped between their ids (each row hash still matches its row)."""
    _predict(personas, 3)
    first, second = _rows()[:2]
    columns = ("public_id", "label", "score", "confidence", "input_sha256", "created_at",
               "latency_ms", "row_hash")

    def assign(row):
        return ", ".join(f"{c} = %s" for c in columns), [
            str(row.public_id).replace("-", "") if connection.vendor == "sqlite"
            else str(row.public_id), row.label, row.score, row.confidence, row.input_sha256,
            row.created_at, row.latency_ms, row.row_hash]

    # public_id is unique: park the first row's value out of the way first
    sets_second, params_second = assign(second)
    sets_first, params_first = assign(first)
    _tamper(("UPDATE inference_prediction SET public_id = %s WHERE id = %s",
             ["0" * 32 if connection.vendor == "sqlite" else "00000000-0000-4000-8000-"
              "000000000000", first.pk]),
            (f"UPDATE inference_prediction SET {sets_first} WHERE id = %s",  # noqa: S608
             [*params_first, second.pk]),
            (f"UPDATE inference_prediction SET {sets_second} WHERE id = %s",  # noqa: S608
             [*params_second, first.pk]))
    swapped = _rows()
    assert swapped[0].row_hash == second.row_hash  # the tamper worked
    verdict = verify_prediction_log()
    assert not verdict.ok and verdict.first_problem["id"] == first.pk


def test_a_recomputed_chain_is_caught_by_its_anchor(personas):
    """Someone who recomputes the whole chain and the head still meets the anchors the
    audit chain holds."""
    _predict(personas, 3)
    assert anchor_predictions(settle=timedelta(0)) is not None
    rows = _rows()
    rows[1].label = "forged"
    statements, previous = [], CHAIN_GENESIS
    for row in rows:
        forged = prediction_row_hash(row)
        previous = chain_link(previous, forged)
        statements.append(("UPDATE inference_prediction SET label = %s, row_hash = %s, "
                           "chain_hash = %s WHERE id = %s",
                           [row.label, forged, previous, row.pk]))
    statements.append(("UPDATE inference_predictionchainhead SET head = %s "
                       "WHERE model_id = %s", [previous, personas.model.pk]))
    _tamper(*statements)
    verdict = verify_prediction_log()
    assert not verdict.ok and "anchor" in verdict.first_problem["problem"]


def test_batch_rows_are_chained_with_the_single_ones(personas, django_capture_on_commit_callbacks):
    version = _predict(personas, 2)
    row = typical_input(version)
    text = ",".join(row) + "\n" + "\n".join(
        ",".join(str(v) for v in row.values()) for _ in range(5)) + "\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(personas.clinician).post(
            f"/api/v1/models/{personas.model.name}/batches/",
            {"file": SimpleUploadedFile("rows.csv", text.encode())}, format="multipart")
    assert response.status_code == 202, response.content
    job = api_as(personas.clinician).get(response.json()["links"]["self"]).json()
    if job["status"] == "queued":  # a real broker: run it here, as a worker would
        batches.batch_run(job_id=BatchJob.objects.get(public_id=job["id"]).pk)
        job = api_as(personas.clinician).get(response.json()["links"]["self"]).json()
    assert job["status"] == "completed", job
    _predict(personas, 1, version)
    head = PredictionChainHead.objects.get(model=personas.model)
    assert head.count == 8
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.checked == 8 and verdict.chains == 1


def test_rows_left_unanchored_beyond_the_window_fail_verification(personas):
    with replayed_time(timezone.now() - timedelta(hours=2)):
        _predict(personas, 2)
    with override_settings(ATTEST_ANCHOR_WINDOW_SECONDS=900):
        verdict = verify_prediction_log()
        assert verdict.ok and verdict.overdue and verdict.unanchored_overdue == 2
        with pytest.raises(CommandError, match="2 predictions older than 15 minutes are not "
                           "anchored") as raised:
            call_command("verify_predictions")
        assert raised.value.returncode == 1
        anchor_predictions(settle=timedelta(0))
        verdict = verify_prediction_log()
        assert verdict.ok and not verdict.overdue and verdict.anchored == 2
        call_command("verify_predictions")


def test_the_migration_chains_rows_already_logged(personas):
    """0009 chains existing rows from their stored row hashes, in id order per model."""
    import importlib

    migration = importlib.import_module("inference.migrations.0009_prediction_chain")
    _predict(personas, 3)
    rows = _rows()
    _tamper(("UPDATE inference_prediction SET chain_hash = ''", []),
            ("DELETE FROM inference_predictionchainhead", []))
    from django.apps import apps

    class _Editor:
        pass

    editor = _Editor()
    editor.connection = connection
    migration.chain_existing(apps, editor)
    assert [r.chain_hash for r in _rows()] == [r.chain_hash for r in rows]
    assert verify_prediction_log().ok
