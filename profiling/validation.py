"""Checking a profile received as JSON (``validate_profile``): the server accepts only
what ``profile_file`` could have produced."""

from __future__ import annotations

import math
from typing import Any

from .profile import COLUMN_TYPES, PROFILE_VERSION, SUM_TOLERANCE

# --------------------------------------------------------------------------- validation

Problem = tuple[str | None, str, str]

_COMMON_KEYS = ("type", "count", "missing_rate")
_KEYS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "number": (
        *_COMMON_KEYS,
        "min",
        "max",
        "mean",
        "std",
        "p01",
        "p99",
        "quantiles",
        "bin_frequencies",
    ),
    "integer": (
        *_COMMON_KEYS,
        "min",
        "max",
        "mean",
        "std",
        "p01",
        "p99",
        "quantiles",
        "bin_frequencies",
    ),
    "boolean": (*_COMMON_KEYS, "categories"),
    "category": (*_COMMON_KEYS, "distinct", "categories", "other_rate"),
}


def validate_profile(profile: dict, columns: list[dict] | None = None) -> list[Problem]:
    """Check a profile computed elsewhere (received as JSON) before trusting or storing it.

    Returns every problem as ``(field, code, message)`` so the user can fix them all at
    once; an empty list means valid. Fields are paths like ``profile.columns.age.min``.
    """
    problems: list[Problem] = []
    if not isinstance(profile, dict):
        return [("profile", "invalid", "The profile must be an object.")]
    for key in sorted(set(profile) - {"version", "columns"}):
        problems.append((f"profile.{key}", "unknown_key", f"Unexpected key {key!r}."))
    if "version" not in profile:
        problems.append(("profile.version", "missing_key", "The profile has no version."))
    elif _is_bool(profile["version"]) or profile["version"] != PROFILE_VERSION:
        problems.append(
            (
                "profile.version",
                "unsupported_version",
                f"Only profile version {PROFILE_VERSION} is supported.",
            )
        )
    column_profiles = profile.get("columns")
    if "columns" not in profile:
        problems.append(("profile.columns", "missing_key", "The profile has no columns."))
        column_profiles = None
    elif not isinstance(column_profiles, dict):
        problems.append(
            (
                "profile.columns",
                "invalid",
                "profile.columns must be an object keyed by column name.",
            )
        )
        column_profiles = None
    elif not column_profiles:
        problems.append(("profile.columns", "no_columns", "The profile describes no columns."))
    if column_profiles:
        for name, column_profile in column_profiles.items():
            problems.extend(_validate_column(f"profile.columns.{name}", column_profile))
    if columns is not None:
        problems.extend(_validate_columns_list(columns, column_profiles))
    return problems


def _validate_column(path: str, column: Any) -> list[Problem]:
    if not isinstance(column, dict):
        return [(path, "invalid", "A column profile must be an object.")]
    column_type = column.get("type")
    if "type" not in column:
        return [(f"{path}.type", "missing_key", "Missing key 'type'.")]
    if column_type not in COLUMN_TYPES:
        return [
            (
                f"{path}.type",
                "unknown_type",
                f"Unknown column type {column_type!r}; expected one of {', '.join(COLUMN_TYPES)}.",
            )
        ]
    expected = _KEYS_BY_TYPE[column_type]
    problems: list[Problem] = [
        (f"{path}.{key}", "missing_key", f"Missing key {key!r}.")
        for key in expected
        if key not in column
    ]
    problems += [
        (f"{path}.{key}", "unknown_key", f"Unexpected key {key!r} for a {column_type} column.")
        for key in column
        if key not in expected
    ]
    count = column.get("count")
    if "count" in column and not (_is_int(count) and count >= 0):
        problems.append((f"{path}.count", "invalid", "count must be a non-negative integer."))
        count = None
    if "missing_rate" in column:
        problems += _check_rate(f"{path}.missing_rate", column["missing_rate"], nullable=False)
    if column_type in ("number", "integer"):
        problems += _validate_numeric(path, column, count)
    elif column_type == "boolean":
        problems += _validate_boolean(path, column)
    else:
        problems += _validate_category(path, column)
    return problems


def _validate_numeric(path: str, column: dict, count: int | None) -> list[Problem]:
    problems: list[Problem] = []
    scalars: dict[str, float | None] = {}
    for key in ("min", "max", "mean", "std", "p01", "p99"):
        if key not in column:
            continue
        value = column[key]
        if value is None:
            scalars[key] = None
        elif not _is_number(value):
            problems.append((f"{path}.{key}", "invalid", f"{key} must be a number or null."))
        elif not math.isfinite(value):
            problems.append((f"{path}.{key}", "not_finite", f"{key} must be finite."))
        else:
            scalars[key] = float(value)
    low, high = scalars.get("min"), scalars.get("max")
    if low is not None and high is not None and low > high:
        problems.append(
            (f"{path}.min", "min_greater_than_max", f"min ({low}) is greater than max ({high}).")
        )
    std = scalars.get("std")
    if std is not None and std < 0:
        problems.append((f"{path}.std", "out_of_range", "std must not be negative."))
    if low is not None and high is not None and low <= high:
        for key in ("mean", "p01", "p99"):
            value = scalars.get(key)
            if value is not None and not low <= value <= high:
                problems.append(
                    (f"{path}.{key}", "out_of_range", f"{key} must lie between min and max.")
                )

    edges = _number_list(path, column, "quantiles", problems)
    frequencies = _number_list(path, column, "bin_frequencies", problems)
    if edges is not None:
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            problems.append(
                (f"{path}.quantiles", "not_ascending", "quantiles must be strictly ascending.")
            )
        if (
            edges
            and low is not None
            and high is not None
            and (edges[0] != low or edges[-1] != high)
        ):
            problems.append(
                (f"{path}.quantiles", "out_of_range", "quantiles must start at min and end at max.")
            )
        if count and not edges:
            problems.append(
                (f"{path}.quantiles", "invalid", "quantiles must not be empty when count > 0.")
            )
    if frequencies is not None:
        for index, share in enumerate(frequencies):
            if not 0.0 <= share <= 1.0:
                problems.append(
                    (
                        f"{path}.bin_frequencies.{index}",
                        "out_of_range",
                        "Each bin frequency must be between 0 and 1.",
                    )
                )
        if frequencies and abs(sum(frequencies) - 1.0) > SUM_TOLERANCE:
            problems.append(
                (f"{path}.bin_frequencies", "bad_sum", "bin_frequencies must sum to 1.")
            )
    if edges is not None and frequencies is not None:
        expected_bins = max(len(edges) - 1, 1) if edges else 0
        if len(frequencies) != expected_bins:
            problems.append(
                (
                    f"{path}.bin_frequencies",
                    "length_mismatch",
                    f"Expected {expected_bins} bin frequencies for {len(edges)} quantile edges, got {len(frequencies)}.",
                )
            )
    return problems


def _validate_boolean(path: str, column: dict) -> list[Problem]:
    if "categories" not in column:
        return []
    categories = column["categories"]
    if not isinstance(categories, dict) or set(categories) != {"true", "false"}:
        return [
            (
                f"{path}.categories",
                "invalid",
                "categories must have exactly the keys 'true' and 'false'.",
            )
        ]
    problems: list[Problem] = []
    for key in ("true", "false"):
        problems += _check_rate(f"{path}.categories.{key}", categories[key], nullable=True)
    shares = [categories["true"], categories["false"]]
    if (
        not problems
        and all(s is not None for s in shares)
        and abs(sum(shares) - 1.0) > SUM_TOLERANCE
    ):
        problems.append(
            (f"{path}.categories", "bad_sum", "The true and false shares must sum to 1.")
        )
    return problems


def _validate_category(path: str, column: dict) -> list[Problem]:
    problems: list[Problem] = []
    if "distinct" in column and not (_is_int(column["distinct"]) and column["distinct"] >= 0):
        problems.append((f"{path}.distinct", "invalid", "distinct must be a non-negative integer."))
    if "other_rate" in column:
        problems += _check_rate(f"{path}.other_rate", column["other_rate"], nullable=True)
    categories = column.get("categories")
    if "categories" not in column:
        return problems
    if not isinstance(categories, dict):
        return [
            *problems,
            (f"{path}.categories", "invalid", "categories must be an object of value: share."),
        ]
    rate_problems: list[Problem] = []
    for value, share in categories.items():
        rate_problems += _check_rate(f"{path}.categories.{value}", share, nullable=False)
    problems += rate_problems
    distinct = column.get("distinct")
    if _is_int(distinct) and len(categories) > distinct:
        problems.append(
            (f"{path}.categories", "invalid", "There are more categories than distinct values.")
        )
    other = column.get("other_rate")
    if categories and not rate_problems and _is_number(other):
        total = sum(categories.values()) + other
        if abs(total - 1.0) > SUM_TOLERANCE:
            problems.append(
                (f"{path}.categories", "bad_sum", "Category shares plus other_rate must sum to 1.")
            )
    return problems


def _validate_columns_list(columns: Any, column_profiles: dict | None) -> list[Problem]:
    """The declared column list and the profile must describe the same columns, same types."""
    if not isinstance(columns, list):
        return [("columns", "invalid", "columns must be a list of {name, type} objects.")]
    problems: list[Problem] = []
    declared: dict[str, str | None] = {}
    for index, entry in enumerate(columns):
        where = f"columns.{index}"
        if not isinstance(entry, dict):
            problems.append((where, "invalid", "Each column must be an object with name and type."))
            continue
        name, column_type = entry.get("name"), entry.get("type")
        for key in sorted(set(entry) - {"name", "type"}):
            problems.append((f"{where}.{key}", "unknown_key", f"Unexpected key {key!r}."))
        if not isinstance(name, str) or not name.strip():
            problems.append((f"{where}.name", "invalid", "Each column needs a non-blank name."))
            continue
        if column_type not in COLUMN_TYPES:
            problems.append(
                (f"{where}.type", "unknown_type", f"Unknown column type {column_type!r}.")
            )
            column_type = None
        if name in declared:
            problems.append(
                (f"{where}.name", "duplicate_columns", f"Column {name!r} is listed twice.")
            )
            continue
        declared[name] = column_type
    if column_profiles is None:
        return problems
    missing = [name for name in declared if name not in column_profiles]
    extra = [name for name in column_profiles if name not in declared]
    if missing or extra:
        parts = []
        if missing:
            parts.append("no profile for " + ", ".join(repr(n) for n in missing))
        if extra:
            parts.append("profiled but not listed: " + ", ".join(repr(n) for n in extra))
        problems.append(
            (
                "columns",
                "columns_mismatch",
                "columns and profile disagree: " + "; ".join(parts) + ".",
            )
        )
    for name, column_type in declared.items():
        column_profile = column_profiles.get(name)
        profiled_type = column_profile.get("type") if isinstance(column_profile, dict) else None
        if column_type and profiled_type in COLUMN_TYPES and profiled_type != column_type:
            problems.append(
                (
                    f"profile.columns.{name}.type",
                    "type_mismatch",
                    f"Column {name!r} is declared {column_type} but profiled as {profiled_type}.",
                )
            )
    return problems


def _number_list(path: str, column: dict, key: str, problems: list[Problem]) -> list[float] | None:
    if key not in column:
        return None
    value = column[key]
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        problems.append((f"{path}.{key}", "invalid", f"{key} must be a list of numbers."))
        return None
    if not all(math.isfinite(v) for v in value):
        problems.append((f"{path}.{key}", "not_finite", f"{key} must contain only finite numbers."))
        return None
    return [float(v) for v in value]


def _check_rate(path: str, value: Any, *, nullable: bool) -> list[Problem]:
    if value is None and nullable:
        return []
    if not _is_number(value) or not math.isfinite(value):
        return [(path, "invalid", "Must be a number between 0 and 1.")]
    if not 0.0 <= value <= 1.0:
        return [(path, "out_of_range", f"Must be between 0 and 1, got {value}.")]
    return []


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
