"""Evaluation metrics, overall and per subgroup, computed here on a validation set.

Shaped as the server stores them: ``{"overall": {name: number}, "subgroups":
[{"name": "sex=F", "n": 120, "metrics": {...}}]}``. A metric that is undefined for
a subgroup (AUC with one class present) is left out rather than invented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MIN_SUBGROUP = 1


def _binary(y: np.ndarray, score: np.ndarray, positive: Any, threshold: float) -> dict:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    truth = (y == positive).astype(int)
    predicted = (score >= threshold).astype(int)
    tp = int(((predicted == 1) & (truth == 1)).sum())
    tn = int(((predicted == 0) & (truth == 0)).sum())
    fp = int(((predicted == 1) & (truth == 0)).sum())
    fn = int(((predicted == 0) & (truth == 1)).sum())
    out: dict[str, float] = {"accuracy": (tp + tn) / len(truth),
                             "prevalence": float(truth.mean())}
    if tp + fn:
        out["sensitivity"] = tp / (tp + fn)
    if tn + fp:
        out["specificity"] = tn / (tn + fp)
    if tp + fp:
        out["ppv"] = tp / (tp + fp)
    if tn + fn:
        out["npv"] = tn / (tn + fn)
    if 0 < truth.sum() < len(truth):
        out["auc"] = float(roc_auc_score(truth, score))
    out["brier"] = float(brier_score_loss(truth, score))
    return out


def _multiclass(y: np.ndarray, proba: np.ndarray, classes: list) -> dict:
    from sklearn.metrics import roc_auc_score

    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    out = {"accuracy": float((predicted == y).mean())}
    if len(set(y.tolist())) == len(classes):
        out["auc_ovr_macro"] = float(roc_auc_score(y, proba, multi_class="ovr",
                                                   labels=classes))
    return out


def compute_metrics(model: Any, X: Any, y: Any, *, subgroups: Any = None,
                    positive_label: Any = None, threshold: float = 0.5) -> dict:
    """Metrics of ``model`` on (X, y); per value of each ``subgroups`` column too.

    ``subgroups``: column names of X (or a DataFrame of group columns aligned with X).
    Binary models: AUC, accuracy, sensitivity, specificity, PPV, NPV, Brier score and
    prevalence at ``threshold`` on the positive class (default: the model's second class).
    """
    import pandas as pd

    classes = list(model.classes_)
    y = np.asarray(y, dtype=object)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    groups = None
    if subgroups is not None:
        if isinstance(subgroups, str | list | tuple):
            names = [subgroups] if isinstance(subgroups, str) else list(subgroups)
            groups = pd.DataFrame({n: X[n].to_numpy() for n in names})
        else:
            groups = pd.DataFrame(subgroups).reset_index(drop=True)

    def measure(mask: np.ndarray) -> dict:
        if len(classes) == 2:
            positive = positive_label if positive_label is not None else classes[1]
            index = classes.index(positive)
            return _binary(y[mask], proba[mask, index], positive, threshold)
        return _multiclass(y[mask], proba[mask], classes)

    every = np.ones(len(y), dtype=bool)
    result = {"overall": {"n": len(y), **measure(every)}, "subgroups": []}
    if groups is not None:
        for column in groups.columns:
            values = groups[column].to_numpy(dtype=object)
            for value in sorted({v for v in values if v is not None and v == v}, key=str):
                mask = values == value
                if mask.sum() >= MIN_SUBGROUP:
                    result["subgroups"].append({"name": f"{column}={value}", "n": int(mask.sum()),
                                                "metrics": measure(mask)})
    return _finite(result)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()
                if not (isinstance(v, float) and not math.isfinite(v))}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
