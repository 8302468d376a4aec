"""Rate-aware change detection for one series: a county, or an industry across the prefecture.

Each closed week (:class:`~detectors.base.SeriesWeek`) is compared with what the series' own history
predicts for that week:

* the baseline is a logistic model of the failure probability of each (county, industry) cell of the
  series — a series-level intercept, trend and yearly harmonics, plus one shrunk log-odds offset per
  cell — fitted by IRLS to the failures *out of the number tested* of every cell-week of up to
  ``baseline_weeks`` past weeks (flagged weeks, weeks inside an alarm and a guard band of
  ``guard_weeks`` before the current week are left out). The week's expected failures are the sum
  over its cells of ``n_c p_c``: a campaign or festival week that triples the volume at the same
  quality raises nothing, and one that triples only the cells that rarely fail lowers the expected
  count instead of hiding a rise elsewhere. Harmonics and trend are kept only when the history
  supports them (Wald tests), since every unneeded term is estimation noise in a series with a few
  failures a week;
* overdispersion is beta-binomial on the weekly total: ``Var = n p (1 - p) (1 + (n - 1) rho)`` with
  ``rho`` estimated by moments, so big weeks are not treated as more certain than the history says;
* the current week gets a standardised score ``z`` (the exact beta-binomial tail, the variance
  including the baseline's own estimation error) — a one-week test for sudden jumps — and a
  generalised likelihood ratio over the last ``glr_weeks`` weeks, maximised over the change point,
  a positive log-odds shift and two shapes (a step, or a ramp rising linearly: Hoehle & Paul 2008),
  catches modest sustained or slowly growing rises within a few weeks.

It alarms when either crosses its threshold, emits a ``firing`` warning every week the alarm holds and
a ``resolved`` one after ``resolve_after`` quiet weeks. A GLR alarm also needs the week itself to be
raised: ``z >= onset_z`` to open an alarm, ``z >= hold_z`` to keep one open. The two differ because
the evidence differs: before an alarm the GLR window holds only unflagged weeks, so a crossing is
new evidence and the week need only not contradict it (a ramp's last week is often ordinary by
chance); once an alarm is open its window still holds the weeks that opened it, so the GLR says
nothing new and only a raised week may hold it (otherwise one chance episode fires for weeks).
Levels follow :func:`rate_level`. A series built without its cells (``SeriesWeek.cells`` empty) is
modelled as one cell: its total.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from schemas import Level, RiskWarning, Scope, WarningKind, WarningStatus

from .base import AlarmLatch, Detector, Score, SeriesWeek, make_warning
from .stats import GlmFit, beta_binomial_rho, beta_binomial_upper_tail, expit, fit_binomial_glm, normal_isf

__all__ = ["RateChangeDetector", "rate_level"]

_DAY_SECONDS = 86400.0
_YEAR_DAYS = 365.25
#: the ridge ``fit_binomial_glm`` puts on every coefficient but the intercept; a cell's indicator column
#: is scaled so that this ridge becomes the prior on the cell's offset (``_Baseline.cell_scale``)
_RIDGE = 1e-6
#: one cell of one week: (cell key, tested, failed)
_Cell = tuple[str, int, int]
#: one learned week: (week index, tested, failed, yearly phase, its cells with tests)
_Hist = tuple[int, int, int, float, tuple[_Cell, ...]]


@dataclass(frozen=True, slots=True)
class _Baseline:
    """A fitted baseline: what :meth:`RateChangeDetector.score` predicts a week with.

    ``logit p(cell, week) = x(week) @ beta[:k] + offset(cell)``: the series-level terms (intercept,
    optional trend centred on week ``centre``, ``harmonics`` yearly harmonics) and, when the series
    has several cells, one shrunk log-odds offset per cell in ``cells`` (indicator columns of value
    ``cell_scale``; a cell not in ``cells`` sits at the series level). ``cov`` is the coefficients'
    covariance with the baseline's dispersion folded in, ``rho`` the beta-binomial intra-week
    correlation of the series total.
    """

    beta: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]
    rho: float
    centre: int
    trend: bool
    harmonics: int
    cells: tuple[str, ...]
    cell_scale: float

    def design(self, ts: np.ndarray, phases: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Design rows for weeks ``ts`` with yearly ``phases`` of cells numbered ``cells`` (-1: none)."""
        n_cells = len(self.cells)
        return _design(ts, phases, cells, self.centre, self.trend, self.harmonics, n_cells, self.cell_scale)

    def predict(self, t: int, phase: float, cells: tuple[_Cell, ...]) -> tuple[float, float, float]:
        """Expected failures of a week, their binomial variance, and the variance of the expectation.

        Each cell contributes ``n_c p_c`` at its own baseline probability; the estimation variance is
        ``g' cov g`` with ``g`` the gradient of the expected total with respect to the coefficients.
        (A detector predicts with its fit's :class:`_Predictor`, built once per fit.)
        """
        return _Predictor(self).predict(t, phase, cells)


class _Predictor:
    """A baseline as arrays (coefficients, their covariance) and its cells' numbers, built once per fit.

    Converting the baseline's tuples costs about as much as a prediction, and a fit predicts
    ``refit_weeks`` weeks or more. :meth:`predict` is :meth:`_Baseline.predict`.
    """

    __slots__ = ("beta", "cov", "fit", "index")

    def __init__(self, fit: _Baseline) -> None:
        self.fit = fit
        self.index = {key: i for i, key in enumerate(fit.cells)}
        self.beta = np.asarray(fit.beta)
        self.cov = np.asarray(fit.cov)

    def predict(self, t: int, phase: float, cells: tuple[_Cell, ...]) -> tuple[float, float, float]:
        index = self.index
        n = np.array([c[1] for c in cells], dtype=float)
        rows = self.fit.design(
            np.full(len(cells), float(t)),
            np.full(len(cells), phase),
            np.array([index.get(c[0], -1) for c in cells]),
        )
        mu = np.asarray(expit(rows @ self.beta))
        w = n * mu * (1.0 - mu)
        g = w @ rows
        return float(n @ mu), float(w.sum()), float(g @ self.cov @ g)


def _design(
    ts: np.ndarray,
    phases: np.ndarray,
    cells: np.ndarray,
    centre: float,
    trend: bool,
    harmonics: int,
    n_cells: int,
    cell_scale: float,
) -> np.ndarray:
    """The design rows (C-ordered) for weeks ``ts`` with yearly ``phases`` of cells numbered ``cells``.

    Columns: intercept, the trend if ``trend``, a cosine and a sine per harmonic, then one indicator
    column per cell (``cell_scale`` in the row's cell's column; a number outside ``0..n_cells - 1``,
    such as -1, is no cell). Written column by column into one array: the values of stacking the
    columns, without building each one and copying it again.
    """
    first = 1 + int(trend)  # the first harmonic's cosine column
    x = np.empty((len(ts), first + 2 * harmonics + n_cells))
    x[:, 0] = 1.0
    if trend:
        x[:, 1] = (ts - centre) / 52.0
    for j in range(1, harmonics + 1):
        x[:, first + 2 * j - 2] = np.cos(j * phases)
        x[:, first + 2 * j - 1] = np.sin(j * phases)
    if n_cells:
        block = x[:, first + 2 * harmonics :]
        block[:] = 0.0
        number = np.asarray(cells)
        rows = np.flatnonzero((number >= 0) & (number < n_cells))
        block[rows, number[rows].astype(np.intp)] = cell_scale
    return x


class _Columns:
    """A design matrix (:func:`_design`) from which the designs with fewer terms are taken.

    ``select(trend, harmonics)`` returns what ``_design`` would build with that trend and number of
    harmonics (and the same cells): the same values in the same C-ordered layout, so a fit on it is
    identical to the bit, without recomputing the harmonics' cosines and sines for every refit.
    """

    def __init__(self, x: np.ndarray, trend: bool, harmonics: int) -> None:
        self.x, self.trend, self.harmonics = x, trend, harmonics

    def select(self, trend: bool, harmonics: int) -> np.ndarray:
        if trend == self.trend and harmonics == self.harmonics:
            return self.x
        if (trend and not self.trend) or harmonics > self.harmonics:
            raise ValueError("_Columns.select: only terms of the full design can be selected")
        full = self.x
        first = 1 + int(self.trend)  # the first harmonic's cosine column
        cells = first + 2 * self.harmonics  # the first cell's column
        # copied as (at most) three blocks of columns: intercept and trend, harmonics, cells
        lead = 1 + int(trend)
        out = np.empty((full.shape[0], lead + 2 * harmonics + full.shape[1] - cells))
        out[:, :lead] = full[:, :lead]
        out[:, lead : lead + 2 * harmonics] = full[:, first : first + 2 * harmonics]
        out[:, lead + 2 * harmonics :] = full[:, cells:]
        return out


class _Kept:
    """What a detector derives from its state and keeps from week to week (not state itself).

    The rows of the last baseline fitted: one per cell-week, (week index, yearly phase, cell number,
    tested, failed), in one array. A baseline is nearly that of the previous fit, a few weeks
    on: :meth:`rows` drops the rows of the weeks it no longer has and adds those of its new weeks,
    instead of converting every cell-week again. Its weeks are matched to the history entries the
    rows were built from (entries are immutable tuples: an equal entry has equal rows); anything
    but a move forward (a history restored, or re-sorted by a late week) builds them anew. Cell
    numbers here are the order in which cells were first seen; a fit renumbers the cells of its
    baseline by key.

    And the current fit's :class:`_Predictor`. Both are derived (from the history, from the fit),
    so they are left out of the pickled state (``RateChangeDetector.__getstate__``).
    """

    def __init__(self) -> None:
        self.names: list[str] = []  # cell key by number
        self.numbers: dict[str, int] = {}  # cell number by key
        self._weeks: list[_Hist] = []  # the weeks whose rows are ``_rows[_lo:_hi]``, oldest first
        self._sizes: list[int] = []  # rows per week (its cells with tests)
        self._rows = np.empty((0, 5))
        self._lo = self._hi = 0
        self._predictor: _Predictor | None = None

    def predictor(self, fit: _Baseline) -> _Predictor:
        """The :class:`_Predictor` of ``fit`` (built when ``fit`` is not the one asked for last)."""
        if self._predictor is None or self._predictor.fit is not fit:
            self._predictor = _Predictor(fit)
        return self._predictor

    def rows(self, base: list[_Hist]) -> tuple[np.ndarray, list[int]]:
        """The rows of ``base``'s cell-weeks, week by week (a new array), and how many each week has."""
        weeks = self._weeks
        first = next((i for i, h in enumerate(weeks) if h is base[0]), None) if base else None
        if first is None or weeks[first:] != base[: len(weeks) - first]:
            weeks.clear()  # not a move forward: build every week's rows anew
            self._sizes.clear()
            self._lo = self._hi = 0
        elif first:
            self._lo += sum(self._sizes[:first])
            del weeks[:first], self._sizes[:first]
        self._add(base[len(weeks) :])
        return self._rows[self._lo : self._hi].copy(), self._sizes

    def _add(self, new: list[_Hist]) -> None:
        """Append the rows of the weeks ``new`` (after those held)."""
        if not new:
            return
        numbers = self.numbers
        cells = [c for h in new for c in h[4]]
        for key, _, _ in cells:
            if key not in numbers:
                numbers[key] = len(self.names)
                self.names.append(key)
        sizes = [len(h[4]) for h in new]
        block = np.empty((len(cells), 5))
        block[:, 0] = np.repeat([h[0] for h in new], sizes)
        block[:, 1] = np.repeat([h[3] for h in new], sizes)
        block[:, 2] = [numbers[key] for key, _, _ in cells]
        block[:, 3] = [c[1] for c in cells]
        block[:, 4] = [c[2] for c in cells]
        held = self._rows[self._lo : self._hi]
        if self._hi + len(block) > len(self._rows):  # full: move the rows held to the front of a new array
            self._rows = np.empty((2 * (len(held) + len(block)), 5))
            self._rows[: len(held)] = held
            self._lo, self._hi = 0, len(held)
        self._rows[self._hi : self._hi + len(block)] = block
        self._hi += len(block)
        self._weeks += new
        self._sizes += sizes

    def __eq__(self, other: object) -> bool:
        """Always equal to another ``_Kept``: what they hold is derived, either serves any state."""
        return isinstance(other, _Kept)

    __hash__ = None  # type: ignore[assignment]


def rate_level(ratio: float, p_value: float, firing_weeks: int) -> Level:
    """Four-colour level of a rate alarm (documented in ``docs/detectors.md``, "Level rules").

    ``ratio`` is observed / expected failure rate this week, ``p_value`` the one-week tail
    probability, ``firing_weeks`` how many weeks this alarm has fired, this one included.
    """
    if (ratio >= 3.0 and p_value <= 1e-6) or (ratio >= 2.0 and firing_weeks >= 6):
        return Level.red
    if (ratio >= 2.0 and p_value <= 1e-4) or firing_weeks >= 4:
        return Level.orange
    if (ratio >= 1.5 and p_value <= 1e-3) or firing_weeks >= 2:
        return Level.yellow
    return Level.blue


def _week_of(h: _Hist) -> int:
    return h[0]


def _week_index(origin: datetime, when: datetime) -> int:
    return round((when - origin).total_seconds() / (7 * _DAY_SECONDS))


def _phase(when: datetime) -> float:
    return 2.0 * math.pi * (when.timetuple().tm_yday - 1) / _YEAR_DAYS


def _cells(obs: SeriesWeek) -> tuple[_Cell, ...]:
    """The week's cells with tests (the whole series as one cell when it carries no breakdown)."""
    cells = tuple(c for c in obs.cells if c[1] > 0)
    return cells or (("", obs.tested, obs.failed),)


def _glr(recent: list[tuple[int, float, float]], t: int) -> tuple[float, int, str]:
    """Largest standardised GLR over windows ending at week ``t``: (z, window weeks, shape).

    ``recent`` holds (week, z, c) with ``E[z] ~ d * c`` under a log-odds shift ``d``. For a window
    starting at week ``s`` the likelihood ratio maximised over a positive shift is, in the normal
    approximation, ``max(0, S)^2 / 2`` with ``S = sum(a z) / sqrt(sum(a^2))``: ``a = c`` for a step
    from ``s`` on, ``a = c * (week - s + 1)`` for a ramp rising linearly from ``s`` (Hoehle & Paul
    2008). ``S`` itself is returned so that one threshold reads like a z-score.
    """
    best, best_len, best_shape = -math.inf, 0, "step"
    for i in range(len(recent)):
        s0 = recent[i][0]
        num_step = den_step = num_ramp = den_ramp = 0.0
        for wk, z, c in recent[i:]:
            num_step += c * z
            den_step += c * c
            a = c * (wk - s0 + 1)
            num_ramp += a * z
            den_ramp += a * a
        span = t - s0 + 1
        for val, den, shape in ((num_step, den_step, "step"), (num_ramp, den_ramp, "ramp")):
            if den > 0.0:
                stat = val / math.sqrt(den)
                if stat > best:
                    best, best_len, best_shape = stat, span, shape
    return (best if best > -math.inf else 0.0), best_len, best_shape


class RateChangeDetector(Detector[SeriesWeek]):
    """Failure rate of one series deteriorating against its own history (module docstring)."""

    name = "rate"

    def __init__(
        self,
        *,
        name: str,
        kind: WarningKind,
        scope: Scope,
        label: str,
        baseline_weeks: int = 156,
        min_baseline: int = 40,
        guard_weeks: int = 4,
        trend_min_weeks: int = 104,
        season_min_weeks: int = 52,
        second_harmonic_weeks: int = 104,
        z_threshold: float = 2.5,
        glr_weeks: int = 8,
        glr_threshold: float = 2.9,
        glr_cap: float = 3.0,
        hold_z: float = 1.5,
        onset_z: float | None = None,
        outlier_z: float = 2.58,
        cell_sd: float = 1.0,
        harmonic_chi2: float = 6.0,
        refit_weeks: int = 4,
        min_failed: int = 2,
        resolve_after: int = 2,
    ) -> None:
        if glr_weeks < 1:
            raise ValueError(f"glr_weeks must be >= 1, got {glr_weeks}")
        if refit_weeks < 1:
            raise ValueError(f"refit_weeks must be >= 1, got {refit_weeks}")
        if cell_sd <= 0.0:
            raise ValueError(f"cell_sd must be > 0, got {cell_sd}")
        if min_baseline < 4 or baseline_weeks < min_baseline:
            raise ValueError(
                f"baseline_weeks ({baseline_weeks}) must be >= min_baseline ({min_baseline}) >= 4"
            )
        self.name = name  # type: ignore[misc]
        self.kind, self.scope, self.label = kind, scope, label
        self.baseline_weeks = baseline_weeks
        self.min_baseline = min_baseline
        self.guard_weeks = guard_weeks
        self.trend_min_weeks = trend_min_weeks
        self.season_min_weeks = season_min_weeks
        self.second_harmonic_weeks = second_harmonic_weeks
        self.z_threshold = z_threshold
        self.glr_weeks = glr_weeks
        self.glr_threshold = glr_threshold
        self.glr_cap = glr_cap
        self.hold_z = hold_z
        self.onset_z = hold_z if onset_z is None else onset_z
        self.outlier_z = outlier_z
        self.cell_sd = cell_sd
        self.harmonic_chi2 = harmonic_chi2
        self.refit_weeks = refit_weeks
        self.min_failed = min_failed
        self.resolve_after = resolve_after
        # state (plain Python: it lives in a faust table)
        self._origin: datetime | None = None
        self._hist: list[_Hist] = []
        #: the last ``glr_weeks`` scored weeks: (week index, capped score z, its weight c)
        self._recent: list[tuple[int, float, float]] = []
        self._last_week: int | None = None
        self._latch = AlarmLatch(resolve_after)
        self._fit: _Baseline | None = None
        self._fit_newest: int | None = None  # newest week of the baseline the fit was made on
        self._kept = _Kept()  # derived from the state, not state

    def __getstate__(self) -> dict[str, Any]:
        """The state, without what is derived from it (:class:`_Kept`)."""
        return {k: v for k, v in self.__dict__.items() if k != "_kept"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._kept = _Kept()

    # -- baseline -----------------------------------------------------------------------------
    def _baseline(self, t: int) -> list[_Hist]:
        """The learned weeks in ``[t - guard_weeks - baseline_weeks, t - guard_weeks)``.

        ``_hist`` is sorted by week (``learn`` keeps it so), so the range is a slice.
        """
        hi = t - self.guard_weeks  # exclusive
        lo = hi - self.baseline_weeks
        hist = self._hist
        return hist[bisect_left(hist, lo, key=_week_of) : bisect_left(hist, hi, key=_week_of)]

    def _n_terms(self, n_weeks: int) -> tuple[bool, int]:
        trend = n_weeks >= self.trend_min_weeks
        harmonics = 0
        if n_weeks >= self.season_min_weeks:
            harmonics = 2 if n_weeks >= self.second_harmonic_weeks else 1
        return trend, harmonics

    def _fit_baseline(self, base: list[_Hist]) -> _Baseline:
        """Fit the baseline model to ``base`` (see :class:`_Baseline`).

        One row per cell-week, so a week's expected failures follow its mix of cells (a festival
        that triples the tests of the cells that rarely fail lowers the series' expected rate). The
        cells' offsets get a normal prior of sd ``cell_sd`` (a ridge), so a cell with little history
        stays near the series level. Farrington-style: a first fit, then weeks whose standardised
        residual (of the series total) exceeds ``outlier_z`` are down-weighted (an unflagged
        outbreak week must not lift the baseline) and the model is refitted. The highest yearly
        harmonic is then dropped, one at a time, while its Wald chi-square (2 degrees of freedom)
        is below ``harmonic_chi2``, and the trend if it is not significant (|z| < 2): every term
        not needed adds estimation noise to the expected count of a series with a few failures a
        week. The overdispersion ``rho`` is estimated on the weekly totals' residuals.
        """
        # one row per cell-week: (week, phase, cell number, tested, failed), mostly kept from the
        # previous fit (``_Kept``); the cells renumbered by the rank of their key
        rows, sizes = self._kept.rows(base)
        week_of = np.repeat(np.arange(len(base)), sizes)
        first_seen = rows[:, 2].astype(np.intp)
        present = np.flatnonzero(np.bincount(first_seen))
        keys = sorted(self._kept.names[i] for i in present)
        n_cells = len(keys) if len(keys) > 1 else 0
        rank = np.zeros(len(self._kept.names))
        rank[[self._kept.numbers[key] for key in keys]] = np.arange(len(keys))
        rows[:, 2] = rank[first_seen]
        # the columns stay strided views of ``rows``, as they always were: the GLM's start is a BLAS
        # dot product of tested and failed, which sums a strided vector in another order than a
        # contiguous one (the last bits of the start, and so of every fit, would change)
        ts, ph, cell, n, y = rows.T
        weeks_n = np.array([h[1] for h in base], dtype=float)
        weeks_y = np.array([h[2] for h in base], dtype=float)
        centre = base[-1][0]
        scale = self.cell_sd * math.sqrt(_RIDGE)
        trend, harmonics = self._n_terms(len(base))
        # the terms are only ever dropped below: every fit's design is a choice of this one's columns
        full = _Columns(_design(ts, ph, cell, centre, trend, harmonics, n_cells, scale), trend, harmonics)

        def fit(trend: bool, harmonics: int, weights: np.ndarray | None) -> tuple[int, GlmFit, np.ndarray]:
            x = full.select(trend, harmonics)
            row_weights = None if weights is None else weights[week_of]
            glm = fit_binomial_glm(x, y, n, weights=row_weights, ridge=_RIDGE)
            # the expected rate of each week's total
            mu = np.bincount(week_of, weights=n * glm.mu, minlength=len(base)) / weeks_n
            return x.shape[1], glm, mu

        n_params, glm, mu = fit(trend, harmonics, None)
        rho = beta_binomial_rho(weeks_y, weeks_n, mu, n_params=n_params)
        v = weeks_n * mu * (1.0 - mu)
        r = (weeks_y - weeks_n * mu) / np.sqrt(v * (1.0 + (weeks_n - 1.0) * rho) + 1e-12)
        weights = np.where(r > self.outlier_z, (self.outlier_z / np.maximum(r, 1e-9)) ** 2, 1.0)
        reweight = weights if bool(np.any(weights < 1.0)) else None
        if reweight is not None:
            n_params, glm, mu = fit(trend, harmonics, reweight)
        while harmonics:
            j = 1 + int(trend) + 2 * (harmonics - 1)  # the highest harmonic's cosine and sine columns
            b = glm.beta[j : j + 2]
            cov = glm.cov[j : j + 2, j : j + 2] * self._phi_bar(weeks_n, mu, rho)
            if float(b @ np.linalg.solve(cov, b)) >= self.harmonic_chi2:
                break
            harmonics -= 1
            n_params, glm, mu = fit(trend, harmonics, reweight)
        if trend:
            se = math.sqrt(max(float(glm.cov[1, 1]) * self._phi_bar(weeks_n, mu, rho), 1e-18))
            if abs(float(glm.beta[1])) / se < 2.0:
                trend = False
                n_params, glm, mu = fit(trend, harmonics, reweight)
        rho = beta_binomial_rho(weeks_y, weeks_n, mu, n_params=n_params, weights=weights)
        # the coefficients' covariance grows with the average variance inflation of the baseline
        phi_bar = self._phi_bar(weeks_n, mu, rho)
        return _Baseline(
            beta=tuple(glm.beta.tolist()),
            cov=tuple(map(tuple, (glm.cov * phi_bar).tolist())),  # the same products, elementwise
            rho=rho,
            centre=centre,
            trend=trend,
            harmonics=harmonics,
            cells=tuple(keys) if n_cells else (),
            cell_scale=scale,
        )

    @staticmethod
    def _phi_bar(n: np.ndarray, mu: np.ndarray, rho: float) -> float:
        """Mean variance inflation ``1 + (n - 1) rho`` of weekly totals, weighted by their information."""
        w = n * mu * (1.0 - mu)
        return float(np.sum(w * (1.0 + (n - 1.0) * rho)) / max(float(np.sum(w)), 1e-12))

    def _fresh(self, base: list[_Hist]) -> bool:
        """Whether the cached fit may stand for ``base`` (fewer than ``refit_weeks`` weeks newer)."""
        return self._fit_newest is not None and base[-1][0] - self._fit_newest < self.refit_weeks

    def _model(self, t: int) -> tuple[_Baseline, int] | None:
        base = self._baseline(t)
        if len(base) < self.min_baseline:
            return None
        fit = self._fit if self._fit is not None and self._fresh(base) else self._fit_baseline(base)
        return fit, len(base)

    # -- contract -----------------------------------------------------------------------------
    def score(self, obs: SeriesWeek) -> Score:
        t = 0 if self._origin is None else _week_index(self._origin, obs.week_start)
        model = self._model(t) if obs.tested > 0 else None
        if model is None:
            return Score(
                statistic=0.0,
                threshold=self.z_threshold,
                expected_rate=None,
                p_value=None,
                alarm=False,
                extra={"warmup": obs.tested > 0, "baseline_weeks": len(self._baseline(t))},
            )
        fit, n_base = model
        rho = fit.rho
        expected, v, var_expected = self._kept.predictor(fit).predict(t, _phase(obs.week_start), _cells(obs))
        n0, y0 = obs.tested, obs.failed
        mu0 = expected / n0
        infl = 1.0 + (n0 - 1) * rho
        # the baseline's own estimation error widens the predictive distribution: fold it into an
        # effective intra-week correlation, then take the exact beta-binomial tail
        var_y = v * infl + var_expected
        v_total = n0 * mu0 * (1.0 - mu0)
        rho_eff = max(0.0, (var_y / max(v_total, 1e-12) - 1.0) / (n0 - 1)) if n0 > 1 else 0.0
        p = beta_binomial_upper_tail(y0, n0, mu0, rho_eff)
        # at or below expectation a plain standardised residual (no tail needed)
        z = normal_isf(p) if y0 > n0 * mu0 else (y0 - n0 * mu0) / math.sqrt(max(var_y, 1e-12))
        z = min(z, 20.0)
        # a log-odds shift d moves z by about d * weight: the weight of the week in the GLR
        weight = v / math.sqrt(max(var_y, 1e-12))
        recent = [*self._window(t), (t, min(z, self.glr_cap), weight)]
        glr, glr_weeks, shape = _glr(recent, t)
        enough = y0 >= self.min_failed
        by_week = enough and z >= self.z_threshold
        # a GLR crossing opens an alarm when the week is at least ``onset_z``, holds one at ``hold_z``
        # (module docstring: while an alarm is open the window still holds the weeks that opened it)
        need_z = self.hold_z if self._latch.active else self.onset_z
        by_glr = enough and glr_weeks > 1 and glr >= self.glr_threshold and z >= need_z
        trigger = "week+glr" if by_week and by_glr else "week" if by_week else "glr" if by_glr else ""
        return Score(
            statistic=z,
            threshold=self.z_threshold,
            expected_rate=mu0,
            p_value=p,
            alarm=by_week or by_glr,
            extra={
                "glr": glr,
                "glr_threshold": self.glr_threshold,
                "glr_weeks": glr_weeks,
                "glr_shape": shape,
                "dispersion": infl,
                "rho": rho,
                "baseline_weeks": n_base,
                "trigger": trigger,
                "warmup": False,
                "_recent": recent,
            },
        )

    def _window(self, t: int) -> list[tuple[int, float, float]]:
        """The scored weeks strictly before ``t`` that still fall in the GLR window."""
        return [r for r in self._recent if t - self.glr_weeks < r[0] < t]

    def learn(self, obs: SeriesWeek) -> None:
        if self._origin is None:
            self._origin = obs.week_start
        t = _week_index(self._origin, obs.week_start)
        self._last_week = t if self._last_week is None else max(self._last_week, t)
        if obs.tested <= 0:
            return
        self._hist.append((t, obs.tested, obs.failed, _phase(obs.week_start), _cells(obs)))
        if len(self._hist) > 1 and self._hist[-2][0] > t:  # older than the newest learned week
            self._hist.sort(key=_week_of)  # (stable: an already sorted history never reorders)
        keep_from = self._last_week - self.baseline_weeks - self.guard_weeks
        while self._hist and self._hist[0][0] < keep_from:
            self._hist.pop(0)
        # cache the fit for the next weeks' baseline (refit every ``refit_weeks`` learned weeks)
        base = self._baseline(self._last_week + 1)
        if len(base) >= self.min_baseline and not (self._fit is not None and self._fresh(base)):
            self._fit = self._fit_baseline(base)
            self._fit_newest = base[-1][0]

    def step(self, obs: SeriesWeek) -> list[RiskWarning]:
        if self._origin is None:
            self._origin = obs.week_start
        s = self.score(obs)
        out: list[RiskWarning] = []
        if not s.extra.get("warmup", True) and obs.tested > 0:
            self._recent = list(s.extra["_recent"])
        status = self._latch.advance(s.alarm)
        if status is not None:
            out.append(self._warning(obs, s, status))
        if status is WarningStatus.resolved:
            self._latch.close()
            self._recent = []  # the GLR restarts after an alarm (like a CUSUM reset)
        if not s.alarm and not self._latch.active:
            self.learn(obs)
        else:
            # time still moves on while an alarm holds (the week is simply not learned)
            t = _week_index(self._origin, obs.week_start)
            self._last_week = t if self._last_week is None else max(self._last_week, t)
        return out

    # -- emission -----------------------------------------------------------------------------
    def _warning(self, obs: SeriesWeek, s: Score, status: WarningStatus) -> RiskWarning:
        expected = s.expected_rate
        observed = obs.rate
        ratio = observed / expected if expected else math.inf
        p = s.p_value if s.p_value is not None else 1.0
        if status is WarningStatus.firing:
            level = rate_level(ratio, p, self._latch.firing_weeks)
            level = self._latch.raise_to(level)
        else:
            level = self._latch.highest or Level.blue
        exp_txt = f"{100 * expected:.1f} % expected" if expected is not None else "no baseline"
        head = (
            f"{self.label}: {obs.failed} of {obs.tested} batches failed this week "
            f"({100 * observed:.1f} %) vs {exp_txt}"
        )
        if status is WarningStatus.firing:
            why = f"{ratio:.1f}x, p={p:.2g}"
            if "glr" in s.extra.get("trigger", ""):
                why += (
                    f", sustained {s.extra['glr_shape']} over {s.extra['glr_weeks']} weeks "
                    f"(GLR z {s.extra['glr']:.1f} >= {self.glr_threshold:g})"
                )
            if self._latch.firing_weeks > 1:
                why += f", week {self._latch.firing_weeks} of alarm"
            summary = f"{head} — {why} [{level.value}]"
        else:
            summary = f"{head} — back to normal after {self.resolve_after} quiet weeks [resolved]"
        extra = {k: v for k, v in s.extra.items() if k not in ("warmup", "_recent")}
        return make_warning(
            detector=self.name,
            kind=self.kind,
            level=level,
            scope=self.scope,
            raised_at=obs.last_event or obs.week_end,
            window_start=obs.week_start,
            window_end=obs.week_end,
            tested=obs.tested,
            failed=obs.failed,
            expected_rate=expected,
            statistic=s.statistic,
            threshold=s.threshold,
            p_value=s.p_value,
            record_ids=obs.failed_ids,
            status=status,
            observed_rate=observed,
            summary=summary,
            ratio=ratio if math.isfinite(ratio) else None,
            firing_weeks=self._latch.firing_weeks,
            **extra,
        )
