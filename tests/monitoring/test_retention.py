"""Retention and monitoring: the purge keeps every raw input monitoring has not counted,
and drift for a purged window is still reported from the counts."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from audits.models import Action, AuditEvent
from core.clock import replayed_time
from inference.log import anchor_predictions, verify_prediction_log
from inference.models import Prediction
from inference.services import prediction_inputs_purge
from monitoring import aggregation
from monitoring.health import Status
from registry.models import RegisteredModel

from ..conftest import api_as
from ..inference.helpers import released_version
from .helpers import log_rows, training_like

pytestmark = pytest.mark.django_db


def _history(personas):
    """A version released 45 days ago, 600 drifted predictions 40 days ago (past a 30-day
    retention) and 100 of today, none counted yet."""
    RegisteredModel.objects.filter(pk=personas.model.pk).update(retention_days=30)
    personas.model.refresh_from_db()
    now = timezone.now()
    with replayed_time(now - timedelta(days=45)):
        version = released_version(personas, confidence_threshold=0.6)
    with replayed_time(now - timedelta(days=40)):
        log_rows(personas, training_like(600, seed=21, shift={"mean radius": 1.0}))
    log_rows(personas, training_like(100, seed=22))
    return version, (now - timedelta(days=40)).date()


def test_after_a_purge_drift_for_the_purged_window_is_still_reported(personas):
    version, day = _history(personas)
    assert aggregation.watermark() == 0
    purged = prediction_inputs_purge()
    assert purged == {personas.model.name: 600}  # counted first, then purged
    assert Prediction.objects.filter(input__isnull=True).count() == 600
    assert aggregation.watermark() >= Prediction.objects.order_by("id")[599].pk
    response = api_as(personas.irb).get(
        f"/api/v1/models/{personas.model.name}/monitoring/?version={version.number}"
        f"&since={day.isoformat()}&until={day.isoformat()}")
    assert response.status_code == 200, response.json()
    drift = {d["feature"]: d for d in response.json()["figures"]["drift"]}
    assert drift["mean radius"]["n"] == 600 and drift["mean radius"]["status"] == Status.ALERT
    assert {f for f, d in drift.items() if d["status"] != Status.OK} == {"mean radius"}
    assert response.json()["figures"]["predictions"]["inputs_unavailable"] == 0
    anchor_predictions(settle=timedelta(0))
    verdict = verify_prediction_log()
    assert verdict.ok and verdict.checked == 700
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # exits 1 (SystemExit) on a broken chain
    call_command("verify_predictions", stdout=out)


def test_the_purge_keeps_inputs_monitoring_has_not_counted(personas, monkeypatch):
    _history(personas)

    def broken(**_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(aggregation, "aggregate_predictions", broken)
    assert prediction_inputs_purge() == {}
    assert not Prediction.objects.filter(input__isnull=True).exists()
    event = AuditEvent.objects.get(action=Action.PREDICTION_INPUTS_PURGED)
    assert event.details["rows"] == 0 and event.details["held_back"] == 600
    assert event.details["consumed_through"] == {"monitoring": 0}


def test_rows_purged_before_they_were_counted_are_reported_as_such(personas, monkeypatch):
    """Rows whose input went before monitoring existed: counted without feature values."""
    version, _day = _history(personas)
    from inference import services

    monkeypatch.setattr(services, "_input_consumers", {})  # as before monitoring existed
    prediction_inputs_purge()
    monkeypatch.undo()
    aggregation.aggregate_predictions(settle=timedelta(0))
    from monitoring.models import VersionCounts

    old = VersionCounts.objects.filter(version=version, period="day",
                                       inputs_unavailable__gt=0).get()
    assert old.inputs_unavailable == 600 and old.predictions == 600
