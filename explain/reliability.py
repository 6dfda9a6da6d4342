"""A version's explanation figures: global importance and explanation reliability.

(With five features or fewer the top-k sets below use k = features − 1, since a top 5
of five features always agrees.)

1. Global importance: mean |SHAP| per feature over the background set (at most
   ``GLOBAL_ROWS`` of its rows; ``PERMUTATION_GLOBAL_ROWS`` for the permutation
   explainer, which costs hundreds of model calls a row), in the explainer's units.
2. LIME stability: ``RELIABILITY_ROWS`` rows of the background set, each explained by
   LIME with ``len(SEEDS)`` seeds (the per-prediction setting: same samples, same
   discretiser). Per row, the mean Jaccard index of the top-5 feature sets over the
   pairs of seeds; reported as the mean over rows and the worst row.
3. SHAP–LIME agreement on the same rows: the share of SHAP's top 5 that is also in
   LIME's top 5 (seed ``SEEDS[0]``), and among the shared features the share whose
   sign agrees.
4. A plain reading of both, with the thresholds below.

Progress is reported after every row through ``progress(done, total, stage)``; a
callback that raises stops the computation (the job lost its claim).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np

from core.errors import ValidationFailed
from core.hashing import sha256_json
from registry.loading import version_model_load
from registry.models import ModelVersion

from .choice import explainer_choose
from .compute import library_versions
from .limetab import DEFAULT_SAMPLES, lime_handle
from .models import ExplainerKind
from .shapley import shap_rows
from .space import FeatureSpace, background_for, positive_index, positive_proba_fn, subsample

TOP_K = 5
SEEDS = (0, 1, 2, 3, 4)
RELIABILITY_ROWS = 50
GLOBAL_ROWS = 500
PERMUTATION_GLOBAL_ROWS = 50
ROWS_SEED = 0
# Readings: LIME is "stable" when its top 5 barely move between seeds, on average and on
# its worst row; SHAP and LIME "agree" when most of the top 5 and their signs match.
STABLE_MEAN, STABLE_WORST = 0.8, 0.6
AGREE_OVERLAP, AGREE_SIGN = 0.6, 0.8

DEFAULT_PARAMETERS = {"top_k": TOP_K, "seeds": list(SEEDS), "rows": RELIABILITY_ROWS,
                      "lime_samples": DEFAULT_SAMPLES, "global_rows": GLOBAL_ROWS}


def _top(weights: np.ndarray, k: int) -> list[int]:
    # Ties by feature index, so the set is a function of the weights alone.
    order = sorted(range(len(weights)), key=lambda j: (-abs(float(weights[j])), j))
    return order[:k]


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def version_figures(*, version: ModelVersion, parameters: dict | None = None,
                    progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Compute the figures (see the module's steps); returns the stored content with
    ``explainer``, ``reason``, ``units``, ``background`` and ``library_versions``."""
    params = {**DEFAULT_PARAMETERS, **(parameters or {})}
    started = time.perf_counter()
    space = FeatureSpace.of(version)
    # With no more features than k, every top-k set is all of them and agrees trivially:
    # compare the top n-1 instead (recorded as top_k).
    k = max(1, min(int(params["top_k"]), len(space.names) - 1))
    seeds = [int(s) for s in params["seeds"]]
    background = background_for(version, space)
    choice = explainer_choose(version=version)
    permutation = choice.kind == ExplainerKind.PERMUTATION
    global_rows = min(int(params["global_rows"]),
                      PERMUTATION_GLOBAL_ROWS if permutation else int(params["global_rows"]))
    complete = background.matrix[~np.isnan(background.matrix).any(axis=1)]
    if len(complete) == 0:
        raise ValidationFailed("The background set has no complete row to explain.",
                               code="no_complete_rows")
    rows_g = subsample(complete, global_rows, ROWS_SEED)
    rows_r = subsample(complete, int(params["rows"]), ROWS_SEED + 1)
    total = 1 + len(rows_r)
    report = progress or (lambda done, total, stage: None)
    report(0, total, "global importance")
    shap_g = shap_rows(version, space, rows_g, background, seed=0, choice=choice)
    importance = np.abs(shap_g.values).mean(axis=0)
    report(1, total, "LIME stability and SHAP agreement")
    shap_r = shap_rows(version, space, rows_r, background, seed=0, choice=choice)
    handle = lime_handle(version, space)
    loaded = version_model_load(version=version, purpose="batch")
    f = positive_proba_fn(loaded, space, positive_index(version, loaded.classes or None))
    per_row_stability, overlaps, signs = [], [], []
    samples = int(params["lime_samples"])
    for i, row in enumerate(rows_r):
        tops, first = [], None
        for seed in seeds:
            result = handle.explain(row, f, seed=seed, samples=samples)
            tops.append(set(_top(result.weights, k)))
            if first is None:
                first = result.weights
        pairs = list(itertools.combinations(tops, 2))
        per_row_stability.append(float(np.mean([jaccard(a, b) for a, b in pairs]))
                                 if pairs else 1.0)
        shap_top = set(_top(shap_r.values[i], k))
        shared = shap_top & tops[0]
        overlaps.append(len(shared) / k if k else 1.0)
        if shared:
            signs.append(float(np.mean([np.sign(shap_r.values[i][j]) == np.sign(first[j])
                                        for j in shared])))
        report(2 + i, total, "LIME stability and SHAP agreement")
    stability_mean = float(np.mean(per_row_stability))
    stability_worst = float(np.min(per_row_stability))
    overlap_mean = float(np.mean(overlaps))
    sign_mean = float(np.mean(signs)) if signs else None
    stable = stability_mean >= STABLE_MEAN and stability_worst >= STABLE_WORST
    agree = overlap_mean >= AGREE_OVERLAP and (sign_mean is None or sign_mean >= AGREE_SIGN)
    ranked = sorted(range(len(space.names)), key=lambda j: (-float(importance[j]), j))
    content = {
        "global_importance": {
            "statistic": "mean |SHAP|", "units": shap_g.units, "rows": len(rows_g),
            "features": [{"feature": space.names[j], "mean_abs": float(importance[j])}
                         for j in ranked]},
        "lime_stability": {
            "statistic": f"Jaccard index of the top {k} of {len(space.names)} features between "
                         "seeds",
            "rows": len(rows_r), "seeds": seeds, "samples": samples, "top_k": k,
            "mean": stability_mean, "worst": stability_worst,
            "thresholds": {"mean": STABLE_MEAN, "worst": STABLE_WORST},
            "reading": "stable" if stable else "unstable: do not rely on LIME for this model",
            "stable": stable},
        "shap_lime_agreement": {
            "statistic": f"share of SHAP's top {k} also in LIME's top {k}; sign agreement "
                         "among those shared",
            "rows": len(rows_r), "top_k": k, "feature_agreement": overlap_mean,
            "sign_agreement": sign_mean,
            "thresholds": {"feature_agreement": AGREE_OVERLAP, "sign_agreement": AGREE_SIGN},
            "reading": ("SHAP and LIME agree on the leading features" if agree else
                        "SHAP and LIME disagree on the leading features: "
                        + ("prefer SHAP, which is exact for this model"
                           if not permutation else "read both with care")),
            "agree": agree},
        "parameters": {**params, "top_k": k, "rows_seed": ROWS_SEED},
    }
    return {
        "content": content, "explainer": shap_g.kind, "reason": shap_g.reason,
        # The explained rows are the background set's, whichever explainer ran.
        "units": shap_g.units, "background_source": background.source,
        "background_sha256": background.sha256,
        "library_versions": library_versions(lime=True),
        "compute_ms": round((time.perf_counter() - started) * 1000, 1),
        "parameters_sha256": sha256_json(params),
    }
