"""Performance estimated from scores alone (confidence-based, as NannyML's CBPE).

A well-specified logistic model on synthetic data is calibrated by construction. Under a
known covariate shift (the inputs move, how outcomes follow from them does not), the
estimate from the scores must land within 0.03 of what the outcomes then show — the
tolerance stated on the monitoring page's assumptions and in docs/operations.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from monitoring import stats
from monitoring.models import Figure
from registry.services import dataset_version_register

from ..artifacts import skops_bytes
from ..inference.helpers import released_version
from .helpers import count_and_run, log_rows, record

pytestmark = pytest.mark.django_db

TOLERANCE = 0.03
NAMES = ["age", "lactate", "heart_rate", "wbc"]
MEAN = np.array([60.0, 2.0, 85.0, 9.0])
SD = np.array([12.0, 0.8, 15.0, 3.0])
WEIGHTS = np.array([0.9, 1.3, 0.6, -0.7])


def _world(n: int, rng, shift=(0.0, 0.0, 0.0, 0.0)) -> tuple[pd.DataFrame, np.ndarray]:
    z = rng.normal(size=(n, 4)) + np.asarray(shift)
    x = MEAN + z * SD
    p = 1 / (1 + np.exp(-(z @ WEIGHTS - 0.4)))
    return pd.DataFrame(np.round(x, 3), columns=NAMES), (rng.random(n) < p).astype(int)


def _released(personas, *, ece: float | None = None, with_curve: bool = False):
    """A calibrated model; its validation metrics give ``ece``, or the validation
    reliability curve (``with_curve``), or no calibration evidence at all."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(42)
    train, y = _world(4000, rng)
    labelled = train.assign(outcome=np.where(y == 1, "sepsis", "no_sepsis"))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train, labelled["outcome"])
    valid, yv = _world(2000, rng)
    scores = model.predict_proba(valid)[:, list(model.classes_).index("sepsis")]
    curve = stats.calibration(yv, scores)
    dataset = dataset_version_register(
        user=personas.owner, name="synthetic-sepsis", version="1", source="simulation",
        data_file=SimpleUploadedFile("train.csv", labelled.to_csv(index=False).encode()))
    overall = {"auc": stats.observed_performance(yv, scores, (scores >= 0.5).astype(int))["auc"]}
    if ece is not None:
        overall["ece"] = ece
    metrics = {"overall": overall, "subgroups": []}
    if with_curve:
        metrics["calibration"] = [{k: b[k] for k in ("mean_score", "observed_rate", "n")}
                                  for b in curve["bins"]]
    return released_version(personas, dataset=dataset, data=skops_bytes(model),
                            input_schema=NAMES, confidence_threshold=0.5,
                            output_schema={"positive_label": "sepsis"},
                            metrics=metrics), curve


def test_the_estimate_under_a_known_covariate_shift_lands_within_the_tolerance(personas):
    version, curve = _released(personas, with_curve=True)
    assert curve["ece"] < 0.05  # the validation curve says: calibrated
    rng = np.random.default_rng(7)
    shifted, y = _world(3000, rng, shift=np.array([1.0, 0.0, -0.5, 0.0]))
    results = log_rows(personas, shifted)
    record(personas, results, y)
    run = count_and_run(version)
    perf = Figure.objects.get(run=run, window="7d", signal="performance").detail
    observed, estimated = perf["observed"], perf["estimated"]
    assert observed["n"] == estimated["n"] == 3000
    assert estimated["trust"] == "trusted"  # from the validation curve's ECE
    for name in ("accuracy", "sensitivity", "specificity", "auc"):
        assert abs(estimated[name] - observed[name]) < TOLERANCE, (name, estimated[name],
                                                                   observed[name])
    # the shift is real: the figures differ from training's base rate
    assert abs(estimated["expected_positives"] / 3000 - y.mean()) < TOLERANCE
    assert perf["estimated"]["on_outcomes"]["n"] == 3000


def test_the_estimate_is_trusted_only_on_calibration_evidence(personas):
    version, _curve = _released(personas, ece=0.02)
    rows, _y = _world(200, np.random.default_rng(3))
    log_rows(personas, rows)
    run = count_and_run(version)
    estimated = Figure.objects.get(run=run, window="7d", signal="performance").detail["estimated"]
    assert estimated["trust"] == "trusted" and "0.020" in estimated["trust_reason"]
    drop = Figure.objects.get(run=run, window="30d", signal="performance_drop").detail
    assert drop["basis"] == "estimated" and drop["metric"] == "auc"


def test_miscalibrated_validation_figures_say_the_estimate_cannot_be_trusted(personas):
    version, _curve = _released(personas, ece=0.12)
    rows, _y = _world(200, np.random.default_rng(3))
    log_rows(personas, rows)
    run = count_and_run(version)
    estimated = Figure.objects.get(run=run, window="7d", signal="performance").detail["estimated"]
    assert estimated["trust"] == "untrusted"
    assert "not calibrated enough" in estimated["trust_reason"]
    drop = Figure.objects.get(run=run, window="30d", signal="performance_drop").detail
    assert drop["status"] == "no_data" and "cannot be trusted" in drop["verdict"]


def test_without_calibration_evidence_the_estimate_says_it_is_unchecked(personas):
    version, _curve = _released(personas)
    rows, _y = _world(100, np.random.default_rng(3))
    log_rows(personas, rows)
    run = count_and_run(version)
    estimated = Figure.objects.get(run=run, window="7d", signal="performance").detail["estimated"]
    assert estimated["trust"] == "unchecked" and "without evidence" in estimated["trust_reason"]


def test_cbpe_on_binned_scores_matches_the_expectation_on_raw_scores():
    rng = np.random.default_rng(0)
    scores = rng.beta(0.6, 0.9, size=20000)
    counts, sums = stats.score_histogram(scores)
    estimated = stats.estimated_performance(counts, sums)
    predicted = scores >= 0.5
    tp, fn = scores[predicted].sum(), scores[~predicted].sum()
    tn, fp = (1 - scores[~predicted]).sum(), (1 - scores[predicted]).sum()
    assert estimated["sensitivity"] == pytest.approx(tp / (tp + fn), abs=1e-9)
    assert estimated["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-9)
    # expected AUC: outcomes drawn from the scores many times over
    draws = [stats.observed_performance(y := (rng.random(20000) < scores).astype(int), scores,
                                        predicted.astype(int))["auc"] for _ in range(5)]
    assert y.sum() > 0
    assert abs(estimated["auc"] - np.mean(draws)) < 0.005
