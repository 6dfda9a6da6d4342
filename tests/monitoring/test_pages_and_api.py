"""The monitoring page, its API twin, the banners and the policy, per persona."""

from __future__ import annotations

import re

import pytest

from audits.models import Action, AuditEvent
from monitoring.models import MonitoringPolicy, MonitoringRun

from ..conftest import api_as
from ..inference.helpers import released_version
from ..pages import HIDDEN, READ_ONLY, assert_404, flashes, text
from .helpers import count_and_run, labelled_sample, log_rows, record, training_like

pytestmark = pytest.mark.django_db
MEMBERS = ("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer")


@pytest.fixture
def monitored(personas):
    version = released_version(personas, confidence_threshold=0.6)
    rows, y = labelled_sample(400, seed=5)
    rows["mean texture"] += 4.0  # about one training SD
    results = log_rows(personas, rows)
    record(personas, results[:200], y[:200])
    count_and_run(version)
    return version


def _page(personas) -> str:
    return f"/models/{personas.model.name}/monitoring/"


@pytest.mark.parametrize("who", MEMBERS)
def test_every_member_of_the_model_sees_the_page(client_as, personas, monitored, who):
    page = client_as(who).get(_page(personas))
    assert page.status_code == 200
    body = text(page)
    assert "Model health" in body and "Feature drift" in body and "mean texture" in body
    assert ("Compute now" in body) == (who in ("owner", "admin"))
    assert ("Record outcomes" in body) == (who in ("owner", "admin", "clinician"))


@pytest.mark.parametrize("who", HIDDEN)
def test_outsiders_get_404(client_as, personas, monitored, who):
    assert_404(client_as(who).get(_page(personas)))
    assert api_as(personas.get(who)).get(f"/api/v1{_page(personas)}").status_code == 404
    assert_404(client_as(who).get(f"/models/{personas.model.name}/outcomes/"))


def test_the_health_table_is_sorted_by_severity_with_thresholds_beside_each(
        client_as, personas, monitored):
    body = client_as("irb").get(_page(personas)).content.decode()
    table = body.split('id="health"', 1)[1].split("</table>", 1)[0]
    statuses = re.findall(r'class="badge status-([a-z_]+)"', table)
    order = {"alert": 0, "warning": 1, "unavailable": 2, "no_data": 3, "ok": 4}
    assert statuses == sorted(statuses, key=order.get) and statuses[0] == "alert"
    assert table.count("OK below") == 14  # every signal states its thresholds
    assert "Attribution drift" in table and "global importance is not computed" in table


def test_charts_are_svg_with_titles_descriptions_and_data_tables(client_as, personas, monitored):
    body = client_as("pi").get(_page(personas) + "?feature=mean%20texture").content.decode()
    svgs = re.findall(r"<svg.*?</svg>", body, re.S)
    assert len(svgs) >= 4  # histogram, drift over time, rates, calibration, accuracy
    for svg in svgs:
        assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "Distribution of mean texture: now against training" in body
    assert body.count("<summary>Data table:") == len(svgs)
    assert "<script" not in body


def test_the_api_returns_the_same_figures(client_as, personas, monitored):
    response = api_as(personas.reviewer).get(f"/api/v1{_page(personas)}?window=7d")
    assert response.status_code == 200
    body = response.json()
    run = MonitoringRun.objects.get(version=monitored)
    assert body["health"] == run.summary["health"]
    drift = {d["feature"]: d for d in body["figures"]["drift"]}
    stored = {f.feature: f for f in run.figures.filter(window="7d", signal="drift")}
    assert {k: d["psi"] for k, d in drift.items()} == {k: f.value for k, f in stored.items()}
    assert drift["mean texture"]["status"] == "alert"
    assert body["figures"]["performance"]["observed"]["n"] == 200
    assert body["alerts"] and body["retraining"]["suggested"] is True
    assert len(body["series"]["days"]) >= 1
    page = text(client_as("reviewer").get(_page(personas)))
    assert f"{drift['mean texture']['psi']:.3f}" in page


@pytest.mark.parametrize("params,field", [("window=2d", "window"), ("since=yesterday", "since"),
                                          ("since=2026-02-01&until=2026-01-01", "since"),
                                          ("version=99", "version")])
def test_bad_windows_are_structured_400s(personas, monitored, params, field):
    response = api_as(personas.owner).get(f"/api/v1{_page(personas)}?{params}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_a_date_range_is_computed_on_demand_from_the_counts(personas, monitored):
    day = monitored.created_at.date().isoformat()
    response = api_as(personas.owner).get(f"/api/v1{_page(personas)}?since={day}&until={day}")
    assert response.status_code == 200
    figures = response.json()["figures"]
    assert figures["window"]["code"] == f"range:{day}..{day}"
    assert figures["predictions"]["n"] == 400


def test_small_windows_withhold_bin_counts(personas):
    version = released_version(personas, confidence_threshold=0.6)
    log_rows(personas, training_like(5, seed=1))
    count_and_run(version)
    drift = api_as(personas.clinician).get(f"/api/v1{_page(personas)}").json()["figures"]["drift"]
    assert all(d["counts"] is None and "withheld" in d for d in drift)


@pytest.mark.parametrize("who,ok", [("owner", True), ("admin", True), *[(w, False)
                                                                      for w in READ_ONLY]])
def test_only_owners_compute_on_demand(client_as, personas, monitored, who, ok):
    before = MonitoringRun.objects.get(version=monitored).pk
    page = client_as(who).post(f"/models/{personas.model.name}/monitoring/run/",
                               {"version": monitored.number}, follow=True)
    assert page.status_code == 200
    run = MonitoringRun.objects.get(version=monitored)
    assert (run.pk != before) == ok
    if ok:
        assert run.trigger == "on_demand" and run.requested_by == personas.get(who)
    else:
        assert any("permission" in m for m in flashes(page))
    api = api_as(personas.get(who)).post(f"/api/v1{_page(personas)}runs/",
                                         {"version": monitored.number}, format="json")
    assert api.status_code == (201 if ok else 403)


def test_the_policy_is_validated_audited_and_applied(client_as, personas, monitored):
    client = api_as(personas.owner)
    bad = client.put(f"/api/v1{_page(personas)}policy/", {
        "thresholds": {"data_drift_psi": {"warning": 0.5, "alert": 0.2}, "bogus": 1},
        "subgroups": [{"name": "x", "feature": "mean radius", "op": "~", "value": 1}]},
        format="json")
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {
        "thresholds.data_drift_psi", "thresholds.bogus", "subgroups.0.op"}
    ok = client.put(f"/api/v1{_page(personas)}policy/", {
        "thresholds": {"data_drift_psi": {"warning": 2.0, "alert": 5.0}},
        "cpu_hour_price": 0.4}, format="json")
    assert ok.status_code == 200, ok.json()
    event = AuditEvent.objects.get(action=Action.MONITORING_POLICY_UPDATED)
    assert event.after["thresholds"] == {"data_drift_psi": {"warning": 2.0, "alert": 5.0}}
    count_and_run(monitored)
    body = api_as(personas.irb).get(f"/api/v1{_page(personas)}").json()
    drift = {d["feature"]: d for d in body["figures"]["drift"]}
    assert drift["mean texture"]["status"] == "ok"  # PSI ~1 is under the model's own alert
    assert body["figures"]["cost"]["cpu_hour_price"] == 0.4
    assert api_as(personas.pi).put(f"/api/v1{_page(personas)}policy/", {},
                                   format="json").status_code == 403
    page = client_as("owner").post(f"/models/{personas.model.name}/monitoring/policy/", {
        "thresholds": "{not json", "subgroups": "", "cpu_hour_price": ""}, follow=True)
    assert any("Not valid JSON" in m for m in flashes(page))
    assert MonitoringPolicy.objects.get().cpu_hour_price == 0.4


def test_banners_on_the_model_pages_and_the_dashboard(client_as, personas, monitored):
    for url in (f"/models/{personas.model.name}/", f"/models/{personas.model.name}/versions/1/",
                f"/models/{personas.model.name}/operations/", "/"):
        body = text(client_as("clinician").get(url))
        assert "retraining suggested" in body, url
        assert "mean texture" in body and "runbook's retraining procedure" in body
    # another model's member sees nothing of it
    assert "retraining suggested" not in text(client_as("viewer_other").get("/"))


def test_the_dossier_can_take_the_latest_run_as_evidence(personas, monitored):
    import json

    from monitoring.selectors import monitoring_evidence

    evidence = monitoring_evidence(version=monitored)
    assert evidence["health"] == MonitoringRun.objects.get(version=monitored).summary["health"]
    assert {a["signal"] for a in evidence["alerts"]} >= {"data_drift_psi", "retraining"}
    assert evidence["figures"]["30d"]["performance"]["observed"]["n"] == 200
    json.dumps(evidence)  # plain values, ready for the dossier's attachments
