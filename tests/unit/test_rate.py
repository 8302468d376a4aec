"""RateChangeDetector: pinned alarm positions on seeded series, volume swings, resolution, levels."""

from __future__ import annotations

import copy
import itertools
import math
import pickle
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from detectors.base import CellWeek, SeriesWeek
from detectors.rate import RateChangeDetector, _glr, rate_level
from schemas import Level, Scope, WarningKind, WarningStatus

TZ = timezone(timedelta(hours=8))
START = datetime(2021, 1, 4, tzinfo=TZ)  # a Monday


def make_series(
    seed: int,
    weeks: int = 130,
    *,
    base: float = 0.05,
    n_mean: int = 120,
    step_at: int | None = None,
    step_end: int | None = None,
    odds: float = 3.0,
    campaign_every: int = 0,
    campaign_factor: int = 3,
    amplitude: float = 0.3,
    noise_sd: float = 0.1,
) -> list[SeriesWeek]:
    """Weekly tested/failed of one county: yearly season, week-to-week noise, optional step and campaigns."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(weeks):
        n = int(rng.poisson(n_mean))
        if campaign_every and w % campaign_every == 0:
            n *= campaign_factor
        season = amplitude * math.sin(2 * math.pi * w / 52)
        logit = math.log(base / (1 - base)) + season + rng.normal(0, noise_sd)
        if step_at is not None and w >= step_at and (step_end is None or w < step_end):
            logit += math.log(odds)
        y = int(rng.binomial(n, 1 / (1 + math.exp(-logit))))
        ws = START + timedelta(weeks=w)
        ids = tuple(f"w{w}-{i}" for i in range(y))
        out.append(SeriesWeek(ws, ws + timedelta(weeks=1), n, y, ids, ws + timedelta(days=5)))
    return out


def detector(**hyper: object) -> RateChangeDetector:
    return RateChangeDetector(
        name="regional_rate",
        kind=WarningKind.regional,
        scope=Scope(region="653022"),
        label="Akto County 阿克陶县",
        **hyper,  # type: ignore[arg-type]
    )


def run(series: list[SeriesWeek], det: RateChangeDetector | None = None) -> list[tuple[int, str]]:
    det = det or detector()
    return [(w, x.status.value) for w, obs in enumerate(series) for x in det.step(obs)]


def firing_weeks(events: list[tuple[int, str]]) -> list[int]:
    return [w for w, s in events if s == "firing"]


def test_step_of_3x_is_flagged_at_once_and_nothing_fires_before() -> None:
    events = run(make_series(7, step_at=80))
    fired = firing_weeks(events)
    assert fired, "the step was never flagged"
    assert fired[0] in (80, 81)
    assert not [w for w in fired if w < 80]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_step_of_3x_pinned_for_more_seeds(seed: int) -> None:
    fired = firing_weeks(run(make_series(seed, step_at=80)))
    assert fired and 80 <= fired[0] <= 81
    assert all(w >= 80 for w in fired)


def test_modest_sustained_rise_is_caught_by_the_glr() -> None:
    det = detector()
    series = make_series(5, weeks=110, step_at=80, odds=1.7)
    triggers = []
    for w, obs in enumerate(series):
        for x in det.step(obs):
            if x.status is WarningStatus.firing:
                triggers.append((w, x.evidence.model_extra["trigger"]))
    assert triggers, "a sustained 1.7x odds rise went unnoticed for 30 weeks"
    assert len([w for w, _ in triggers if w < 80]) <= 1  # at most a stray alarm-week before
    first_week = next(w for w, _ in triggers if w >= 80)
    assert 80 <= first_week <= 86
    assert any("glr" in t for _, t in triggers)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_glr_alarm_opens_at_onset_z_and_holds_at_hold_z(seed: int) -> None:
    """A GLR-only firing week needs z >= onset_z when it opens an alarm, z >= hold_z when one is open."""
    assert detector().onset_z == detector().hold_z  # onset_z defaults to hold_z
    series = make_series(seed, weeks=110, step_at=80, odds=1.7)
    first: dict[float, int] = {}
    for onset in (1.5, 0.0):
        det = detector(onset_z=onset, hold_z=1.5)
        for w, obs in enumerate(series):
            was_open = det._latch.active
            for x in det.step(obs):
                if x.status is not WarningStatus.firing:
                    continue
                first.setdefault(onset, w)
                ev = x.evidence
                assert ev.statistic is not None
                if (ev.model_extra or {})["trigger"] == "glr":
                    assert ev.statistic >= (det.hold_z if was_open else det.onset_z)
    assert 0.0 in first and first[0.0] <= first.get(1.5, len(series))  # a lower onset opens no later


@pytest.mark.parametrize("seed", range(6))
def test_volume_swings_at_the_same_rate_raise_nothing(seed: int) -> None:
    # every 5th week is a campaign that triples the number tested at the same quality
    series = make_series(seed, weeks=160, campaign_every=5, campaign_factor=3)
    det = detector()
    campaign_z, other_z, fired = [], [], []
    for w, obs in enumerate(series):
        s = det.score(obs)
        if not s.extra["warmup"]:
            (campaign_z if w % 5 == 0 else other_z).append(s.statistic)
        fired += [w for x in det.step(obs) if x.status is WarningStatus.firing]
    # a tripled volume at the same rate scores like any other week (a count method would see +3 sd)
    assert abs(float(np.mean(campaign_z))) < 0.5
    assert abs(float(np.mean(campaign_z)) - float(np.mean(other_z))) < 0.5
    # chance alone gives about one alarm-week in a hundred at the default thresholds
    assert len(fired) <= 2  # of 120 monitored weeks
    assert len([w for w in fired if w % 5 == 0]) <= 1


def test_count_only_would_have_alarmed_on_those_campaign_weeks() -> None:
    """Sanity of the previous test: the campaign weeks do have far more failures than usual."""
    series = make_series(0, weeks=160, campaign_every=5, campaign_factor=3)
    normal = [o.failed for w, o in enumerate(series) if w % 5]
    campaign = [o.failed for w, o in enumerate(series) if w % 5 == 0]
    assert np.mean(campaign) > 2.5 * np.mean(normal)


def test_warm_up_raises_nothing_even_for_a_huge_spike() -> None:
    series = make_series(3, weeks=40)
    spiked = [*series[:30], SeriesWeek(series[30].week_start, series[30].week_end, 100, 60)]
    det = detector(min_baseline=40)
    assert [x for o in spiked for x in det.step(o)] == []


def test_resolved_after_two_quiet_weeks_and_learning_resumes() -> None:
    events = run(make_series(6, weeks=130, step_at=80, step_end=86))
    fired = firing_weeks(events)
    resolved = [w for w, s in events if s == "resolved"]
    assert fired and fired[0] == 80
    assert resolved, "no resolved emission after the step ended"
    assert resolved[0] > max(w for w in fired if w < resolved[0])
    assert 86 <= resolved[0] <= 90
    # after resolution nothing else fires on this clean series
    assert not [w for w in fired if w > resolved[0]]


def test_evidence_and_summary() -> None:
    det = detector()
    series = make_series(7, step_at=80)
    warnings = [x for obs in series[:81] for x in det.step(obs)]
    w = warnings[0]
    ev = w.evidence
    obs = series[80]
    assert w.detector == "regional_rate" and w.kind is WarningKind.regional
    assert w.scope.region == "653022"
    assert w.window_start == obs.week_start and w.window_end == obs.week_end
    assert w.raised_at == obs.last_event
    assert (ev.tested, ev.failed) == (obs.tested, obs.failed)
    assert ev.expected_rate is not None and 0 < ev.expected_rate < ev.observed_rate
    assert ev.p_value is not None and ev.p_value < 0.01
    assert ev.statistic is not None and ev.threshold is not None
    assert ev.record_ids == sorted(obs.failed_ids)
    extra = ev.model_extra or {}
    for key in ("dispersion", "baseline_weeks", "glr", "glr_weeks", "glr_shape", "rho", "trigger"):
        assert key in extra
    assert extra["baseline_weeks"] >= 40
    assert "_recent" not in extra  # internal state stays out of the evidence
    head = f"Akto County 阿克陶县: {obs.failed} of {obs.tested} batches failed this week"
    assert w.summary.startswith(head)
    assert "expected" in w.summary and f"[{w.level.value}]" in w.summary


@pytest.mark.parametrize(
    ("series", "learn"),
    [
        pytest.param(lambda: make_series(11, step_at=90), 85, id="total"),
        pytest.param(lambda: make_cell_series(5, weeks=130, step_at=110), 100, id="cells"),
    ],
)
def test_score_is_pure_and_state_survives_pickling(series: Any, learn: int) -> None:
    weeks = series()
    det = detector()
    for obs in weeks[:learn]:
        det.step(obs)
    before = pickle.dumps(det)
    snapshot = copy.deepcopy(det.__dict__)
    for obs in weeks[learn:]:
        det.score(obs)
    assert pickle.dumps(det) == before
    assert det.__dict__ == snapshot
    clone = pickle.loads(before)
    a = [x.model_dump() for obs in weeks[learn:] for x in det.step(obs)]
    b = [x.model_dump() for obs in weeks[learn:] for x in clone.step(obs)]
    assert a == b and a


def test_same_input_same_output() -> None:
    series = make_series(4, step_at=85)
    a = [x.model_dump_json() for obs in series for x in detector().step(obs)]
    b = [x.model_dump_json() for obs in series for x in detector().step(obs)]
    assert a == b


def test_empty_weeks_are_skipped_not_alarmed() -> None:
    series = make_series(0, weeks=100)
    holes = [o if w % 7 else SeriesWeek(o.week_start, o.week_end, 0, 0) for w, o in enumerate(series)]
    assert firing_weeks(run(holes)) == []


def test_bad_hyper_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="min_baseline"):
        detector(baseline_weeks=10, min_baseline=20)
    with pytest.raises(ValueError, match="glr_weeks"):
        detector(glr_weeks=0)


def test_glr_picks_the_change_point_and_the_shape() -> None:
    # quiet weeks, then three raised ones: the best window is the last three weeks, a step
    step = [(0, -0.5, 1.0), (1, 0.2, 1.0), (2, 2.0, 1.0), (3, 2.0, 1.0), (4, 2.0, 1.0)]
    stat, weeks, shape = _glr(step, 4)
    assert (weeks, shape) == (3, "step")
    assert stat == pytest.approx(6.0 / math.sqrt(3.0))
    # scores rising linearly are a ramp, and the ramp statistic beats the step one
    ramp = [(0, 0.0, 1.0), (1, 0.7, 1.0), (2, 1.4, 1.0), (3, 2.1, 1.0), (4, 2.8, 1.0)]
    stat, weeks, shape = _glr(ramp, 4)
    assert shape == "ramp" and weeks >= 4
    assert stat > 7.0 / math.sqrt(4.0)  # the best step window (last four weeks)
    # nothing above expectation: the statistic is never positive
    assert _glr([(0, -1.0, 1.0), (1, -0.5, 2.0)], 1)[0] < 0.0
    assert _glr([], 3) == (0.0, 0, "step")


def test_linear_ramp_is_caught_before_it_peaks() -> None:
    """Odds rising from 1 to 3 over 8 weeks (a ramp): flagged by the GLR within the ramp."""
    series = make_series(8, weeks=100, step_at=None)
    rng = np.random.default_rng(80)
    ramped = list(series[:80])
    for k in range(8):
        o = series[80 + k]
        logit = math.log(0.05 / 0.95) + math.log(3.0) * (k + 1) / 8
        y = int(rng.binomial(o.tested, 1 / (1 + math.exp(-logit))))
        ramped.append(SeriesWeek(o.week_start, o.week_end, o.tested, y, (), o.last_event))
    det = detector()
    triggers = [
        (w, x.evidence.model_extra["trigger"], x.evidence.model_extra["glr_shape"])
        for w, obs in enumerate(ramped)
        for x in det.step(obs)
        if x.status is WarningStatus.firing
    ]
    assert triggers, "an 8-week ramp to 3x odds went unnoticed"
    assert 80 <= triggers[0][0] <= 87


@pytest.mark.parametrize(
    ("ratio", "p", "weeks", "level"),
    [
        (1.3, 0.01, 1, Level.blue),
        (1.6, 5e-4, 1, Level.yellow),
        (1.2, 0.02, 2, Level.yellow),
        (2.5, 5e-5, 1, Level.orange),
        (1.4, 0.01, 4, Level.orange),
        (3.5, 1e-7, 1, Level.red),
        (2.1, 0.01, 6, Level.red),
        (3.5, 1e-5, 1, Level.orange),
    ],
)
def test_level_rules(ratio: float, p: float, weeks: int, level: Level) -> None:
    assert rate_level(ratio, p, weeks) is level


# -- series built from cells -----------------------------------------------------------------------
CELL_RATES = {"food": 0.02, "cement": 0.10}  # two industries of one county, five times apart


def make_cell_series(
    seed: int,
    weeks: int = 150,
    *,
    campaign_every: int = 0,
    step_at: int | None = None,
    odds: float = 4.0,
) -> list[SeriesWeek]:
    """A county of two cells with different failure rates, combined as the engine does.

    ``campaign_every``: every so many weeks the high-rate cell is sampled three times as much, at the
    same quality (a campaign on building materials). ``step_at``: both cells' odds rise by ``odds``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for w in range(weeks):
        ws = START + timedelta(weeks=w)
        cells = []
        for name, rate in CELL_RATES.items():
            n = int(rng.poisson(60))
            if campaign_every and name == "cement" and w % campaign_every == 0:
                n *= 3
            logit = math.log(rate / (1 - rate)) + rng.normal(0, 0.05)
            if step_at is not None and w >= step_at:
                logit += math.log(odds)
            y = int(rng.binomial(n, 1 / (1 + math.exp(-logit))))
            ids = tuple(f"{name}-{w}-{i}" for i in range(y))
            cells.append(CellWeek("653001", name, ws, ws + timedelta(weeks=1), n, y, ids))
        out.append(SeriesWeek.combine(cells))
    return out


def test_combine_keeps_the_cells() -> None:
    obs = make_cell_series(0, weeks=1)[0]
    assert [c[0] for c in obs.cells] == ["653001/cement", "653001/food"]
    assert sum(c[1] for c in obs.cells) == obs.tested
    assert sum(c[2] for c in obs.cells) == obs.failed


def test_a_campaign_on_the_cells_that_often_fail_is_not_a_change() -> None:
    """The mix of cells moves the expected count; only the per-cell baseline sees that.

    Tripling the tests of the cell that fails five times as often raises the pooled failure rate by
    half at the same quality. A model of the total alone reads the campaign weeks as a deterioration
    (its overdispersion absorbs part of it) and alarms on some; the per-cell baseline expects those
    failures and scores them as any week.
    """
    z_cells, z_total, fired_cells, fired_total = [], [], [], []
    for seed in range(4):
        by_cells, by_total = detector(), detector()
        for w, obs in enumerate(make_cell_series(seed, campaign_every=6)):
            total = replace(obs, cells=())
            a, b = by_cells.score(obs), by_total.score(total)
            campaign = w % 6 == 0
            if campaign and not a.extra["warmup"]:
                z_cells.append(a.statistic)
                z_total.append(b.statistic)
            fired_cells += [campaign for x in by_cells.step(obs) if x.status is WarningStatus.firing]
            fired_total += [campaign for x in by_total.step(total) if x.status is WarningStatus.firing]
    assert abs(float(np.mean(z_cells))) < 0.3
    assert float(np.mean(z_total)) > 0.6
    assert sum(fired_cells) == 0  # no campaign week alarms (other weeks: chance, 4 x 110 weeks)
    assert sum(fired_total) >= 2


def test_a_step_in_every_cell_is_flagged_at_once() -> None:
    fired = firing_weeks(run(make_cell_series(3, weeks=130, step_at=100)))
    assert fired and fired[0] == 100
    assert not [w for w in fired if w < 100]


def test_a_fit_does_not_depend_on_the_rows_kept_from_earlier_fits() -> None:
    """The rows a detector keeps between fits (numbered as cells were first seen) change no bit of a fit.

    One detector has kept its rows since its first fit; a copy restored from its state builds them
    afresh, and another copy first sees a week of the other cell alone, so numbers them the other way.
    """
    det = detector()
    for obs in make_cell_series(5, weeks=140):
        det.step(obs)
    base = det._baseline(det._last_week + 1)
    restored = pickle.loads(pickle.dumps(det))
    reordered = pickle.loads(pickle.dumps(det))
    reordered._kept.rows([(0, 1, 0, 0.0, (("653001/food", 1, 0),))])  # a week of one cell, seen first
    fit = det._fit_baseline(base)
    assert fit.cells == ("653001/cement", "653001/food")
    assert restored._fit_baseline(restored._baseline(det._last_week + 1)) == fit
    assert reordered._fit_baseline(reordered._baseline(det._last_week + 1)) == fit
    assert reordered._kept.names == ["653001/food", "653001/cement"]


def test_the_rows_kept_between_fits_are_those_of_the_baseline() -> None:
    """As the baseline moves on week by week (and once back), the kept rows are the baseline's own."""
    from detectors.rate import _Kept

    series = make_cell_series(6, weeks=120)
    series[50] = replace(series[50], cells=series[50].cells[:1])  # a week with one cell only
    det = detector(baseline_weeks=40, min_baseline=10)
    kept = _Kept()
    bases = []
    for obs in series:
        det.learn(obs)
        bases.append(det._baseline(det._last_week + 1))
    for base in [*bases[20:], bases[30], *bases[31:]]:
        if not base:
            continue
        rows, sizes = kept.rows(base)
        fresh, fresh_sizes = _Kept().rows(base)
        assert sizes == fresh_sizes == [len(h[4]) for h in base]
        assert np.array_equal(np.delete(rows, 2, axis=1), np.delete(fresh, 2, axis=1))
        assert [kept.names[int(i)] for i in rows[:, 2]] == [c[0] for h in base for c in h[4]]


def test_seasonal_terms_are_kept_only_when_the_history_shows_them() -> None:
    flat = make_series(2, weeks=160, amplitude=0.0)
    seasonal = make_series(2, weeks=160, amplitude=0.5)
    for series, harmonics in ((flat, 0), (seasonal, 1)):
        det = detector()
        for obs in series:
            det.learn(obs)
        assert det._fit is not None
        assert det._fit.harmonics == harmonics


def test_the_baseline_is_refitted_every_refit_weeks() -> None:
    det = detector(refit_weeks=4)
    fits = []
    for obs in make_series(1, weeks=80):
        det.learn(obs)
        fits.append(det._fit)
    # fitted once 40 weeks lie behind the 4-week guard band (after week 43), then every 4 weeks
    changes = [w for w in range(1, len(fits)) if fits[w] is not fits[w - 1]]
    assert changes[0] == 43
    assert all(b - a == 4 for a, b in itertools.pairwise(changes))


def test_the_registry_gives_each_kind_its_operating_point() -> None:
    from detectors.engine import EngineConfig, Labels
    from detectors.registry import RATE_CHANGE_PARAMS, build_industry_detectors, build_region_detectors
    from schemas import default_catalogue

    cat = default_catalogue()
    labels = Labels.from_catalogue(cat)
    region = build_region_detectors(cat.region_codes[0], cat, EngineConfig(), labels).week[0]
    industry = build_industry_detectors(cat.industry_slugs[0], cat, EngineConfig(), labels).week[0]
    for det, kind in ((region, WarningKind.regional), (industry, WarningKind.industry)):
        assert isinstance(det, RateChangeDetector) and det.kind is kind
        for key, value in RATE_CHANGE_PARAMS[kind].items():
            assert getattr(det, key) == value


def test_tails_match_scipys_distributions() -> None:
    """The fast tails in ``detectors.stats`` compute what scipy's distributions do (today to the bit;
    checked to 1e-12 so that a scipy release computing them another way does not fail the suite)."""
    from scipy.stats import betabinom, norm

    from detectors.stats import beta_binomial_upper_tail, normal_isf

    rng = np.random.default_rng(3)
    for _ in range(2000):
        n = int(rng.choice([rng.integers(1, 20), rng.integers(1, 3000)]))
        k = int(rng.integers(1, n + 1))
        p = float(10 ** rng.uniform(-6, 0) * 0.999)
        rho = float(10 ** rng.uniform(-8, 0))
        r = min(rho, 0.999)
        a, b = p * (1.0 - r) / r, (1.0 - p) * (1.0 - r) / r
        assert beta_binomial_upper_tail(k, n, p, rho) == pytest.approx(
            float(betabinom.sf(k - 1, n, a, b)), rel=1e-12, abs=1e-300
        )
    for q in [0.5, 1e-300, 1.0 - 1e-16, *rng.uniform(0, 1, 500), *(10 ** rng.uniform(-300, 0, 500))]:
        expected, got = float(norm.isf(q)), normal_isf(float(q))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert math.copysign(1.0, got) == math.copysign(1.0, expected)


def test_design_with_fewer_terms_is_a_choice_of_the_full_designs_columns() -> None:
    from detectors.rate import _Columns, _design

    rng = np.random.default_rng(4)
    ts = rng.integers(0, 150, 60).astype(float)
    ph = rng.uniform(0, 2 * math.pi, 60)
    cells = rng.integers(0, 5, 60).astype(float)
    for trend0, h0 in [(True, 2), (False, 2), (True, 1), (False, 0)]:
        full = _Columns(_design(ts, ph, cells, 70.0, trend0, h0, 5, 1e-3), trend0, h0)
        for trend in {False, trend0}:
            for h in range(h0 + 1):
                x = full.select(trend, h)
                expected = _design(ts, ph, cells, 70.0, trend, h, 5, 1e-3)
                assert x.flags.c_contiguous and x.shape == expected.shape
                assert np.array_equal(x, expected)
        with pytest.raises(ValueError):
            full.select(True, h0 + 1)
