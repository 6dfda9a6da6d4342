"""One input explained: what is stored (value-free content, the values, provenance).

``explanation_compute`` is pure computation (no database writes): the services store
what it returns. Its ``content`` is a plain JSON value, canonical and free of timings,
so the same (version, input, method, parameters) gives the same bytes every time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from core.errors import ValidationFailed
from core.hashing import sha256_json
from registry.loading import version_model_load
from registry.models import ModelVersion

from .choice import Choice, estimated_ms_per_row, explainer_choose
from .limetab import DEFAULT_SAMPLES, lime_handle
from .models import BackgroundSource, ExplainerKind, Method, Units
from .shapley import ExactExplainerFailed, ShapRows, shap_rows
from .space import FeatureSpace, background_for, positive_index, positive_proba_fn

CONVERSION = "probability = 1 / (1 + exp(-log_odds))"


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def library_versions(*, lime: bool = False) -> dict:
    import numpy
    import shap
    import sklearn

    versions = {"shap": shap.__version__, "numpy": numpy.__version__,
                "scikit-learn": sklearn.__version__}
    if lime:
        from importlib.metadata import version

        versions["lime"] = version("lime")
    return versions


@dataclass
class Computed:
    method: str
    explainer: str
    reason: str
    units: str
    content: dict
    values: dict
    background_source: str
    background_sha256: str
    seed: int | None
    samples: int | None
    library_versions: dict
    compute_ms: float

    @property
    def content_sha256(self) -> str:
        return sha256_json(self.content)


def _labels(version: ModelVersion) -> tuple[str, str]:
    labels = version.output_schema.get("labels") or []
    positive = version.output_schema.get("positive_label", labels[-1] if labels else "")
    names = version.output_schema.get("label_names") or {}
    return str(positive), str(names.get(positive) or positive)


def shap_content(version: ModelVersion, space: FeatureSpace, rows: ShapRows, i: int) -> dict:
    """The value-free content of row i's SHAP explanation."""
    positive, positive_name = _labels(version)
    base, output = float(rows.base[i]), float(rows.output[i])
    content: dict[str, Any] = {
        "method": Method.SHAP, "explainer": rows.kind, "units": rows.units,
        "positive_label": positive, "positive_label_name": positive_name,
        "base_value": base, "output_value": output,
        "contributions": [{"feature": name, "contribution": float(v)}
                          for name, v in zip(space.names, rows.values[i], strict=True)],
        "additive": True, "additivity_residual": float(
            abs(base + float(np.sum(rows.values[i])) - output)),
        "parameters": rows.parameters,
    }
    if rows.units == Units.LOG_ODDS:
        content.update(base_probability=sigmoid(base), output_probability=sigmoid(output),
                       conversion=CONVERSION)
    else:
        content.update(base_probability=base, output_probability=output)
    if rows.coefficients is not None:
        content["coefficients_per_unit"] = [
            {"feature": name, "log_odds_per_unit": c, "unit": unit}
            for name, c, unit in zip(space.names, rows.coefficients, space.units, strict=True)]
    return content


def shap_background(version: ModelVersion, space: FeatureSpace, kind: str) -> tuple[str, str]:
    """(background source, its sha256) of a SHAP explanation by explainer ``kind``: the
    trees need none (their own training coverage), the others use the version's set."""
    if kind == ExplainerKind.TREE:
        return BackgroundSource.TREE_PATHS, ""
    background = background_for(version, space)
    return background.source, background.sha256


def _check_input(version: ModelVersion, space: FeatureSpace, inputs: dict) -> np.ndarray:
    if not isinstance(inputs, dict):
        raise ValidationFailed("The input to explain must be an object of feature values.",
                               code="invalid", field="inputs")
    unknown = set(inputs) - set(space.names)
    if unknown:
        raise ValidationFailed("The input has features the version does not: "
                               + ", ".join(sorted(unknown)) + ".", code="unknown_field",
                               field="inputs")
    return space.encode([inputs])


def explanation_compute(*, version: ModelVersion, inputs: dict, method: str,
                        parameters: dict, choice: Choice | None = None) -> Computed:
    """Explain one (validated) input of ``version`` with ``method`` and ``parameters``
    (already normalised by ``explain.services.explanation_parameters``)."""
    started = time.perf_counter()
    space = FeatureSpace.of(version)
    matrix = _check_input(version, space, inputs)
    values: dict[str, Any] = {"inputs": {n: inputs.get(n) for n in space.names}}
    seed = int(parameters.get("seed", 0))
    if method == Method.SHAP:
        choice = choice or explainer_choose(version=version)
        # Trees need no background set; build it only if another path runs.
        rows = shap_rows(version, space, matrix, _LazyBackground(version, space), seed=seed,
                         choice=choice)
        content = shap_content(version, space, rows, 0)
        exact = rows.kind in (ExplainerKind.TREE, ExplainerKind.LINEAR)
        source, sha = shap_background(version, space, rows.kind)
        return Computed(method=Method.SHAP, explainer=rows.kind, reason=rows.reason,
                        units=rows.units, content=content, values=values,
                        background_source=source, background_sha256=sha,
                        seed=None if exact else seed,
                        samples=None if exact else rows.parameters.get("max_evals"),
                        library_versions=library_versions(),
                        compute_ms=round((time.perf_counter() - started) * 1000, 3))
    if method == Method.LIME:
        missing = [n for n, v in values["inputs"].items() if v is None]
        if missing:
            raise ValidationFailed("LIME needs every feature present; this input lacks "
                                   + ", ".join(missing) + ". Ask for a SHAP explanation.",
                                   code="lime_missing_values", field="method")
        samples = int(parameters.get("samples", DEFAULT_SAMPLES))
        handle = lime_handle(version, space)
        loaded = version_model_load(version=version, purpose="batch")
        f = positive_proba_fn(loaded, space, positive_index(version, loaded.classes or None))
        result = handle.explain(matrix[0], f, seed=seed, samples=samples)
        positive, positive_name = _labels(version)
        content = {
            "method": Method.LIME, "explainer": ExplainerKind.LIME_TABULAR,
            "units": Units.PROBABILITY, "positive_label": positive,
            "positive_label_name": positive_name,
            "weights": [{"feature": n, "weight": float(w)}
                        for n, w in zip(space.names, result.weights, strict=True)],
            "intercept": result.intercept, "local_prediction": result.local_prediction,
            "output_value": result.output, "output_probability": result.output,
            "surrogate_r2": result.score, "additive": False,
            "note": "LIME's weights are the coefficients of a local linear surrogate on "
                    "whether each feature falls in the input's training-quartile bin; "
                    "they do not add up to the model's output.",
            "discretizer": "training quartiles from the profile",
            "bins": handle.bins, "parameters": {"seed": seed, "samples": samples},
        }
        values["conditions"] = dict(zip(space.names, result.conditions, strict=True))
        return Computed(method=Method.LIME, explainer=ExplainerKind.LIME_TABULAR,
                        reason="LIME tabular: a local linear surrogate fitted on samples drawn "
                               "from the training profile around the input, its random "
                               f"stream reset to seed {seed} for this explanation.",
                        units=Units.PROBABILITY, content=content, values=values,
                        background_source=BackgroundSource.TRAINING_PROFILE,
                        background_sha256=sha256_json(version.dataset.profile), seed=seed,
                        samples=samples, library_versions=library_versions(lime=True),
                        compute_ms=round((time.perf_counter() - started) * 1000, 3))
    raise ValidationFailed("method must be shap or lime.", code="invalid", field="method")


class _LazyBackground:
    """The background set, built on first use (TreeSHAP never uses it)."""

    def __init__(self, version: ModelVersion, space: FeatureSpace) -> None:
        self._version, self._space, self._made = version, space, None

    def __getattr__(self, name: str):
        if self._made is None:
            self._made = background_for(self._version, self._space)
        return getattr(self._made, name)


# -- many inputs at once (a batch job's "explain all rows") -----------------------------------

# The explainers a batch may ask for: exact, cheap per row, their cost estimated up front.
FAST_KINDS = (ExplainerKind.TREE, ExplainerKind.LINEAR)


def batch_explain_budget_seconds() -> float:
    return float(getattr(settings, "ATTEST_BATCH_EXPLAIN_MAX_SECONDS", 1800.0))


def explanation_rows_plan(*, version: ModelVersion, method: Any, rows: int) -> dict:
    """What explaining ``rows`` inputs of ``version`` will take, or ValidationFailed.

    1. Only SHAP: LIME takes about half a second a row and its weights do not add up.
    2. Only the exact fast explainers (tree, linear); the model-agnostic one (ONNX,
       categorical inputs, other estimators) is refused with the reason it was chosen.
    3. The explainer's estimated time per row times the rows must stay within
       ATTEST_BATCH_EXPLAIN_MAX_SECONDS of a worker's time.
    """
    if method != Method.SHAP:
        raise ValidationFailed("explain must be 'shap' (SHAP contributions of every row); "
                               "LIME is offered per prediction only.", code="invalid",
                               field="explain")
    choice = explainer_choose(version=version)
    ms = estimated_ms_per_row(choice)
    if choice.kind not in FAST_KINDS or ms is None:
        raise ValidationFailed(
            "Explaining every row needs an exact fast explainer (tree or linear SHAP); this "
            f"version gets the {ExplainerKind(choice.kind).label}: {choice.reason} Explain "
            "single predictions instead.", code="explainer_not_fast", field="explain",
            extra={"explainer": choice.kind})
    seconds = ms * rows / 1000
    budget = batch_explain_budget_seconds()
    if seconds > budget:
        raise ValidationFailed(
            f"Explaining {rows:,} rows would take about {seconds:,.0f} s of a worker's time "
            f"({ms:g} ms a row, {choice.reason}), over the {budget:,.0f} s allowed for one "
            "batch (ATTEST_BATCH_EXPLAIN_MAX_SECONDS). Split the file, or submit it without "
            "explanations.", code="explain_too_costly", field="explain",
            extra={"estimated_seconds": float(f"{seconds:.3g}"), "budget_seconds": budget})
    return {"method": Method.SHAP, "explainer": choice.kind, "reason": choice.reason,
            "units": choice.units, "estimated_ms_per_row": ms,
            "estimated_seconds": float(f"{seconds:.3g}")}


def contribution_columns(version: ModelVersion) -> list[str]:
    """The result file's columns of a batch explained with SHAP: the base value, one
    contribution per feature in schema order (``shap_<feature>``), the model's output they
    add up to (unrounded, in their units: the score column is rounded, and log-odds are
    not a probability), then the units."""
    return ["shap_base_value", *(f"shap_{f['name']}" for f in version.input_schema),
            "shap_output", "shap_units"]


@dataclass
class RowsComputed:
    """SHAP of many inputs: per row the base value and one contribution per feature
    (schema order), adding up to ``output``, and what produced them."""

    explainer: str
    reason: str
    units: str
    base: np.ndarray
    values: np.ndarray
    output: np.ndarray
    residual: float
    provenance: dict


def explanation_rows_compute(*, version: ModelVersion, rows: list[dict]) -> RowsComputed:
    """SHAP contributions of ``rows`` (validated inputs) by the path one input takes
    (``shap_rows`` with the version's explainer), on one matrix; the exact explainer
    only: one that fails or does not add up raises ValidationFailed rather than falling
    back to the permutation explainer (whose cost and units the batch was not planned
    for)."""
    started = time.perf_counter()
    space = FeatureSpace.of(version)
    choice = explainer_choose(version=version)
    if choice.kind not in FAST_KINDS:
        raise ValidationFailed(f"No exact fast explainer for this version: {choice.reason}",
                               code="explainer_not_fast", field="explain")
    try:
        shap = shap_rows(version, space, space.encode(rows), _LazyBackground(version, space),
                         seed=0, choice=choice, fallback=False)
    except ExactExplainerFailed as exc:
        raise ValidationFailed(str(exc), code="explanation_not_additive",
                               field="explain") from None
    source, sha = shap_background(version, space, shap.kind)
    provenance = {"method": Method.SHAP, "explainer": shap.kind, "reason": shap.reason,
                  "units": shap.units, "parameters": shap.parameters,
                  "background_source": source, "background_sha256": sha,
                  "library_versions": library_versions(),
                  "compute_ms": round((time.perf_counter() - started) * 1000, 3)}
    return RowsComputed(explainer=shap.kind, reason=shap.reason, units=shap.units,
                        base=shap.base, values=shap.values, output=shap.output,
                        residual=shap.residual, provenance=provenance)
