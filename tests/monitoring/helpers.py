"""Logging predictions the way production does, and counting them for monitoring."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from inference.services import prediction_create
from monitoring.aggregation import aggregate_predictions
from monitoring.services import monitoring_run

from ..artifacts import FEATURES_SMALL, breast_cancer_frame


def training_like(n: int, *, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """``n`` rows resampled from the training data, optionally with features shifted by
    that many training standard deviations."""
    frame = breast_cancer_frame()[FEATURES_SMALL]
    rows = frame.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)
    for name, sds in (shift or {}).items():
        rows[name] = rows[name] + sds * frame[name].std()
    return rows


def log_rows(personas, rows: pd.DataFrame, *, who: str = "clinician", chunk: int = 1000) -> list:
    """Log every row through prediction_create (chunks of one request each)."""
    results = []
    records = rows.to_dict("records")
    for start in range(0, len(records), chunk):
        results += prediction_create(user=personas.get(who), model=personas.model,
                                     instances=records[start:start + chunk])
    return results


def count_and_run(version, **kwargs):
    aggregate_predictions(settle=timedelta(0))
    return monitoring_run(version=version, **kwargs)


def drift_by_feature(run, window: str = "7d") -> dict[str, dict]:
    return {f.feature: f.detail for f in run.figures.filter(window=window, signal="drift")}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def labelled_sample(n: int, *, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of the training data with their diagnosis (1 = malignant, the positive label)."""
    frame = breast_cancer_frame().sample(n=n, replace=True, random_state=seed)
    return (frame[FEATURES_SMALL].reset_index(drop=True),
            (frame["diagnosis"] == "malignant").to_numpy(dtype=int))


def record(personas, results, outcomes, *, who: str = "clinician", day=None):
    """Record outcomes (1/0) for logged predictions through the service, as the API does."""
    from django.utils import timezone

    from monitoring.models import OutcomeSource
    from monitoring.services import outcomes_record

    day = (day or timezone.now().date()).isoformat()
    rows = [{"prediction_id": str(r.prediction.public_id), "outcome": str(int(y)),
             "outcome_date": day} for r, y in zip(results, outcomes, strict=True)]
    return outcomes_record(user=personas.get(who), model=personas.model, rows=rows,
                           source=OutcomeSource.API)
