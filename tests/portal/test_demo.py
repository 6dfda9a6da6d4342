from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from inference.log import verify_prediction_log
from inference.models import Prediction, ReviewItem
from monitoring.models import Alert, MonitoringRun, Outcome
from portal.demo import DRIFTING_FEATURE
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_the_demo_builds_a_released_model_with_a_history_and_is_idempotent():
    out = io.StringIO()
    call_command("demo", stdout=out)
    text = out.getvalue()
    assert "owner-attest-demo" in text and "auditor" in text and "Replayed 42 days" in text
    states = dict(ModelVersion.objects.values_list("number", "state"))
    assert states == {1: "production", 2: "superseded", 3: "in_review"}
    v1 = ModelVersion.objects.get(number=1)
    assert v1.metrics["overall"]["auc"] > 0.95 and len(v1.metrics["subgroups"]) == 4
    assert v1.metrics["calibration"]
    assert {s.meaning for s in v1.signatures.all()} == {"pi_approval", "irb_approval"}
    # a history: weeks of predictions, reviews leaning one way, outcomes, a rollback
    predictions = Prediction.objects.count()
    assert predictions > 1000
    days = {d.date() for d in Prediction.objects.values_list("created_at", flat=True)}
    assert len(days) >= 40
    assert Prediction.objects.filter(version__number=2).exists()
    overrides = ReviewItem.objects.filter(decision="override")
    assert overrides.count() >= 10 and not ReviewItem.objects.filter(status="open").exists()
    assert 0.3 * predictions < Outcome.objects.count() < 0.7 * predictions
    assert AuditEvent.objects.filter(action=Action.VERSION_ROLLED_BACK).count() == 1
    # monitoring saw the drift and says retraining may be due
    run = MonitoringRun.objects.get(version=v1)
    drift = {f.feature: f.status for f in run.figures.filter(window="7d", signal="drift")}
    assert drift[DRIFTING_FEATURE] == "alert"
    assert [f for f, status in drift.items() if status == "alert"] == [DRIFTING_FEATURE]
    assert Alert.objects.filter(version=v1, signal="data_drift_psi", feature=DRIFTING_FEATURE,
                                cleared_at__isnull=True).exists()
    assert run.summary["retraining"]["suggested"]
    assert run.figures.get(window="30d", signal="performance").detail["observed"]["n"] > 50
    # the same again adds nothing
    call_command("demo", stdout=io.StringIO())
    assert ModelVersion.objects.count() == 3 and Prediction.objects.count() == predictions
    assert verify_chain().ok and verify_prediction_log().ok
    client = Client()
    assert client.post("/login/", {"username": "pi", "password": "pi-attest-demo"}).status_code == 302
    dashboard = client.get("/").content.decode()
    assert "breast-cancer-malignancy v3" in dashboard  # awaits the PI's sign-off
    assert "retraining suggested" in dashboard
    page = client.get("/models/breast-cancer-malignancy/monitoring/").content.decode()
    assert page.count("<svg") >= 4 and DRIFTING_FEATURE in page


def test_the_demo_refuses_production(monkeypatch):
    from django.core.management.base import CommandError

    monkeypatch.setenv("ATTEST_REQUIRE_SECRET_KEY", "true")
    with pytest.raises(CommandError, match="refusing"):
        call_command("demo", stdout=io.StringIO())
