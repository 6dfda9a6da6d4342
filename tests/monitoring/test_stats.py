"""The statistics on counts, against direct computations on the raw arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from monitoring import stats
from monitoring.layout import _layout


def _profile_column(values: np.ndarray, bins: int = 10) -> dict:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    counts, _ = np.histogram(values, bins=edges)
    return {"type": "number", "count": len(values), "missing_rate": 0.0,
            "quantiles": edges.tolist(), "bin_frequencies": (counts / len(values)).tolist()}


def test_psi_of_identical_shares_is_zero_and_grows_with_a_shift():
    shares = [0.1] * 10
    assert stats.psi([100] * 10, shares) == pytest.approx(0.0)
    shifted = [5, 10, 20, 40, 80, 120, 160, 200, 210, 155]
    o = np.clip(np.array(shifted) / sum(shifted), 1e-4, None)
    assert stats.psi(shifted, shares) == pytest.approx(float(np.sum((o - 0.1) * np.log(o / 0.1))))


def test_binned_ks_is_a_lower_bound_of_the_exact_statistic_and_conservative():
    rng = np.random.default_rng(1)
    train = rng.normal(size=3000)
    layout = _layout("x", "number", _profile_column(train))
    for shift in (0.0, 0.1, 0.3, 1.0):
        live = rng.normal(loc=shift, size=2000)
        bins, _missing = layout.bin_values(live.tolist())
        counts = np.bincount(bins, minlength=layout.size)
        binned = stats.binned_ks(counts, layout.reference, layout.n_reference)
        exact = ks_2samp(live, train)
        assert binned.statistic <= exact.statistic + 1e-12
        assert binned.p_value >= exact.pvalue * 0.5  # conservative (up to the asymptotics)
        assert binned.approximate
        if shift >= 0.3:
            assert binned.p_value < 1e-6


def test_values_outside_the_training_range_land_in_the_outer_bins():
    layout = _layout("x", "number", {"type": "number", "count": 10, "missing_rate": 0.0,
                                     "quantiles": [0.0, 1.0, 2.0],
                                     "bin_frequencies": [0.5, 0.5]})
    bins, missing = layout.bin_values([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, None, "x"])
    assert bins[:6].tolist() == [0, 1, 1, 2, 2, 3]  # 2.0 is in the last, closed, bin
    assert missing.tolist() == [False] * 6 + [True, True]
    assert layout.psi_counts(np.array([1, 2, 3, 4])).tolist() == [3.0, 7.0]
    constant = _layout("c", "integer", {"type": "integer", "count": 5, "missing_rate": 0.0,
                                        "quantiles": [4.0], "bin_frequencies": [1.0]})
    assert constant.bin_values([3, 4, 5])[0].tolist() == [0, 1, 2]


def test_chi_square_equals_scipys_contingency_test_when_no_cell_is_pooled():
    live = np.array([120, 80, 50])
    shares = np.array([0.5, 0.3, 0.2])
    result = stats.chi_square(live, shares, 400)
    statistic, p, dof, _ = chi2_contingency(np.vstack([live, shares * 400]), correction=False)
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p) and dof == 2


def test_categories_too_rare_for_the_test_are_pooled():
    result = stats.chi_square([50, 48, 1, 1], [0.49, 0.49, 0.01, 0.01], 500)
    assert result.note == "2 degrees of freedom"  # the two rare categories, pooled
    assert result.p_value > 0.05


def test_latency_percentiles_from_the_histogram_are_within_one_bin():
    rng = np.random.default_rng(2)
    latency = rng.lognormal(mean=2.5, sigma=0.6, size=5000)
    ids = stats.latency_bin(latency)
    counts = {int(k): int(v) for k, v in zip(*np.unique(ids, return_counts=True), strict=True)}
    for q in (0.5, 0.95):
        exact = float(np.quantile(latency, q))
        estimate = stats.histogram_quantile(counts, q)
        assert exact <= estimate <= exact * 1.06 + 1e-9


def test_calibration_is_sklearns_reliability_curve_with_counts():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    score = rng.random(1000)
    y = (rng.random(1000) < score ** 1.3).astype(int)
    curve = stats.calibration(y, score)
    prob_true, prob_pred = calibration_curve(y, score, n_bins=10)
    assert [b["observed_rate"] for b in curve["bins"]] == pytest.approx(list(prob_true))
    assert [b["mean_score"] for b in curve["bins"]] == pytest.approx(list(prob_pred))
    assert sum(b["n"] for b in curve["bins"]) == 1000
    assert curve["ece"] == pytest.approx(sum(
        b["n"] * abs(b["observed_rate"] - b["mean_score"]) for b in curve["bins"]) / 1000)
