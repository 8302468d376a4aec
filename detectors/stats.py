"""Small statistics shared by the count detectors: a binomial GLM, dispersion, tails and bounds.

Everything here is pure numpy / math (scipy only for exact binomial tails), deterministic and cheap
enough to run for every series every week: a 156-week logistic fit by IRLS takes well under a
millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import bdtrc, betaln, ndtri

__all__ = [
    "GlmFit",
    "beta_binomial_rho",
    "beta_binomial_upper_tail",
    "binomial_upper_tail",
    "clopper_pearson_upper",
    "expit",
    "fit_binomial_glm",
    "normal_isf",
    "normal_sf",
    "wilson_upper",
]


def expit(x: float | np.ndarray) -> float | np.ndarray:
    """Inverse logit, numerically safe for large |x| (clipped to [-40, 40]).

    The clip is written as a max and a min (exact, the same values as ``np.clip``), which skips
    ``np.clip``'s Python-level dispatch: this runs in every iteration of every GLM fit.
    """
    out: float | np.ndarray = 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(x, -40.0), 40.0)))
    return out


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal: P(Z > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_isf(p: float) -> float:
    """Inverse of :func:`normal_sf` (p clipped to avoid infinities).

    ``-ndtri(p)``: what ``scipy.stats.norm.isf`` computes (to the bit), without the distribution
    machinery's argument handling, which costs ~50x the function itself. The ``+ 0.0`` turns the
    ``-0.0`` of ``p = 0.5`` into ``0.0``, as ``norm.isf`` does.
    """
    return -float(ndtri(min(max(p, 1e-300), 1.0 - 1e-16))) + 0.0


@dataclass(frozen=True, slots=True)
class GlmFit:
    """A fitted logistic model: coefficients, their (unscaled) covariance, fitted probabilities."""

    beta: np.ndarray
    cov: np.ndarray
    mu: np.ndarray
    converged: bool
    iterations: int


def fit_binomial_glm(
    x: np.ndarray,
    failed: np.ndarray,
    tested: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    max_iter: int = 25,
    tol: float = 1e-8,
    ridge: float = 1e-6,
) -> GlmFit:
    """Fit ``logit(p) = x @ beta`` to ``failed`` of ``tested`` by iteratively reweighted least squares.

    ``weights`` (optional, in [0, 1]) down-weight single weeks (e.g. outliers of a first fit).
    ``ridge`` is a tiny penalty on every coefficient but the intercept (column 0) so that a series
    with no failure at all, or a design that is nearly collinear, still gives a finite answer.
    The covariance is the inverse Fisher information (multiply by a dispersion to use it).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(failed, dtype=float)
    n = np.asarray(tested, dtype=float)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or y.shape != n.shape:
        raise ValueError(
            f"fit_binomial_glm: shapes do not match (x {x.shape}, failed {y.shape}, tested {n.shape})"
        )
    pw = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    k = x.shape[1]
    pen = np.full(k, ridge)
    pen[0] = 0.0
    # start at the pooled rate (shrunk away from 0 and 1)
    p0 = (float(pw @ y) + 0.5) / (float(pw @ n) + 1.0)
    beta = np.zeros(k)
    beta[0] = math.log(p0 / (1.0 - p0))
    penalty = np.diag(pen)
    # the working weights are ``pw * n * mu * (1 - mu)``; without ``weights`` (pw = 1, so pw * n is n
    # exactly) they equal the working response's denominator, to the bit, and are not recomputed
    pwn = None if weights is None else pw * n
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        eta = x @ beta
        mu = expit(eta)
        n_mu = n * mu
        one_minus = 1.0 - mu
        var = n_mu * one_minus + 1e-12
        w = var if pwn is None else pwn * mu * one_minus + 1e-12
        z = eta + (y - n_mu) / var
        xw = x * w[:, None]
        info = x.T @ xw + penalty
        new = np.linalg.solve(info, xw.T @ z)
        step = float(np.abs(new - beta).max())
        if not math.isfinite(step):  # ``beta`` is finite: the step is not exactly when ``new`` is not
            break
        beta = new
        if step < tol:
            converged = True
            break
    mu = expit(x @ beta)
    w = (n * mu if pwn is None else pwn * mu) * (1.0 - mu) + 1e-12
    info = x.T @ (x * w[:, None]) + penalty
    cov = np.linalg.inv(info)
    return GlmFit(beta=beta, cov=cov, mu=np.asarray(mu), converged=converged, iterations=it)


def beta_binomial_rho(
    failed: np.ndarray,
    tested: np.ndarray,
    mu: np.ndarray,
    n_params: int = 1,
    weights: np.ndarray | None = None,
) -> float:
    """Moment estimate of the intra-week correlation ``rho`` (beta-binomial overdispersion).

    Under ``Var(Y) = n mu (1 - mu) (1 + (n - 1) rho)`` the excess of the squared residuals over the
    binomial variance, summed over weeks, estimates ``rho * sum n (n - 1) mu (1 - mu)``. The sum of
    squares is corrected for the ``n_params`` fitted coefficients. Never negative (0 = binomial).
    Unlike a quasi-binomial ``phi``, this lets the variance grow with the square of the volume, so a
    campaign week that triples the tests does not look three times as certain as it is.
    """
    y = np.asarray(failed, dtype=float)
    n = np.asarray(tested, dtype=float)
    pw = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    m = float(pw.sum())
    if m <= n_params + 1:
        return 0.0
    v = n * mu * (1.0 - mu)
    excess = float(pw @ ((y - n * mu) ** 2)) * m / (m - n_params) - float(pw @ v)
    denom = float(pw @ (n * (n - 1.0) * mu * (1.0 - mu)))
    if denom <= 0.0:
        return 0.0
    return max(0.0, min(excess / denom, 0.5))


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p) (exact)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    # scipy.special.bdtrc is the ufunc behind binom.sf, without the distribution machinery's
    # argument broadcasting (which cost ~100x the tail itself on this hot path)
    return float(bdtrc(k - 1, n, min(max(p, 0.0), 1.0)))


def beta_binomial_upper_tail(k: int, n: int, p: float, rho: float) -> float:
    """P(X >= k) for a beta-binomial with mean ``n p`` and intra-class correlation ``rho``.

    ``rho = 0`` is the binomial; ``Var = n p (1 - p) (1 + (n - 1) rho)``.
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    if rho <= 1e-9:
        return float(bdtrc(k - 1, n, p))
    rho = min(rho, 0.999)
    a = p * (1.0 - rho) / rho
    b = (1.0 - p) * (1.0 - rho) / rho
    return _beta_binomial_sf(k - 1, n, a, b)


def _beta_binomial_sf(k: int, n: int, a: float, b: float) -> float:
    """P(X > k) for X ~ BetaBinomial(n, a, b), ``0 <= k < n``: one minus the pmf summed over 0..k.

    The same operations, in the same order and on the same array shapes, as
    ``scipy.stats.betabinom.sf(k, n, a, b)`` (its generic ``1 - cdf``, the cdf a sum of
    ``exp(logpmf)``), so the result is identical to the bit; calling it directly skips the
    distribution machinery's argument checking and broadcasting, ~20x the cost of the sum itself.
    ``tests/unit/test_rate.py`` checks the equality.
    """
    j = np.arange(0, float(k) + 1)  # 0.0, 1.0, ..., k
    log_choose = -np.log(n + 1) - betaln(n - j + 1, j + 1)
    log_pmf = log_choose + betaln(j + a, n - j + b) - betaln(a, b)
    cdf = float(np.sum(np.exp(log_pmf), axis=0))
    return min(max(1.0 - cdf, 0.0), 1.0)


def wilson_upper(successes: int, n: int, z: float = 1.6448536269514722) -> float:
    """One-sided Wilson score upper bound of a proportion (default 95 %)."""
    if n <= 0:
        return 1.0
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z2 / n))


def clopper_pearson_upper(successes: int, n: int, alpha: float = 0.05) -> float:
    """One-sided exact (Clopper-Pearson) upper bound of a proportion at level ``1 - alpha``."""
    from scipy.stats import beta as beta_dist

    if n <= 0 or successes >= n:
        return 1.0
    return float(beta_dist.ppf(1 - alpha, successes + 1, n - successes))
