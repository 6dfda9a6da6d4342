"""The dossier's charts (issue 19, sections 5 and 6): global importance and explanation
reliability, monitoring over time, calibration and the outcomes received, drawn from the
recorded figures by the pages' own chart functions and kept in the snapshot as SVG."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from core.clock import replayed_time
from dossier import render
from dossier.evidence import evidence_snapshot, json_ready
from explain.present import fmt
from monitoring.models import Outcome

from ..artifacts import breast_cancer_frame
from ..monitoring.helpers import count_and_run, labelled_sample, log_rows, record
from .helpers import pdf_text, scripted_history

pytestmark = pytest.mark.django_db

DAYS = 12
PER_DAY = 40
OUTCOME_AFTER = 3  # days from a prediction to its outcome being recorded


def _snapshot(version) -> dict:
    return json_ready(evidence_snapshot(version=version, at=timezone.now()))


def _squashed(text: str) -> str:
    return "".join(text.split())


def _charts(snapshot: dict) -> dict[str, dict]:
    return {c["key"]: c for c in snapshot["monitoring"]["charts"]}


def charted_history(personas, *, outcomes: bool = True):
    """The scripted history DAYS days ago, then PER_DAY predictions a day (the later half
    with mean radius shifted by 1.5 training SDs), each day's outcomes recorded
    OUTCOME_AFTER days later with an outcome date two days after the prediction; then a
    monitoring run now. Returns the version and the logged results that got outcomes,
    with their outcomes."""
    start = (timezone.now() - timedelta(days=DAYS)).replace(hour=1, minute=0, second=0,
                                                            microsecond=0)
    radius_sd = breast_cancer_frame()["mean radius"].std()
    pending: dict[int, tuple[list, np.ndarray]] = {}
    got: list = []
    labels: list[int] = []
    with replayed_time(start) as clock:
        version = scripted_history(personas, predictions=2)
        for day in range(DAYS):
            clock.set(start + timedelta(days=day, hours=2))
            rows, y = labelled_sample(PER_DAY, seed=100 + day)
            if day >= DAYS // 2:
                rows["mean radius"] = rows["mean radius"] + 1.5 * radius_sd
            pending[day] = (log_rows(personas, rows), y)
            due = day - OUTCOME_AFTER
            if outcomes and due in pending:
                results, truth = pending.pop(due)
                record(personas, results, truth,
                       day=(start + timedelta(days=due + 2)).date())
                got += results
                labels += list(truth)
    count_and_run(version)
    return version, got, np.array(labels)


# -- section 5: explanations ------------------------------------------------------------------

@pytest.fixture
def explained(personas, monkeypatch, django_capture_on_commit_callbacks):
    from explain import reliability
    from explain.models import VersionExplanation
    from explain.services import version_explanation_request

    from .helpers import version_missing_irb

    for key, value in (("rows", 4), ("lime_samples", 500), ("global_rows", 60)):
        monkeypatch.setitem(reliability.DEFAULT_PARAMETERS, key, value)
    version = version_missing_irb(personas, irb_decision="approve")
    with django_capture_on_commit_callbacks(execute=True):
        version_explanation_request(version=version)
    return version, VersionExplanation.objects.get(version=version)


def test_the_importance_bars_are_the_stored_figures_in_their_units(personas, explained):
    version, stored = explained
    snapshot = _snapshot(version)
    x = snapshot["explanations"]
    features = stored.content["global_importance"]["features"][:15]
    svg = x["importance_svg"]
    assert svg.startswith("<svg") and "<script" not in svg
    units = "log-odds" if stored.units == "log_odds" else "probability"
    assert f"Global importance: mean |SHAP| ({units})" in svg
    assert f"mean |SHAP| ({units};" in svg  # the axis says its units
    # one bar per feature, in the stored order, labelled with the stored figure, its
    # length proportional to it
    labels = re.findall(r'<text x="250" y="[\d.]+" text-anchor="end">([^<]+)</text>', svg)
    assert labels == [f["feature"] for f in features]
    values = re.findall(r'<text x="[\d.]+" y="[\d.]+" class="small">([^<]+)</text>', svg)
    assert values[-len(features):] == [fmt(f["mean_abs"]) for f in features]
    widths = [float(w) for w in re.findall(r'<rect x="260" y="[\d.]+" width="([\d.]+)"', svg)]
    biggest = features[0]["mean_abs"]
    for f, w in zip(features, widths, strict=True):
        if f["mean_abs"] / biggest > 0.01:  # bars under a pixel are drawn 1 wide
            assert w / widths[0] == pytest.approx(f["mean_abs"] / biggest, abs=0.01)


def test_the_reliability_chart_states_each_figure_against_its_threshold(personas, explained):
    version, stored = explained
    x = _snapshot(version)["explanations"]
    stability = stored.content["lime_stability"]
    agreement = stored.content["shap_lime_agreement"]
    rows = {r["label"]: r for r in x["reliability"]}
    assert rows["LIME stability, mean over rows"]["value"] == stability["mean"]
    assert rows["LIME stability, least stable row"]["value"] == stability["worst"]
    assert rows["SHAP–LIME feature agreement"]["value"] == agreement["feature_agreement"]
    svg = x["reliability_svg"]
    mean, threshold = stability["mean"], stability["thresholds"]["mean"]
    word = "meets ≥" if mean >= threshold else "below"
    assert f"{mean:.2f} ({word} {fmt(threshold)})" in svg
    text = _squashed(pdf_text(render.dossier_pdf(json_ready(_snapshot(version)))))
    for title in ("Global importance", "Explanation reliability"):
        assert _squashed(title) in text
    assert _squashed(f"{mean:.2f} ({word} {fmt(threshold)})") in text  # SVG text is text


def test_no_stored_figures_is_a_gap_with_no_chart(personas):
    version = scripted_history(personas, predictions=2)
    x = _snapshot(version)["explanations"]
    assert x["status"] == "gap" and "importance_svg" not in x


# -- section 6: monitoring ----------------------------------------------------------------------

def test_the_monitoring_charts_hold_the_run_s_day_figures(personas):
    version, _results, _y = charted_history(personas)
    snapshot = _snapshot(version)
    monitoring = snapshot["monitoring"]
    charts = _charts(snapshot)
    assert {"volume", "drift_over_time", "rates", "performance_over_time", "calibration",
            "histogram"} <= set(charts)
    # the volume chart counts the live predictions of each day the run recorded
    from monitoring.models import MonitoringRun

    run = MonitoringRun.objects.get(version=version)
    days = {f.window[4:]: f.detail for f in run.figures.filter(signal="day")}
    assert sum(d["predictions"] for d in days.values()) >= DAYS * PER_DAY
    total = sum(d["predictions"] for d in days.values())
    received = sum(d["outcomes"] for d in days.values())
    assert charts["volume"]["summary"].startswith(
        f"{total} live predictions over {len(days)} days; outcomes recorded for {received}")
    assert received == Outcome.objects.filter(version=version).count()
    # the drifted feature leads the drift chart, and its days in alert are named
    assert "mean radius" in charts["drift_over_time"]["svg"]
    assert "Days in alert: mean radius" in charts["drift_over_time"]["summary"]
    # the outcomes received: count, share, and their delays (2 days to the outcome date)
    o = monitoring["outcomes"]
    assert o["outcomes"] == Outcome.objects.filter(version=version).count()
    assert o["share"] == pytest.approx(o["outcomes"] / o["predictions"])
    assert o["to_outcome_date"]["median_days"] == 2.0
    assert o["to_recorded"]["median_days"] == pytest.approx(OUTCOME_AFTER, abs=0.01)
    perf = monitoring["performance"]
    assert perf["observed"]["n"] == o["outcomes"] and perf["estimated"]["n"] == o["predictions"]
    pdf = render.dossier_pdf(snapshot)
    text = _squashed(pdf_text(pdf))
    for chart in charts.values():
        assert _squashed(chart["title"]) in text
    assert _squashed(f"Outcomes recorded for them {o['outcomes']}") in text
    assert render.dossier_pdf(json_ready(snapshot)) == pdf


def test_the_calibration_bins_are_a_hand_computation_with_small_cells_withheld(personas):
    version, results, y = charted_history(personas)
    snapshot = _snapshot(version)
    chart = _charts(snapshot)["calibration"]
    minimum = 30
    # by hand: ten bins of width 0.1 over the scores of the predictions with outcomes, a
    # score on an edge in the bin below it (0.1 is in the first), as scikit-learn bins
    scores = np.array([r.prediction.score for r in results])
    edges = np.linspace(0.0, 1.0, 11)
    expected, small = [], 0
    for b in range(10):
        inside = (scores <= edges[b + 1]) & ((scores > edges[b]) if b else True)
        n = int(inside.sum())
        if n == 0:
            continue
        if n < minimum:
            small += 1
            continue
        expected.append((n, scores[inside].mean(), y[inside].mean()))
    assert small > 0 and expected  # the seeded log has both kinds of bin
    assert [(b["n"], b["mean_score"], b["observed_rate"]) for b in chart["bins"]] == [
        (n, pytest.approx(s, abs=1e-12), pytest.approx(r, abs=1e-12)) for n, s, r in expected]
    assert chart["withheld"] == small
    # each shown bin is a marker at (mean score, observed rate), and the legend's; no
    # withheld bin is drawn
    svg = chart["svg"]
    markers = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="3"', svg)
    assert markers[:-1] == [(f"{56 + 280 * s:.1f}", f"{308 - 280 * r:.1f}")
                            for _n, s, r in expected]
    assert f"{small} live bin" in chart["summary"] and "withheld" in chart["summary"]
    # the monitoring page draws the same curve with the same cells withheld, and its data
    # table lists no live bin under the minimum
    from monitoring.models import Figure, MonitoringRun
    from monitoring.selectors import monitoring_charts

    run = MonitoringRun.objects.get(version=version)
    figures = {f.signal: f.detail for f in Figure.objects.filter(run=run,
                                                                  window="since_promotion")}
    page = monitoring_charts({"figures": {**figures, "drift": []},
                              "thresholds": run.thresholds}, feature=None)["calibration"]
    assert re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="3"', str(page.svg)) == markers
    assert [int(row[3]) for row in page.rows if row[0] == "live"] == [n for n, _s, _r in expected]


def test_no_outcomes_is_a_gap_and_no_live_curve(personas):
    version, _results, _y = charted_history(personas, outcomes=False)
    snapshot = _snapshot(version)
    monitoring = snapshot["monitoring"]
    assert monitoring["outcomes"]["outcomes"] == 0
    assert monitoring["performance"]["observed"] is None
    assert any(g.startswith("No outcomes are recorded for live predictions")
               for g in monitoring["gaps"])
    charts = _charts(snapshot)
    assert "calibration" not in charts  # no live bins and no validation curve declared
    assert "volume" in charts and "outcomes recorded for 0" in charts["volume"]["summary"]
    text = _squashed(pdf_text(render.dossier_pdf(snapshot)))
    # the status badge is upper-cased by the stylesheet, so the extracted text reads GAP
    assert _squashed("GAP none: no outcome is recorded for this window's live predictions") \
        in text
    assert _squashed("No outcomes are recorded for live predictions") in text


def test_never_monitored_is_a_gap(personas):
    version = scripted_history(personas, predictions=2)
    snapshot = _snapshot(version)
    assert snapshot["monitoring"]["status"] == "gap"
    text = _squashed(pdf_text(render.dossier_pdf(snapshot)))
    assert _squashed(f"GAP {version.label} has never been monitored") in text


def test_two_snapshots_of_the_same_evidence_draw_the_same_svgs(personas):
    version, _results, _y = charted_history(personas, outcomes=False)
    first, second = _charts(_snapshot(version)), _charts(_snapshot(version))
    assert [c["svg"] for c in first.values()] == [c["svg"] for c in second.values()]
