"""How a version's inputs are binned: the training profile's bins, feature by feature.

A numeric feature is counted on the profile's quantile edges ``e_0 < … < e_k`` (its k
bins follow ``numpy.histogram``: ``[e_i, e_i+1)``, the last one closed), plus one bin
below ``e_0`` and one above ``e_k``: k + 2 counts. A categorical or boolean feature is
counted on the categories the profile lists, plus one "other" count for every value it
does not list (rare or never seen in training). Missing values are counted apart.

The layout depends only on the version's dataset profile, which is frozen from submit
on, so counts accumulated over months always line up bin for bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from registry.models import ModelVersion

OTHER = "__other__"


@dataclass(frozen=True)
class FeatureLayout:
    name: str
    kind: str  # "numeric" | "categorical"
    schema_type: str
    size: int  # length of the counts array
    reference: tuple[float, ...]  # training shares: per bin (numeric) or per category + other
    n_reference: int  # training values present (the profile's count)
    training_missing_rate: float
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # The schema's missing-value policy is "impute": a missing value is logged as the
    # imputed one, and the row's Prediction.imputed names the feature.
    imputed: bool = False

    @property
    def bins(self) -> int:
        """Bins of the training distribution (without the out-of-range ones)."""
        return self.size - 2 if self.kind == "numeric" else self.size

    def labels(self) -> list[str]:
        """A label per count, for tables and charts."""
        if self.kind == "categorical":
            return [*self.categories, "other"]
        edges = self.edges
        if len(edges) == 1:
            return [f"< {edges[0]:g}", f"= {edges[0]:g}", f"> {edges[0]:g}"]
        inner = [f"{edges[i]:.4g}–{edges[i + 1]:.4g}" for i in range(len(edges) - 1)]
        return [f"< {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}"]

    def psi_counts(self, counts: np.ndarray) -> np.ndarray:
        """Counts over the training bins, out-of-range values in the outer bins."""
        if self.kind == "categorical":
            return counts
        inner = counts[1:-1].astype(float).copy()
        inner[0] += counts[0]
        inner[-1] += counts[-1]
        return inner

    def bin_values(self, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(bin index per value, missing mask) for a column of logged input values."""
        n = len(values)
        missing = np.fromiter((v is None for v in values), dtype=bool, count=n)
        if self.kind == "categorical":
            other = self.size - 1
            index = self.index
            idx = np.fromiter((index.get(_category_text(v), other) for v in values), dtype=np.int64,
                              count=n)
            return idx, missing
        numbers = np.fromiter((np.nan if (v is None or isinstance(v, str | bool)) else v
                               for v in values), dtype=float, count=n)
        bins, absent = self.bin_numbers(numbers)
        return bins, missing | absent

    def bin_numbers(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bin index, missing mask) for a float array of a numeric feature (NaN: missing)."""
        missing = np.isnan(numbers)
        edges = np.asarray(self.edges)
        k = self.size - 2
        idx = np.searchsorted(edges, numbers, side="right")
        idx = np.minimum(idx, k)  # the last bin is closed: e_k itself falls in bin k
        idx = np.where(numbers < edges[0], 0, idx)
        idx = np.where(numbers > edges[-1], k + 1, idx)
        return idx.astype(np.int64), missing


def _category_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def feature_layouts(version: ModelVersion) -> list[FeatureLayout]:
    """One layout per schema feature the profile describes (others are skipped)."""
    columns = (version.dataset.profile or {}).get("columns", {})
    layouts = []
    for feature in version.input_schema or []:
        name, kind = feature["name"], feature.get("type", "number")
        column = columns.get(name) or {}
        layout = _layout(name, kind, column)
        if layout is not None:
            layouts.append(replace(layout, imputed=feature.get("missing") == "impute"))
    return layouts


def _layout(name: str, kind: str, column: dict) -> FeatureLayout | None:
    count = int(column.get("count") or 0)
    missing = float(column.get("missing_rate") or 0.0)
    if kind in ("number", "integer"):
        edges = [float(e) for e in column.get("quantiles") or []]
        shares = [float(s) for s in column.get("bin_frequencies") or []]
        if not edges or not shares or len(shares) != max(1, len(edges) - 1):
            return None
        return FeatureLayout(name=name, kind="numeric", schema_type=kind, size=len(shares) + 2,
                             reference=tuple(shares), n_reference=count,
                             training_missing_rate=missing, edges=tuple(edges))
    categories = column.get("categories")
    if not isinstance(categories, dict) or not categories:
        return None
    names = [str(c) for c in categories]
    shares = [float(categories[c] or 0.0) for c in categories]
    other = float(column.get("other_rate") or 0.0)
    return FeatureLayout(name=name, kind="categorical", schema_type=kind, size=len(names) + 1,
                         reference=(*shares, other), n_reference=count,
                         training_missing_rate=missing, categories=tuple(names),
                         index={c: i for i, c in enumerate(names)})
