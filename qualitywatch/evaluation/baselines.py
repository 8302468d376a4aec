"""Classic count-based outbreak detectors, the yardstick QualityWatch is measured against.

They read weekly failure COUNTS only (no number of tests), as published:

* EARS C1, C2, C3 (Hutwagner et al. 2003, "The bioterrorism preparedness and response Early
  Aberration Reporting System (EARS)", J Urban Health 80(2) suppl 1). C1: the current count
  against the mean and standard deviation of the 7 periods before it, alarm when
  ``(y - mean) / sd > 3``. C2: the same with a 2-period guard band (baseline t-9 .. t-3). C3: the sum
  of ``max(0, C2 - 1)`` over the current and the 2 previous periods, alarm when it exceeds 2.
  A standard deviation below ``sd_floor`` (half a count) is raised to it so that an all-zero
  baseline does not alarm on a single failure.
* Farrington (Farrington et al. 1996, JRSS A 159:547-563) with the defaults of the R package
  ``surveillance`` (``algo.farrington``): reference weeks t - 52 j + (-w .. w) for j = 1 .. b (b = 5,
  fewer when less history exists, at least one year), a quasi-Poisson GLM with log link and a linear
  trend, dispersion ``phi = max(1, Pearson X^2 / (n - p))``, down-weighting of past outbreaks by
  Anscombe residuals (weights ``s^-2`` above 1, rescaled to sum to n), the trend kept only when
  significant at 5 %, with at least 3 years of data, and not extrapolating above the largest
  reference count; threshold the upper end of the two-sided (1 - alpha) prediction interval on the
  2/3-power scale (alpha = 0.05); no alarm unless the last 4 weeks hold at least 5 cases.

Every function takes a 1-D array of weekly counts and returns a boolean alarm array of the same
length (False where there is too little history).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import norm

__all__ = [
    "BASELINES",
    "ears_c1",
    "ears_c2",
    "ears_c3",
    "ears_statistic",
    "farrington",
    "farrington_bound",
    "farrington_fit",
    "farrington_levels",
]


def ears_statistic(y: np.ndarray, lag: int, sd_floor: float = 0.5) -> np.ndarray:
    """``(y_t - mean) / sd`` of the 7 periods ending ``lag`` periods before t (NaN without history)."""
    y = np.asarray(y, dtype=float)
    out = np.full(y.shape, np.nan)
    for t in range(lag + 6, len(y)):
        base = y[t - lag - 6 : t - lag + 1]
        sd = max(float(np.std(base, ddof=1)), sd_floor)
        out[t] = (y[t] - float(np.mean(base))) / sd
    return out


def ears_c1(y: np.ndarray, threshold: float = 3.0, sd_floor: float = 0.5) -> np.ndarray:
    """EARS C1: baseline the 7 periods just before (t-7 .. t-1)."""
    s = ears_statistic(y, 1, sd_floor)
    alarms: np.ndarray = np.nan_to_num(s, nan=-np.inf) > threshold
    return alarms


def ears_c2(y: np.ndarray, threshold: float = 3.0, sd_floor: float = 0.5) -> np.ndarray:
    """EARS C2: baseline t-9 .. t-3 (two periods of guard band)."""
    s = ears_statistic(y, 3, sd_floor)
    alarms: np.ndarray = np.nan_to_num(s, nan=-np.inf) > threshold
    return alarms


def ears_c3(y: np.ndarray, threshold: float = 2.0, sd_floor: float = 0.5) -> np.ndarray:
    """EARS C3: sum over t-2 .. t of max(0, C2 - 1) above ``threshold``."""
    c2 = ears_statistic(y, 3, sd_floor)
    out = np.zeros(len(c2), dtype=bool)
    for t in range(len(c2)):
        if t < 2 or np.isnan(c2[t - 2 : t + 1]).any():
            continue
        out[t] = float(np.sum(np.maximum(0.0, c2[t - 2 : t + 1] - 1.0))) > threshold
    return out


def _irls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson GLM with log link and prior weights: coefficients, fitted means, (X'WX)^-1."""
    beta = np.zeros(x.shape[1])
    beta[0] = math.log(max(float(np.average(y, weights=w)), 1e-8))
    for _ in range(50):
        eta = x @ beta
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        ww = w * mu
        xtwx = x.T @ (ww[:, None] * x)
        new = np.linalg.solve(xtwx, x.T @ (ww * z))
        if np.max(np.abs(new - beta)) < 1e-9:
            beta = new
            break
        beta = new
    mu = np.exp(x @ beta)
    inv = np.linalg.inv(x.T @ ((w * mu)[:, None] * x))
    return beta, mu, inv


def _fit(
    t_ref: np.ndarray, y: np.ndarray, trend: bool, reweight: bool, weights_threshold: float
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    x = np.column_stack([np.ones_like(t_ref), t_ref]) if trend else np.ones((len(y), 1))
    n, p = x.shape
    w = np.ones(n)
    beta, mu, inv = _irls(x, y, w)
    phi = max(1.0, float(np.sum(w * (y - mu) ** 2 / mu)) / max(n - p, 1))
    if reweight:
        h = np.einsum("ij,jk,ik->i", x, inv, x) * mu  # hat values of the weighted fit
        s = 1.5 * (y ** (2 / 3) - mu ** (2 / 3)) / (mu ** (1 / 6) * np.sqrt(phi * np.clip(1 - h, 1e-6, None)))
        raw = np.ones(n)
        big = s > weights_threshold
        raw[big] = s[big] ** -2.0
        w = raw * n / raw.sum()
        beta, mu, inv = _irls(x, y, w)
        phi = max(1.0, float(np.sum(w * (y - mu) ** 2 / mu)) / max(n - p, 1))
    return beta, inv, phi, x


def farrington_fit(
    y: np.ndarray,
    t: int,
    b: int = 5,
    w: int = 3,
    reweight: bool = True,
    weights_threshold: float = 1.0,
) -> tuple[float, float] | None:
    """The expected count of week ``t`` and its standard error on the 2/3-power scale, from the weeks
    before it (None without a year of history). Every ``alpha`` shares them: see :func:`farrington_bound`.
    """
    y = np.asarray(y, dtype=float)
    idx = [t - 52 * j + d for j in range(1, b + 1) for d in range(-w, w + 1)]
    idx = [i for i in idx if i >= 0]
    years = len(idx) // (2 * w + 1)
    if years < 1 or t - 52 - w < 0:
        return None
    t_ref = np.array(idx, dtype=float)
    y_ref = y[idx]
    if y_ref.sum() == 0:
        return 0.0, 0.0
    use_trend = years >= 3
    for _ in range(2):
        beta, inv, phi, _x = _fit(t_ref, y_ref, use_trend, reweight, weights_threshold)
        x0 = np.array([1.0, float(t)]) if use_trend else np.array([1.0])
        mu0 = float(math.exp(float(x0 @ beta)))
        if use_trend:
            se_beta = math.sqrt(phi * inv[1, 1])
            significant = abs(beta[1] / se_beta) > norm.ppf(0.975) if se_beta > 0 else False
            if not significant or mu0 > y_ref.max():
                use_trend = False
                continue
        break
    var_eta = phi * float(x0 @ inv @ x0)
    se_fit2 = (mu0**2) * var_eta  # delta method: Var(mu0_hat)
    tau = phi + se_fit2 / mu0
    return mu0, math.sqrt(4 / 9 * mu0 ** (1 / 3) * tau)


def farrington_bound(
    y: np.ndarray,
    t: int,
    b: int = 5,
    w: int = 3,
    alpha: float = 0.05,
    reweight: bool = True,
    weights_threshold: float = 1.0,
) -> float | None:
    """Upper prediction bound for week ``t`` from the weeks before it (None without a year of history)."""
    fit = farrington_fit(y, t, b=b, w=w, reweight=reweight, weights_threshold=weights_threshold)
    if fit is None:
        return None
    mu0, se = fit
    return _upper(mu0, se, alpha)


def _upper(mu0: float, se: float, alpha: float) -> float:
    """The upper end of the two-sided (1 - alpha) prediction interval, back from the 2/3-power scale."""
    z = float(norm.ppf(1 - alpha / 2))
    return float((mu0 ** (2 / 3) + z * se) ** 1.5)


def farrington(
    y: np.ndarray, b: int = 5, w: int = 3, alpha: float = 0.05, limit54: tuple[int, int] = (5, 4)
) -> np.ndarray:
    """Farrington alarms for every week with at least a year of history."""
    return farrington_levels(y, (alpha,), b=b, w=w, limit54=limit54)[alpha]


def farrington_levels(
    y: np.ndarray,
    alphas: tuple[float, ...],
    b: int = 5,
    w: int = 3,
    limit54: tuple[int, int] = (5, 4),
) -> dict[float, np.ndarray]:
    """:func:`farrington` at each of ``alphas``, each week's model fitted once for all of them."""
    y = np.asarray(y, dtype=float)
    out = {a: np.zeros(len(y), dtype=bool) for a in alphas}
    cases, weeks = limit54
    for t in range(len(y)):
        if y[max(0, t - weeks + 1) : t + 1].sum() < cases:
            continue
        fit = farrington_fit(y, t, b=b, w=w)
        if fit is None:
            continue
        for a in alphas:
            out[a][t] = y[t] > _upper(*fit, a)
    return out


#: baseline name (as reported) -> alarm function over weekly counts
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "EARS C1": ears_c1,
    "EARS C2": ears_c2,
    "EARS C3": ears_c3,
    "Farrington": farrington,
}
