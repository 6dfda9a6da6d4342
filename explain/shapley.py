"""SHAP values for rows of a version, by the explainer ``explain.choice`` picked.

Every path returns, per row, the base value, one contribution per schema feature and
the model's own output for the row, in the choice's units, and checks that they add
up (``base + sum(contributions) == output``) — shap's own check raises an
"additivity check failed" exception (shap#903, #4239) that would surface as a 500;
here the residual is measured and recorded, and an exact explainer whose residual
exceeds ``ADDITIVITY_TOLERANCE`` is not trusted: the row is explained by the
permutation explainer instead, with the reason.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import numpy as np

from registry.loading import version_model_load
from registry.models import ModelVersion

from .choice import Choice, explainer_choose, tree_output
from .models import ExplainerKind, Units
from .space import Background, FeatureSpace, positive_proba_fn, subsample

ADDITIVITY_TOLERANCE = 1e-6
# The permutation explainer: background rows it masks with and how many permutations
# (forward and back) it walks per row; both recorded as parameters.
PERMUTATION_BACKGROUND_ROWS = 100
PERMUTATION_ROUNDS = 10
# shap's PermutationExplainer shuffles with numpy's global generator: one explanation at
# a time per process, seeded right before it, so the answer depends on the seed only.
_global_rng_lock = threading.Lock()


@dataclass
class ShapRows:
    kind: str
    reason: str
    units: str
    base: np.ndarray  # (n,)
    values: np.ndarray  # (n, features), schema order
    output: np.ndarray  # (n,)
    residual: float
    parameters: dict
    coefficients: list[float] | None = None  # linear: log-odds per unit of each feature


def estimator_input(choice: Choice, matrix: np.ndarray):
    """Schema-ordered rows as the final estimator takes them: its column order, through
    the per-feature steps before it."""
    X = matrix[:, choice.order]
    if choice.prefix is not None:
        X = _transform(choice, X)
    return X


def _transform(choice: Choice, X: np.ndarray) -> np.ndarray:
    # A plain array in the fitted column order (a frame costs more than the scaling; the
    # "fitted with feature names" warning is all it changes).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(choice.prefix.transform(X), dtype=float)


def estimator_output(choice: Choice, Z: np.ndarray) -> np.ndarray:
    """The final estimator's own output for ``Z``, in the choice's units."""
    est_input = _final_input(choice, Z)
    if choice.units == Units.PROBABILITY:
        return np.asarray(choice.estimator.predict_proba(est_input),
                          dtype=float)[:, choice.positive]
    return _margin(choice.estimator, est_input) * choice.sign


def _final_input(choice: Choice, Z: np.ndarray):
    """What the final estimator is called with: a frame when it was fitted on one."""
    if choice.prefix is None and choice.input_names is not None:
        import pandas as pd

        return pd.DataFrame(Z, columns=choice.input_names)
    return Z


def _to_schema(choice: Choice, values: np.ndarray) -> np.ndarray:
    out = np.zeros_like(values)
    out[:, choice.order] = values
    return out


def _tree(choice: Choice, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Z = estimator_input(choice, matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raw = np.asarray(choice.explainer.shap_values(Z, check_additivity=False), dtype=float)
        expected = np.asarray(choice.explainer.expected_value, dtype=float).reshape(-1)
        if choice.units == Units.PROBABILITY:
            values = raw[:, :, choice.positive] if raw.ndim == 3 else raw
            base = expected[choice.positive] if expected.size > 1 else expected[0]
        else:
            values = (raw[:, :, -1] if raw.ndim == 3 else raw) * choice.sign
            base = expected[-1] * choice.sign
        # The trees' own output, as shap evaluates them (equal to the model's: checked when
        # the explainer was chosen, explain.choice._tree_fidelity).
        output = tree_output(choice, Z)
    return np.full(len(matrix), float(base)), _to_schema(choice, values), output


def _margin(estimator, X):
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float).reshape(-1)
    # xgboost/lightgbm: the raw margin
    return np.asarray(estimator.predict(X, output_margin=True), dtype=float).reshape(-1)


def _linear_explainer(choice: Choice, background: Background):
    import shap

    explainer = choice.linear.get(background.sha256)
    if explainer is None:
        Zb = estimator_input(choice, background.matrix)
        Zb = Zb[~np.isnan(Zb).any(axis=1)] if np.isnan(Zb).any() else Zb
        explainer = shap.LinearExplainer(choice.estimator, shap.maskers.Independent(
            Zb, max_samples=len(Zb)))
        if len(choice.linear) > 8:
            choice.linear.clear()
        choice.linear[background.sha256] = explainer
    return explainer


def _linear(choice: Choice, matrix: np.ndarray, background: Background):
    Z = estimator_input(choice, matrix)
    explainer = _linear_explainer(choice, background)
    values = np.asarray(explainer.shap_values(Z), dtype=float).reshape(len(Z), -1)
    base = float(np.asarray(explainer.expected_value, dtype=float).reshape(-1)[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        output = _margin(choice.estimator, Z) * choice.sign
    coef = np.asarray(choice.estimator.coef_, dtype=float).reshape(-1) * choice.sign
    # The chain rule through the scaler: dz/dx per feature of the affine per-feature steps.
    slope = np.ones(len(coef))
    if choice.prefix is not None:
        probe = np.zeros((2, matrix.shape[1]))
        probe[1, :] = 1.0
        # Probe around the background mean, where an imputer leaves values alone.
        probe += np.nanmean(background.matrix[:, choice.order], axis=0)
        t = _transform(choice, probe)
        slope = t[1] - t[0]
    per_unit = np.zeros(len(coef))
    per_unit[choice.order] = coef * slope
    values = values * choice.sign
    base = base * choice.sign
    return (np.full(len(matrix), base), _to_schema(choice, values), output,
            [float(c) for c in per_unit])


def permutation_rows(version: ModelVersion, space: FeatureSpace, matrix: np.ndarray,
                     background: Background, *, seed: int, reason: str) -> ShapRows:
    """Model-agnostic SHAP through the served model (ONNX or not), seeded per row."""
    import shap

    loaded = version_model_load(version=version, purpose="batch")
    from .space import positive_index

    f = positive_proba_fn(loaded, space, positive_index(version, loaded.classes or None))
    masked = subsample(background.matrix, PERMUTATION_BACKGROUND_ROWS, seed)
    max_evals = PERMUTATION_ROUNDS * (2 * len(space.names) + 1)
    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(
        masked, max_samples=len(masked)), seed=seed)
    base, values, output = [], [], f(matrix)
    for i in range(len(matrix)):
        with _global_rng_lock:
            np.random.seed(seed)
            exp = explainer(matrix[i:i + 1], max_evals=max_evals, silent=True)
        values.append(np.asarray(exp.values, dtype=float).reshape(-1))
        base.append(float(np.asarray(exp.base_values, dtype=float).reshape(-1)[0]))
    values_arr = np.vstack(values) if values else np.zeros((0, len(space.names)))
    base_arr = np.asarray(base)
    residual = float(np.max(np.abs(base_arr + values_arr.sum(axis=1) - output))) if len(
        matrix) else 0.0
    return ShapRows(kind=ExplainerKind.PERMUTATION, reason=reason, units=Units.PROBABILITY,
                    base=base_arr, values=values_arr, output=output, residual=residual,
                    parameters={"max_evals": max_evals, "permutations": PERMUTATION_ROUNDS,
                                "background_rows": len(masked), "seed": seed})


class ExactExplainerFailed(Exception):
    """The exact explainer failed or did not add up, and no fallback was wanted."""


def shap_rows(version: ModelVersion, space: FeatureSpace, matrix: np.ndarray,
              background: Background, *, seed: int, choice: Choice | None = None,
              fallback: bool = True) -> ShapRows:
    """SHAP values of ``matrix``'s rows (schema order, encoded) for ``version``.

    Without ``fallback`` an exact explainer that fails or does not add up raises
    ``ExactExplainerFailed`` instead of handing the rows to the permutation explainer
    (a batch: its cost was bounded, and its units fixed, by the exact one).
    """
    choice = choice or explainer_choose(version=version)

    def instead(problem: str) -> ShapRows:
        if not fallback:
            raise ExactExplainerFailed(f"{choice.reason} {problem}.")
        return permutation_rows(version, space, matrix, background, seed=seed,
                                reason=f"{choice.reason} {problem}, so the permutation "
                                       "explainer ran instead.")

    if choice.kind in (ExplainerKind.TREE, ExplainerKind.LINEAR):
        coefficients = None
        try:
            if choice.kind == ExplainerKind.TREE:
                base, values, output = _tree(choice, matrix)
                params = {"feature_perturbation": "tree_path_dependent"}
            else:
                base, values, output, coefficients = _linear(choice, matrix, background)
                params = {"feature_perturbation": "interventional"}
            residual = float(np.max(np.abs(base + values.sum(axis=1) - output))) if len(
                matrix) else 0.0
        except (ValueError, TypeError, IndexError) as exc:
            return instead(f"It failed on this input ({exc.__class__.__name__})")
        if not np.isfinite(residual) or residual > ADDITIVITY_TOLERANCE:
            return instead("Its values did not add up to the model's output "
                           f"(residual {residual:.2e})")
        return ShapRows(kind=choice.kind, reason=choice.reason, units=choice.units, base=base,
                        values=values, output=output, residual=residual, parameters=params,
                        coefficients=coefficients)
    if not fallback:
        raise ExactExplainerFailed(choice.reason)
    return permutation_rows(version, space, matrix, background, seed=seed, reason=choice.reason)
