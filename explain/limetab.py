"""LIME tabular explanations, discretised from the training profile, reproducible.

The server holds no training rows, so LIME's discretiser is built from the dataset
version's profile (``training_data_stats``): each numeric feature is cut at its
training quartiles (read off the profile's histogram), and each bin's mean, spread
and bounds — what LIME samples from — come from the histogram too (a mixture of
uniform bins). Booleans and categories are sampled with their profiled shares.

LIME draws from one random stream per explainer (lime#309, #486): two calls give two
answers. Here every explanation resets the explainer's stream — the one the explainer,
its discretiser and its base share — to a fresh ``RandomState(seed)`` first, under a
lock, so an explanation depends only on (model, input, seed, samples): the same call
gives the same answer in any process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .space import FeatureSpace

DEFAULT_SAMPLES = 5000
QUARTILES = (0.25, 0.5, 0.75)
_TINY = 1e-9


@dataclass
class LimeResult:
    weights: np.ndarray  # (features,), schema order: the local surrogate's coefficients
    conditions: list[str]  # per feature, the bin the input falls in ("age > 63.00")
    intercept: float
    local_prediction: float
    score: float  # R² of the surrogate on its weighted samples
    output: float  # the model's P(positive) for the input


def _numeric_bins(col: dict) -> tuple[list[float], list[dict]]:
    """Quartile cut points and per-bin {mean, std, min, max, share} from a profile column."""
    edges = [float(e) for e in col.get("quantiles") or []]
    freqs = [float(f or 0.0) for f in col.get("bin_frequencies") or []]
    if len(edges) < 2 or len(freqs) != len(edges) - 1 or sum(freqs) <= 0:
        centre = float(edges[0]) if edges else float(col.get("mean") or 0.0)
        return [centre], [_point_bin(centre, 1.0), _point_bin(centre, 0.0)]
    total = sum(freqs)
    cum = np.concatenate(([0.0], np.cumsum(freqs) / total))
    inner = []
    for q in QUARTILES:
        e = edges[int(np.argmin(np.abs(cum - q)))]
        if edges[0] < e < edges[-1] and e not in inner:
            inner.append(e)
    if not inner:  # nearly constant: one cut at the median's edge
        inner = [edges[len(edges) // 2]]
    bounds = [edges[0], *inner, edges[-1]]
    bins = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        mids, weights, widths = [], [], []
        for a, b, f in zip(edges[:-1], edges[1:], freqs, strict=True):
            overlap = max(0.0, min(b, hi) - max(a, lo))
            if f <= 0 or (overlap <= 0 and not (a == b == lo)):
                continue
            share = f * (overlap / (b - a) if b > a else 1.0)
            mids.append((max(a, lo) + min(b, hi)) / 2)
            widths.append(overlap)
            weights.append(share)
        w = float(sum(weights))
        if w <= 0:
            bins.append(_point_bin((lo + hi) / 2, 0.0, lo, hi))
            continue
        mean = float(np.dot(weights, mids) / w)
        var = float(np.dot(weights, [x * x / 12 + (m - mean) ** 2
                                     for x, m in zip(widths, mids, strict=True)]) / w)
        bins.append({"mean": mean, "std": max(var ** 0.5, _TINY), "min": lo,
                     "max": hi if hi > lo else lo + _TINY, "share": w / total})
    return inner, bins


def _point_bin(value: float, share: float, lo: float | None = None,
               hi: float | None = None) -> dict:
    lo = value if lo is None else lo
    hi = value + _TINY if hi is None or hi <= lo else hi
    return {"mean": value, "std": _TINY, "min": lo, "max": hi, "share": share}


def training_stats(space: FeatureSpace, profile: dict) -> tuple[dict, dict]:
    """LIME's ``training_data_stats`` from the profile, and a JSON summary of the bins."""
    columns = (profile or {}).get("columns", {})
    stats = {"means": {}, "stds": {}, "mins": {}, "maxs": {}, "bins": {},
             "feature_values": {}, "feature_frequencies": {}}
    summary = {}
    for i, (name, kind) in enumerate(zip(space.names, space.kinds, strict=True)):
        col = columns.get(name) or {}
        if kind in ("number", "integer"):
            inner, bins = _numeric_bins(col)
            stats["bins"][i] = np.asarray(inner, dtype=float)
            stats["means"][i] = [b["mean"] for b in bins]
            stats["stds"][i] = [b["std"] for b in bins]
            stats["mins"][i] = [b["min"] for b in bins]
            stats["maxs"][i] = [b["max"] for b in bins]
            stats["feature_values"][i] = list(range(len(bins)))
            stats["feature_frequencies"][i] = [max(b["share"], 0.0) for b in bins]
            summary[name] = [round(float(x), 6) for x in inner]
        elif kind == "boolean":
            cats = col.get("categories") or {}
            shares = [float(cats.get("false") or 0.0), float(cats.get("true") or 0.0)]
            stats["feature_values"][i] = [0, 1]
            stats["feature_frequencies"][i] = shares if sum(shares) > 0 else [0.5, 0.5]
        else:
            allowed = space.categories.get(i, [])
            cats = col.get("categories") or {}
            shares = [float(cats.get(str(c)) or 0.0) for c in allowed]
            stats["feature_values"][i] = list(range(len(allowed)))
            stats["feature_frequencies"][i] = (shares if sum(shares) > 0
                                               else [1.0] * max(len(allowed), 1))
    return stats, summary


class LimeExplainerHandle:
    """A LimeTabularExplainer built from the profile, used under a lock with its random
    stream reset for every call."""

    def __init__(self, space: FeatureSpace, profile: dict) -> None:
        from lime.lime_tabular import LimeTabularExplainer

        self.space = space
        stats, self.bins = training_stats(space, profile)
        self.categorical = [i for i, k in enumerate(space.kinds) if k not in ("number", "integer")]
        # With training_data_stats LIME reads only the shape of training_data (its scaler
        # is reset to 0/1 for every discretised feature): one row of zeros is enough.
        self.explainer = LimeTabularExplainer(
            np.zeros((2, len(space.names))), mode="classification",
            feature_names=list(space.names), categorical_features=self.categorical,
            categorical_names={i: space.categories.get(i, ["false", "true"])
                               for i in self.categorical},
            class_names=["other", "positive"], discretize_continuous=True,
            training_data_stats=stats, random_state=0)
        self.lock = threading.Lock()

    def explain(self, row: np.ndarray, f, *, seed: int, samples: int) -> LimeResult:
        from sklearn.utils import check_random_state

        def both(matrix: np.ndarray) -> np.ndarray:
            p = f(matrix)
            return np.column_stack([1.0 - p, p])

        n = len(self.space.names)
        with self.lock:
            stream = check_random_state(seed)
            self.explainer.random_state = stream
            self.explainer.base.random_state = stream
            if self.explainer.discretizer is not None:
                self.explainer.discretizer.random_state = stream
            exp = self.explainer.explain_instance(row, both, labels=(1,), num_features=n,
                                                  num_samples=samples)
        weights = np.zeros(n)
        for index, weight in exp.as_map()[1]:
            weights[int(index)] = float(weight)
        conditions = self._conditions(row)
        return LimeResult(weights=weights, conditions=conditions,
                          intercept=float(exp.intercept[1]),
                          local_prediction=float(np.asarray(exp.local_pred).reshape(-1)[0]),
                          score=float(exp.score), output=float(f(row.reshape(1, -1))[0]))

    def _conditions(self, row: np.ndarray) -> list[str]:
        disc = self.explainer.discretizer
        out = []
        for i, name in enumerate(self.space.names):
            if i in self.categorical:
                if i in self.space.categories:
                    allowed = self.space.categories[i]
                    out.append(f"{name} = {allowed[int(row[i])]}")
                else:
                    out.append(f"{name} = {'true' if row[i] >= 0.5 else 'false'}")
            else:
                names = disc.names[i]
                out.append(names[int(disc.lambdas[i](row[i]))])
        return out


_handles: OrderedDict[tuple, LimeExplainerHandle] = OrderedDict()
_handles_lock = threading.Lock()


def lime_handle(version, space: FeatureSpace) -> LimeExplainerHandle:
    key = (version.pk, version.content_hash, version.dataset.sha256, tuple(space.names))
    with _handles_lock:
        hit = _handles.get(key)
        if hit is not None:
            return hit
    handle = LimeExplainerHandle(space, version.dataset.profile)
    with _handles_lock:
        _handles[key] = handle
        while len(_handles) > 16:
            _handles.popitem(last=False)
    return handle


def lime_handles_clear() -> None:
    with _handles_lock:
        _handles.clear()
