"""Monitoring's reads, always for a user.

Who may see monitoring: everyone who may view the model (``view_model``: owners,
approvers, IRB members, clinicians, reviewers, viewers, auditors, admins); anyone else
gets 404, as for the model itself. The figures are aggregates — rates, PSI, counts per
training-profile bin, performance over many outcomes — with no raw input, no single
prediction and no reviewer named, and the people who use the model's answers are the
first who should know it drifts. Per-bin counts of a window with fewer live predictions
than ``min_predictions`` are withheld (small cells could single out a patient). Running
monitoring on demand and changing the policy need ``register_version`` (owners);
recording outcomes needs ``record_outcomes`` (owners, clinicians).
"""

from __future__ import annotations

from datetime import date

import numpy as np
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import ErrorItem, NotFound, ValidationFailed
from registry.models import ModelVersion, RegisteredModel, VersionState
from registry.roles import Capability
from registry.selectors import model_get_for_user, model_list_for_user, user_capabilities

from . import charts
from .aggregation import aggregation_lag
from .evaluation import ROLLING, evaluation_context, window_figures
from .health import SEVERITY, STATUS_TEXT, Status, default_thresholds, effective_thresholds
from .live import live_q, production_intervals
from .models import Alert, Figure, MonitoringPolicy, MonitoringRun, Outcome, VersionCounts
from .windows import LABELS, range_window

MAX_RANGE_DAYS = 400


def monitored_versions(model: RegisteredModel) -> list[ModelVersion]:
    """Versions with live traffic or a run, newest first; production always."""
    counted = set(VersionCounts.objects.filter(version__model=model)
                  .values_list("version_id", flat=True).distinct())
    ran = set(MonitoringRun.objects.filter(version__model=model)
              .values_list("version_id", flat=True))
    return [v for v in model.versions.order_by("-number")
            if v.pk in counted | ran or v.state == VersionState.PRODUCTION]


def latest_run(version: ModelVersion) -> MonitoringRun | None:
    return MonitoringRun.objects.filter(version=version).order_by("-computed_at").first()


def _pick_version(model: RegisteredModel, number) -> ModelVersion | None:
    versions = monitored_versions(model)
    if number not in (None, ""):
        try:
            wanted = int(number)
        except (TypeError, ValueError):
            raise ValidationFailed(f"{model.name} has no version {number}.",
                                   code="unknown_version", field="version") from None
        version = model.versions.filter(number=wanted).select_related("dataset").first()
        if version is None:
            raise ValidationFailed(f"{model.name} has no version {number}.",
                                   code="unknown_version", field="version")
        return version
    production = next((v for v in versions if v.state == VersionState.PRODUCTION), None)
    return production or (versions[0] if versions else None)


def _parse_day(value: str, field: str, problems: list[ErrorItem]) -> date | None:
    from django.utils.dateparse import parse_date

    try:
        day = parse_date((value or "").strip())
    except ValueError:
        day = None
    if day is None:
        problems.append(ErrorItem("invalid_date", "Use an ISO date, e.g. 2026-01-31.", field))
    return day


def parse_window(params) -> tuple[str, tuple[date, date] | None]:
    """The window asked for: a rolling window's code, or a date range (whole UTC days)."""
    since, until = (params.get("since") or "").strip(), (params.get("until") or "").strip()
    if since or until:
        problems: list[ErrorItem] = []
        first = _parse_day(since, "since", problems) if since else None
        last = _parse_day(until, "until", problems) if until else timezone.now().date()
        if since == "":
            problems.append(ErrorItem("required", "A date range needs since.", "since"))
        if first and last:
            if first > last:
                problems.append(ErrorItem("invalid", "since must not be after until.", "since"))
            elif (last - first).days > MAX_RANGE_DAYS:
                problems.append(ErrorItem("invalid", f"A range spans at most {MAX_RANGE_DAYS} "
                                          "days.", "since"))
        if problems:
            raise ValidationFailed(items=problems)
        return "range", (first, last)
    window = (params.get("window") or "7d").strip()
    if window not in ROLLING:
        raise ValidationFailed(f"window must be one of {', '.join(ROLLING)} (or give since and "
                               "until).", code="invalid", field="window")
    return window, None


def _signal_figures(figures: list[Figure]) -> dict:
    """A stored window back in ``evaluation.window_figures``' shape."""
    out: dict = {"drift": [], "rates": {}}
    for figure in figures:
        if figure.signal == "drift":
            out["drift"].append(figure.detail)
        elif figure.signal in ("ood_rate", "review_rate", "rejection_rate"):
            out["rates"][figure.signal] = figure.detail
        else:
            out[figure.signal] = figure.detail
    return out


def _withhold_small_cells(data: dict, minimum: int) -> None:
    for item in data.get("drift", []):
        if item.get("n", 0) < minimum and item.get("counts") is not None:
            item["counts"] = None
            item["withheld"] = (f"bin counts withheld below {minimum} values (small cells could "
                                "single out a patient)")


def _series(run: MonitoringRun) -> dict:
    days = list(run.figures.filter(window__startswith="day:", signal="day").order_by("window")
                .values_list("window", "detail"))
    drift = run.figures.filter(window__startswith="day:", signal="drift").values_list(
        "window", "feature", "value", "status")
    per_feature: dict[str, dict[str, tuple]] = {}
    for window, feature, value, status in drift:
        per_feature.setdefault(feature, {})[window[4:]] = (value, status)
    return {"days": [{"day": w[4:], **d} for w, d in days], "drift": per_feature}


def monitoring_view(*, user, model_name: str, params) -> dict:
    """Everything the monitoring page and ``GET …/monitoring/`` show, for ``user``."""
    model = model_get_for_user(user=user, name=model_name)
    caps = user_capabilities(user=user, model=model)
    version = _pick_version(model, params.get("version"))
    window_code, days = parse_window(params)
    policy = MonitoringPolicy.objects.filter(model=model).first()
    out: dict = {
        "model": model, "version": version, "versions": monitored_versions(model),
        "caps": caps, "window_code": window_code, "run": None,
        "policy": {"thresholds": policy.thresholds if policy else {},
                   "subgroups": policy.subgroups if policy else [],
                   "cpu_hour_price": policy.cpu_hour_price if policy else None},
        "defaults": default_thresholds(), "lag": aggregation_lag(),
        "alerts": [], "health": [], "retraining": None, "figures": None, "series": None,
        "windows": {code: LABELS[code] for code in ROLLING},
    }
    if version is None:
        return out
    thresholds = effective_thresholds(policy.thresholds if policy else None)
    out["thresholds"] = thresholds
    out["alerts"] = list(Alert.objects.filter(version=version, cleared_at__isnull=True)
                         .order_by("level", "-opened_at"))
    run = latest_run(version)
    out["run"] = run
    if run is not None:
        out["health"] = run.summary.get("health", [])
        out["retraining"] = run.summary.get("retraining")
        out["series"] = _series(run)
    if window_code == "range":
        intervals = production_intervals([version.pk])[version.pk]
        window = range_window(*days)
        ctx = evaluation_context(version, since=window.start, now=timezone.now(), intervals=intervals)
        out["figures"] = window_figures(window, ctx)
        out["figures"]["computed"] = "on demand, from the stored counts"
    elif run is not None:
        figures = list(run.figures.filter(window=window_code))
        if figures:
            out["figures"] = _signal_figures(figures)
            out["figures"]["window"] = run.windows.get(window_code)
            out["figures"]["computed"] = run.computed_at.isoformat()
    if out["figures"] is not None:
        # the most severe first, then the largest PSI: a drifting feature leads the table
        order = {f["name"]: i for i, f in enumerate(version.input_schema or [])}
        out["figures"]["drift"].sort(key=lambda d: (SEVERITY.get(d["status"], 9),
                                                    -(d.get("psi") or 0),
                                                    order.get(d["feature"], 10**6)))
        _withhold_small_cells(out["figures"], thresholds["min_predictions"])
    return out


def monitoring_charts(view: dict, *, feature: str | None) -> dict:
    """Server-rendered SVG charts (each with a text alternative) for the page."""
    out: dict = {}
    series, figures = view.get("series"), view.get("figures")
    thresholds = view.get("thresholds") or default_thresholds()
    if series and series["days"]:
        out["drift_over_time"] = charts.drift_chart(series, thresholds)
        out["predictions_over_time"] = charts.volume_chart(series)
        out["volume_over_time"] = charts.rates_chart(series)
        out["performance_over_time"] = charts.performance_chart(series)
    if figures:
        drift = figures["drift"]
        chosen = next((d for d in drift if d["feature"] == feature), None)
        if chosen is None and drift:
            chosen = max(drift, key=lambda d: d.get("psi") or 0)
        if chosen is not None:
            out["histogram_feature"] = chosen["feature"]
            out["histogram"] = charts.histogram_chart(chosen)
        perf = figures.get("performance") or {}
        live = live_calibration(perf, minimum=thresholds["min_predictions"])
        validation = (perf.get("validation") or {}).get("calibration") or []
        if live["bins"] or live["withheld"] or validation:
            out["calibration"] = charts.calibration_chart(
                live["bins"], validation, withheld=live["withheld"],
                minimum=thresholds["min_predictions"], live_ece=live["ece"])
    return out


def live_calibration(performance: dict, *, minimum: int) -> dict:
    """The live reliability curve of a window's ``performance`` figures as it may be
    shown: bins with fewer than ``minimum`` cases are left out (a bin's observed rate
    over a handful of patients could single one out), the page's small-cell rule for
    drift counts. ``withheld`` counts the bins left out and ``withheld_cases`` their
    cases; ``n`` and ``ece`` are over every live outcome (aggregates)."""
    calibration = (performance.get("observed") or {}).get("calibration") or {}
    bins = calibration.get("bins") or []
    shown = [b for b in bins if b.get("n", 0) >= minimum]
    return {"bins": shown, "withheld": len(bins) - len(shown),
            "withheld_cases": sum(b.get("n", 0) for b in bins if b.get("n", 0) < minimum),
            "n": calibration.get("n", 0), "ece": calibration.get("ece"), "minimum": minimum}


# -- banners: the model pages and the dashboard ----------------------------------------------

def open_alerts(model_ids) -> QuerySet[Alert]:
    return (Alert.objects.filter(model_id__in=model_ids, cleared_at__isnull=True)
            .select_related("model", "version").order_by("model__name", "level", "-opened_at"))


def alerts_for_user(*, user) -> list[dict]:
    """Per model the user may view: its open alerts (the dashboard's banner)."""
    visible = model_list_for_user(user=user).values("pk")
    grouped: dict[int, dict] = {}
    for alert in open_alerts(visible):
        entry = grouped.setdefault(alert.model_id, {"model": alert.model, "alerts": [],
                                                    "retraining": None})
        if alert.signal == "retraining":
            entry["retraining"] = alert
        else:
            entry["alerts"].append(alert)
    return [_banner(e) for e in grouped.values()]


def model_banner(*, user, model_name: str) -> dict | None:
    """The banner on a model's pages, or None (nothing open, or a model the user may not
    see: then the page itself answers 404)."""
    try:
        model = model_get_for_user(user=user, name=model_name)
    except NotFound:
        return None
    entry: dict = {"model": model, "alerts": [], "retraining": None}
    for alert in open_alerts([model.pk]):
        if alert.signal == "retraining":
            entry["retraining"] = alert
        else:
            entry["alerts"].append(alert)
    if not entry["alerts"] and entry["retraining"] is None:
        return None
    return _banner(entry)


def _banner(entry: dict) -> dict:
    alerts = entry["alerts"]
    level = (Status.ALERT if any(a.level == Status.ALERT for a in alerts) or entry["retraining"]
             else Status.WARNING)
    retraining = entry["retraining"]
    evidence = (retraining.evidence or {}).get("evidence", []) if retraining else []
    return {"model": entry["model"], "level": level, "level_text": STATUS_TEXT[level],
            "alerts": alerts, "count": len(alerts), "retraining": retraining,
            "retraining_evidence": evidence,
            "runbook_url": (f"/models/{retraining.version.model.name}/versions/"
                            f"{retraining.version.number}/#runbook") if retraining else None}


def can_run(caps) -> bool:
    return Capability.REGISTER_VERSION in caps


def can_record_outcomes(caps) -> bool:
    return Capability.RECORD_OUTCOMES in caps


def monitoring_evidence(*, version: ModelVersion) -> dict | None:
    """A version's latest monitoring run as evidence (for the dossier, whose own service
    checks ``generate_dossier``): when it was computed, from which rows, the thresholds
    applied, the health table, the retraining signal, the open alerts and the 30-day and
    since-promotion figures. None when the version was never monitored."""
    run = latest_run(version)
    if run is None:
        return None
    figures = {window: _signal_figures(list(run.figures.filter(window=window)))
               for window in ("30d", "since_promotion")}
    minimum = (run.thresholds or default_thresholds()).get("min_predictions", 30)
    for data in figures.values():
        _withhold_small_cells(data, minimum)
    return {"computed_at": run.computed_at.isoformat(), "aggregated_through":
            run.aggregated_through, "windows": run.windows, "thresholds": run.thresholds,
            "series": _series(run), "outcome_delays": outcome_delays(version=version, run=run),
            "health": run.summary.get("health", []),
            "retraining": run.summary.get("retraining"),
            "alerts": [{"signal": a.signal, "feature": a.feature, "level": a.level,
                        "message": a.message, "opened_at": a.opened_at.isoformat()}
                       for a in Alert.objects.filter(version=version, cleared_at__isnull=True)],
            "figures": figures}


def outcome_delays(*, version: ModelVersion, run: MonitoringRun) -> dict:
    """How long outcomes took to arrive, for the live predictions of the run's widest
    window (since promotion, else the last 30 days) whose outcome was recorded by the
    time the run was computed, so the count matches the run's figures. Per outcome: days
    from the prediction to the outcome's date (the clinical follow-up) and to when it
    was recorded in Attest. Medians and 90th percentiles only from ``min_outcomes``
    outcomes on (a percentile of a few is one patient's date)."""
    code = "since_promotion" if "since_promotion" in run.windows else "30d"
    window = run.windows.get(code)
    minimum = (run.thresholds or default_thresholds()).get("min_outcomes", 30)
    out: dict = {"window": code, "window_label": LABELS.get(code, code), "n": 0,
                 "minimum": minimum, "to_outcome_date": None, "to_recorded": None}
    if not window:
        return out
    intervals = production_intervals([version.pk])[version.pk]
    rows = list(Outcome.objects.filter(
        version=version, predicted_at__gte=parse_datetime(window["start"]),
        predicted_at__lt=parse_datetime(window["end"]), recorded_at__lte=run.computed_at)
        .filter(live_q(intervals, "predicted_at"))
        .values_list("predicted_at", "outcome_date", "recorded_at"))
    out["n"] = len(rows)
    if len(rows) < minimum:
        return out
    to_date = np.array([(day - at.date()).days for at, day, _ in rows], dtype=float)
    to_recorded = np.array([(rec - at).total_seconds() / 86400 for at, _, rec in rows])

    def summary(values: np.ndarray) -> dict:
        return {"median_days": float(np.median(values)),
                "p90_days": float(np.percentile(values, 90))}

    out["to_outcome_date"], out["to_recorded"] = summary(to_date), summary(to_recorded)
    return out
