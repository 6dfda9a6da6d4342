"""The statistics of monitoring, on counts and arrays (no Django, no database).

Drift is computed against the training profile alone (``DatasetVersion.profile``:
quantile bin edges and the share of training values in each bin, category shares,
missing rate), never against raw training rows, so patient data need not leave the
researcher's machine. Everything here takes counts that ``monitoring.aggregation``
accumulated from the prediction log, so a window needs no rescan of raw inputs.

The tests and their defaults (documented in docs/operations.md, "Monitoring"):

* **PSI** (population stability index) on the profile's quantile bins:
  ``sum((o - r) * ln(o / r))`` over bins, shares clipped at ``PSI_EPSILON`` as
  Evidently does. Live values below the training minimum count in the first bin and
  above the maximum in the last (the outer bins reach to infinity).
* **Numeric features: Kolmogorov–Smirnov**, two-sample, against the profile's
  distribution. The profile knows the training CDF only at its quantile edges, so the
  statistic is the largest gap between the two CDFs *at those edges*: a lower bound of
  the exact KS statistic, so the p-value (at the effective size ``n·m/(n+m)``, m =
  training values; exact below 35, Kolmogorov's limit with Stephens' correction above,
  see ``ks_p_value``) is conservative. It is labelled approximate wherever it is shown.
* **Categorical and boolean features: chi-square** test of homogeneity on the 2 × k
  table (live counts, training counts rebuilt from shares × training count); categories
  whose expected count is below 5 are pooled, as the test needs.
* The window size decides whether there is a verdict at all: below ``min_predictions``
  (30) there is none. Above it, a feature is in warning or alert only when PSI is past
  the threshold *and* the test rejects at the p-value threshold (0.05): in a small window
  PSI is noisy (about ``(bins − 1)(1/n + 1/m)`` with no drift at all), which the test
  guards against; in a large one any test rejects trivial differences, which PSI's
  magnitude guards against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PSI_EPSILON = 1e-4
CHI2_MIN_EXPECTED = 5.0


def psi(observed: Sequence[float], reference: Sequence[float]) -> float:
    """PSI between observed counts (or shares) and reference shares over the same bins."""
    o = np.asarray(observed, dtype=float)
    r = np.asarray(reference, dtype=float)
    if o.sum() <= 0 or r.sum() <= 0:
        return float("nan")
    o = np.clip(o / o.sum(), PSI_EPSILON, None)
    r = np.clip(r / r.sum(), PSI_EPSILON, None)
    return float(np.sum((o - r) * np.log(o / r)))


@dataclass(frozen=True)
class TestResult:
    test: str  # "ks" | "chi2"
    statistic: float
    p_value: float
    approximate: bool
    note: str = ""


def binned_ks(counts: Sequence[int], reference: Sequence[float], n_reference: int) -> TestResult:
    """Two-sample KS evaluated at the profile's quantile edges.

    ``counts``: live values below the first edge, in each of the k bins, above the last
    edge (k + 2 numbers); ``reference``: the k training shares per bin.
    """
    c = np.asarray(counts, dtype=float)
    n = float(c.sum())
    k = len(reference)
    if n <= 0 or n_reference <= 0 or len(c) != k + 2:
        return TestResult("ks", float("nan"), float("nan"), True, "no values")
    # Live CDF just below each edge e_0..e_{k-1}, and at or below the last edge e_k.
    live = np.concatenate(([c[0]], c[0] + np.cumsum(c[1:k]), [n - c[-1]])) / n
    ref = np.concatenate(([0.0], np.cumsum(np.asarray(reference, dtype=float))[:k - 1], [1.0]))
    d = float(np.max(np.abs(live - ref)))
    effective = n * n_reference / (n + n_reference)
    return TestResult("ks", d, ks_p_value(d, effective), True,
                      "approximate: the training CDF is known at its quantile edges only")


KS_EXACT_BELOW = 35


def ks_p_value(d: float, effective: float) -> float:
    """P(D ≥ d) for the KS statistic at effective size ``effective`` (n·m/(n+m)).

    Chosen by size: below ``KS_EXACT_BELOW`` the exact distribution
    (``scipy.stats.kstwo``, ~0.4 ms a call); above it Kolmogorov's limit with Stephens'
    small-sample correction, ``Q((√n + 0.12 + 0.11/√n)·d)`` (~1 µs; within 0.02 of the
    exact value at 35, 0.003 at 2,000), since a run computes hundreds of them.
    """
    if d <= 0:
        return 1.0
    if effective < KS_EXACT_BELOW:
        from scipy.stats import kstwo

        p = float(kstwo.sf(d, max(1, round(effective))))
    else:
        from scipy.special import kolmogorov

        root = math.sqrt(effective)
        p = float(kolmogorov((root + 0.12 + 0.11 / root) * d))
    return min(1.0, max(0.0, p))


def chi_square(counts: Sequence[int], reference: Sequence[float], n_reference: int) -> TestResult:
    """Chi-square test of homogeneity, live counts against training shares × count."""
    o = np.asarray(counts, dtype=float)
    r = np.asarray(reference, dtype=float) * float(n_reference)
    n, m = float(o.sum()), float(r.sum())
    if n <= 0 or m <= 0:
        return TestResult("chi2", float("nan"), float("nan"), False, "no values")
    total = o + r
    keep = total > 0
    o, r, total = o[keep], r[keep], total[keep]
    # Pool the cells whose smaller expected count is below the minimum (smallest first).
    expected_min = total * min(n, m) / (n + m)
    small = expected_min < CHI2_MIN_EXPECTED
    if small.any():
        pooled_o, pooled_r = o[small].sum(), r[small].sum()
        o, r = o[~small], r[~small]
        if pooled_o + pooled_r > 0:
            o, r = np.append(o, pooled_o), np.append(r, pooled_r)
    if len(o) < 2:
        return TestResult("chi2", 0.0, 1.0, False, "one category after pooling rare ones")
    table = np.vstack([o, r])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(np.nansum((table - expected) ** 2 / expected))
    from scipy.stats import chi2

    dof = len(o) - 1
    return TestResult("chi2", statistic, float(chi2.sf(statistic, dof)), False,
                      f"{dof} degrees of freedom")


# -- histograms ---------------------------------------------------------------------

# Latency of single predictions: log-spaced bins from 0.01 ms to 100 s, 40 per decade
# (each bin ~6% wide), so a percentile is known to within 6% without keeping values.
LATENCY_EDGES = 10.0 ** np.linspace(-2, 5, 7 * 40 + 1)
SCORE_BINS = 100  # scores in [0, 1], bins of 0.01 (the 0.5 decision boundary is an edge)


def latency_bin(values: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(LATENCY_EDGES, values, side="right") - 1, 0,
                   len(LATENCY_EDGES) - 2)


def score_bin(values: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(values, dtype=float) * SCORE_BINS).astype(int), 0, SCORE_BINS - 1)


def histogram_quantile(counts: dict[int, int] | Sequence[int], q: float) -> float | None:
    """The upper edge of the latency bin holding the q-quantile (within one bin's width)."""
    if isinstance(counts, dict):
        items = sorted((int(k), int(v)) for k, v in counts.items() if int(v) > 0)
    else:
        items = [(i, int(v)) for i, v in enumerate(counts) if v]
    total = sum(v for _, v in items)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in items:
        seen += count
        if seen >= rank:
            return float(LATENCY_EDGES[index + 1])
    return float(LATENCY_EDGES[items[-1][0] + 1])


# -- performance from outcomes -------------------------------------------------------

def observed_performance(y: np.ndarray, score: np.ndarray, predicted: np.ndarray) -> dict:
    """AUC, Brier score, accuracy, sensitivity and specificity (at the model's own
    decision: its logged label) from outcomes ``y`` (1 = positive), scores and the
    logged positive-label decisions. scikit-learn computes AUC and Brier."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    predicted = np.asarray(predicted, dtype=int)
    n = int(len(y))
    positives = int(y.sum())
    out: dict = {"n": n, "positives": positives, "negatives": n - positives}
    if n == 0:
        return out
    out["brier"] = float(brier_score_loss(y, score, pos_label=1))
    out["accuracy"] = float((predicted == y).mean())
    out["error_rate"] = 1.0 - out["accuracy"]
    if positives:
        out["sensitivity"] = float(((predicted == 1) & (y == 1)).sum() / positives)
    if n - positives:
        out["specificity"] = float(((predicted == 0) & (y == 0)).sum() / (n - positives))
    if 0 < positives < n:
        out["auc"] = float(roc_auc_score(y, score))
    return out


def calibration(y: np.ndarray, score: np.ndarray, n_bins: int = 10) -> dict:
    """Reliability curve on equal-width bins, as ``sklearn.calibration.calibration_curve``
    (strategy "uniform") computes it, with each bin's count, and the expected
    calibration error (ECE: the count-weighted mean gap)."""
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    if len(y) == 0:
        return {"bins": [], "ece": None, "n": 0}
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], score)  # sklearn's own binning
    sums = np.bincount(ids, weights=score, minlength=n_bins)
    trues = np.bincount(ids, weights=y, minlength=n_bins)
    totals = np.bincount(ids, minlength=n_bins)
    bins = [{"lower": float(edges[i]), "upper": float(edges[i + 1]),
             "mean_score": float(sums[i] / totals[i]), "observed_rate": float(trues[i] / totals[i]),
             "n": int(totals[i])} for i in range(n_bins) if totals[i]]
    return {"bins": bins, "ece": expected_calibration_error(bins), "n": int(len(y))}


def expected_calibration_error(bins: Sequence[dict]) -> float | None:
    total = sum(b["n"] for b in bins)
    if not total:
        return None
    return float(sum(b["n"] * abs(b["observed_rate"] - b["mean_score"]) for b in bins) / total)


# -- estimated performance (confidence-based, as NannyML's CBPE) --------------------------

def estimated_performance(counts: Sequence[int], sums: Sequence[float],
                          decision_bin: int = SCORE_BINS // 2) -> dict:
    """Performance expected from the scores alone, if they are calibrated.

    A calibrated score s is the probability that the case is positive, so each
    prediction counts s towards the positives and 1 − s towards the negatives
    (NannyML's CBPE). From scores binned by 0.01 (``counts`` and score ``sums`` per bin;
    predicted positive from ``decision_bin`` up, i.e. score ≥ 0.5):

    1. expected positives per bin = sum of its scores; negatives = count − that;
    2. expected TP, FN, TN, FP = those totals on either side of the decision;
    3. sensitivity = TP / (TP + FN), specificity = TN / (TN + FP), accuracy = (TP + TN) / n;
    4. AUC = P(score of a positive > score of a negative) with the expected weights,
       pairs within one bin counted half (their order inside a 0.01 bin is not kept).
    """
    c = np.asarray(counts, dtype=float)
    s = np.asarray(sums, dtype=float)
    n = float(c.sum())
    if n <= 0:
        return {"n": 0}
    pos = np.clip(s, 0.0, c)
    neg = c - pos
    tp, fn = pos[decision_bin:].sum(), pos[:decision_bin].sum()
    fp, tn = neg[decision_bin:].sum(), neg[:decision_bin].sum()
    out = {"n": int(n), "expected_positives": float(pos.sum()),
           "accuracy": float((tp + tn) / n), "error_rate": float((fp + fn) / n)}
    if tp + fn > 0:
        out["sensitivity"] = float(tp / (tp + fn))
    if tn + fp > 0:
        out["specificity"] = float(tn / (tn + fp))
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos > 0 and total_neg > 0:
        below = np.concatenate(([0.0], np.cumsum(neg)[:-1]))
        out["auc"] = float(np.sum(pos * (below + 0.5 * neg)) / (total_pos * total_neg))
    return out


def score_histogram(scores: np.ndarray) -> tuple[list[int], list[float]]:
    """Counts and score sums per 0.01 bin (what the aggregation keeps per hour and day)."""
    scores = np.asarray(scores, dtype=float)
    ids = score_bin(scores)
    return (np.bincount(ids, minlength=SCORE_BINS).astype(int).tolist(),
            np.bincount(ids, weights=scores, minlength=SCORE_BINS).tolist())


def finite_or_none(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)
