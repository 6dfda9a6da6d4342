"""The scheduled jobs: beat's entries name real tasks, and they run through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from core.clock import replayed_time
from inference.models import Prediction
from monitoring import tasks
from monitoring.models import AggregationState, MonitoringRun

from ..inference.helpers import released_version
from .helpers import log_rows, training_like

pytestmark = pytest.mark.django_db


def test_beat_runs_the_monitoring_jobs():
    schedule = {entry["task"]: entry["schedule"]
                for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["monitoring.aggregate"] == 300 and schedule["monitoring.evaluate"] == 3600
    from celery import current_app

    assert {"monitoring.aggregate", "monitoring.evaluate"} <= set(current_app.tasks)


def test_the_evaluate_task_counts_and_computes_every_monitored_version(personas):
    with replayed_time(timezone.now() - timedelta(hours=2)):  # settled rows
        version = released_version(personas, confidence_threshold=0.6)
        log_rows(personas, training_like(50, seed=1))
    result = tasks.evaluate.apply().get()
    assert [r["version"] for r in result] == [version.pk]
    newest = Prediction.objects.order_by("-id").values_list("id", flat=True).first()
    assert AggregationState.objects.get().last_id == newest  # ids run on across tests on PG
    run = MonitoringRun.objects.get(version=version)
    assert run.trigger == "schedule" and run.figures.get(window="7d", signal="predictions").n == 50
    assert tasks.aggregate.apply().get() == newest
