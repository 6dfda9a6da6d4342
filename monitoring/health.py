"""Model-health thresholds: the defaults, a model's own values, and a status per value.

Every signal has a warning and an alert threshold and the window it is judged on.
The defaults follow the issue that introduced monitoring (and the clinical deployment
guidance behind it); a model's ``MonitoringPolicy.thresholds`` overrides any of them.
A value at or past ``alert`` is an alert, at or past ``warning`` a warning, else ok —
except for signals where higher is better, which none of these are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.errors import ErrorItem, ValidationFailed

WINDOWS = ("24h", "7d", "30d", "since_promotion")


class Status:
    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"
    NO_DATA = "no_data"  # too few predictions or outcomes for a verdict
    UNAVAILABLE = "unavailable"  # the signal cannot be computed yet (a gap, said why)


SEVERITY = {Status.ALERT: 0, Status.WARNING: 1, Status.UNAVAILABLE: 2, Status.NO_DATA: 3,
            Status.OK: 4}
STATUS_TEXT = {Status.OK: "OK", Status.WARNING: "Warning", Status.ALERT: "Alert",
               Status.NO_DATA: "Not enough data", Status.UNAVAILABLE: "Unavailable"}


@dataclass(frozen=True)
class SignalSpec:
    key: str
    label: str
    unit: str  # how values read: "psi", "ms", "share", "points", "usd", "ratio"
    warning: float
    alert: float
    window: str
    explain: str


SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("data_drift_psi", "Data drift (largest feature PSI)", "psi", 0.10, 0.25, "7d",
               "PSI of a feature's live values on the training profile's quantile bins; "
               "counted only where the KS or chi-square test also rejects."),
    SignalSpec("score_drift_psi", "Score drift (PSI)", "psi", 0.10, 0.25, "7d",
               "PSI of the live scores against the version's first days in production."),
    SignalSpec("performance_drop", "Performance drop against validation", "share", 0.02, 0.05,
               "30d", "Relative drop of live AUC (observed from outcomes, else estimated) "
               "below the validation AUC."),
    SignalSpec("subgroup_error_spread", "Error-rate spread across subgroups", "points", 0.01,
               0.03, "30d", "Largest minus smallest error rate among subgroups with enough "
               "outcomes."),
    SignalSpec("calibration_ece", "Calibration error (live ECE)", "ratio", 0.05, 0.10, "30d",
               "Expected calibration error of the scores against observed outcomes."),
    SignalSpec("latency_p95_ms", "Latency p95 (single predictions)", "ms", 100.0, 300.0, "24h",
               "Server-side time of single predictions; batch rows are excluded."),
    SignalSpec("review_rate", "Review rate", "share", 0.20, 0.40, "7d",
               "Share of predictions routed to human review."),
    SignalSpec("override_rate", "Override rate", "share", 0.10, 0.20, "30d",
               "Share of decided reviews where the reviewer chose another label."),
    SignalSpec("override_direction", "Overrides in one direction", "share", 0.15, 0.30, "30d",
               "Share of decided reviews overridden the same way (the model said A, the "
               "reviewer B); the guidance's retraining example is 30%."),
    SignalSpec("ood_rate", "Out-of-distribution rate", "share", 0.05, 0.10, "7d",
               "Share of predictions with an out-of-distribution flag."),
    SignalSpec("rejection_rate", "Rejection rate", "share", 0.05, 0.10, "7d",
               "Refused requests among refused and scored ones (counted per day)."),
    SignalSpec("missing_rate_increase", "Missing values above training", "points", 0.05, 0.10,
               "7d", "Largest rise of a feature's missing-value rate over its training rate."),
    SignalSpec("attribution_drift", "Attribution drift", "ratio", 0.10, 0.25, "30d",
               "Total variation distance between the shares of mean |SHAP| per feature over "
               "the window's explained predictions and the version's global importance."),
    SignalSpec("cost_per_1000", "Inference cost per 1,000 predictions", "usd", 0.50, 1.00, "7d",
               "CPU time per prediction × the price per CPU-hour (estimated from the logged "
               "latency, see docs/operations.md)."),
)
SPECS = {s.key: s for s in SIGNALS}

# General settings, beside the per-signal thresholds.
GENERAL_DEFAULTS: dict[str, Any] = {
    "p_value": 0.05,  # the drift tests' significance level
    "min_predictions": 30,  # fewer live predictions in a window: no drift verdict
    "min_outcomes": 30,  # fewer outcomes: no observed performance verdict
    "min_decided_reviews": 20,  # fewer decided reviews: no override verdict
    "score_baseline_days": 7,  # the score reference: the version's first days in production
    "max_calibration_error": 0.05,  # validation ECE above this: the estimate is not trusted
}


def default_thresholds() -> dict[str, Any]:
    out: dict[str, Any] = {s.key: {"warning": s.warning, "alert": s.alert, "window": s.window}
                           for s in SIGNALS}
    out.update(copy.deepcopy(GENERAL_DEFAULTS))
    return out


def effective_thresholds(overrides: dict | None) -> dict[str, Any]:
    """The defaults with a model's overrides applied (already validated)."""
    out = default_thresholds()
    for key, value in (overrides or {}).items():
        if key in SPECS and isinstance(value, dict):
            out[key] = {**out[key], **value}
        elif key in GENERAL_DEFAULTS:
            out[key] = value
    return out


def validate_thresholds(value: Any) -> dict:
    """A model's overrides: known keys only, numbers where numbers go, warning ≤ alert."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed("thresholds must be an object.", code="invalid",
                               field="thresholds")
    problems: list[ErrorItem] = []
    clean: dict[str, Any] = {}
    for key, item in value.items():
        where = f"thresholds.{key}"
        if key in SPECS:
            if not isinstance(item, dict) or set(item) - {"warning", "alert", "window"}:
                problems.append(ErrorItem("invalid", f"{key} takes warning, alert and window.",
                                          where))
                continue
            entry = {}
            for bound in ("warning", "alert"):
                if bound in item:
                    number = item[bound]
                    if not _number(number) or number < 0:
                        problems.append(ErrorItem("invalid", f"{bound} must be a number ≥ 0.",
                                                  f"{where}.{bound}"))
                    else:
                        entry[bound] = float(number)
            if "window" in item:
                if item["window"] not in WINDOWS:
                    problems.append(ErrorItem("invalid", f"window must be one of "
                                              f"{', '.join(WINDOWS)}.", f"{where}.window"))
                else:
                    entry["window"] = item["window"]
            merged = {**default_thresholds()[key], **entry}
            if merged["warning"] > merged["alert"]:
                problems.append(ErrorItem("invalid", "warning must not exceed alert.", where))
            clean[key] = entry
        elif key in GENERAL_DEFAULTS:
            if not _number(item) or item < 0:
                problems.append(ErrorItem("invalid", f"{key} must be a number ≥ 0.", where))
            elif key == "p_value" and not 0 < item < 1:
                problems.append(ErrorItem("invalid", "p_value must be between 0 and 1.", where))
            else:
                clean[key] = int(item) if isinstance(GENERAL_DEFAULTS[key], int) else float(item)
        else:
            problems.append(ErrorItem("unknown_key", f"Unknown threshold '{key}'.", where))
    if problems:
        raise ValidationFailed(items=problems)
    return clean


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def status_of(value: float | None, key: str, thresholds: dict) -> str:
    if value is None:
        return Status.NO_DATA
    bounds = thresholds[key]
    if value >= bounds["alert"]:
        return Status.ALERT
    if value >= bounds["warning"]:
        return Status.WARNING
    return Status.OK


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "psi" or unit == "ratio":
        return f"{value:.3f}"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "points":
        return f"{value * 100:.1f} points"
    if unit == "usd":
        return f"${value:.4f}"
    return f"{value:g}"


def thresholds_text(key: str, thresholds: dict) -> str:
    spec, bounds = SPECS[key], thresholds[key]
    w, a = format_value(bounds["warning"], spec.unit), format_value(bounds["alert"], spec.unit)
    return f"OK below {w}; warning {w}–{a}; alert at {a} or more"


def worst(statuses: list[str]) -> str:
    return min(statuses, key=lambda s: SEVERITY[s]) if statuses else Status.NO_DATA
