"""Policy targets: a county's or an industry's pass rate significantly below its policy target.

Over a rolling window of ``window_weeks`` closed weeks the detector pools batches tested, batches
passed and the test-weighted policy target (industrial products 92 %, key food and agricultural
products 96 %, mixed by what was tested). It fires when the one-sided upper confidence bound of the
pass rate (Wilson score, or exact Clopper-Pearson) is below the target with at least ``min_tested``
batches in the window — a point estimate below target is not enough. It emits ``firing`` every week
that holds and ``resolved`` the first week it no longer does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas import Level, RiskWarning, Scope, WarningKind, WarningStatus

from .base import Detector, Score, SeriesWeek, make_warning
from .stats import clopper_pearson_upper, wilson_upper

__all__ = ["PolicyTargetDetector", "target_level"]

_Z = {0.90: 1.2815515655446004, 0.95: 1.6448536269514722, 0.975: 1.959963984540054, 0.99: 2.3263478740408408}


def _percents(upper: float, target: float) -> tuple[str, str]:
    """The upper bound and the target as percentages that read as they compare.

    One decimal, more when one decimal would print them equal (a bound just below a mixed target
    such as 93.36 % must not read "at most 93.4 % — below the 93.4 % target"); the target without
    trailing zeros, so a whole target reads "92 %".
    """
    digits = 1
    while digits < 4 and f"{100 * upper:.{digits}f}" == f"{100 * target:.{digits}f}":
        digits += 1
    shown = f"{100 * target:.{digits}f}".rstrip("0").rstrip(".")
    return f"{100 * upper:.{digits}f}", shown


def target_level(gap: float) -> Level:
    """Four-colour level from ``gap`` = target - upper bound of the pass rate (documented rules)."""
    if gap >= 0.10:
        return Level.red
    if gap >= 0.05:
        return Level.orange
    if gap >= 0.02:
        return Level.yellow
    return Level.blue


class PolicyTargetDetector(Detector[SeriesWeek]):
    """Pass rate's upper confidence bound below the policy target (module docstring)."""

    name = "policy_target"

    def __init__(
        self,
        *,
        kind: WarningKind,
        scope: Scope,
        label: str,
        window_weeks: int = 13,
        min_tested: int = 30,
        confidence: float = 0.95,
        method: str = "wilson",
    ) -> None:
        if method not in ("wilson", "clopper_pearson"):
            raise ValueError(f"method must be 'wilson' or 'clopper_pearson', got {method!r}")
        if confidence not in _Z:
            raise ValueError(f"confidence must be one of {sorted(_Z)}, got {confidence}")
        if window_weeks < 1 or min_tested < 1:
            raise ValueError(f"window_weeks ({window_weeks}) and min_tested ({min_tested}) must be >= 1")
        self.kind, self.scope, self.label = kind, scope, label
        self.window_weeks = window_weeks
        self.min_tested = min_tested
        self.confidence = confidence
        self.method = method
        # state: the last window_weeks - 1 weeks (start, tested, failed, target * tested)
        self._recent: list[tuple[datetime, int, int, float]] = []
        self._active = False
        self._firing_weeks = 0
        self._level: Level | None = None

    def _window(self, obs: SeriesWeek) -> list[tuple[datetime, int, int, float]]:
        start = obs.week_start
        horizon = start - timedelta(weeks=self.window_weeks - 1, hours=1)  # an hour's slack for DST
        past = [w for w in self._recent if horizon <= w[0] < start]
        tgt = (obs.target or 0.0) * obs.tested if obs.target is not None else 0.0
        return [*past, (start, obs.tested, obs.failed, tgt)]

    def _upper(self, passed: int, tested: int) -> float:
        if self.method == "wilson":
            return wilson_upper(passed, tested, _Z[self.confidence])
        return clopper_pearson_upper(passed, tested, 1.0 - self.confidence)

    def score(self, obs: SeriesWeek) -> Score:
        return self._score(self._window(obs))

    def _score(self, win: list[tuple[datetime, int, int, float]]) -> Score:
        """:meth:`score` of the week that ends the window ``win`` (:meth:`_window`)."""
        tested = sum(w[1] for w in win)
        failed = sum(w[2] for w in win)
        weighted = sum(w[3] for w in win)
        target_tested = sum(w[1] for w in win if w[3] > 0)
        target = weighted / target_tested if target_tested else None
        passed = tested - failed
        upper = self._upper(passed, tested)
        alarm = target is not None and tested >= self.min_tested and upper < target
        return Score(
            statistic=upper,
            threshold=target if target is not None else 1.0,
            expected_rate=(1.0 - target) if target is not None else None,
            p_value=None,
            alarm=alarm,
            extra={
                "window_tested": tested,
                "window_failed": failed,
                "pass_rate": passed / tested if tested else None,
                "pass_rate_upper": upper,
                "target": target,
                "window_weeks": len(win),
                "window_first_week": win[0][0].isoformat(),
                "min_tested": self.min_tested,
                "confidence": self.confidence,
                "method": self.method,
            },
        )

    def learn(self, obs: SeriesWeek) -> None:
        self._keep(self._window(obs))

    def _keep(self, win: list[tuple[datetime, int, int, float]]) -> None:
        """Keep the last ``window_weeks - 1`` weeks of the window ``win`` for the next weeks."""
        self._recent = win[-(self.window_weeks - 1) :] if self.window_weeks > 1 else []

    def step(self, obs: SeriesWeek) -> list[RiskWarning]:
        win = self._window(obs)  # read by score and learn alike: built once
        s = self._score(win)
        out: list[RiskWarning] = []
        if s.alarm:
            self._active = True
            self._firing_weeks += 1
            out.append(self._warning(obs, s, WarningStatus.firing))
        elif self._active:
            out.append(self._warning(obs, s, WarningStatus.resolved))
            self._active = False
            self._firing_weeks = 0
            self._level = None
        self._keep(win)  # learn: the window is a plain description of the recent past, always kept
        return out

    def _warning(self, obs: SeriesWeek, s: Score, status: WarningStatus) -> RiskWarning:
        x = s.extra
        tested, failed = x["window_tested"], x["window_failed"]
        target = x["target"] or 0.0
        upper = x["pass_rate_upper"]
        rate = x["pass_rate"] if x["pass_rate"] is not None else 0.0
        n_weeks = x["window_weeks"]
        upper_txt, target_txt = _percents(upper, target)
        if status is WarningStatus.firing:
            level = target_level(target - upper)
            self._level = level if self._level is None or level > self._level else self._level
            level = self._level
            summary = (
                f"{self.label}: pass rate {100 * rate:.1f} % over the last {n_weeks} weeks "
                f"({tested - failed} of {tested} batches passed), at most {upper_txt} % "
                f"({100 * self.confidence:.0f} % bound) — below the {target_txt} % policy target "
                f"[{level.value}]"
            )
        else:
            level = self._level or Level.blue
            summary = (
                f"{self.label}: pass rate {100 * rate:.1f} % over the last {n_weeks} weeks "
                f"({tested - failed} of {tested}) no longer significantly below "
                f"the {target_txt} % target [resolved]"
            )
        start = datetime.fromisoformat(x["window_first_week"])
        return make_warning(
            detector=self.name,
            kind=self.kind,
            level=level,
            scope=self.scope,
            raised_at=obs.last_event or obs.week_end,
            window_start=start,
            window_end=obs.week_end,
            tested=tested,
            failed=failed,
            expected_rate=s.expected_rate,
            statistic=upper,
            threshold=target,
            p_value=None,
            record_ids=obs.failed_ids,
            status=status,
            summary=summary,
            observed_rate=failed / tested if tested else 0.0,
            **x,
        )
