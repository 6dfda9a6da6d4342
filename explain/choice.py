"""Which SHAP explainer a version gets, and why (recorded with every explanation).

1. Tree ensembles (scikit-learn forests, extra trees, gradient boosting,
   histogram gradient boosting, single trees; XGBoost and LightGBM when installed)
   → shap's TreeExplainer, exact, on the trees' own training coverage
   (``tree_path_dependent``). Its cost is estimated from the trees (per tree, leaves
   × depth², TreeSHAP's O(T·L·D²)); above ``ATTEST_EXPLAIN_INLINE_MS`` a row, it is
   computed by a worker instead of inline.
2. Linear models (logistic regression, also at the end of a Pipeline whose earlier
   steps are per-feature scalers or imputers) → shap's LinearExplainer on the scaled
   inputs, reported per original feature: each scaled input is an affine function
   of one original feature, so the contribution w·(z − E z) equals
   (w·dz/dx)·(x − E x), a contribution of that feature in its own units (the chain
   rule through the scaler; ``coefficients`` gives w·dz/dx per unit).
3. Anything else — other estimators, pipelines with encoders, categorical inputs,
   ONNX artifacts — → shap's PermutationExplainer (seeded) over the background set,
   through the served model.

Models come only from ``registry.loading``: the skops artifact for the estimator
internals the exact explainers read, the served model (ONNX or not) for the
model-agnostic path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from registry.loading import artifact_model_load
from registry.models import ArtifactFormat, ModelVersion

from .models import ExplainerKind, Units
from .space import FeatureSpace, positive_index

TREE_CLASSES = {
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "xgboost.sklearn.XGBClassifier",
    "lightgbm.sklearn.LGBMClassifier",
}
# Trees whose raw output (what TreeSHAP adds up to) is the class probability; the others
# add up to the log-odds margin.
PROBABILITY_TREES = {
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
}
LINEAR_CLASSES = {
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._logistic.LogisticRegressionCV",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
}
# Pipeline steps before the final estimator that map each feature to one output column,
# on its own: contributions can be reported per original feature through them.
PER_FEATURE_STEPS = {
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.impute._base.SimpleImputer",
}
FIDELITY_TOLERANCE = 1e-9
# XGBoost and LightGBM keep thresholds and leaf values in float32 and sum them in float32;
# shap evaluates the parsed trees in float64, so the two margins differ at ~1e-6 (measured:
# 1.9e-6 for a 30-tree XGBClassifier on breast-cancer rows). A misread tree is off by far more.
FLOAT32_TREES = {"xgboost.sklearn.XGBClassifier", "lightgbm.sklearn.LGBMClassifier"}
FIDELITY_TOLERANCE_FLOAT32 = 1e-5
FIDELITY_ROWS = 200
# TreeSHAP's time per unit of leaves × depth², measured by bench/explain.py on two busy
# cores (docs/performance.md, "Explanations"); it only decides inline or worker.
TREE_NS_PER_UNIT = 5.0
# LinearExplainer's time per row: one dot product (bench/explain.py: 0.004 ms a row on
# 30 features; doubled for headroom). Only used to bound a batch's explaining work.
LINEAR_MS_PER_ROW = 0.01


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


@dataclass
class Choice:
    kind: str
    reason: str
    units: str
    inline: bool
    cost: dict = field(default_factory=dict)
    estimator: Any = None  # the final estimator (tree and linear)
    prefix: Any = None  # the per-feature steps before it (a Pipeline slice) or None
    order: list[int] | None = None  # estimator column j is schema feature order[j]
    input_names: list[str] | None = None  # column names the estimator was fitted with
    positive: int = -1  # column of the positive class in predict_proba
    sign: float = 1.0  # log-odds of the positive class = sign * decision_function
    explainer: Any = None  # the shap TreeExplainer, built once
    linear: dict = field(default_factory=dict)  # background sha256 -> LinearExplainer


def estimated_ms_per_row(choice: Choice) -> float | None:
    """The explainer's estimated time per row: the trees' estimate, the linear constant;
    None for the model-agnostic explainer (its cost is not bounded by an estimate)."""
    if choice.kind == ExplainerKind.TREE:
        return float(choice.cost["estimated_ms_per_row"])
    if choice.kind == ExplainerKind.LINEAR:
        return LINEAR_MS_PER_ROW
    return None


def inline_budget_ms() -> float:
    return float(getattr(settings, "ATTEST_EXPLAIN_INLINE_MS", 25.0))


def _unwrap(estimator) -> tuple[Any, Any, str | None]:
    """(prefix, final estimator, why not) for a Pipeline; (None, estimator, None) else."""
    steps = getattr(estimator, "steps", None)
    if steps is None or _qualname(estimator) != "sklearn.pipeline.Pipeline":
        return None, estimator, None
    for name, step in steps[:-1]:
        if step in (None, "passthrough"):
            continue
        if _qualname(step) not in PER_FEATURE_STEPS:
            return None, steps[-1][1], (f"pipeline step '{name}' ({type(step).__name__}) is not a "
                                        "per-feature scaler or imputer")
        if getattr(step, "add_indicator", False):
            return None, steps[-1][1], f"pipeline step '{name}' adds missing-value indicators"
    prefix = estimator[:-1] if len(steps) > 1 else None
    return prefix, steps[-1][1], None


def _tree_depths(children_left: np.ndarray, children_right: np.ndarray, n_nodes: int) -> int:
    depth = np.zeros(n_nodes, dtype=int)
    deepest = 0
    for node in range(n_nodes):  # children always have larger indices than their parent
        left, right = children_left[node], children_right[node]
        if left >= 0:
            depth[left] = depth[right] = depth[node] + 1
            deepest = max(deepest, depth[node] + 1)
    return deepest


def tree_cost(explainer) -> dict:
    """Trees, leaves, depth and TreeSHAP's estimated time per row, from shap's own
    parse of the ensemble (the same for every supported library)."""
    model = explainer.model
    left, right = np.asarray(model.children_left), np.asarray(model.children_right)
    nodes = np.asarray(model.num_nodes).reshape(-1)
    units, leaves_total, max_depth = 0, 0, 0
    for t in range(left.shape[0]):
        n = int(nodes[t]) if nodes.size > t else left.shape[1]
        leaves = int(np.count_nonzero(left[t, :n] < 0))
        depth = _tree_depths(left[t], right[t], n)
        units += leaves * max(depth, 1) ** 2
        leaves_total += leaves
        max_depth = max(max_depth, depth)
    ms = units * TREE_NS_PER_UNIT / 1e6
    return {"trees": int(left.shape[0]), "leaves": leaves_total, "max_depth": max_depth,
            "units": units, "estimated_ms_per_row": round(ms, 3)}


def tree_output(choice: Choice, Z: np.ndarray) -> np.ndarray:
    """The model's output for estimator-ready rows ``Z``, in the choice's units, from shap's
    evaluation of the parsed trees (proved equal to the model's by ``_tree_fidelity``)."""
    raw = np.asarray(choice.explainer.model.predict(Z), dtype=float)
    if raw.ndim == 2 and raw.shape[1] > 1:
        raw = raw[:, choice.positive] if choice.units == Units.PROBABILITY else raw[:, -1]
    return raw.reshape(-1) * (1.0 if choice.units == Units.PROBABILITY else choice.sign)


def _tree_fidelity(version: ModelVersion, space: FeatureSpace, choice: Choice) -> float:
    import warnings

    from registry.reference import reference_sample

    from .shapley import estimator_input, estimator_output

    rows = reference_sample(version.input_schema, version.dataset.profile, n=FIDELITY_ROWS,
                            seed=1)
    Z = estimator_input(choice, space.encode(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = tree_output(choice, Z)
        theirs = estimator_output(choice, Z)
    return float(np.max(np.abs(ours - theirs))) if len(Z) else 0.0


_choices: OrderedDict[tuple, Choice] = OrderedDict()
_lock = threading.Lock()


def choices_clear() -> None:
    with _lock:
        _choices.clear()


def explainer_choose(*, version: ModelVersion) -> Choice:
    """The SHAP explainer for ``version`` (cached per process by artifact and schema)."""
    space = FeatureSpace.of(version)
    key = (version.artifact_sha256, tuple(space.names), tuple(space.kinds),
           version.output_schema.get("positive_label"))
    with _lock:
        hit = _choices.get(key)
        if hit is not None:
            return hit
    choice = _choose(version, space)
    with _lock:
        _choices[key] = choice
        while len(_choices) > 16:
            _choices.popitem(last=False)
    return choice


def _permutation(reason: str) -> Choice:
    return Choice(kind=ExplainerKind.PERMUTATION, reason=reason, units=Units.PROBABILITY,
                  inline=False)


def _choose(version: ModelVersion, space: FeatureSpace) -> Choice:
    if version.artifact_format == ArtifactFormat.ONNX:
        return _permutation("ONNX artifact: its internals are not read, so the model-agnostic "
                            "permutation explainer runs over the background set.")
    if not space.numeric_only:
        return _permutation("categorical inputs are encoded inside the model, so per-input "
                            "contributions come from the model-agnostic permutation explainer.")
    loaded = artifact_model_load(version=version)
    prefix, final, why_not = _unwrap(loaded.estimator)
    name = _qualname(final)
    if why_not:
        return _permutation(f"{why_not}, so the model-agnostic permutation explainer runs.")
    names = getattr(loaded.estimator, "feature_names_in_", None)
    order = ([space.names.index(str(n)) for n in names] if names is not None
             else list(range(len(space.names))))
    classes = [str(c) for c in getattr(final, "classes_", [])]
    pos = positive_index(version, classes)
    binary = len(classes) == 2
    common = {"estimator": final, "prefix": prefix, "order": order, "positive": pos,
              "input_names": [str(n) for n in names] if names is not None else None}
    if name in TREE_CLASSES:
        probability = name in PROBABILITY_TREES
        if not probability and not binary:
            return _permutation(f"{type(final).__name__} with {len(classes)} classes adds up "
                                "to softmax margins, so the permutation explainer runs on "
                                "the positive class's probability.")
        import shap

        try:
            explainer = shap.TreeExplainer(final, feature_perturbation="tree_path_dependent")
        except Exception as exc:  # noqa: BLE001 - an ensemble shap cannot parse
            return _permutation(f"shap's TreeExplainer cannot read this {type(final).__name__} "
                                f"({exc.__class__.__name__}), so the permutation explainer runs.")
        cost = tree_cost(explainer)
        choice = Choice(kind=ExplainerKind.TREE, reason="", units=Units.PROBABILITY
                        if probability else Units.LOG_ODDS, inline=False, cost=cost,
                        explainer=explainer, sign=1.0 if probability or pos == 1 else -1.0,
                        **common)
        # Per row, TreeSHAP's values are checked against shap's own evaluation of the
        # trees (C, microseconds; scikit-learn's predict on one row of a 200-tree forest
        # costs ~10 ms): so prove once that shap read the trees right, on rows drawn
        # from the training profile.
        fidelity = _tree_fidelity(version, space, choice)
        cost["parsed_trees_max_abs_diff"] = fidelity
        tolerance = FIDELITY_TOLERANCE_FLOAT32 if name in FLOAT32_TREES else FIDELITY_TOLERANCE
        cost["fidelity_tolerance"] = tolerance
        if not fidelity <= tolerance:
            return _permutation(f"shap's reading of this {type(final).__name__} differs from "
                                f"the model by up to {fidelity:.2e}, so the permutation "
                                "explainer runs.")
        inline = cost["estimated_ms_per_row"] <= inline_budget_ms()
        reason = (f"{type(final).__name__}: exact TreeSHAP from its {cost['trees']} trees "
                  f"({cost['leaves']} leaves, depth up to {cost['max_depth']}; about "
                  f"{cost['estimated_ms_per_row']} ms a row, "
                  + ("answered inline" if inline else
                     f"over the {inline_budget_ms():g} ms inline budget, so computed by a worker")
                  + ").")
        choice.reason, choice.inline = reason, inline
        return choice
    if name in LINEAR_CLASSES:
        if not binary:
            return _permutation(f"{type(final).__name__} with {len(classes)} classes: the "
                                "permutation explainer runs on the positive class's "
                                "probability.")
        if name.endswith("SGDClassifier") and getattr(final, "loss", "") != "log_loss":
            return _permutation("an SGDClassifier without logistic loss: its probabilities "
                                "are not a logistic function of its margin.")
        scaled = " after its per-feature scaling (reported in the original units)" \
            if prefix is not None else ""
        return Choice(kind=ExplainerKind.LINEAR, units=Units.LOG_ODDS, inline=True,
                      reason=f"{type(final).__name__}: exact LinearExplainer from its "
                             f"coefficients{scaled}.",
                      cost={"coefficients": len(space.names)},
                      sign=1.0 if pos == 1 else -1.0, **common)
    return _permutation(f"no exact explainer for {type(final).__name__}, so the model-agnostic "
                        "permutation explainer runs over the background set.")
