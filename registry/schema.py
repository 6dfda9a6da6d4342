"""Input/output schemas, metrics and version metadata: defaults and validation.

Every check collects all problems before raising, so a model owner fixes the
whole metadata document in one round.
"""

from __future__ import annotations

import math
import re
from typing import Any

from core.errors import ErrorItem, ValidationFailed

from .models import OodPolicy

# What model owners are told about the model card's headings. The dossier reads the card
# by them (dossier/card.py holds the full list of names it accepts; a test checks that
# each heading named here is one of them).
MODEL_CARD_HELP = (
    "Markdown. The compliance dossier reads these headings (any level, case-insensitive) "
    "into the Mitchell et al. and CHAI model-card fields: Model details, Intended use, "
    "Intended use and workflow, Target population, Out-of-scope settings, Factors, Metrics, "
    "Evaluation data, Training data, Quantitative analyses, Ethical considerations, "
    "Caveats and recommendations, Known risks and biases, Key metrics. A heading with no "
    "text is a gap; the other names each field accepts (e.g. Limitations, Training cohort, "
    "Test data) are in docs/operations.md.")

FEATURE_TYPES = ("number", "integer", "boolean", "category")
MISSING_POLICIES = ("reject", "impute", "pass")
FEATURE_KEYS = {"name", "type", "unit", "required", "description", "min", "max", "categories",
                "missing"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The one rule for a boolean feature's value, on every input path (a single prediction's
# JSON, the predict form, batch CSV and Parquet, the profile check at registration).
BOOLEAN_TEXT = {"true": True, "false": False}
_ZERO_ONE_TEXT = re.compile(r"([01])(?:\.0*)?")  # 0, 1, 0.0, 1.0 (a 0/1 column with gaps)
BOOLEAN_HINT = "true or false (or 1 or 0)"


def boolean_value(value: Any, *, text: bool = False) -> bool | None:
    """``value`` as a boolean feature reads it, or None when it is not one.

    JSON true/false; the numbers 0 and 1 (0.0 and 1.0 too: a training file's 0/1 column
    is often stored as floats). Where the input path carries text (CSV, the form,
    ``text=True``) also "true"/"false" in any letter case and "1"/"0" (or "1.0"/"0.0", as
    pandas writes a 0/1 column with gaps), spaces trimmed. Anything else ("yes", 2, 0.5,
    a JSON string) is not a boolean.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value) if value in (0, 1) else None
    if text and isinstance(value, str):
        word = value.strip().lower()
        if word in BOOLEAN_TEXT:
            return BOOLEAN_TEXT[word]
        digit = _ZERO_ONE_TEXT.fullmatch(word)
        return digit.group(1) == "1" if digit else None
    return None


def default_feature(name: str, column_type: str, column_profile: dict) -> dict:
    feature: dict[str, Any] = {"name": name, "type": column_type, "unit": "", "required": True,
                               "description": "", "missing": "reject"}
    if column_type in ("number", "integer"):
        feature["min"] = column_profile.get("min")
        feature["max"] = column_profile.get("max")
    elif column_type == "category":
        feature["categories"] = sorted((column_profile.get("categories") or {}).keys())
    return feature


def build_input_schema(declared: Any, *, dataset_columns: list[dict], profile: dict,
                       feature_names: list[str] | None = None) -> list[dict]:
    """Complete a declared schema with defaults from the training profile.

    ``declared`` may be None (use ``feature_names``, else every dataset column),
    a list of names, or a list of feature objects that may leave out type,
    ranges and categories.
    """
    types = {c["name"]: c["type"] for c in dataset_columns}
    columns = (profile or {}).get("columns", {})
    problems: list[ErrorItem] = []
    if declared is None:
        names = feature_names or [c["name"] for c in dataset_columns]
        declared = list(names)
    if not isinstance(declared, list) or not declared:
        raise ValidationFailed("input_schema must be a non-empty list of features.",
                               code="invalid_schema", field="metadata.input_schema")
    schema = []
    for index, item in enumerate(declared):
        path = f"metadata.input_schema.{index}"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            problems.append(ErrorItem("invalid_feature", "Each feature needs a name.", path))
            continue
        unknown = set(item) - FEATURE_KEYS
        if unknown:
            problems.append(ErrorItem("unknown_key", f"Unknown feature keys: {', '.join(sorted(unknown))}.",
                                      path))
        name = item["name"]
        if name not in types:
            problems.append(ErrorItem(
                "unknown_column", f"Feature '{name}' is not a column of the training dataset.",
                f"{path}.name"))
            continue
        contradiction = _profile_contradiction(name, item.get("type"), columns.get(name))
        if contradiction:
            problems.append(ErrorItem("type_contradicts_profile", contradiction, f"{path}.type"))
            continue
        base = default_feature(name, item.get("type") or types[name], columns.get(name, {}))
        if item.get("type") and item["type"] != types[name] and item["type"] in FEATURE_TYPES:
            # A declared type may differ from the profiled one (integer codes as categories);
            # ranges and categories then cannot come from the profile.
            base.pop("min", None)
            base.pop("max", None)
        base.update({k: v for k, v in item.items() if k in FEATURE_KEYS})
        schema.append(base)
    if problems:
        raise ValidationFailed(items=problems)
    validate_input_schema(schema)
    return schema


def _profile_contradiction(name: str, declared: Any, column: dict | None) -> str | None:
    """Why a declared type cannot describe the profiled training column, or None.

    A type may differ from the profiled one where the training values fit it: boolean
    over a numeric column of 0 and 1 (the profiler calls only true/false boolean), or
    over categories that are all boolean spellings; integer over a number column of
    whole numbers; number over integers; category over anything (integer codes). What
    contradicts: the training rows themselves would be refused by the declared type.
    """
    if declared not in FEATURE_TYPES or not isinstance(column, dict):
        return None
    kind = column.get("type")
    if kind == declared or declared == "category" or kind not in FEATURE_TYPES:
        return None
    said = f"Feature '{name}' is declared {declared} but the training data is profiled as {kind}"
    if declared == "boolean":
        if kind in ("number", "integer"):
            seen = [column.get(k) for k in ("min", "max", "p01", "p99")]
            seen += list(column.get("quantiles") or [])
            if all(v is None or boolean_value(v) is not None for v in seen):
                return None
            return (f"{said} with values other than 0 and 1 (from {column.get('min')} to "
                    f"{column.get('max')}); declare it {kind}.")
        categories = column.get("categories") or {}
        if (column.get("other_rate") or 0) == 0 and all(
                boolean_value(c, text=True) is not None for c in categories):
            return None
        listed = ", ".join(list(categories)[:5]) or "values it does not list"
        return (f"{said} ({listed}); a boolean takes {BOOLEAN_HINT}: declare it category.")
    # number or integer
    if kind == "boolean":
        return f"{said} (true/false); declare it boolean."
    if kind == "category":
        return f"{said}; declare it category."
    if declared == "integer" and kind == "number" and not all(
            v is None or float(v).is_integer() for v in (column.get("min"), column.get("max"))):
        return (f"{said} with values that are not whole numbers (from {column.get('min')} "
                f"to {column.get('max')}); declare it number.")
    return None


def validate_input_schema(schema: Any) -> None:
    problems: list[ErrorItem] = []
    if not isinstance(schema, list) or not schema:
        raise ValidationFailed("input_schema must be a non-empty list of features.",
                               code="invalid_schema", field="metadata.input_schema")
    seen: set[str] = set()
    for index, feature in enumerate(schema):
        path = f"metadata.input_schema.{index}"
        if not isinstance(feature, dict):
            problems.append(ErrorItem("invalid_feature", "A feature must be an object.", path))
            continue
        name = feature.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(ErrorItem("invalid_feature", "Each feature needs a name.", f"{path}.name"))
        elif name in seen:
            problems.append(ErrorItem("duplicate_feature", f"Feature '{name}' appears twice.",
                                      f"{path}.name"))
        else:
            seen.add(name)
        kind = feature.get("type")
        if kind not in FEATURE_TYPES:
            problems.append(ErrorItem(
                "unknown_type", f"Feature type {kind!r} is not one of {', '.join(FEATURE_TYPES)}.",
                f"{path}.type"))
        if not isinstance(feature.get("required", True), bool):
            problems.append(ErrorItem("invalid", "required must be true or false.", f"{path}.required"))
        if feature.get("missing", "reject") not in MISSING_POLICIES:
            problems.append(ErrorItem(
                "invalid_missing_policy",
                f"missing must be one of {', '.join(MISSING_POLICIES)}.", f"{path}.missing"))
        if not isinstance(feature.get("unit", ""), str):
            problems.append(ErrorItem("invalid", "unit must be text.", f"{path}.unit"))
        if kind in ("number", "integer"):
            lo, hi = feature.get("min"), feature.get("max")
            for key, value in (("min", lo), ("max", hi)):
                if value is not None and not _is_number(value):
                    problems.append(ErrorItem("invalid_range", f"{key} must be a finite number.",
                                              f"{path}.{key}"))
            if _is_number(lo) and _is_number(hi) and lo > hi:
                problems.append(ErrorItem(
                    "invalid_range", f"Range of '{name}' has min {lo} greater than max {hi}.",
                    f"{path}.min"))
        if kind == "category":
            cats = feature.get("categories")
            if not isinstance(cats, list) or not cats or not all(
                    isinstance(c, str | int) and not isinstance(c, bool) for c in cats):
                problems.append(ErrorItem(
                    "invalid_categories", f"Category feature '{name}' needs a non-empty list of "
                    "allowed values.", f"{path}.categories"))
            elif len({str(c) for c in cats}) != len(cats):
                problems.append(ErrorItem("invalid_categories", "Categories must be distinct.",
                                          f"{path}.categories"))
    if problems:
        raise ValidationFailed(items=problems)


def build_output_schema(declared: Any, *, classes: list[str]) -> dict:
    if declared is None:
        declared = {}
    if not isinstance(declared, dict):
        raise ValidationFailed("output_schema must be an object.", code="invalid_schema",
                               field="metadata.output_schema")
    labels = declared.get("labels") or list(classes)
    problems: list[ErrorItem] = []
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str | int) for x in labels):
        problems.append(ErrorItem("invalid_labels", "labels must be a non-empty list.",
                                  "metadata.output_schema.labels"))
        labels = []
    labels = [str(x) for x in labels]
    if classes and labels and len(labels) != len(classes):
        problems.append(ErrorItem(
            "schema_mismatch", f"The model has {len(classes)} classes ({', '.join(classes)}) but "
            f"the output schema lists {len(labels)} labels.", "metadata.output_schema.labels"))
    positive = str(declared.get("positive_label", labels[-1] if labels else ""))
    if labels and positive not in labels:
        problems.append(ErrorItem("invalid_label", f"positive_label '{positive}' is not one of the "
                                  "labels.", "metadata.output_schema.positive_label"))
    label_names = declared.get("label_names") or {}
    if not isinstance(label_names, dict):
        problems.append(ErrorItem("invalid", "label_names must map labels to readable names.",
                                  "metadata.output_schema.label_names"))
    if problems:
        raise ValidationFailed(items=problems)
    return {
        "labels": labels,
        "positive_label": positive,
        "label_names": {str(k): str(v) for k, v in label_names.items()},
        "score_meaning": str(declared.get("score_meaning")
                             or f"Estimated probability that the label is '{positive}'."),
    }


def validate_metrics(metrics: Any) -> dict:
    """``{"overall": {name: number}, "subgroups": [{"name", "n", "metrics": {...}}]}``, and
    optionally ``"calibration"``: the validation reliability curve (see below)."""
    if metrics in (None, {}):
        return {"overall": {}, "subgroups": []}
    problems: list[ErrorItem] = []
    if not isinstance(metrics, dict):
        raise ValidationFailed("metrics must be an object with 'overall' and 'subgroups'.",
                               code="invalid_metrics", field="metadata.metrics")
    overall = metrics.get("overall", {})
    if not isinstance(overall, dict) or not all(_is_number(v) for v in overall.values()):
        problems.append(ErrorItem("invalid_metrics", "overall must map metric names to numbers.",
                                  "metadata.metrics.overall"))
    subgroups = metrics.get("subgroups", [])
    if not isinstance(subgroups, list):
        problems.append(ErrorItem("invalid_metrics", "subgroups must be a list.",
                                  "metadata.metrics.subgroups"))
        subgroups = []
    for index, group in enumerate(subgroups):
        path = f"metadata.metrics.subgroups.{index}"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            problems.append(ErrorItem("invalid_metrics", "Each subgroup needs a name.", path))
            continue
        if "n" in group and (not isinstance(group["n"], int) or group["n"] < 0):
            problems.append(ErrorItem("invalid_metrics", "n must be a count.", f"{path}.n"))
        values = group.get("metrics", {})
        if not isinstance(values, dict) or not all(_is_number(v) for v in values.values()):
            problems.append(ErrorItem("invalid_metrics", "metrics must map names to numbers.",
                                      f"{path}.metrics"))
    calibration = metrics.get("calibration")
    if calibration is not None:
        problems.extend(_calibration_problems(calibration))
    extra = set(metrics) - {"overall", "subgroups", "calibration"}
    if extra:
        problems.append(ErrorItem("unknown_key", f"Unknown metrics keys: {', '.join(sorted(extra))}.",
                                  "metadata.metrics"))
    if problems:
        raise ValidationFailed(items=problems)
    out = {"overall": overall, "subgroups": subgroups}
    if calibration is not None:  # absent stays absent: content hashes of older versions hold
        out["calibration"] = calibration
    return out


def _calibration_problems(calibration: Any) -> list[ErrorItem]:
    """The validation reliability curve, as monitoring compares live scores with it:
    ``[{"mean_score", "observed_rate", "n"}]``, one item per score bin."""
    where = "metadata.metrics.calibration"
    if not isinstance(calibration, list):
        return [ErrorItem("invalid_metrics", "calibration must be a list of bins.", where)]
    problems = []
    for index, item in enumerate(calibration):
        ok = (isinstance(item, dict) and set(item) <= {"mean_score", "observed_rate", "n",
                                                         "lower", "upper"}
              and all(_is_number(item.get(k)) and 0 <= item[k] <= 1
                      for k in ("mean_score", "observed_rate"))
              and isinstance(item.get("n"), int) and not isinstance(item.get("n"), bool)
              and item["n"] >= 0)
        if not ok:
            problems.append(ErrorItem("invalid_metrics", "Each calibration bin needs mean_score "
                                      "and observed_rate between 0 and 1 and a count n.",
                                      f"{where}.{index}"))
    return problems


def validate_threshold(value: Any) -> float:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise ValidationFailed("confidence_threshold must be a number between 0 and 1.",
                               code="invalid_threshold", field="metadata.confidence_threshold")
    return float(value)


def validate_ood_policy(value: Any) -> str:
    if value not in OodPolicy.values:
        raise ValidationFailed(f"ood_policy must be one of {', '.join(OodPolicy.values)}.",
                               code="invalid_ood_policy", field="metadata.ood_policy")
    return value
