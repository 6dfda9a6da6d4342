from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from audits.chain import verify_chain
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_the_demo_builds_a_real_released_model_and_is_idempotent():
    out = io.StringIO()
    call_command("demo", stdout=out)
    text = out.getvalue()
    assert "owner-attest-demo" in text and "auditor" in text
    states = dict(ModelVersion.objects.values_list("number", "state"))
    assert states == {1: "production", 2: "in_review"}
    v1 = ModelVersion.objects.get(number=1)
    assert v1.metrics["overall"]["auc"] > 0.95 and len(v1.metrics["subgroups"]) == 4
    assert {s.meaning for s in v1.signatures.all()} == {"pi_approval", "irb_approval"}
    call_command("demo", stdout=io.StringIO())
    assert ModelVersion.objects.count() == 2
    assert verify_chain().ok
    client = Client()
    assert client.post("/login/", {"username": "pi", "password": "pi-attest-demo"}).status_code == 302
    dashboard = client.get("/").content.decode()
    assert "breast-cancer-malignancy v2" in dashboard  # awaits the PI's sign-off


def test_the_demo_refuses_production(monkeypatch):
    from django.core.management.base import CommandError

    monkeypatch.setenv("ATTEST_REQUIRE_SECRET_KEY", "true")
    with pytest.raises(CommandError, match="refusing"):
        call_command("demo", stdout=io.StringIO())
