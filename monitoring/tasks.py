"""Celery tasks of monitoring (beat runs both; see ``CELERY_BEAT_SCHEDULE`` in
``portal/settings.py``). Tasks take ids, load, call a service."""

from __future__ import annotations

from celery import shared_task

from core.context import acting_as

from . import aggregation, services


@shared_task(name="monitoring.aggregate", acks_late=True)
def aggregate() -> int:
    """Count new prediction-log rows into the drift bins; returns the watermark."""
    with acting_as(None, via="task"):
        return aggregation.aggregate_predictions()


@shared_task(name="monitoring.evaluate", acks_late=True)
def evaluate() -> list[dict]:
    """Count, then compute every monitored version's figures and move its alerts."""
    with acting_as(None, via="task"):
        runs = services.monitoring_run_all()
    return [{"version": run.version_id, "run": run.pk, "ms": run.duration_ms} for run in runs]
