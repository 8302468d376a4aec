"""Systemic hazards: one hazard item failing above its baseline in several counties and industries.

For one hazard item the detector keeps, per (county, industry) cell, exponentially forgotten sums of
batches tested and of failures naming the item. A cell's baseline rate is shrunk towards the item's
rate across the prefecture, which is itself shrunk towards a tiny ``prior_rate``: an item never seen
before therefore has a near-zero baseline everywhere, and its sudden appearance in several cells is
significant at once, while an established item's cells have their own history.

Each week, a cell with at least ``min_failed`` failures is *flagged* when its failures over the last
1..``window_weeks`` weeks are improbable under its baseline (exact binomial tails, the smallest times
the number of windows, at most ``alpha``). The item warns when the flagged cells span at least
``min_regions`` counties and ``min_industries`` industries and their Fisher combination is at most
``max_combined_p`` (a loose cell level, a strict joint one). A rise spread too thinly for any cell
to be flagged is caught by the item's week as a whole (``max_total_p``): all its failures this week
against all its cells' baselines, significant even with any one county or any one industry left out
(``spread_p``), with the cells failing above their baselines spanning the same counties and
industries. It emits
``firing`` every week that holds and ``resolved`` after ``resolve_after`` quiet weeks. Flagged cells
are not learned while the item alarms (an outbreak does not become the new normal).
"""

from __future__ import annotations

import math

from schemas import Level, RiskWarning, Scope, WarningKind, WarningStatus

from .base import AlarmLatch, Detector, ItemCell, ItemWeek, Score, make_warning
from .stats import binomial_upper_tail

__all__ = ["SystemicItemDetector", "systemic_level"]


def systemic_level(regions: int, industries: int, ratio: float, firing_weeks: int) -> Level:
    """Four-colour level of a systemic alarm (documented in ``docs/detectors.md``, "Level rules").

    ``regions`` / ``industries``: how many counties / industries the flagged cells span; ``ratio``:
    observed / expected failures over the flagged cells; ``firing_weeks``: weeks fired, this one included.
    """
    if (regions >= 4 and industries >= 3) or (ratio >= 10.0 and regions >= 3) or firing_weeks >= 6:
        return Level.red
    if regions >= 3 or industries >= 3 or ratio >= 5.0 or firing_weeks >= 4:
        return Level.orange
    if ratio >= 3.0 or firing_weeks >= 2:
        return Level.yellow
    return Level.blue


class SystemicItemDetector(Detector[ItemWeek]):
    """One hazard item above baseline in >= 2 counties and >= 2 industries (module docstring)."""

    name = "systemic_item"

    def __init__(
        self,
        *,
        item: str,
        label: str,
        region_labels: dict[str, str],
        industry_labels: dict[str, str],
        alpha: float = 0.1,
        min_failed: int = 1,
        min_regions: int = 2,
        min_industries: int = 2,
        prior_rate: float = 1e-4,
        item_prior_tests: float = 2000.0,
        cell_prior_tests: float = 200.0,
        half_life_weeks: float = 52.0,
        warmup_weeks: int = 0,
        resolve_after: int = 2,
        window_weeks: int = 4,
        max_combined_p: float = 1e-4,
        max_total_p: float | None = None,
        spread_p: float = 0.3,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if window_weeks < 1:
            raise ValueError(f"window_weeks must be >= 1, got {window_weeks}")
        if max_total_p is not None and not 0.0 < max_total_p < 1.0:
            raise ValueError(f"max_total_p must be in (0, 1) or None, got {max_total_p}")
        if not 0.0 < spread_p <= 1.0:
            raise ValueError(f"spread_p must be in (0, 1], got {spread_p}")
        self.item, self.label = item, label
        self.region_labels = dict(region_labels)
        self.industry_labels = dict(industry_labels)
        self.alpha = alpha
        self.min_failed = min_failed
        self.min_regions = min_regions
        self.min_industries = min_industries
        self.prior_rate = prior_rate
        self.item_prior_tests = item_prior_tests
        self.cell_prior_tests = cell_prior_tests
        self.decay = 0.5 ** (1.0 / half_life_weeks)
        self.warmup_weeks = warmup_weeks
        self.resolve_after = resolve_after
        self.window_weeks = window_weeks
        self.max_combined_p = max_combined_p
        self.max_total_p = max_total_p
        self.spread_p = spread_p
        self.scope = Scope(item=item)
        # state: per cell "region|industry" -> [tested, failed] (forgotten sums); totals; alarm
        self._cells: dict[str, list[float]] = {}
        self._total = [0.0, 0.0]
        #: the previous ``window_weeks - 1`` weeks, oldest first: cell key -> (tested, failed)
        self._recent: list[dict[str, tuple[int, int]]] = []
        self._weeks = 0
        self._latch = AlarmLatch(resolve_after)

    # -- baseline -----------------------------------------------------------------------------
    def _item_rate(self) -> float:
        t, f = self._total
        return (f + self.item_prior_tests * self.prior_rate) / (t + self.item_prior_tests)

    def _cell_rates(self, obs: ItemWeek, keys: list[str] | None = None) -> list[float]:
        """The baseline rate of each of ``obs.cells`` (in order): the cell's forgotten sums shrunk
        towards the item's rate by a prior of ``cell_prior_tests`` tests at that rate.

        ``score`` reads each cell's rate up to three times (the flagged cells, the whole week, the
        expected rate); it computes them once here and hands them on. ``keys``: the cells' keys
        (:func:`_keys`), when already at hand.
        """
        prior = self.cell_prior_tests
        prior_failed = prior * self._item_rate()
        get = self._cells.get
        out = []
        for key in _keys(obs) if keys is None else keys:
            t, f = get(key, (0.0, 0.0))
            out.append((f + prior_failed) / (t + prior))
        return out

    def _flag(
        self, obs: ItemWeek, rates: list[float] | None = None, keys: list[str] | None = None
    ) -> list[tuple[ItemCell, float, float]]:
        """(cell, expected rate, p-value) of every significantly high cell, sorted by cell.

        A cell with at least ``min_failed`` failures this week is tested over the windows of the
        last 1..``window_weeks`` weeks (this one included); its p-value is the smallest window tail
        times the number of windows (Bonferroni), so a longer look does not buy chance flags.
        ``rates``, ``keys``: the cells' baseline rates (:meth:`_cell_rates`) and keys, when at hand.
        """
        if keys is None:
            keys = _keys(obs)
        if rates is None:
            rates = self._cell_rates(obs, keys)
        out = []
        # a cell is flagged when one of its windows' tails, times the number of windows, is at most
        # alpha: a cell whose every window is certainly above that (_may_be_at_most) is not flagged,
        # whatever the exact tails, and they are not computed (nearly every cell, nearly every week)
        log_limit = math.log(self.alpha / (len(self._recent) + 1))
        min_failed = self.min_failed
        for cell, rate, key in zip(obs.cells, rates, keys, strict=True):
            tested, failed = cell.tested, cell.failed
            if tested <= 0 or failed < min_failed:
                continue
            if not _may_be_at_most(failed, tested, rate, log_limit):
                for past in reversed(self._recent):
                    n, f = past.get(key, (0, 0))
                    tested, failed = tested + n, failed + f
                    if _may_be_at_most(failed, tested, rate, log_limit):
                        break
                else:
                    continue
                tested, failed = cell.tested, cell.failed
            p = binomial_upper_tail(failed, tested, rate)
            for past in reversed(self._recent):
                n, f = past.get(key, (0, 0))
                tested, failed = tested + n, failed + f
                p = min(p, binomial_upper_tail(failed, tested, rate))
            p = min(1.0, p * (len(self._recent) + 1))
            if p <= self.alpha:
                out.append((cell, rate, p))
        return sorted(out, key=lambda c: (c[0].region, c[0].industry))

    def _whole(
        self, obs: ItemWeek, rates: list[float] | None = None
    ) -> tuple[float, float, list[tuple[ItemCell, float, float]]]:
        """This week's failures of the item across every cell against their baselines.

        Returns ``(p, spread_p, above)``: ``p`` the exact binomial tail of all the week's failures out
        of all its tests at the tests' mean baseline rate; ``spread_p`` the largest such tail left
        when any one county, or any one industry, is taken out (small only when no single county or
        industry carries the rise); ``above`` the cells failing this week above their own baseline,
        as (cell, expected rate, the cell's own tail), sorted by cell. When ``p`` is above
        ``max_total_p`` (nearly every week) the rest is not computed: ``(p, 1.0, [])``. ``rates``:
        the cells' baseline rates (:meth:`_cell_rates`), when already at hand.
        """
        if obs.failed <= 0:
            return 1.0, 1.0, []
        if rates is None:
            rates = self._cell_rates(obs)

        def tail(keep: list[tuple[ItemCell, float]]) -> float:
            tested = sum(c.tested for c, _ in keep)
            failed = sum(c.failed for c, _ in keep)
            return binomial_upper_tail(failed, tested, sum(e for _, e in keep) / tested) if failed else 1.0

        # ``tail`` of every cell with tests, in one pass (the same sums, in the same order): nearly
        # every week ends here, and the cells' rows below are built only when it is small
        tested = failed = 0
        expected = []
        for cell, rate in zip(obs.cells, rates, strict=True):
            if cell.tested > 0:
                tested += cell.tested
                failed += cell.failed
                expected.append(cell.tested * rate)
        p = binomial_upper_tail(failed, tested, sum(expected) / tested) if failed else 1.0
        if self.max_total_p is None or p > self.max_total_p:
            return p, 1.0, []
        tested_rates = [(cell, rate) for cell, rate in zip(obs.cells, rates, strict=True) if cell.tested > 0]
        rows = [(cell, cell.tested * rate) for cell, rate in tested_rates]
        regions = {c.region for c, _ in rows}
        industries = {c.industry for c, _ in rows}
        spread_p = max(
            [tail([r for r in rows if r[0].region != region]) for region in regions]
            + [tail([r for r in rows if r[0].industry != industry]) for industry in industries]
        )
        above = [
            (c, rate, binomial_upper_tail(c.failed, c.tested, rate))
            for c, rate in tested_rates
            if c.failed >= self.min_failed and c.failed > c.tested * rate
        ]
        return p, spread_p, sorted(above, key=lambda c: (c[0].region, c[0].industry))

    # -- contract -----------------------------------------------------------------------------
    def score(self, obs: ItemWeek) -> Score:
        return self._score(obs, _keys(obs))

    def _score(self, obs: ItemWeek, keys: list[str]) -> Score:
        """:meth:`score`, with the cells' keys (:func:`_keys`) at hand (``step`` learns with them too)."""
        rates = self._cell_rates(obs, keys)
        flagged = self._flag(obs, rates, keys)
        regions = sorted({c.region for c, _, _ in flagged})
        industries = sorted({c.industry for c, _, _ in flagged})
        tested = sum(c.tested for c, _, _ in flagged)
        failed = sum(c.failed for c, _, _ in flagged)
        expected_failures = sum(c.tested * r for c, r, _ in flagged)
        item_rate = self._item_rate()
        spread = len(regions) >= self.min_regions and len(industries) >= self.min_industries
        if tested:
            expected_rate: float | None = expected_failures / tested
        elif obs.tested:
            all_expected = sum(c.tested * r for c, r in zip(obs.cells, rates, strict=True))
            expected_rate = all_expected / obs.tested
        else:
            expected_rate = None
        # combined tail over the flagged cells (Fisher), reported as the p-value
        p_comb = None
        if flagged:
            chi = -2.0 * sum(math.log(max(p, 1e-300)) for _, _, p in flagged)
            p_comb = _chi2_sf_even(chi, 2 * len(flagged))
        strong = p_comb is not None and p_comb <= self.max_combined_p
        alarm = spread and strong and self._weeks >= self.warmup_weeks
        trigger = "cells" if alarm else ""
        if self.max_total_p is not None and not alarm and self._weeks >= self.warmup_weeks:
            p_total, spread_p, above = self._whole(obs, rates)
            above_regions = sorted({c.region for c, _, _ in above})
            above_industries = sorted({c.industry for c, _, _ in above})
            if (
                p_total <= self.max_total_p
                and spread_p <= self.spread_p
                and len(above_regions) >= self.min_regions
                and len(above_industries) >= self.min_industries
            ):
                # a rise spread thinly over many cells: each cell weak, the item's week strong
                alarm, trigger = True, "whole"
                flagged, regions, industries = above, above_regions, above_industries
                tested = sum(c.tested for c, _, _ in flagged)
                failed = sum(c.failed for c, _, _ in flagged)
                expected_failures = sum(c.tested * r for c, r, _ in flagged)
                expected_rate = expected_failures / tested
                p_comb = p_total
        return Score(
            statistic=float(min(len(regions), len(industries))),
            threshold=float(min(self.min_regions, self.min_industries)),
            expected_rate=expected_rate,
            p_value=p_comb,
            alarm=alarm,
            extra={
                "cells": [
                    {
                        "region": c.region,
                        "industry": c.industry,
                        "tested": c.tested,
                        "failed": c.failed,
                        "expected_rate": r,
                        "p_value": p,
                    }
                    for c, r, p in flagged
                ],
                "regions": regions,
                "industries": industries,
                "flagged_tested": tested,
                "flagged_failed": failed,
                "expected_failures": expected_failures,
                "cell_alpha": self.alpha,
                "item_baseline_rate": item_rate,
                "trigger": trigger,
            },
        )

    def learn(self, obs: ItemWeek, skip: frozenset[tuple[str, str]] = frozenset()) -> None:
        """Forget a little, then add this week's cells (except the ``skip`` ones: flagged cells)."""
        self._learn(obs, skip, _keys(obs))

    def _learn(self, obs: ItemWeek, skip: frozenset[tuple[str, str]], keys: list[str]) -> None:
        """:meth:`learn`, with the cells' keys (:func:`_keys`) at hand."""
        d = self.decay
        cells = self._cells
        for v in cells.values():
            v[0] *= d
            v[1] *= d
        total_tested = self._total[0] * d
        total_failed = self._total[1] * d
        week: dict[str, tuple[int, int]] = {}  # this week's cells with tests, for the windows
        for cell, key in zip(obs.cells, keys, strict=True):
            if cell.tested <= 0:
                continue
            week[key] = (cell.tested, cell.failed)
            if skip and (cell.region, cell.industry) in skip:
                continue
            sums = cells.get(key)
            if sums is None:
                sums = cells[key] = [0.0, 0.0]
            sums[0] += cell.tested
            sums[1] += cell.failed
            total_tested += cell.tested
            total_failed += cell.failed
        self._total[0] = total_tested
        self._total[1] = total_failed
        self._weeks += 1
        if self.window_weeks > 1:
            self._recent = [*self._recent, week][-(self.window_weeks - 1) :]

    def step(self, obs: ItemWeek) -> list[RiskWarning]:
        keys = _keys(obs)  # read by score and learn alike: built once
        s = self._score(obs, keys)
        out: list[RiskWarning] = []
        status = self._latch.advance(s.alarm)
        if status is not None:
            out.append(self._warning(obs, s, status))
        if status is WarningStatus.resolved:
            self._latch.close()
            self._recent = []  # the windows restart after an alarm: no echo of the outbreak
        skip: frozenset[tuple[str, str]] = frozenset()
        if s.alarm or self._latch.active:
            skip = frozenset((c["region"], c["industry"]) for c in s.extra["cells"])
        self._learn(obs, skip, keys)
        return out

    # -- emission -----------------------------------------------------------------------------
    def _warning(self, obs: ItemWeek, s: Score, status: WarningStatus) -> RiskWarning:
        x = s.extra
        tested, failed, expected = x["flagged_tested"], x["flagged_failed"], x["expected_failures"]
        ratio = failed / expected if expected > 0 else math.inf
        if status is WarningStatus.firing:
            level = systemic_level(len(x["regions"]), len(x["industries"]), ratio, self._latch.firing_weeks)
            level = self._latch.raise_to(level)
            where = ", ".join(
                f"{self.region_labels.get(c['region'], c['region'])} / "
                f"{self.industry_labels.get(c['industry'], c['industry'])} {c['failed']}/{c['tested']}"
                for c in x["cells"]
            )
            exp_txt = f"{expected:.1f} expected" if expected >= 0.1 else "almost none expected"
            p_txt = f"p={s.p_value:.2g}" if s.p_value is not None else ""
            if x.get("trigger") == "whole":
                p_txt += " for the item's week across all cells (no county or industry alone)"
            summary = (
                f"{self.label} failing in {len(x['regions'])} counties and {len(x['industries'])} industries "
                f"this week: {failed} failures vs {exp_txt} ({where}), {p_txt} [{level.value}]"
            )
            keys = {(d["region"], d["industry"]) for d in x["cells"]}
            ids = [i for c in obs.cells if (c.region, c.industry) in keys for i in c.failed_ids]
            expected_rate, p_value = s.expected_rate, s.p_value
        else:
            level = self._latch.highest or Level.blue
            summary = (
                f"{self.label}: back within baseline across counties and industries after "
                f"{self.resolve_after} quiet weeks ({obs.failed} failures of {obs.tested} tests this week) "
                "[resolved]"
            )
            tested, failed = obs.tested, obs.failed
            ids = [i for c in obs.cells for i in c.failed_ids]
            # the resolution reports the item's whole week (its summary does): its expected rate,
            # ratio and tail are those of all the week's tests, not of the cells flagged in it
            expected_all = sum(c.tested * r for c, r in zip(obs.cells, self._cell_rates(obs), strict=True))
            expected_rate = expected_all / tested if tested else None
            ratio = failed / expected_all if expected_all > 0 else math.inf
            p_value = binomial_upper_tail(failed, tested, expected_all / tested) if failed else 1.0
        return make_warning(
            detector=self.name,
            kind=WarningKind.systemic,
            level=level,
            scope=self.scope,
            raised_at=obs.last_event or obs.week_end,
            window_start=obs.week_start,
            window_end=obs.week_end,
            tested=tested,
            failed=failed,
            expected_rate=expected_rate,
            statistic=s.statistic,
            threshold=s.threshold,
            p_value=p_value,
            record_ids=ids,
            status=status,
            summary=summary,
            ratio=ratio if math.isfinite(ratio) else None,
            firing_weeks=self._latch.firing_weeks,
            **x,
        )


def _keys(obs: ItemWeek) -> list[str]:
    """The key of each of ``obs.cells`` in the detector's state (``"region|industry"``), in order."""
    return [f"{c.region}|{c.industry}" for c in obs.cells]


#: how far (log scale: 1 %) the screen of ``_may_be_at_most`` stays from its limit, far beyond the
#: rounding of either the point probability or the exact tail
_SCREEN_MARGIN = math.log(1.01)


def _may_be_at_most(k: int, n: int, p: float, log_limit: float) -> bool:
    """False when ``binomial_upper_tail(k, n, p)`` is certainly above ``exp(log_limit)``; else True.

    A cheap screen before the exact tail: ``P(X >= k) >= P(X = k)``, and the point probability takes
    a few ``math`` calls where the exact tail (an incomplete beta function) costs ~5x that. A point
    probability above the limit by the margin (``_SCREEN_MARGIN``) puts the exact tail above it
    too, as computed; anything else (including arguments the bound does not cover) says True, and
    the caller computes the exact tails.
    """
    if k <= 0:
        return log_limit >= 0.0  # the tail is 1
    if k > n or not 0.0 < p < 1.0:
        return True
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return log_pmf <= log_limit + _SCREEN_MARGIN


def _chi2_sf_even(x: float, dof: int) -> float:
    """Upper tail of a chi-square with an even number of degrees of freedom (closed form)."""
    half = x / 2.0
    term = math.exp(-half)
    total = term
    for k in range(1, dof // 2):
        term *= half / k
        total += term
    return min(1.0, total)
