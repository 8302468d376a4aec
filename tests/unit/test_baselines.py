"""EARS C1/C2/C3 and Farrington against hand computations on small series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qualitywatch.evaluation.baselines import (
    BASELINES,
    ears_c1,
    ears_c2,
    ears_c3,
    ears_statistic,
    farrington,
    farrington_bound,
    farrington_fit,
    farrington_levels,
)

SD_1_TO_7 = math.sqrt(28 / 6)  # sample sd of 1..7 (mean 4)


def test_c1_compares_with_the_seven_periods_before():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 20], dtype=float)
    assert ears_statistic(y, 1)[7] == pytest.approx((20 - 4) / SD_1_TO_7)
    assert ears_c1(y).tolist() == [False] * 7 + [True]
    y[7] = 10  # (10 - 4) / 2.16 = 2.78 < 3
    assert not ears_c1(y)[7]


def test_c2_skips_a_two_period_guard_band():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 100, 100, 14], dtype=float)
    assert ears_statistic(y, 3)[9] == pytest.approx((14 - 4) / SD_1_TO_7)  # baseline y[0..6]
    assert ears_c2(y)[9]
    assert not ears_c1(y)[9]  # C1's baseline holds the two 100s
    assert not ears_c2(y)[:9].any()  # too little history before t = 9


def test_c3_sums_the_excess_of_three_c2_statistics():
    y = np.array([2, 4, 2, 4, 2, 4, 2, 4, 2, 5, 5, 5], dtype=float)
    sd = math.sqrt((4 * (2 - 20 / 7) ** 2 + 3 * (4 - 20 / 7) ** 2) / 6)
    c2 = [(5 - 20 / 7) / sd, (5 - 22 / 7) / sd, (5 - 20 / 7) / sd]  # t = 9, 10, 11
    assert ears_statistic(y, 3)[9:].tolist() == pytest.approx(c2)
    assert sum(max(0.0, c - 1) for c in c2) == pytest.approx(2.747, abs=1e-3)
    assert ears_c3(y).tolist() == [False] * 11 + [True]
    assert not ears_c2(y).any()  # no single C2 above 3


def test_sd_floor_keeps_one_failure_after_zeros_from_alarming():
    y = np.zeros(9)
    y[8] = 1
    assert not ears_c1(y)[8]  # (1 - 0) / 0.5 = 2
    y[8] = 2
    assert ears_c1(y)[8]  # 4 > 3


def _farrington_series(ref: list[int], t: int = 60) -> np.ndarray:
    y = np.zeros(t + 1)
    y[t - 52 - 3 : t - 52 + 4] = ref  # the 7 reference weeks one year back
    return y


def test_farrington_bound_by_hand_without_trend():
    # one year of history: reference weeks 5..11, mean 5, Pearson X2 = 0.8 -> phi = 1; no residual > 1
    y = _farrington_series([4, 6, 5, 5, 4, 6, 5])
    mu0, phi, n = 5.0, 1.0, 7
    se_fit2 = mu0**2 * phi / (n * mu0)  # Var(mu0_hat) by the delta method for an intercept-only fit
    tau = phi + se_fit2 / mu0
    bound = (mu0 ** (2 / 3) + 1.959964 * math.sqrt(4 / 9 * mu0 ** (1 / 3) * tau)) ** 1.5
    assert bound == pytest.approx(10.354, abs=1e-3)
    assert farrington_bound(y, 60) == pytest.approx(bound, rel=1e-6)
    y[60] = 11
    assert farrington(y)[60]
    y[60] = 10
    assert not farrington(y)[60]


def test_farrington_needs_a_year_of_history_and_five_recent_cases():
    assert farrington_bound(np.ones(60), 50) is None
    y = _farrington_series([0] * 7)
    assert farrington_bound(y, 60) == 0.0
    y[60] = 3  # above a zero bound, but fewer than 5 cases in the last 4 weeks
    assert not farrington(y)[60]
    y[60] = 5
    assert farrington(y)[60]


def test_farrington_reweighting_discounts_a_past_outbreak():
    y = _farrington_series([5, 5, 5, 30, 5, 5, 5])
    assert farrington_bound(y, 60, reweight=True) < farrington_bound(y, 60, reweight=False)


def _years(values: tuple[int, int, int], t: int = 160) -> np.ndarray:
    y = np.zeros(t + 1)
    for j, v in zip((1, 2, 3), values, strict=True):  # j years back
        y[t - 52 * j - 3 : t - 52 * j + 4] = v
    return y


def test_farrington_trend_is_kept_only_when_significant_and_not_over_extrapolating():
    flat = farrington_bound(_years((20, 20, 20)), 160)
    assert farrington_bound(_years((10, 20, 30)), 160) < flat  # falling counts: the trend is kept
    # rising counts would extrapolate above the largest reference count: the trend is dropped, and
    # without a trend the order of the years does not matter
    rising = farrington_bound(_years((30, 20, 10)), 160)
    assert rising == pytest.approx(farrington_bound(_years((20, 30, 10)), 160), rel=1e-6)
    assert rising < 40


def test_every_baseline_returns_one_flag_per_week():
    rng = np.random.default_rng(0)
    y = rng.poisson(6, 120).astype(float)
    for fn in BASELINES.values():
        out = fn(y)
        assert out.shape == y.shape and out.dtype == bool
        assert not out[:7].any()


def test_farrington_at_several_levels_fits_once_and_agrees_with_each_level_alone():
    # the by-hand series above: expected 5 counts, 2/3-power standard error from phi = 1
    y = _farrington_series([4, 6, 5, 5, 4, 6, 5])
    fit = farrington_fit(y, 60)
    assert fit is not None
    mu0, se = fit
    assert mu0 == pytest.approx(5.0)
    assert se == pytest.approx(math.sqrt(4 / 9 * 5.0 ** (1 / 3) * (1 + 1 / 7)))
    strict, published = farrington_bound(y, 60, alpha=0.001), farrington_bound(y, 60)
    assert strict is not None and published is not None and strict > published
    rng = np.random.default_rng(3)
    y = rng.poisson(4.0, size=200).astype(float)
    y[120:124] += 12  # an outbreak some levels flag and others do not
    alphas = (0.05, 1e-3, 1e-6)
    levels = farrington_levels(y, alphas)
    for a in alphas:
        assert levels[a].tolist() == farrington(y, alpha=a).tolist()
    assert levels[0.05].sum() > levels[1e-6].sum() > 0  # a stricter level flags fewer weeks
