"""Explanations of predictions: the bridge from the prediction log to ``explain``.

``explain`` knows versions and inputs, not predictions; this module decides who may
see which prediction's explanations (anyone who may see the prediction) and whether
the input's values show (``view_predictions``, and the raw input not purged), then
hands the prediction's version, input and input hash to ``explain.services``.
"""

from __future__ import annotations

from typing import Any

from explain import selectors as explain_selectors
from explain import services as explain_services
from explain.models import JobStatus, Method
from explain.present import explanation_as_dict, explanation_view, job_as_dict

from .models import Prediction
from .selectors import can_see_raw_inputs


def values_visible(*, user, prediction: Prediction) -> bool:
    return prediction.input is not None and can_see_raw_inputs(user=user, prediction=prediction)


def prediction_explain(*, user, prediction: Prediction, method: Any,
                       parameters: Any = None, inline_only: bool = False):
    """An explanation of ``prediction`` (stored, computed now, or a job: see
    ``explain.services.explanation_request``)."""
    return explain_services.explanation_request(
        user=user, version=prediction.version, inputs=prediction.input,
        input_sha256=prediction.input_sha256, method=method, parameters=parameters,
        inline_only=inline_only)


def prediction_explanations_body(*, user, prediction: Prediction) -> dict:
    reveal = values_visible(user=user, prediction=prediction)
    stored = explain_selectors.explanations_for_input(version=prediction.version,
                                                      input_sha256=prediction.input_sha256)
    jobs = explain_selectors.jobs_for_input(version=prediction.version,
                                            input_sha256=prediction.input_sha256)
    return {"prediction": str(prediction.public_id),
            "explanations": [explanation_as_dict(e, reveal_values=reveal) for e in stored],
            "jobs": [job_as_dict(j) for j in jobs[:20] if j.status != JobStatus.COMPLETED],
            "input_purged": prediction.input is None}


def prediction_explanations_page(*, user, prediction: Prediction) -> dict:
    """What the prediction page and the review item show: the stored explanations (SHAP
    first), jobs under way, and — when none is stored and SHAP is cheap for this model —
    one computed now (a cache fill: stored and audited like any other)."""
    reveal = values_visible(user=user, prediction=prediction)
    version = prediction.version
    stored = list(explain_selectors.explanations_for_input(
        version=version, input_sha256=prediction.input_sha256))
    if not any(e.method == Method.SHAP for e in stored) and prediction.input is not None:
        outcome = prediction_explain(user=user, prediction=prediction, method=Method.SHAP,
                                     inline_only=True)
        if outcome.explanation is not None:
            stored.insert(0, outcome.explanation)
    stored.sort(key=lambda e: (e.method != Method.SHAP, e.pk))
    jobs = list(explain_selectors.jobs_for_input(version=version,
                                                 input_sha256=prediction.input_sha256,
                                                 active_only=True))
    failed = [j for j in explain_selectors.jobs_for_input(
        version=version, input_sha256=prediction.input_sha256)[:5]
        if j.status == JobStatus.FAILED and not any(e.method == j.method for e in stored)]
    methods = {e.method for e in stored} | {j.method for j in jobs}
    return {
        "explanations": [explanation_view(e, schema=version.input_schema,
                                          profile=version.dataset.profile,
                                          reveal_values=reveal) for e in stored],
        "explain_jobs": jobs, "explain_failed": failed[:1],
        "explain_offer": [m for m in (Method.SHAP, Method.LIME) if m not in methods]
        if prediction.input is not None else [],
        "explain_purged": prediction.input is None,
    }
