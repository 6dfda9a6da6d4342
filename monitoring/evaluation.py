"""Computing a version's figures: per window, per signal, per feature.

``evaluate_version`` reads only the stored counts (``monitoring.windows``), the review
queue, the day's rejection counts and the recorded outcomes, and returns unsaved
``Figure`` rows plus the health table and the retraining signal; ``monitoring.services``
stores them as a run and raises or clears alerts. Custom date ranges use the same
functions on demand (``window_figures``), without storing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from inference.models import Prediction, RejectionCount, ReviewDecision, ReviewItem, ReviewStatus
from registry.models import ModelVersion, VersionState

from . import stats
from .health import (
    SPECS,
    STATUS_TEXT,
    Status,
    effective_thresholds,
    format_value,
    status_of,
    thresholds_text,
    worst,
)
from .layout import FeatureLayout, feature_layouts
from .live import Interval, live_q, production_intervals
from .models import Figure, MonitoringPolicy, Outcome, Period, VersionCounts
from .windows import ROLLING, Counts, CountStore, Window, day_window, rolling_windows

SERIES_DAYS = 30
FEATURE_LABELS = {"data_drift_psi": "Data drift", "missing_rate_increase": "Missing values above "
                  "training"}
# The most recent SHAP explanations of a version that attribution drift reads per run.
ATTRIBUTION_LIMIT = 20_000


@dataclass
class Context:
    """What every window of one version is computed against."""

    version: ModelVersion
    thresholds: dict
    layouts: list[FeatureLayout]
    intervals: list[Interval]
    subgroups: list[dict]
    price: float
    positive: str | None
    store: CountStore
    baseline: Counts | None
    baseline_window: tuple[datetime, datetime] | None
    reviews: list[tuple] = field(default_factory=list)
    outcomes: list[tuple] = field(default_factory=list)
    rejections: list[tuple] = field(default_factory=list)
    # Calibration on every live outcome loaded, whatever the window: the evidence for
    # trusting an estimate in a window whose own outcomes have not arrived yet.
    calibration_so_far: dict = field(default_factory=dict)
    # Attribution drift: the version's global importance (feature -> share of mean |SHAP|)
    # and the explained live predictions, as (time, feature -> |SHAP|).
    importance: dict | None = None
    explained: list[tuple] = field(default_factory=list)


@dataclass
class Evaluation:
    version: ModelVersion
    windows: dict[str, Window]
    figures: list[Figure]
    health: list[dict]
    retraining: dict
    thresholds: dict
    alerts: list[dict]


def policy_for(model) -> MonitoringPolicy | None:
    return MonitoringPolicy.objects.filter(model=model).first()


def evaluation_context(version: ModelVersion, *, since: datetime, now: datetime,
             intervals: list[Interval]) -> Context:
    policy = policy_for(version.model)
    thresholds = effective_thresholds(policy.thresholds if policy else None)
    layouts = feature_layouts(version)
    store = CountStore(version.pk, layouts, since, now - timedelta(hours=26))
    baseline, baseline_window = None, None
    if intervals:
        first = intervals[0].start.astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
        end = first + timedelta(days=int(thresholds["score_baseline_days"]))
        baseline_window = (first, end)
        if end <= now:
            baseline = _baseline_counts(version.pk, first, end)
    labels = version.output_schema.get("labels") or []
    live = live_q(intervals, "created_at")
    reviews = list(ReviewItem.objects.filter(version=version, status=ReviewStatus.DECIDED,
                                             created_at__gte=since).filter(live)
                   .values_list("created_at", "decision", "prediction__label", "final_label",
                                "reason_code", "prediction__confidence", "prediction__reason"))
    outcomes = list(Outcome.objects.filter(version=version, predicted_at__gte=since)
                    .filter(live_q(intervals, "predicted_at"))
                    .values_list("predicted_at", "positive", "prediction__score",
                                 "prediction__label", "membership__names"))
    rejections = list(RejectionCount.objects.filter(version=version, day__gte=since.date())
                      .values_list("day", "code").annotate(n=Sum("count")))
    positive = version.output_schema.get("positive_label", labels[-1] if labels else None)
    y, score, _predicted = _outcome_arrays(outcomes, positive)
    so_far = stats.calibration(y, score)
    so_far["enough"] = bool(len(y) >= thresholds["min_outcomes"] and 0 < y.sum() < len(y))
    importance, explained = _attributions(version, since, live)
    return Context(version=version, thresholds=thresholds, layouts=layouts, intervals=intervals,
                   subgroups=list(policy.subgroups) if policy else [],
                   price=_price(policy), positive=positive,
                   store=store, baseline=baseline, baseline_window=baseline_window,
                   reviews=reviews, outcomes=outcomes, rejections=rejections,
                   calibration_so_far=so_far, importance=importance, explained=explained)


def _attributions(version: ModelVersion, since: datetime, live) -> tuple[dict | None, list]:
    """The version's global SHAP importance as shares, and for each live prediction since
    ``since`` whose input has a SHAP explanation, its |contribution| per feature."""
    from explain.models import Explanation, Method
    from explain.selectors import version_explanation_latest

    figures = version_explanation_latest(version=version)
    importance = None
    if figures is not None:
        features = (figures.content or {}).get("global_importance", {}).get("features", [])
        total = sum(abs(f["mean_abs"]) for f in features)
        if total > 0:
            importance = {f["feature"]: abs(f["mean_abs"]) / total for f in features}
    by_input = {}
    for sha, content in (Explanation.objects.filter(version=version, method=Method.SHAP)
                         .order_by("-id").values_list("input_sha256", "content")
                         [:ATTRIBUTION_LIMIT]):
        by_input.setdefault(sha, {c["feature"]: abs(c["contribution"])
                                  for c in (content or {}).get("contributions", [])})
    explained = []
    shas = list(by_input)
    for start in range(0, len(shas), 2000):
        for when, sha in (Prediction.objects.filter(version=version, created_at__gte=since,
                                                    input_sha256__in=shas[start:start + 2000])
                          .filter(live).values_list("created_at", "input_sha256")):
            explained.append((when, by_input[sha]))
    return importance, explained


def _attribution_drift(rows: list[tuple], ctx: Context) -> dict:
    """Total variation distance between the shares of mean |SHAP| per feature over the
    window's explained predictions and the version's global importance (0: the same
    ranking and weights; 1: disjoint)."""
    if ctx.importance is None:
        return {"status": Status.UNAVAILABLE, "value": None, "n": len(rows),
                "verdict": "the version's global importance is not computed (explanations "
                           "run when a version is submitted; `manage.py explain_versions`)"}
    if len(rows) < ctx.thresholds["min_predictions"]:
        return {"status": Status.NO_DATA, "value": None, "n": len(rows),
                "verdict": f"{len(rows)} explained predictions in the window; a verdict "
                           f"needs {ctx.thresholds['min_predictions']}"}
    sums: dict[str, float] = defaultdict(float)
    for _when, contributions in rows:
        for feature, value in contributions.items():
            sums[feature] += value
    total = sum(sums.values()) or 1.0
    recent = {f: v / total for f, v in sums.items()}
    features = set(recent) | set(ctx.importance)
    value = 0.5 * sum(abs(recent.get(f, 0.0) - ctx.importance.get(f, 0.0)) for f in features)
    moved = sorted(features, key=lambda f: -abs(recent.get(f, 0.0) - ctx.importance.get(f, 0.0)))
    return {"status": status_of(value, "attribution_drift", ctx.thresholds), "value": value,
            "n": len(rows), "moved": [{"feature": f, "recent": recent.get(f, 0.0),
                                       "version": ctx.importance.get(f, 0.0)}
                                      for f in moved[:5]],
            "verdict": (f"{len(rows)} explained predictions; most moved: {moved[0]} "
                        f"({recent.get(moved[0], 0.0):.0%} of the attribution now, "
                        f"{ctx.importance.get(moved[0], 0.0):.0%} for the version)")}


def _price(policy: MonitoringPolicy | None) -> float:
    if policy is not None and policy.cpu_hour_price is not None:
        return float(policy.cpu_hour_price)
    return float(settings.ATTEST_MONITORING_CPU_HOUR_PRICE)


def _baseline_counts(version_id: int, start: datetime, end: datetime) -> Counts:
    out = Counts()
    for row in VersionCounts.objects.filter(version_id=version_id, period=Period.DAY,
                                            start__gte=start, start__lt=end):
        out.predictions += row.predictions
        if row.score_counts:
            out.score_counts += np.asarray(row.score_counts, dtype=float)
            out.score_sums += np.asarray(row.score_sums, dtype=float)
    return out


# -- one window ---------------------------------------------------------------------------

def feature_drift(layout: FeatureLayout, entry: list | None, thresholds: dict, *,
                  unrecorded: int = 0) -> dict:
    """PSI, the test chosen by the feature's type, missing values and a status.
    ``unrecorded``: rows of the window whose log does not say what was imputed."""
    counts = entry[0] if entry else np.zeros(layout.size)
    missing = int(entry[1]) if entry else 0
    n = int(counts.sum())
    seen = n + missing
    live_missing = missing / seen if seen else None
    value = stats.psi(layout.psi_counts(counts), layout.reference) if n else None
    test = (stats.binned_ks(counts, layout.reference, layout.n_reference)
            if layout.kind == "numeric" else
            stats.chi_square(counts, layout.reference, layout.n_reference))
    p = test.p_value if math.isfinite(test.p_value) else None
    if n < thresholds["min_predictions"] or value is None:
        status, verdict = Status.NO_DATA, f"fewer than {thresholds['min_predictions']} values"
    else:
        status = status_of(value, "data_drift_psi", thresholds)
        verdict = ""
        if status != Status.OK and p is not None and p >= thresholds["p_value"]:
            status, verdict = Status.OK, (f"PSI {value:.3f} is past the threshold but the "
                                          f"{test.test.upper()} test does not reject "
                                          f"(p = {p:.3f} ≥ {thresholds['p_value']})")
    increase = (live_missing - layout.training_missing_rate) if live_missing is not None else None
    # Rows logged before Prediction.imputed (inference 0012) carry an imputed value as a
    # value: an imputed feature's missing values among them are not known.
    note = (f"{unrecorded} of the {seen} predictions were logged before imputed features "
            "were recorded (inference 0012): an imputed value there counts as a value, so "
            "the missing rate is a lower bound"
            if layout.imputed and unrecorded and seen else "")
    return {
        "feature": layout.name, "kind": layout.kind, "type": layout.schema_type, "n": n,
        "psi": stats.finite_or_none(value), "test": test.test,
        "statistic": stats.finite_or_none(test.statistic), "p_value": stats.finite_or_none(p),
        "approximate": test.approximate, "test_note": test.note, "status": status,
        "verdict": verdict, "missing": missing, "missing_rate": stats.finite_or_none(live_missing),
        "training_missing_rate": layout.training_missing_rate,
        "missing_increase": stats.finite_or_none(increase), "missing_note": note,
        "missing_status": (status_of(increase, "missing_rate_increase", thresholds)
                           if seen >= thresholds["min_predictions"] and increase is not None
                           else Status.NO_DATA),
        "counts": counts.astype(int).tolist(), "reference": list(layout.reference),
        "labels": layout.labels(),
    }


def _score_drift(counts: Counts, ctx: Context) -> dict:
    out: dict[str, Any] = {"n": int(counts.score_counts.sum())}
    if ctx.baseline is None or ctx.baseline.score_counts.sum() < ctx.thresholds["min_predictions"]:
        start = ctx.baseline_window[0].date().isoformat() if ctx.baseline_window else None
        out.update(status=Status.NO_DATA, psi=None, p_value=None,
                   verdict="the score baseline (the version's first "
                           f"{ctx.thresholds['score_baseline_days']} days in production"
                           + (f" from {start}" if start else "") + ") is not complete yet")
        return out
    ref = ctx.baseline.score_counts / ctx.baseline.score_counts.sum()
    live10 = counts.score_counts.reshape(10, -1).sum(axis=1)
    ref10 = ref.reshape(10, -1).sum(axis=1)
    value = stats.psi(live10, ref10) if out["n"] else None
    test = stats.binned_ks(np.concatenate(([0], counts.score_counts, [0])), ref,
                           int(ctx.baseline.score_counts.sum()))
    p = test.p_value if math.isfinite(test.p_value) else None
    if out["n"] < ctx.thresholds["min_predictions"] or value is None:
        status, verdict = Status.NO_DATA, f"fewer than {ctx.thresholds['min_predictions']} scores"
    else:
        status, verdict = status_of(value, "score_drift_psi", ctx.thresholds), ""
        if status != Status.OK and p is not None and p >= ctx.thresholds["p_value"]:
            status, verdict = Status.OK, f"not significant (KS p = {p:.3f})"
    out.update(psi=stats.finite_or_none(value), statistic=stats.finite_or_none(test.statistic),
               p_value=stats.finite_or_none(p), status=status, verdict=verdict,
               live=(live10 / max(1, live10.sum())).round(6).tolist(),
               baseline=ref10.round(6).tolist(),
               baseline_window=[d.date().isoformat() for d in ctx.baseline_window])
    return out


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _overrides(rows: list[tuple], ctx: Context) -> dict:
    decided = len(rows)
    overrides = [r for r in rows if r[1] == ReviewDecision.OVERRIDE]
    direction: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[str, int] = defaultdict(int)
    for r in overrides:
        direction[r[2]][r[3]] += 1
        reasons[r[4] or "none"] += 1
    pairs = sorted(((said, final, n) for said, to in direction.items() for final, n in to.items()),
                   key=lambda x: -x[2])
    top = pairs[0] if pairs else None
    threshold = ctx.version.confidence_threshold
    low = [r for r in rows if r[5] is not None and r[5] < threshold]
    low_over = [r for r in low if r[1] == ReviewDecision.OVERRIDE]
    low_pairs: dict[tuple, int] = defaultdict(int)
    for r in low_over:
        low_pairs[(r[2], r[3])] += 1
    low_top = max(low_pairs.items(), key=lambda kv: kv[1]) if low_pairs else None
    enough = decided >= ctx.thresholds["min_decided_reviews"]
    rate = _rate(len(overrides), decided)
    direction_share = _rate(top[2], decided) if top else (0.0 if decided else None)
    return {
        "decided": decided, "overrides": len(overrides), "override_rate": rate,
        "direction": [{"model_said": s, "reviewer_decided": f, "n": n,
                       "share_of_decided": _rate(n, decided)} for s, f, n in pairs],
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "top_direction": ({"model_said": top[0], "reviewer_decided": top[1], "n": top[2],
                           "share_of_decided": direction_share} if top else None),
        "low_confidence": {"decided": len(low), "overrides": len(low_over),
                           "top_direction": ({"model_said": low_top[0][0],
                                              "reviewer_decided": low_top[0][1],
                                              "n": low_top[1],
                                              "share": _rate(low_top[1], len(low))}
                                             if low_top else None)},
        "rate_status": (status_of(rate, "override_rate", ctx.thresholds) if enough
                        else Status.NO_DATA),
        "direction_share": direction_share,
        "direction_status": (status_of(direction_share, "override_direction", ctx.thresholds)
                             if enough else Status.NO_DATA),
    }


def _validation(version: ModelVersion) -> dict:
    metrics = version.metrics or {}
    overall = dict(metrics.get("overall") or {})
    curve = metrics.get("calibration") or []
    ece = overall.get("ece")
    if ece is None and curve:
        ece = stats.expected_calibration_error(curve)
    return {"overall": overall, "subgroups": metrics.get("subgroups") or [],
            "calibration": curve, "ece": ece}


def _outcome_arrays(rows: list[tuple], positive: str | None):
    y = np.fromiter((1 if r[1] else 0 for r in rows), dtype=int, count=len(rows))
    score = np.fromiter((r[2] for r in rows), dtype=float, count=len(rows))
    predicted = np.fromiter((1 if r[3] == positive else 0 for r in rows), dtype=int,
                            count=len(rows))
    return y, score, predicted


def _performance(rows: list[tuple], counts: Counts, ctx: Context) -> dict:
    """Observed (from outcomes), estimated (from scores) and the validation figures."""
    validation = _validation(ctx.version)
    y, score, predicted = _outcome_arrays(rows, ctx.positive)
    observed = stats.observed_performance(y, score, predicted)
    observed["calibration"] = stats.calibration(y, score)
    min_outcomes = ctx.thresholds["min_outcomes"]
    observed["enough"] = bool(len(y) >= min_outcomes and 0 < y.sum() < len(y))
    groups: dict[str, list[int]] = defaultdict(list)
    unassigned = 0
    for i, r in enumerate(rows):
        if r[4] is None:
            unassigned += 1
        for name in r[4] or ():
            groups[name].append(i)
    validation_groups = {g.get("name"): g for g in validation["subgroups"]}
    subgroups = []
    for rule in ctx.subgroups:
        index = np.asarray(groups.get(rule["name"], []), dtype=int)
        figures = stats.observed_performance(y[index], score[index], predicted[index])
        figures["enough"] = bool(len(index) >= min_outcomes)
        figures["name"] = rule["name"]
        figures["validation"] = (validation_groups.get(rule["name"]) or {}).get("metrics", {})
        subgroups.append(figures)
    observed["subgroups"] = subgroups
    observed["subgroups_unassigned"] = unassigned
    estimated = stats.estimated_performance(counts.score_counts, counts.score_sums)
    trust, reason = _trust(validation, observed, ctx)
    estimated["trust"], estimated["trust_reason"] = trust, reason
    estimated["assumptions"] = [
        "Scores are calibrated: a score s means the case is positive with probability s "
        "(checked on the validation figures and, once outcomes arrive, on them).",
        "Only the inputs shift (covariate shift): how outcomes follow from inputs is "
        "unchanged. Concept drift is invisible to an estimate made from scores.",
        "Scores are binned by 0.01; predictions within a bin count as tied for the AUC.",
    ]
    if len(y):
        hist = stats.score_histogram(score)
        estimated["on_outcomes"] = stats.estimated_performance(*hist)
    return {"validation": validation, "observed": observed, "estimated": estimated}


def _trust(validation: dict, observed: dict, ctx: Context) -> tuple[str, str]:
    """Whether scores are calibrated enough to estimate from: live outcomes decide once
    there are enough of them (this window's, else all of the version's so far), the
    validation figures before that."""
    limit = ctx.thresholds["max_calibration_error"]
    evidence = observed["calibration"] if observed.get("enough") else ctx.calibration_so_far
    if evidence.get("enough", observed.get("enough")) and evidence.get("ece") is not None:
        ece, n = evidence["ece"], evidence["n"]
        if ece > limit:
            return "untrusted", (f"{n} live outcomes show the scores are miscalibrated (ECE "
                                 f"{ece:.3f} > {limit}): the estimate cannot be trusted")
        return "trusted", f"{n} live outcomes show calibrated scores (ECE {ece:.3f} ≤ {limit})"
    ece = validation["ece"]
    if ece is None:
        return "unchecked", ("the version's validation metrics give no calibration (add "
                             "metrics.overall.ece or metrics.calibration): the estimate "
                             "assumes calibrated scores without evidence")
    if ece > limit:
        return "untrusted", (f"validation ECE {ece:.3f} > {limit}: the scores are not "
                             "calibrated enough to estimate performance from")
    return "trusted", f"validation ECE {ece:.3f} ≤ {limit}"


def _primary(validation: dict) -> tuple[str, float] | tuple[None, None]:
    overall = validation["overall"]
    for name in ("auc", "accuracy"):
        if isinstance(overall.get(name), int | float):
            return name, float(overall[name])
    return None, None


def _performance_drop(perf: dict, ctx: Context) -> dict:
    name, reference = _primary(perf["validation"])
    if name is None:
        return {"status": Status.UNAVAILABLE, "value": None,
                "verdict": "the version has no validation AUC or accuracy to compare with"}
    observed, estimated = perf["observed"], perf["estimated"]
    if observed.get("enough") and observed.get(name) is not None:
        live, basis = observed[name], "observed"
    elif estimated.get(name) is not None and estimated["trust"] != "untrusted" \
            and estimated.get("n", 0) >= ctx.thresholds["min_predictions"]:
        live, basis = estimated[name], "estimated"
    else:
        reason = ("the estimate cannot be trusted" if estimated.get("trust") == "untrusted"
                  else f"fewer than {ctx.thresholds['min_outcomes']} outcomes")
        return {"status": Status.NO_DATA, "value": None, "metric": name,
                "validation": reference, "verdict": reason}
    drop = max(0.0, (reference - live) / reference) if reference else 0.0
    return {"status": status_of(drop, "performance_drop", ctx.thresholds), "value": drop,
            "metric": name, "validation": reference, "live": live, "basis": basis,
            "verdict": "" if basis == "observed" else
            f"estimated from scores ({estimated['trust']})"}


def _spread(perf: dict, ctx: Context) -> dict:
    usable = [g for g in perf["observed"]["subgroups"] if g["enough"] and "error_rate" in g]
    if not ctx.subgroups:
        return {"status": Status.UNAVAILABLE, "value": None,
                "verdict": "no subgroups are defined in the model's monitoring policy"}
    if len(usable) < 2:
        return {"status": Status.NO_DATA, "value": None,
                "verdict": f"fewer than two subgroups with {ctx.thresholds['min_outcomes']} "
                           "outcomes"}
    rates = {g["name"]: g["error_rate"] for g in usable}
    high, low = max(rates, key=rates.get), min(rates, key=rates.get)
    value = rates[high] - rates[low]
    return {"status": status_of(value, "subgroup_error_spread", ctx.thresholds), "value": value,
            "highest": {"name": high, "error_rate": rates[high]},
            "lowest": {"name": low, "error_rate": rates[low]}}


def window_figures(window: Window, ctx: Context, *, detail: bool = True) -> dict:
    """Every figure of one window, as plain values (the API's and the page's shape)."""
    counts = ctx.store.counts(window)
    t = ctx.thresholds
    drift = [feature_drift(layout, counts.features.get(layout.name), t,
                           unrecorded=counts.imputation_unrecorded) for layout in ctx.layouts]
    n = counts.predictions
    last_day = (window.end - timedelta(microseconds=1)).date()
    rejected = sum(c for day, _code, c in ctx.rejections
                   if window.start.date() <= day <= last_day)
    reviews = [r for r in ctx.reviews if window.start <= r[0] < window.end]
    outcomes = [r for r in ctx.outcomes if window.start <= r[0] < window.end]
    enough = n >= t["min_predictions"]
    ood_rate, review_rate = _rate(counts.ood, n), _rate(counts.routed_to_review, n)
    rejection_rate = _rate(rejected, rejected + n)
    p95 = stats.histogram_quantile(counts.latency_counts, 0.95)
    p50 = stats.histogram_quantile(counts.latency_counts, 0.50)
    mean_latency = counts.latency_ms_sum / n if n else None
    # Measured CPU time where the rows carry it (Prediction.cpu_ms); rows logged before
    # it was recorded fall back to their latency, an upper bound.
    measured = counts.cpu_rows > 0
    mean_cpu = counts.cpu_ms_sum / counts.cpu_rows if measured else mean_latency
    cost = (mean_cpu / 1000.0 * 1000 * ctx.price / 3600.0) if mean_cpu is not None else None
    perf = _performance(outcomes, counts, ctx)
    overrides = _overrides(reviews, ctx)
    out = {
        "window": window.as_dict(),
        "predictions": {"n": n, "singles": counts.singles, "batch_rows": counts.batch_rows,
                        "testing_excluded": counts.testing,
                        "inputs_unavailable": counts.inputs_unavailable,
                        "labels": dict(counts.labels), "routed_to_review": counts.routed_to_review,
                        "score_mean": (float(counts.score_sums.sum() / n) if n else None)},
        "drift": drift,
        "score_drift": _score_drift(counts, ctx),
        "rates": {
            "ood_rate": {"value": ood_rate, "n": n, "codes": dict(counts.ood_codes),
                         "status": status_of(ood_rate, "ood_rate", t) if enough else Status.NO_DATA},
            "review_rate": {"value": review_rate, "n": n,
                            "status": (status_of(review_rate, "review_rate", t) if enough
                                       else Status.NO_DATA)},
            "rejection_rate": {"value": rejection_rate, "rejected": rejected,
                               "status": (status_of(rejection_rate, "rejection_rate", t)
                                          if rejected + n >= t["min_predictions"]
                                          else Status.NO_DATA),
                               "note": "refusals are counted per day: a window's rate takes "
                                       "the whole days it touches"},
        },
        "latency": {"p50_ms": p50, "p95_ms": p95, "singles": counts.singles,
                    "status": (status_of(p95, "latency_p95_ms", t)
                               if counts.singles >= t["min_predictions"] else Status.NO_DATA),
                    "note": "single predictions only (batch rows excluded); percentiles are "
                            "known to within 6% (log-spaced bins)"},
        "cost": {"per_1000": cost, "mean_latency_ms": mean_latency, "mean_cpu_ms": mean_cpu,
                 "measured_rows": counts.cpu_rows, "cpu_hour_price": ctx.price,
                 "status": status_of(cost, "cost_per_1000", t) if enough else Status.NO_DATA,
                 "estimated": not measured,
                 "note": ("CPU time per prediction as measured by the server (the thread that "
                          "validated, scored and logged it; batch rows: the chunk's CPU time "
                          "per row; the database's own CPU is not included) of "
                          f"{counts.cpu_rows} of {n} predictions, × the price per CPU-hour"
                          if measured else
                          "CPU time per prediction estimated as its logged latency (one core "
                          "busy for the whole request; batch rows: the chunk's time per row), "
                          "an upper bound, × the price per CPU-hour")},
        "overrides": overrides,
        "performance": perf,
        "attribution_drift": _attribution_drift(
            [r for r in ctx.explained if window.start <= r[0] < window.end], ctx),
    }
    out["performance_drop"] = _performance_drop(perf, ctx)
    out["subgroup_error_spread"] = _spread(perf, ctx)
    ece = perf["observed"]["calibration"].get("ece")
    out["calibration_ece"] = {"value": ece, "status": (
        status_of(ece, "calibration_ece", t) if perf["observed"]["enough"] else Status.NO_DATA)}
    if not detail:
        for item in drift:
            for key in ("counts", "reference", "labels"):
                item.pop(key, None)
    return out


# -- the health table and the retraining signal -------------------------------------------

def _health_row(key: str, figures: dict, t: dict) -> dict:
    spec = SPECS[key]
    value, status, evidence, feature = None, Status.NO_DATA, "", ""
    if key == "data_drift_psi":
        judged = [d for d in figures["drift"] if d["status"] != Status.NO_DATA]
        if judged:
            top = max(judged, key=lambda d: (_severity(d["status"]), d["psi"] or 0))
            value, status, feature = top["psi"], top["status"], top["feature"]
            drifting = [d["feature"] for d in judged if d["status"] in (Status.WARNING,
                                                                         Status.ALERT)]
            evidence = (f"{top['feature']}: PSI {top['psi']:.3f}, {top['test'].upper()} "
                        f"{_p(top['p_value'])}"
                        + (f"; drifting: {', '.join(drifting)}" if drifting else ""))
    elif key == "score_drift_psi":
        d = figures["score_drift"]
        value, status, evidence = d.get("psi"), d["status"], d.get("verdict", "")
    elif key in ("performance_drop", "subgroup_error_spread", "calibration_ece",
                 "attribution_drift"):
        d = figures[key]
        value, status = d.get("value"), d["status"]
        evidence = d.get("verdict", "")
        if key == "performance_drop" and value is not None:
            evidence = (f"{d['basis']} {d['metric'].upper()} {d['live']:.3f} vs validation "
                        f"{d['validation']:.3f}" + (f"; {d['verdict']}" if d["verdict"] else ""))
        if key == "subgroup_error_spread" and value is not None:
            evidence = (f"{d['highest']['name']} {d['highest']['error_rate']:.1%} vs "
                        f"{d['lowest']['name']} {d['lowest']['error_rate']:.1%}")
    elif key == "latency_p95_ms":
        d = figures["latency"]
        value, status = d["p95_ms"], d["status"]
        evidence = f"{d['singles']} single predictions"
    elif key in ("review_rate", "ood_rate", "rejection_rate"):
        d = figures["rates"][key]
        value, status = d["value"], d["status"]
        evidence = f"{figures['predictions']['n']} predictions"
    elif key == "override_rate":
        d = figures["overrides"]
        value, status = d["override_rate"], d["rate_status"]
        evidence = f"{d['overrides']} of {d['decided']} decided reviews overridden"
    elif key == "override_direction":
        d = figures["overrides"]
        value, status = d["direction_share"], d["direction_status"]
        top = d["top_direction"]
        evidence = (f"model said {top['model_said']}, reviewer decided {top['reviewer_decided']}"
                    f" in {top['n']} of {d['decided']} decided reviews" if top else
                    f"{d['decided']} decided reviews")
    elif key == "missing_rate_increase":
        judged = [d for d in figures["drift"] if d["missing_status"] != Status.NO_DATA]
        if judged:
            top = max(judged, key=lambda d: d["missing_increase"] or 0)
            value, status, feature = top["missing_increase"], top["missing_status"], \
                top["feature"]
            evidence = (f"{top['feature']}: {top['missing_rate']:.1%} live vs "
                        f"{top['training_missing_rate']:.1%} in training"
                        + (f"; {top['missing_note']}" if top.get("missing_note") else ""))
    elif key == "cost_per_1000":
        d = figures["cost"]
        value, status = d["per_1000"], d["status"]
        if d.get("mean_cpu_ms") is not None and not d["estimated"]:
            evidence = (f"measured: {d['mean_cpu_ms']:.3f} ms of CPU per prediction × "
                        f"${d['cpu_hour_price']:g} per CPU-hour")
        elif d["mean_latency_ms"] is not None:
            evidence = (f"estimated: {d['mean_latency_ms']:.2f} ms per prediction × "
                        f"${d['cpu_hour_price']:g} per CPU-hour")
    if status == Status.NO_DATA and not evidence:
        evidence = (f"fewer than {t['min_outcomes']} outcomes" if key in (
            "calibration_ece", "performance_drop", "subgroup_error_spread")
            else f"fewer than {t['min_predictions']} predictions")
    return {"signal": key, "label": spec.label, "value": stats.finite_or_none(value),
            "value_text": format_value(value, spec.unit), "status": status,
            "status_text": STATUS_TEXT[status], "thresholds": thresholds_text(key, t),
            "warning": t[key]["warning"], "alert": t[key]["alert"], "window": t[key]["window"],
            "feature": feature, "evidence": evidence, "explain": spec.explain}


def _p(value: float | None) -> str:
    """"p = 0.012" or "p < 0.001"."""
    if value is None:
        return "p —"
    return f"p = {value:.3g}" if value >= 0.001 else "p < 0.001"


def _severity(status: str) -> int:
    return {Status.ALERT: 2, Status.WARNING: 1}.get(status, 0)


def health_table(by_window: dict[str, dict], t: dict) -> list[dict]:
    rows = []
    for key in SPECS:
        window = t[key]["window"]
        figures = by_window.get(window)
        if figures is None:
            rows.append({"signal": key, "label": SPECS[key].label, "value": None,
                         "value_text": "—", "status": Status.NO_DATA,
                         "status_text": STATUS_TEXT[Status.NO_DATA],
                         "thresholds": thresholds_text(key, t), "warning": t[key]["warning"],
                         "alert": t[key]["alert"], "window": window, "feature": "",
                         "evidence": "the version has not been in production in this window",
                         "explain": SPECS[key].explain})
            continue
        rows.append(_health_row(key, figures, t))
    from .health import SEVERITY

    rows.sort(key=lambda r: (SEVERITY[r["status"]], -(r["value"] or 0) / max(r["alert"], 1e-9)))
    return rows


def runbook_has_retraining(runbook: str) -> bool:
    """A runbook describes retraining when it names it (the rule the monitoring page and
    the dossier both state)."""
    return "retrain" in (runbook or "").lower()


def retraining_signal(health: list[dict], by_window: dict[str, dict], t: dict,
                      version: ModelVersion) -> dict:
    """Overrides leaning one way, or drift or performance in alert: say so, with evidence."""
    evidence = []
    by_key = {r["signal"]: r for r in health}
    direction = by_key["override_direction"]
    if direction["status"] == Status.ALERT:
        evidence.append(f"Reviewers override in one direction: {direction['evidence']} "
                        f"({direction['value_text']}; alert at "
                        f"{format_value(t['override_direction']['alert'], 'share')}).")
    # The guidance's example: low-confidence cases (those the threshold sends to review)
    # overridden the same way. Judged on the override signal's window, with as many
    # decided low-confidence reviews as an override verdict needs.
    overrides = (by_window.get(t["override_direction"]["window"]) or {}).get("overrides") or {}
    low = overrides.get("low_confidence") or {}
    low_top = low.get("top_direction")
    if low_top and low["decided"] >= t["min_decided_reviews"] \
            and low_top["share"] >= t["override_direction"]["alert"]:
        evidence.append(
            f"Among low-confidence cases (confidence below {version.confidence_threshold:g}), "
            f"reviewers overrode {format_value(low_top['share'], 'share')} the same way: the "
            f"model said {low_top['model_said']}, the reviewer decided "
            f"{low_top['reviewer_decided']}, in {low_top['n']} of {low['decided']} decided "
            f"reviews (alert at {format_value(t['override_direction']['alert'], 'share')}).")
    drift_window = by_window.get(t["data_drift_psi"]["window"]) or {}
    for d in drift_window.get("drift", []):
        if d["status"] == Status.ALERT:
            evidence.append(f"Input drift in {d['feature']}: PSI {d['psi']:.3f} (alert above "
                            f"{t['data_drift_psi']['alert']}), {d['test'].upper()} "
                            f"{_p(d['p_value'])}.")
    for key in ("performance_drop", "score_drift_psi", "subgroup_error_spread"):
        row = by_key[key]
        if row["status"] == Status.ALERT:
            evidence.append(f"{row['label']}: {row['value_text']} ({row['evidence']}).")
    runbook = version.runbook or ""
    has_procedure = runbook_has_retraining(runbook)
    return {"suggested": bool(evidence), "evidence": evidence,
            "runbook_has_retraining": has_procedure,
            "runbook_url": f"/models/{version.model.name}/versions/{version.number}/#runbook",
            "text": ("Retraining is suggested: " + " ".join(evidence)) if evidence else
            "No retraining signal: no override pattern, drift or performance alert."}


# -- a whole version ----------------------------------------------------------------------

def evaluate_version(*, version: ModelVersion, now: datetime | None = None,
                     intervals: list[Interval] | None = None) -> Evaluation:
    now = now or timezone.now()
    if intervals is None:
        intervals = production_intervals([version.pk])[version.pk]
    left = intervals[-1].end if intervals and intervals[-1].end is not None else None
    if version.state == VersionState.PRODUCTION:
        left = None
    windows = rolling_windows(now, intervals[-1].start if intervals else None, left)
    series_end = windows["7d"].end - timedelta(days=1)
    first_day = series_end - timedelta(days=SERIES_DAYS - 1)
    since = min(w.start for w in windows.values())
    since = min(since, first_day)
    ctx = evaluation_context(version, since=since, now=now, intervals=intervals)
    t = ctx.thresholds
    figures: list[Figure] = []
    by_window: dict[str, dict] = {}
    for code in ROLLING:
        window = windows.get(code)
        if window is None:
            continue
        data = window_figures(window, ctx)
        by_window[code] = data
        figures.extend(_rows(code, data))
    promoted_day = windows["since_promotion"].start if "since_promotion" in windows else None
    day = first_day
    while day <= series_end:
        if promoted_day is None or day >= promoted_day:
            data = window_figures(day_window(day.date()), ctx, detail=False)
            figures.extend(_day_rows(f"day:{day.date().isoformat()}", data))
        day += timedelta(days=1)
    health = health_table(by_window, t)
    retraining = retraining_signal(health, by_window, t, version)
    alerts = _alert_candidates(health, by_window, t, retraining, version)
    return Evaluation(version=version, windows=dict(windows),
                      figures=figures, health=health, retraining=retraining, thresholds=t,
                      alerts=alerts)


def _rows(code: str, data: dict) -> list[Figure]:
    rows = []
    for d in data["drift"]:
        rows.append(Figure(window=code, signal="drift", feature=d["feature"], value=d["psi"],
                           p_value=d["p_value"], n=d["n"], status=d["status"], detail=d))
    scalar = {
        "predictions": (data["predictions"]["n"], Status.OK, data["predictions"]),
        "score_drift": (data["score_drift"].get("psi"), data["score_drift"]["status"],
                        data["score_drift"]),
        "latency": (data["latency"]["p95_ms"], data["latency"]["status"], data["latency"]),
        "cost": (data["cost"]["per_1000"], data["cost"]["status"], data["cost"]),
        "overrides": (data["overrides"]["override_rate"], data["overrides"]["rate_status"],
                      data["overrides"]),
        "performance": (data["performance"]["observed"].get("auc"),
                        data["calibration_ece"]["status"], data["performance"]),
        "performance_drop": (data["performance_drop"].get("value"),
                             data["performance_drop"]["status"], data["performance_drop"]),
        "subgroup_error_spread": (data["subgroup_error_spread"].get("value"),
                                  data["subgroup_error_spread"]["status"],
                                  data["subgroup_error_spread"]),
        "calibration_ece": (data["calibration_ece"]["value"], data["calibration_ece"]["status"],
                            data["calibration_ece"]),
        "attribution_drift": (data["attribution_drift"]["value"],
                              data["attribution_drift"]["status"], data["attribution_drift"]),
    }
    for key, item in data["rates"].items():
        scalar[key] = (item["value"], item["status"], item)
    for signal, (value, status, detail) in scalar.items():
        rows.append(Figure(window=code, signal=signal, value=stats.finite_or_none(value),
                           p_value=detail.get("p_value") if isinstance(detail, dict) else None,
                           n=data["predictions"]["n"], status=status, detail=detail))
    return rows


def _day_rows(code: str, data: dict) -> list[Figure]:
    rows = [Figure(window=code, signal="drift", feature=d["feature"], value=d["psi"],
                   p_value=d["p_value"], n=d["n"], status=d["status"]) for d in data["drift"]]
    perf = data["performance"]
    summary = {
        "predictions": data["predictions"]["n"], "score_mean": data["predictions"]["score_mean"],
        "review_rate": data["rates"]["review_rate"]["value"],
        "ood_rate": data["rates"]["ood_rate"]["value"],
        "score_psi": data["score_drift"].get("psi"),
        # a rate of two reviews says little: the chart leaves such days out
        "override_rate": (data["overrides"]["override_rate"]
                          if data["overrides"]["decided"] >= 5 else None),
        "decided": data["overrides"]["decided"],
        "estimated_accuracy": perf["estimated"].get("accuracy"),
        "estimated_auc": perf["estimated"].get("auc"),
        "observed_accuracy": perf["observed"].get("accuracy"),
        "outcomes": perf["observed"]["n"],
        "latency_p95_ms": data["latency"]["p95_ms"],
    }
    rows.append(Figure(window=code, signal="day", value=data["predictions"]["n"],
                       n=data["predictions"]["n"], status=Status.OK,
                       detail={k: stats.finite_or_none(v) if isinstance(v, float) else v
                               for k, v in summary.items()}))
    return rows


def _alert_candidates(health: list[dict], by_window: dict, t: dict, retraining: dict,
                      version: ModelVersion) -> list[dict]:
    """What should be open now: one per signal in warning or alert (data drift and
    missing values per feature), and the retraining signal."""
    out = []
    for row in health:
        key = row["signal"]
        if key in ("data_drift_psi", "missing_rate_increase"):
            continue
        out.append({"signal": key, "feature": "", "status": row["status"], "value": row["value"],
                    "message": f"{row['label']}: {row['value_text']} ({row['evidence']}); "
                               f"{row['thresholds']} [{row['window']}]",
                    "evidence": {"window": row["window"], "evidence": row["evidence"]}})
    for key, status_key, value_key in (("data_drift_psi", "status", "psi"),
                                       ("missing_rate_increase", "missing_status",
                                        "missing_increase")):
        window = t[key]["window"]
        for d in (by_window.get(window) or {}).get("drift", []):
            value = d[value_key]
            text = (f"PSI {value:.3f}, {d['test'].upper()} {_p(d['p_value'])}"
                    if key == "data_drift_psi" and value is not None else
                    format_value(value, SPECS[key].unit))
            out.append({"signal": key, "feature": d["feature"], "status": d[status_key],
                        "value": value,
                        "message": f"{FEATURE_LABELS[key]} in {d['feature']}: {text}; "
                                   f"{thresholds_text(key, t)} [{window}]",
                        "evidence": {"window": window, "n": d["n"]}})
    out.append({"signal": "retraining", "feature": "",
                "status": Status.ALERT if retraining["suggested"] else Status.OK, "value": None,
                "message": retraining["text"][:480],
                "evidence": {"evidence": retraining["evidence"]}})
    return out


def worst_status(health: list[dict]) -> str:
    return worst([r["status"] for r in health])
