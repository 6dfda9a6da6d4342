"""The embedded shape runs Celery beat's schedule in-process (portal/scheduler.py): what is
due runs, when it ran is kept across restarts, one failing job does not stop the others,
and the prediction log gets anchored without a beat (issue 15 §3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.clock import replayed_time
from inference.log import verify_prediction_log
from inference.models import PredictionAnchor
from portal import scheduler

from ..conftest import api_as
from ..inference.helpers import released_version, typical_input

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_due_jobs_run_and_are_remembered(data_dir, settings):
    names = list(settings.CELERY_BEAT_SCHEDULE)
    outcomes = scheduler.run_due(now=1_000_000.0)
    assert [o.split(":")[0] for _ok, o in outcomes] == names
    assert all(ok for ok, _o in outcomes)
    assert (data_dir / "scheduler.json").exists()
    assert scheduler.run_due(now=1_000_010.0) == []  # a restart does not re-run them
    again = {o.split(":")[0] for _ok, o in scheduler.run_due(now=1_000_061.0)}
    assert again == {n for n, e in settings.CELERY_BEAT_SCHEDULE.items()
                     if scheduler._interval(e) <= 61}
    assert "audit-checkpoint" not in again


def test_a_failing_job_does_not_stop_the_others(data_dir, settings, monkeypatch):
    from audits import chain

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(chain, "verify_chain", broken)
    monkeypatch.setattr("audits.tasks.verify_chain", broken)
    outcomes = {o.split(":")[0]: ok for ok, o in scheduler.run_due(now=2_000_000.0)}
    assert outcomes.pop("verify-audit-chain") is False
    assert all(outcomes.values()) and "anchor-predictions" in outcomes
    with pytest.raises(CommandError, match="1 scheduled job") as raised:
        call_command("run_schedule", "--all")
    assert raised.value.returncode == 1


def test_the_embedded_shape_anchors_the_log_without_beat(personas, data_dir, settings):
    settings.ATTEST_ANCHOR_WINDOW_SECONDS = 900
    version = released_version(personas)
    with replayed_time(timezone.now() - timedelta(hours=1)):
        response = api_as(personas.clinician).post(
            f"/api/v1/models/{personas.model.name}/predict/",
            {"inputs": typical_input(version)}, format="json")
    assert response.status_code == 200
    assert verify_prediction_log().overdue
    scheduler.run_due()
    assert PredictionAnchor.objects.count() == 1
    verdict = verify_prediction_log()
    assert verdict.ok and not verdict.overdue and verdict.anchored == 1


def test_the_thread_starts_only_in_the_embedded_shape(settings):
    settings.ATTEST_EMBEDDED_SCHEDULER = False
    assert scheduler.start() is False
