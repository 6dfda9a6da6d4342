"""Validating prediction inputs against a version's schema, and the OOD check.

Validation answers "can this input be scored at all?" (types, required fields,
missing-value policy, allowed categories); every problem is reported at once.
The out-of-distribution check answers "is this input like the training data?"
against the training profile: outside the validated range, a category never
seen in training, or too many features in the profile's tails (beyond p01–p99).
The version's OOD policy then rejects the request or scores it and routes it to
human review.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.errors import ErrorItem
from core.numbers import range_text
from registry.reference import boolean_true_share
from registry.schema import BOOLEAN_HINT, boolean_value

# An input is "in the tails" when at least this many numeric features, and at least
# this share of them, lie beyond the training profile's 1st-99th percentiles.
TAIL_MIN_FEATURES = 2
TAIL_MIN_SHARE = 0.25


@dataclass
class Checked:
    values: dict[str, Any]
    errors: list[ErrorItem] = field(default_factory=list)
    ood: list[dict] = field(default_factory=list)  # {"code", "feature", "message"}
    imputed: list[str] = field(default_factory=list)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    """Finite and representable as a float (an int beyond ~1.8e308 is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def boolean_error(name: str) -> str:
    return f"{name} must be {BOOLEAN_HINT}."


def _impute(feature: dict, column: dict) -> Any:
    kind = feature["type"]
    if kind in ("number", "integer"):
        quantiles = column.get("quantiles") or []
        value = quantiles[len(quantiles) // 2] if quantiles else column.get("mean")
        if value is None:
            return None
        return int(round(value)) if kind == "integer" else float(value)
    if kind == "boolean":  # the more frequent value, from a true/false or a 0/1 profile
        share = boolean_true_share(column)
        return None if share is None else share >= 0.5
    categories = column.get("categories") or {}
    if not categories:
        return None
    return max(categories, key=categories.get)


# What a per-feature flag says without the input's value (the redacted flags below, the
# routing reasons on the clinician pages: inference_tags.reason_text).
OOD_FEATURE_TEXTS = {"out_of_range": "{} is outside the validated range",
                     "unseen_category": "{} has a category that never occurred in the "
                                        "training data"}


def ood_flag_redacted(flag: dict) -> dict:
    """The flag as anyone may see it: its text rebuilt from its code and feature, so no
    input value reaches someone without the right to raw inputs, nor outlives their
    purge (flags logged before the messages stopped quoting the value carry it)."""
    feature, code = flag.get("feature"), flag.get("code")
    if feature and code in OOD_FEATURE_TEXTS:
        message = OOD_FEATURE_TEXTS[code].format(feature) + "."
    elif code == "tail":  # counts only, no value
        message = flag.get("message", "")
    else:
        message = "An input is unlike the training data."
    return {"code": code, "feature": feature, "message": message}


def check_input(raw: Any, *, schema: list[dict], profile: dict, path: str = "inputs") -> Checked:
    """Validate one input object and run the OOD check on what validated."""
    checked = Checked(values={})
    if not isinstance(raw, dict):
        checked.errors.append(ErrorItem("invalid", "Each input must be an object mapping feature "
                                        "names to values.", path))
        return checked
    names = {f["name"] for f in schema}
    for unknown in sorted(set(raw) - names):
        checked.errors.append(ErrorItem("unknown_field", f"'{unknown}' is not an input of this "
                                        "model.", f"{path}.{unknown}"))
    columns = (profile or {}).get("columns", {})
    tails = 0
    numeric = 0
    for feature in schema:
        name, kind = feature["name"], feature["type"]
        where = f"{path}.{name}"
        value = raw.get(name)
        column = columns.get(name, {})
        if value is None:
            policy = feature.get("missing", "reject")
            if policy == "impute":
                value = _impute(feature, column)
                checked.imputed.append(name)
            elif policy == "pass":
                checked.values[name] = None
                continue
            if value is None:
                if feature.get("required", True) or policy == "impute":
                    checked.errors.append(ErrorItem("required", f"{name} is required.", where))
                else:
                    checked.values[name] = None
                continue
        if kind in ("number", "integer"):
            if not _is_number(value) or not _is_finite(value):
                checked.errors.append(ErrorItem("invalid_type", f"{name} must be a number.", where))
                continue
            if kind == "integer":
                if float(value) != int(value):
                    checked.errors.append(ErrorItem("invalid_type", f"{name} must be a whole "
                                                    "number.", where))
                    continue
                value = int(value)
            else:
                value = float(value)
            lo, hi = feature.get("min"), feature.get("max")
            unit = f" {feature['unit']}" if feature.get("unit") else ""
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                # No value in the message: the flag is logged with the prediction and
                # shown to people who may not see raw inputs, and outlives their purge.
                side = "below" if lo is not None and value < lo else "above"
                checked.ood.append({"code": "out_of_range", "feature": name,
                                    "message": f"{name} is {side} the validated range "
                                               f"({range_text(lo, hi, unit)})."})
            numeric += 1
            p01, p99 = column.get("p01"), column.get("p99")
            if p01 is not None and p99 is not None and not (p01 <= value <= p99):
                tails += 1
        elif kind == "boolean":
            # JSON booleans and 0/1; text ("true", "0") is read by the paths that carry it
            # (batches.files, the form) with the same rule.
            value = boolean_value(value)
            if value is None:
                checked.errors.append(ErrorItem("invalid_type", boolean_error(name), where))
                continue
        else:
            if not isinstance(value, str | int) or isinstance(value, bool):
                checked.errors.append(ErrorItem("invalid_type", f"{name} must be one of the "
                                                "allowed values.", where))
                continue
            value = str(value)
            allowed = [str(c) for c in feature.get("categories") or []]
            if allowed and value not in allowed:
                checked.errors.append(ErrorItem(
                    "invalid_category", f"{name} must be one of: {', '.join(allowed[:20])}"
                    + ("…" if len(allowed) > 20 else "") + ".", where))
                continue
            seen = column.get("categories")
            if seen is not None and value not in seen and column.get("other_rate", 0) == 0:
                checked.ood.append({"code": "unseen_category", "feature": name,
                                    "message": f"{name} has a category that never occurred in "
                                               "the training data."})
        checked.values[name] = value
    if numeric and tails >= TAIL_MIN_FEATURES and tails / numeric >= TAIL_MIN_SHARE:
        checked.ood.append({"code": "tail", "feature": None,
                            "message": f"{tails} of {numeric} numeric features lie beyond the "
                                       "training data's 1st–99th percentiles."})
    return checked
