"""SystemicItemDetector: a hazard item above baseline across counties and industries."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from detectors.base import ItemCell, ItemWeek
from detectors.stats import binomial_upper_tail
from detectors.systemic import SystemicItemDetector, systemic_level
from schemas import Level, WarningKind, WarningStatus

TZ = timezone(timedelta(hours=8))
START = datetime(2021, 1, 4, tzinfo=TZ)
REGIONS = ("653001", "653022", "653023", "653024")
INDUSTRIES = ("textiles", "light_industry", "ethnic_handicrafts", "food_processing")
REGION_LABELS = {"653001": "Artux City 阿图什市", "653022": "Akto County 阿克陶县"}


def detector(item: str = "formaldehyde", **hyper: object) -> SystemicItemDetector:
    """An established catalogue item (8 weeks of warm-up, as the registry builds it) unless told otherwise."""
    hyper.setdefault("warmup_weeks", 8)
    return SystemicItemDetector(
        item=item,
        label=f"{item} label",
        region_labels=REGION_LABELS,
        industry_labels={"textiles": "Textiles 纺织服装"},
        **hyper,  # type: ignore[arg-type]
    )


def make_weeks(
    seed: int,
    weeks: int = 100,
    *,
    base: float = 0.01,
    tested: int = 25,
    outbreak: dict[tuple[str, str], float] | None = None,
    start: int = 10**9,
    end: int = 10**9,
    item: str = "formaldehyde",
) -> list[ItemWeek]:
    """One item's weekly failures in 4 x 4 cells; ``outbreak`` cells get the given rate in [start, end)."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(weeks):
        cells = []
        for r in REGIONS:
            for i in INDUSTRIES:
                n = int(rng.poisson(tested))
                rate = base
                if outbreak and (r, i) in outbreak and start <= w < end:
                    rate = outbreak[(r, i)]
                k = int(rng.binomial(n, rate))
                cells.append(ItemCell(r, i, n, k, tuple(f"{item}-{w}-{r}-{i}-{j}" for j in range(k))))
        ws = START + timedelta(weeks=w)
        out.append(ItemWeek(item, ws, ws + timedelta(weeks=1), tuple(cells), ws + timedelta(days=6)))
    return out


def fired(det: SystemicItemDetector, weeks: list[ItemWeek]) -> list[tuple[int, str]]:
    return [(w, x.status.value) for w, obs in enumerate(weeks) for x in det.step(obs)]


SPREAD = {
    ("653001", "textiles"): 0.15,
    ("653022", "light_industry"): 0.15,
    ("653023", "textiles"): 0.15,
}


def test_quiet_item_rarely_fires() -> None:
    # 16 cells of an item failing at 1 %: per-cell tests at alpha 0.02, but a 2 x 2 spread by chance is rare
    firing = [w for seed in range(4) for w, s in fired(detector(), make_weeks(seed)) if s == "firing"]
    assert len(firing) <= 4  # of 4 x 92 monitored weeks


def test_rare_item_raises_nothing_at_a_strict_cell_level() -> None:
    for seed in range(4):
        assert fired(detector(alpha=0.002), make_weeks(seed, base=0.003)) == []


def test_outbreak_across_two_counties_and_two_industries_is_flagged_at_once() -> None:
    events = fired(detector(), make_weeks(3, outbreak=SPREAD, start=60, end=66))
    firing = [w for w, s in events if s == "firing"]
    assert firing and firing[0] == 60
    assert all(60 <= w <= 66 for w in firing)
    resolved = [w for w, s in events if s == "resolved"]
    assert resolved and resolved[0] > firing[-1]


def test_outbreak_in_one_county_only_is_not_systemic() -> None:
    one_county = {("653001", "textiles"): 0.2, ("653001", "light_industry"): 0.2}
    # a strict cell level, so that no stray cell elsewhere completes the spread by chance
    weeks = make_weeks(3, base=0.003, outbreak=one_county, start=60, end=66)
    assert fired(detector(alpha=0.002), weeks) == []


def test_outbreak_in_one_industry_only_is_not_systemic() -> None:
    one_industry = {("653001", "textiles"): 0.2, ("653022", "textiles"): 0.2}
    weeks = make_weeks(3, base=0.003, outbreak=one_industry, start=60, end=66)
    assert fired(detector(alpha=0.002), weeks) == []


def test_new_item_is_flagged_the_week_it_appears() -> None:
    # an item never seen before: the detector is created when it first shows up (no history at all)
    weeks = make_weeks(
        5,
        weeks=3,
        base=0.0,
        item="melamine",
        outbreak={("653022", "food_processing"): 0.12, ("653024", "textiles"): 0.12},
        start=0,
        end=3,
    )
    det = detector("melamine", warmup_weeks=0)
    warnings = det.step(weeks[0])
    assert len(warnings) == 1
    w = warnings[0]
    assert w.kind is WarningKind.systemic and w.detector == "systemic_item"
    assert w.scope.item == "melamine" and w.status is WarningStatus.firing
    ev = w.evidence.model_extra or {}
    cells = {(c["region"], c["industry"]) for c in ev["cells"]}
    assert cells == {("653022", "food_processing"), ("653024", "textiles")}
    assert ev["regions"] == ["653022", "653024"]
    assert w.evidence.p_value is not None and w.evidence.p_value < 1e-6
    assert w.evidence.expected_rate is not None and w.evidence.expected_rate < 0.001
    assert "almost none expected" in w.summary and "Akto County 阿克陶县" in w.summary
    assert set(w.evidence.record_ids) == {i for c in weeks[0].cells for i in c.failed_ids}


def test_warm_up_for_an_established_item() -> None:
    weeks = make_weeks(
        5,
        weeks=3,
        base=0.0,
        outbreak={("653022", "food_processing"): 0.12, ("653024", "textiles"): 0.12},
        start=0,
        end=3,
    )
    assert fired(detector(warmup_weeks=8), weeks) == []


def test_established_item_baseline_is_per_cell() -> None:
    # a cell that always fails at 15 % is its own normal: it is not flagged once learned
    high = {("653001", "textiles"): 0.15, ("653022", "light_industry"): 0.15}
    weeks = make_weeks(8, outbreak=high, start=0, end=10**9)
    events = fired(detector(), weeks)
    assert not [w for w, s in events if s == "firing" and w >= 20]


def test_score_is_pure_and_pickling_keeps_state() -> None:
    weeks = make_weeks(9, outbreak=SPREAD, start=70, end=75)
    det = detector()
    for obs in weeks[:65]:
        det.step(obs)
    before = pickle.dumps(det)
    snap = copy.deepcopy(det.__dict__)
    for obs in weeks[65:]:
        det.score(obs)
    assert pickle.dumps(det) == before and det.__dict__ == snap
    clone = pickle.loads(before)
    a = [x.model_dump() for obs in weeks[65:] for x in det.step(obs)]
    b = [x.model_dump() for obs in weeks[65:] for x in clone.step(obs)]
    assert a == b and a


def test_bad_alpha_is_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        detector(alpha=0.0)


@pytest.mark.parametrize(
    ("regions", "industries", "ratio", "weeks", "level"),
    [
        (2, 2, 2.0, 1, Level.blue),
        (2, 2, 3.5, 1, Level.yellow),
        (2, 2, 2.0, 2, Level.yellow),
        (3, 2, 2.0, 1, Level.orange),
        (2, 2, 6.0, 1, Level.orange),
        (4, 3, 2.0, 1, Level.red),
        (3, 2, 12.0, 1, Level.red),
        (2, 2, 2.0, 6, Level.red),
    ],
)
def test_level_rules(regions: int, industries: int, ratio: float, weeks: int, level: Level) -> None:
    assert systemic_level(regions, industries, ratio, weeks) is level


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_modest_rise_over_several_weeks_is_caught_by_the_window(seed: int) -> None:
    # 6x the usual rate in 2 x 2 cells for 8 weeks: single weeks are weak, several together are not
    cells = [
        ("653001", "textiles"),
        ("653001", "light_industry"),
        ("653022", "textiles"),
        ("653022", "light_industry"),
    ]
    weeks = make_weeks(seed, weeks=90, outbreak=dict.fromkeys(cells, 0.06), start=60, end=68)
    windowed = [w for w, s in fired(detector(), weeks) if s == "firing"]
    single = detector(window_weeks=1, alpha=0.02, max_combined_p=1.0)  # one week, no combined gate
    one_week = [w for w, s in fired(single, weeks) if s == "firing"]
    assert windowed and 60 <= windowed[0] <= 68
    assert not [w for w in windowed if w < 60 or w > 68]
    assert len(windowed) > len([w for w in one_week if 60 <= w <= 68])


def test_combined_gate_refuses_a_weak_chance_alignment() -> None:
    det = detector()
    for obs in make_weeks(2, weeks=60, base=0.01):
        det.step(obs)
    # two failures in each of 2 x 2 cells: each cell flagged, together not convincing enough
    obs = make_weeks(2, weeks=61, base=0.0)[60]
    bumped = tuple(
        ItemCell(c.region, c.industry, 20, 2, ("x", "y"))
        if (c.region, c.industry)
        in {
            ("653001", "textiles"),
            ("653001", "food_processing"),
            ("653022", "textiles"),
            ("653022", "food_processing"),
        }
        else c
        for c in obs.cells
    )
    s = det.score(ItemWeek(obs.item, obs.week_start, obs.week_end, bumped, obs.last_event))
    assert s.p_value is not None and s.p_value > det.max_combined_p
    assert not s.alarm
    assert len(s.extra["cells"]) == 4 and s.statistic == 2.0  # the spread alone would have alarmed


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_weeks"):
        detector(window_weeks=0)


@pytest.mark.parametrize(
    ("hyper", "name"), [({"max_total_p": 0.0}, "max_total_p"), ({"spread_p": 0.0}, "spread_p")]
)
def test_bad_whole_week_levels_are_refused(hyper: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        detector(**hyper)


def _thin_week(seed: int, week: int, raised: dict[tuple[str, str], int], *, base: float = 0.001) -> ItemWeek:
    """A week of 16 cells at ``base``, where the ``raised`` cells fail exactly that many times."""
    rng = np.random.default_rng(seed * 1000 + week)
    cells = []
    for r in REGIONS:
        for i in INDUSTRIES:
            n = 30
            k = raised.get((r, i), int(rng.binomial(n, base)))
            cells.append(ItemCell(r, i, n, k, tuple(f"sd-{week}-{r}-{i}-{j}" for j in range(k))))
    ws = START + timedelta(weeks=week)
    return ItemWeek("sulfur_dioxide", ws, ws + timedelta(weeks=1), tuple(cells), ws + timedelta(days=6))


#: one week's rise spread thinly: 7 failures in 5 cells of 3 counties and 2 industries, none strong alone
THIN = {
    ("653001", "food_processing"): 2,
    ("653001", "textiles"): 1,
    ("653022", "food_processing"): 1,
    ("653023", "food_processing"): 2,
    ("653023", "textiles"): 1,
}


def test_a_rise_spread_thinly_is_caught_by_the_whole_week() -> None:
    quiet = [_thin_week(1, w, {}) for w in range(40)]
    weeks = [*quiet, _thin_week(1, 40, THIN, base=0.0)]
    by_cells = detector("sulfur_dioxide")
    assert [s for w, s in fired(by_cells, weeks) if w == 40] == []  # no cell is flagged on its own
    whole = detector("sulfur_dioxide", max_total_p=3e-4)
    for obs in quiet:
        assert whole.step(obs) == []
    (w,) = whole.step(weeks[40])
    ev = w.evidence.model_extra or {}
    assert ev["trigger"] == "whole" and w.status is WarningStatus.firing
    assert {(c["region"], c["industry"]) for c in ev["cells"]} == set(THIN)
    assert ev["regions"] == ["653001", "653022", "653023"]
    assert ev["industries"] == ["food_processing", "textiles"]
    assert w.evidence.p_value is not None and w.evidence.p_value <= 3e-4
    assert w.evidence.failed == 7 and set(w.evidence.record_ids) == {
        i for c in weeks[40].cells if (c.region, c.industry) in THIN for i in c.failed_ids
    }


def test_a_strong_week_in_one_county_is_still_not_systemic() -> None:
    # cells above their baseline span 2 counties and 3 industries, but without Artux the week is
    # ordinary: the rise is one county's, not the item's
    one_county = {
        ("653001", "food_processing"): 4,
        ("653001", "textiles"): 3,
        ("653022", "light_industry"): 1,
    }
    weeks = [*(_thin_week(2, w, {}) for w in range(40)), _thin_week(2, 40, one_county, base=0.0)]
    # (a strict cell level, so that the per-cell path does not count the stray failure either)
    assert fired(detector("sulfur_dioxide", alpha=0.02, max_total_p=3e-4, spread_p=0.1), weeks) == []
    # the same week without the leave-one-out condition would fire
    loose = detector("sulfur_dioxide", alpha=0.02, max_total_p=3e-4, spread_p=1.0)
    assert fired(loose, weeks) == [(40, "firing")]


def test_the_whole_week_test_rarely_fires_on_a_quiet_item() -> None:
    firing = [
        w
        for seed in range(4)
        for w, s in fired(detector(max_total_p=3e-4), make_weeks(seed))
        if s == "firing"
    ]
    assert len(firing) <= 4  # of 4 x 92 monitored weeks, as without it


def _flag_exhaustively(det: SystemicItemDetector, obs: ItemWeek) -> list[tuple[ItemCell, float, float]]:
    """``_flag`` without the screen: every window's exact tail for every cell with failures."""
    from detectors.stats import binomial_upper_tail

    out = []
    for cell, rate in zip(obs.cells, det._cell_rates(obs), strict=True):
        if cell.tested <= 0 or cell.failed < det.min_failed:
            continue
        tested, failed = cell.tested, cell.failed
        p = binomial_upper_tail(failed, tested, rate)
        for past in reversed(det._recent):
            n, f = past.get(f"{cell.region}|{cell.industry}", (0, 0))
            tested, failed = tested + n, failed + f
            p = min(p, binomial_upper_tail(failed, tested, rate))
        p = min(1.0, p * (len(det._recent) + 1))
        if p <= det.alpha:
            out.append((cell, rate, p))
    return sorted(out, key=lambda c: (c[0].region, c[0].industry))


@pytest.mark.parametrize("alpha", [0.02, 0.1, 0.5, 0.9])
def test_screened_flags_equal_the_exhaustive_ones(alpha: float) -> None:
    """The point-probability screen in ``_flag`` never changes which cells are flagged, nor their p."""
    flagged = 0
    for seed in range(3):
        det = detector(alpha=alpha, min_failed=1 + seed % 2)
        weeks = make_weeks(seed, 60, base=0.02, outbreak=SPREAD, start=30, end=36)
        for obs in weeks:
            expected = _flag_exhaustively(det, obs)
            assert det._flag(obs) == expected
            flagged += len(expected)
            det.step(obs)
    assert flagged > 0


def test_step_learns_what_score_and_learn_do() -> None:
    """``step`` scores and learns with the cells' keys built once; alone, ``score`` and ``learn`` agree."""
    weeks = make_weeks(5, 40, base=0.02)
    stepped, separate = detector(), detector()
    for obs in weeks:
        s = separate.score(obs)
        assert not s.alarm and s == stepped.score(obs)
        assert stepped.step(obs) == []
        separate.learn(obs)
        assert pickle.dumps(stepped) == pickle.dumps(separate)


def test_the_whole_weeks_tail_is_that_of_all_its_cells_with_tests() -> None:
    """The whole week's ``p`` (one pass over the cells) is the tail of the sums over the cells with tests."""
    from detectors.stats import binomial_upper_tail

    det = detector(max_total_p=3e-4)
    weeks = make_weeks(6, 40, base=0.02, outbreak=SPREAD, start=30, end=34)
    checked = 0
    for obs in weeks:
        cells = [ItemCell("653099", "textiles", 0, 0), *obs.cells]  # and a cell without tests
        obs = ItemWeek(obs.item, obs.week_start, obs.week_end, tuple(cells), obs.last_event)
        rates = det._cell_rates(obs)
        rows = [(c, c.tested * r) for c, r in zip(obs.cells, rates, strict=True) if c.tested > 0]
        tested, failed = sum(c.tested for c, _ in rows), sum(c.failed for c, _ in rows)
        if failed:
            expected = binomial_upper_tail(failed, tested, sum(e for _, e in rows) / tested)
            assert det._whole(obs, rates)[0] == expected
            checked += 1
        det.step(obs)
    assert checked > 30


@pytest.mark.parametrize("seed", [1, 3, 9])
def test_a_resolution_reports_the_whole_week_it_summarises(seed: int) -> None:
    # the resolved week still has a cell flagged on its own (not spread enough to alarm): its
    # expected rate, ratio and p-value must be those of the week's tests and failures the summary
    # gives, not those of that cell (a ratio of 16 and p = 4e-14 under "back within baseline")
    det = detector()
    resolved = [
        w
        for obs in make_weeks(seed, outbreak=SPREAD, start=60, end=66)
        for w in det.step(obs)
        if w.status is WarningStatus.resolved
    ]
    assert resolved
    for w in resolved:
        ev = w.evidence
        extra = ev.model_extra or {}
        assert extra["cells"], "the case under test: a cell flagged in the resolved week"
        assert f"({ev.failed} failures of {ev.tested} tests this week)" in w.summary
        assert ev.expected_rate is not None and ev.p_value is not None
        assert extra["ratio"] == pytest.approx(ev.observed_rate / ev.expected_rate)
        assert ev.p_value == pytest.approx(binomial_upper_tail(ev.failed, ev.tested, ev.expected_rate))
        assert ev.p_value > 0.01 and extra["ratio"] < 2
