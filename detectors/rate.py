"""Rate-aware change detection for one series: a county, or an industry across the prefecture.

Each closed week (:class:`~detectors.base.SeriesWeek`) is compared with what the series' own history
predicts for that week:

* the baseline is a logistic model of the failure probability — intercept, a linear trend and one or
  two yearly harmonics once there is enough history — fitted by IRLS to the failures *out of the
  number tested* of up to ``baseline_weeks`` past weeks (flagged weeks, weeks inside an alarm and a
  short guard band before the current week are left out). Because it models a rate, a campaign or
  festival week that triples the volume at the same quality raises nothing;
* overdispersion is beta-binomial: ``Var = n p (1 - p) (1 + (n - 1) rho)`` with ``rho`` estimated by
  moments, so big weeks are not treated as more certain than the history says they are;
* the current week gets a standardised score ``z`` (the exact beta-binomial tail, the variance
  including the baseline's own estimation error) — a one-week test for sudden jumps — and a
  generalised likelihood ratio over the last ``glr_weeks`` weeks, maximised over the change point,
  a positive log-odds shift and two shapes (a step, or a ramp rising linearly: Hoehle & Paul 2008),
  catches modest sustained or slowly growing rises within a few weeks.

It alarms when either crosses its threshold, emits a ``firing`` warning every week the alarm holds and
a ``resolved`` one after ``resolve_after`` quiet weeks. Levels follow :func:`rate_level`.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from schemas import Level, RiskWarning, Scope, WarningKind, WarningStatus

from .base import AlarmLatch, Detector, Score, SeriesWeek, make_warning
from .stats import beta_binomial_rho, beta_binomial_upper_tail, expit, fit_binomial_glm, normal_isf

__all__ = ["RateChangeDetector", "rate_level"]

_DAY_SECONDS = 86400.0
_Cov = tuple[tuple[float, ...], ...]
#: a baseline fit: coefficients, their covariance (dispersion included), rho, trend centre week,
#: whether the trend is in the model, number of yearly harmonics
_Fit = tuple[tuple[float, ...], _Cov, float, int, bool, int]
#: one learned week: (week index, tested, failed, yearly phase)
_Hist = tuple[int, int, int, float]
_YEAR_DAYS = 365.25


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


def _week_index(origin: datetime, when: datetime) -> int:
    return round((when - origin).total_seconds() / (7 * _DAY_SECONDS))


def _phase(when: datetime) -> float:
    return 2.0 * math.pi * (when.timetuple().tm_yday - 1) / _YEAR_DAYS


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
        guard_weeks: int = 1,
        trend_min_weeks: int = 104,
        season_min_weeks: int = 52,
        second_harmonic_weeks: int = 104,
        z_threshold: float = 2.5,
        glr_weeks: int = 8,
        glr_threshold: float = 2.9,
        glr_cap: float = 3.0,
        hold_z: float = 1.5,
        outlier_z: float = 2.58,
        min_failed: int = 2,
        resolve_after: int = 2,
    ) -> None:
        if glr_weeks < 1:
            raise ValueError(f"glr_weeks must be >= 1, got {glr_weeks}")
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
        self.outlier_z = outlier_z
        self.min_failed = min_failed
        self.resolve_after = resolve_after
        # state (plain Python: it lives in a faust table)
        self._origin: datetime | None = None
        self._hist: list[_Hist] = []  # (week index, tested, failed, phase)
        #: the last ``glr_weeks`` scored weeks: (week index, capped score z, its weight c)
        self._recent: list[tuple[int, float, float]] = []
        self._last_week: int | None = None
        self._latch = AlarmLatch(resolve_after)
        self._fit_key: tuple[int, int, int] | None = None
        self._fit: _Fit | None = None

    # -- baseline -----------------------------------------------------------------------------
    def _baseline(self, t: int) -> list[_Hist]:
        hi = t - self.guard_weeks  # exclusive
        lo = hi - self.baseline_weeks
        return [h for h in self._hist if lo <= h[0] < hi]

    def _n_terms(self, n_weeks: int) -> tuple[bool, int]:
        trend = n_weeks >= self.trend_min_weeks
        harmonics = 0
        if n_weeks >= self.season_min_weeks:
            harmonics = 2 if n_weeks >= self.second_harmonic_weeks else 1
        return trend, harmonics

    @staticmethod
    def _design(ts: np.ndarray, phases: np.ndarray, centre: float, trend: bool, harmonics: int) -> np.ndarray:
        cols = [np.ones_like(ts, dtype=float)]
        if trend:
            cols.append((ts - centre) / 52.0)
        for j in range(1, harmonics + 1):
            cols.append(np.cos(j * phases))
            cols.append(np.sin(j * phases))
        return np.column_stack(cols)

    def _fit_baseline(self, base: list[_Hist]) -> _Fit:
        """Fit the baseline model to ``base`` (see :data:`_Fit`).

        Farrington-style: a first fit, then weeks whose standardised residual exceeds
        ``outlier_z`` are down-weighted (an unflagged outbreak week must not lift the baseline) and
        the model is refitted; the trend is kept only when it is significant (|z| >= 2).
        """
        arr = np.asarray(base, dtype=float)
        ts, n, y, ph = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
        centre = int(ts[-1])
        trend, harmonics = self._n_terms(len(base))
        x = self._design(ts, ph, centre, trend, harmonics)
        fit = fit_binomial_glm(x, y, n)
        rho = beta_binomial_rho(y, n, fit.mu, n_params=x.shape[1])
        v = n * fit.mu * (1.0 - fit.mu)
        r = (y - n * fit.mu) / np.sqrt(v * (1.0 + (n - 1.0) * rho) + 1e-12)
        weights = np.where(r > self.outlier_z, (self.outlier_z / np.maximum(r, 1e-9)) ** 2, 1.0)
        reweight = bool(np.any(weights < 1.0))
        if reweight:
            fit = fit_binomial_glm(x, y, n, weights=weights)
        if trend:
            w = n * fit.mu * (1.0 - fit.mu)
            phi_bar = float(np.sum(w * (1.0 + (n - 1.0) * rho)) / max(float(np.sum(w)), 1e-12))
            se = math.sqrt(max(float(fit.cov[1, 1]) * phi_bar, 1e-18))
            if abs(float(fit.beta[1])) / se < 2.0:
                trend = False
                x = self._design(ts, ph, centre, trend, harmonics)
                fit = fit_binomial_glm(x, y, n, weights=weights if reweight else None)
        rho = beta_binomial_rho(y, n, fit.mu, n_params=x.shape[1], weights=weights)
        # the coefficients' covariance grows with the average variance inflation of the baseline
        w = n * fit.mu * (1.0 - fit.mu)
        phi_bar = float(np.sum(w * (1.0 + (n - 1.0) * rho)) / max(float(np.sum(w)), 1e-12))
        beta = tuple(float(b) for b in fit.beta)
        cov = tuple(tuple(float(c) * phi_bar for c in row) for row in fit.cov)
        return beta, cov, rho, centre, trend, harmonics

    @staticmethod
    def _key(base: list[_Hist]) -> tuple[int, int, int]:
        return (base[0][0], base[-1][0], len(base))

    def _model(self, t: int) -> tuple[*_Fit, int] | None:
        base = self._baseline(t)
        if len(base) < self.min_baseline:
            return None
        key = self._key(base)
        fit = self._fit if key == self._fit_key and self._fit is not None else self._fit_baseline(base)
        return (*fit, len(base))

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
        beta, cov, rho, centre, trend, harmonics, n_base = model
        ts, phase = np.array([float(t)]), np.array([_phase(obs.week_start)])
        x0 = self._design(ts, phase, centre, trend, harmonics)[0]
        b = np.asarray(beta)
        c = np.asarray(cov)
        mu0 = float(expit(float(x0 @ b)))
        n0, y0 = obs.tested, obs.failed
        infl = 1.0 + (n0 - 1) * rho
        var_eta = float(x0 @ c @ x0)
        v = n0 * mu0 * (1.0 - mu0)
        # the baseline's own estimation error widens the predictive distribution: fold it into an
        # effective intra-week correlation, then take the exact beta-binomial tail
        var_y = v * infl + v * v * var_eta
        rho_eff = (var_y / max(v, 1e-12) - 1.0) / (n0 - 1) if n0 > 1 else 0.0
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
        by_glr = enough and glr_weeks > 1 and glr >= self.glr_threshold and z >= self.hold_z
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
        self._hist.append((t, obs.tested, obs.failed, _phase(obs.week_start)))
        self._hist.sort(key=lambda h: h[0])
        keep_from = self._last_week - self.baseline_weeks - self.guard_weeks
        while self._hist and self._hist[0][0] < keep_from:
            self._hist.pop(0)
        # cache the fit for the next week's baseline (refit only when the baseline changes)
        base = self._baseline(self._last_week + 1)
        if len(base) >= self.min_baseline:
            key = self._key(base)
            if key != self._fit_key:
                self._fit = self._fit_baseline(base)
                self._fit_key = key

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
