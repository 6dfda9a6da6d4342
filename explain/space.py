"""The numbers explainers work on: inputs as a matrix, the background set, the profile.

Explainers perturb and average *matrices*; the model takes *inputs* (one value per
feature of the version's schema). ``FeatureSpace`` maps between the two: numbers and
integers as floats, booleans as 0/1, a category as the index of its value among the
schema's allowed values, a missing value as NaN.

The background set (what "a feature is absent" is replaced with) is, in order of
preference, the sample the owner uploaded with the model version, the one uploaded
with its dataset version, or the synthetic reference sample drawn from the training
profile (``registry.reference``; the server holds no training rows). Which one, and
the sha256 of its canonical rows, is recorded with every explanation.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.hashing import sha256_json
from registry.models import ModelVersion
from registry.reference import reference_sample

from .models import BackgroundSource

NUMERIC = ("number", "integer")
# Rows of the synthetic background drawn from the profile, and its seed: fixed, so the
# background (and its hash) of a version never changes.
SYNTHETIC_ROWS = 500
SYNTHETIC_SEED = 0


@dataclass
class FeatureSpace:
    names: list[str]
    kinds: list[str]
    units: list[str]
    # feature index -> allowed values (categories); the code of a value is its index.
    categories: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, version: ModelVersion) -> FeatureSpace:
        names, kinds, units, categories = [], [], [], {}
        columns = (version.dataset.profile or {}).get("columns", {})
        for i, feature in enumerate(version.input_schema):
            names.append(feature["name"])
            kinds.append(feature["type"])
            units.append(feature.get("unit") or "")
            if feature["type"] == "category":
                allowed = feature.get("categories") or list(
                    (columns.get(feature["name"]) or {}).get("categories") or {})
                categories[i] = [str(c) for c in allowed]
        return cls(names, kinds, units, categories)

    @property
    def numeric_only(self) -> bool:
        """Every feature is a number, an integer or a boolean (no categories)."""
        return not self.categories

    def encode(self, rows: list[dict]) -> np.ndarray:
        out = np.full((len(rows), len(self.names)), np.nan, dtype=float)
        for r, row in enumerate(rows):
            for i, name in enumerate(self.names):
                value = row.get(name)
                if value is None:
                    continue
                if i in self.categories:
                    try:
                        out[r, i] = self.categories[i].index(str(value))
                    except ValueError:
                        continue  # an unseen category: absent, as the model's encoder sees it
                elif isinstance(value, bool):
                    out[r, i] = 1.0 if value else 0.0
                else:
                    out[r, i] = float(value)
        return out

    def decode(self, matrix: np.ndarray) -> list[dict]:
        rows = []
        for values in matrix.tolist():
            row: dict[str, Any] = {}
            for i, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True)):
                v = values[i]
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    row[name] = None
                elif i in self.categories:
                    allowed = self.categories[i]
                    row[name] = allowed[min(max(int(round(v)), 0), len(allowed) - 1)]
                elif kind == "boolean":
                    row[name] = v >= 0.5
                else:
                    row[name] = float(v)
            rows.append(row)
        return rows


def positive_index(version: ModelVersion, classes: list[str] | None = None) -> int:
    """Column of the positive label in the model's probability output."""
    labels = version.output_schema.get("labels") or classes or []
    positive = version.output_schema.get("positive_label", labels[-1] if labels else None)
    return labels.index(positive) if positive in labels else len(labels) - 1


def positive_proba_fn(loaded, space: FeatureSpace, pos: int):
    """f(matrix) -> P(positive) per row, through the served model (any runtime)."""

    def f(matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=float)
        proba = None
        if space.numeric_only:
            proba = loaded.predict_proba_matrix(matrix)
        if proba is None:
            proba = loaded.predict_proba(space.decode(matrix))
        return np.asarray(proba, dtype=float)[:, pos]

    return f


# -- the training profile ---------------------------------------------------------------

def profile_median(col: dict) -> float | None:
    """The training median from a profile column's histogram (interpolated in its bin)."""
    edges = [float(e) for e in col.get("quantiles") or []]
    freqs = [float(f or 0.0) for f in col.get("bin_frequencies") or []]
    if len(edges) == 1:
        return edges[0]
    if len(edges) < 2 or len(freqs) != len(edges) - 1 or sum(freqs) <= 0:
        return col.get("mean")
    total, cum = sum(freqs), 0.0
    for i, f in enumerate(freqs):
        if f > 0 and cum + f >= 0.5 * total:
            share = (0.5 * total - cum) / f
            return edges[i] + share * (edges[i + 1] - edges[i])
        cum += f
    return edges[-1]


def profile_mode(col: dict) -> str | None:
    cats = col.get("categories") or {}
    known = {k: v for k, v in cats.items() if v is not None}
    return max(known, key=known.get) if known else None


# -- background sets -----------------------------------------------------------------------

@dataclass
class Background:
    source: str
    sha256: str
    rows: list[dict]
    matrix: np.ndarray
    sample_id: int | None = None


_cache: OrderedDict[tuple, Background] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_MAX = 16


def background_for(version: ModelVersion, space: FeatureSpace) -> Background:
    """The version's background set (see the module's order of preference), cached per
    process by what identifies it."""
    from .background import uploaded_background_rows

    uploaded = uploaded_background_rows(version=version)
    if uploaded is not None:
        source, sha, sample_id, rows_of = uploaded
        key = ("upload", sha, tuple(space.names))
    else:
        source, sample_id, rows_of = BackgroundSource.SYNTHETIC, None, None
        key = ("synthetic", version.pk, version.content_hash, version.dataset.sha256,
               tuple(space.names))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    if rows_of is not None:
        rows = [{n: row.get(n) for n in space.names} for row in rows_of()]
    else:
        rows = reference_sample(version.input_schema, version.dataset.profile,
                                n=SYNTHETIC_ROWS, seed=SYNTHETIC_SEED)
    # The hash is over the canonical rows the explainers see, whichever source they came
    # from, so two explanations with one background hash used the same rows.
    made = Background(source=source, sha256=sha256_json(rows), rows=rows,
                      matrix=space.encode(rows), sample_id=sample_id)
    with _cache_lock:
        _cache[key] = made
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return made


def backgrounds_clear() -> None:
    with _cache_lock:
        _cache.clear()


def subsample(matrix: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` rows of ``matrix``, chosen with a seeded generator (order kept)."""
    if matrix.shape[0] <= n:
        return matrix
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(matrix.shape[0], size=n, replace=False))
    return matrix[picked]
