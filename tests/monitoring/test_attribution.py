"""Attribution drift: the SHAP importance of recent predictions against the version's."""

from __future__ import annotations

from collections import defaultdict

import pytest

from explain.models import Explanation, Method, VersionExplanation
from explain.services import explanation_request

from ..inference.helpers import released_version
from .helpers import count_and_run, log_rows, training_like

pytestmark = pytest.mark.django_db


def _explain(personas, version, results):
    for r in results:
        explanation_request(user=personas.clinician, version=version, inputs=r.prediction.input,
                            input_sha256=r.prediction.input_sha256, method="shap")


def _importance_from(rows) -> dict:
    """The version's global importance as explain stores it (mean |SHAP| per feature)."""
    sums = defaultdict(float)
    for content in rows:
        for c in content["contributions"]:
            sums[c["feature"]] += abs(c["contribution"])
    return {"global_importance": {"statistic": "mean |SHAP|", "features": [
        {"feature": f, "mean_abs": v / len(rows)} for f, v in sums.items()]}}


def test_attribution_drift_compares_recent_shap_importance_with_the_versions(personas):
    version = released_version(personas, confidence_threshold=0.6)
    run = count_and_run(version)
    gap = run.figures.get(window="30d", signal="attribution_drift").detail
    assert gap["status"] == "unavailable" and "not computed" in gap["verdict"]
    # the version's figures, from training-like rows explained the same way
    reference = log_rows(personas, training_like(200, seed=1))
    _explain(personas, version, reference)
    VersionExplanation.objects.create(
        version=version, parameters={}, parameters_sha256="0" * 64, explainer="linear",
        explainer_reason="test", units="log_odds", content=_importance_from(
            list(Explanation.objects.filter(version=version, method=Method.SHAP)
                 .values_list("content", flat=True))),
        content_sha256="0" * 64, background_source="synthetic_profile", library_versions={},
        compute_ms=1.0)
    run = count_and_run(version)
    calm = run.figures.get(window="30d", signal="attribution_drift").detail
    assert calm["n"] == 200 and calm["status"] == "ok" and calm["value"] < 0.02
    shifted = log_rows(personas, training_like(200, seed=2, shift={"mean concavity": 2.0}))
    _explain(personas, version, shifted)
    run = count_and_run(version)
    moved = run.figures.get(window="30d", signal="attribution_drift").detail
    assert moved["n"] == 400 and moved["value"] > calm["value"] + 0.05
    assert moved["moved"][0]["feature"] == "mean concavity"
    assert moved["moved"][0]["recent"] > moved["moved"][0]["version"]
    row = next(r for r in run.summary["health"] if r["signal"] == "attribution_drift")
    assert row["value"] == pytest.approx(moved["value"], abs=1e-6)
