"""Rows built from a training profile, for checks that need inputs but hold no data.

``reference_row`` is one plausible input (medians, most frequent values): the
dry run at registration scores it. ``reference_sample`` draws many: the ONNX
equivalence check at submit scores them with both runtimes, and explainers use
them as a background set when the owner uploaded none.

The server holds no raw training rows (a dataset version may be registered
with its profile only), so the reference sample is *synthetic*: rows drawn
from the training profile's per-column distributions (``reference_sample``).
Columns are drawn independently, so the sample covers each feature's range in
proportion to the training data but not its correlations; it is a test of
numerical equivalence over the input space, not a replay of the cohort.
No missing values are drawn: a version's schema decides how those are handled
before the model sees them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NUMERIC = {"number", "integer"}
SAMPLE_ROWS = 500
SAMPLE_SEED = 0


def boolean_true_share(column: dict) -> float | None:
    """The share of true among a boolean feature's training values: from a true/false
    profile's categories, or the mean of a numeric profile of 0 and 1 (None if unknown)."""
    share = (column.get("categories") or {}).get("true")
    if share is None and column.get("type") in NUMERIC:
        share = column.get("mean")
    return None if share is None else min(max(float(share), 0.0), 1.0)


def reference_row(input_schema: list[dict], profile: dict) -> dict:
    """A plausible input built from the training profile: medians and most frequent values."""
    columns = (profile or {}).get("columns", {})
    row: dict[str, Any] = {}
    for feature in input_schema:
        name, kind = feature["name"], feature["type"]
        col = columns.get(name, {})
        if kind in NUMERIC:
            quantiles = col.get("quantiles") or []
            if quantiles:
                value = quantiles[len(quantiles) // 2]
            elif feature.get("min") is not None and feature.get("max") is not None:
                value = (feature["min"] + feature["max"]) / 2
            else:
                value = col.get("mean", 0.0) or 0.0
            row[name] = int(round(value)) if kind == "integer" else float(value)
        elif kind == "boolean":
            share = boolean_true_share(col)
            row[name] = share is not None and share >= 0.5
        else:
            cats = col.get("categories") or {}
            allowed = feature.get("categories") or list(cats)
            row[name] = max(cats, key=cats.get) if cats else (allowed[0] if allowed else "")
    return row


def reference_sample(input_schema: list[dict], profile: dict, n: int = SAMPLE_ROWS,
                     seed: int = SAMPLE_SEED) -> list[dict]:
    """``n`` synthetic rows drawn from the training profile; the same seed gives the same rows.

    Per feature (drawn independently, in schema order, from one seeded generator):

    1. number/integer: pick a histogram bin by ``bin_frequencies``, draw uniformly
       inside it, clip to the schema's min/max; integers are rounded (and kept in
       range). Without a histogram: uniform over the schema's range, else the
       profile's p01..p99, else its mean.
    2. boolean: true with the profiled share of ``true`` (0.5 when unknown).
    3. category: one of the schema's allowed values, weighted by the profiled
       shares (uniform when none of them was profiled).
    """
    rng = np.random.default_rng(seed)
    columns = (profile or {}).get("columns", {})
    drawn: dict[str, list] = {}
    for feature in input_schema:
        name, kind = feature["name"], feature["type"]
        col = columns.get(name) or {}
        if kind in NUMERIC:
            drawn[name] = _draw_numeric(rng, feature, col, n)
        elif kind == "boolean":
            share = boolean_true_share(col)
            p_true = 0.5 if share is None else share
            drawn[name] = [bool(v) for v in rng.random(n) < p_true]
        else:
            drawn[name] = _draw_category(rng, feature, col, n)
    return [{name: values[i] for name, values in drawn.items()} for i in range(n)]


def _draw_numeric(rng: np.random.Generator, feature: dict, col: dict, n: int) -> list:
    lo, hi = feature.get("min"), feature.get("max")
    edges = [float(e) for e in col.get("quantiles") or []]
    freqs = [float(f or 0.0) for f in col.get("bin_frequencies") or []]
    if len(edges) >= 2 and len(freqs) == len(edges) - 1 and sum(freqs) > 0:
        p = np.asarray(freqs) / sum(freqs)
        bins = rng.choice(len(freqs), size=n, p=p)
        left, right = np.asarray(edges[:-1])[bins], np.asarray(edges[1:])[bins]
        values = left + rng.random(n) * (right - left)
    elif len(edges) == 1:
        values = np.full(n, edges[0])
    elif lo is not None and hi is not None:
        values = lo + rng.random(n) * (hi - lo)
    elif col.get("p01") is not None and col.get("p99") is not None:
        values = col["p01"] + rng.random(n) * (col["p99"] - col["p01"])
    else:
        values = np.full(n, float(col.get("mean") or 0.0))
    values = np.clip(values, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    if feature["type"] == "integer":
        values = np.round(values)
        # Rounding may step past a fractional bound (min 0.5 rounds to 0).
        values = np.clip(values, -np.inf if lo is None else math.ceil(lo),
                         np.inf if hi is None else math.floor(hi))
        return [int(v) for v in values]
    return [float(v) for v in values]


def _draw_category(rng: np.random.Generator, feature: dict, col: dict, n: int) -> list:
    profiled = col.get("categories") or {}
    allowed = list(feature.get("categories") or profiled)
    if not allowed:
        return [""] * n
    weights = np.array([float(profiled.get(str(c)) or 0.0) for c in allowed])
    p = weights / weights.sum() if weights.sum() > 0 else None
    return [allowed[i] for i in rng.choice(len(allowed), size=n, p=p)]
