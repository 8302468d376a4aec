"""PolicyTargetDetector: the pass rate's upper confidence bound against the policy target."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from detectors.base import SeriesWeek
from detectors.stats import clopper_pearson_upper, wilson_upper
from detectors.target import PolicyTargetDetector, target_level
from schemas import Level, Scope, WarningKind, WarningStatus

TZ = timezone(timedelta(hours=8))
START = datetime(2021, 1, 4, tzinfo=TZ)


def week(i: int, tested: int, failed: int, target: float | None = 0.96) -> SeriesWeek:
    ws = START + timedelta(weeks=i)
    return SeriesWeek(
        ws,
        ws + timedelta(weeks=1),
        tested,
        failed,
        tuple(f"r{i}-{k}" for k in range(failed)),
        ws + timedelta(days=4) if tested else None,
        target if tested else None,
    )


def detector(**hyper: object) -> PolicyTargetDetector:
    return PolicyTargetDetector(
        kind=WarningKind.industry,
        scope=Scope(industry="food_processing"),
        label="Food processing 食品加工",
        **hyper,  # type: ignore[arg-type]
    )


def test_bounds() -> None:
    assert wilson_upper(90, 100) == pytest.approx(0.9393, abs=1e-3)
    assert clopper_pearson_upper(90, 100) == pytest.approx(0.9448, abs=1e-3)
    assert wilson_upper(0, 0) == 1.0 and clopper_pearson_upper(10, 10) == 1.0


def test_point_estimate_below_target_is_not_enough() -> None:
    # 93 % pass rate on 20 batches a week: below 96 %, but not significantly so on 20 batches
    det = detector()
    out = det.step(week(0, 20, 2))
    assert out == []
    assert det.score(week(1, 20, 2)).extra["window_tested"] == 40


def test_minimum_sample_size() -> None:
    # 10 of 20 failed: far below target, but fewer than 30 tested in the window -> nothing
    det = detector(min_tested=30)
    assert det.step(week(0, 20, 10)) == []
    out = det.step(week(1, 20, 10))  # 40 tested now
    assert len(out) == 1 and out[0].status is WarningStatus.firing


def test_fires_while_below_and_resolves_when_it_no_longer_holds() -> None:
    det = detector(window_weeks=4)
    statuses = []
    series = [week(i, 50, 1) for i in range(4)] + [week(i, 50, 8) for i in range(4, 8)]
    series += [week(i, 50, 0) for i in range(8, 16)]
    for i, obs in enumerate(series):
        statuses += [(i, w.status.value) for w in det.step(obs)]
    firing = [i for i, s in statuses if s == "firing"]
    resolved = [i for i, s in statuses if s == "resolved"]
    assert firing and firing[0] in (4, 5)
    assert len(resolved) == 1 and resolved[0] == firing[-1] + 1
    assert firing == list(range(firing[0], resolved[0]))


def test_evidence_and_summary() -> None:
    det = detector()
    for i in range(3):
        det.step(week(i, 40, 1))
    out = det.step(week(3, 40, 12))
    assert len(out) == 1
    w = out[0]
    ev = w.evidence
    extra = ev.model_extra or {}
    assert w.detector == "policy_target" and w.kind is WarningKind.industry
    assert (ev.tested, ev.failed) == (160, 15)
    assert ev.threshold == pytest.approx(0.96)
    assert ev.statistic == pytest.approx(wilson_upper(145, 160))
    assert extra["pass_rate_upper"] < 0.96 and extra["window_weeks"] == 4
    assert w.window_start == START and w.window_end == START + timedelta(weeks=4)
    assert w.summary.startswith("Food processing 食品加工: pass rate 90.6 % over the last 4 weeks")
    assert "96 % policy target" in w.summary


def test_window_rolls() -> None:
    det = detector(window_weeks=3)
    for i in range(10):
        det.step(week(i, 30, 0))
    assert det.score(week(10, 30, 0)).extra["window_tested"] == 90


def test_target_is_test_weighted() -> None:
    det = detector(window_weeks=2)
    det.step(week(0, 100, 0, target=0.92))
    s = det.score(week(1, 300, 0, target=0.96))
    assert s.threshold == pytest.approx(0.95)


def test_score_is_pure_and_pickles() -> None:
    det = detector()
    for i in range(5):
        det.step(week(i, 40, 3))
    snap, before = copy.deepcopy(det.__dict__), pickle.dumps(det)
    det.score(week(5, 40, 20))
    assert det.__dict__ == snap and pickle.dumps(det) == before
    clone = pickle.loads(before)
    a = [x.model_dump() for x in det.step(week(5, 40, 20))]
    assert a and a == [x.model_dump() for x in clone.step(week(5, 40, 20))]


def test_bad_hyper_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        detector(method="normal")
    with pytest.raises(ValueError, match="confidence"):
        detector(confidence=0.8)


@pytest.mark.parametrize(
    ("gap", "level"), [(0.01, Level.blue), (0.03, Level.yellow), (0.07, Level.orange), (0.12, Level.red)]
)
def test_level_rules(gap: float, level: Level) -> None:
    assert target_level(gap) is level


def _percent_after(text: str, before: str) -> float:
    return float(text.split(before, 1)[1].split(" %", 1)[0])


@pytest.mark.parametrize(("failed", "target"), [(38, 0.9336), (38, 0.93325), (60, 0.92)])
def test_summary_target_and_bound_read_as_they_compare(failed: int, target: float) -> None:
    # a county's target is a test-weighted mix of 92 % and 96 % (93.36 %): a bound of 93.3 % is
    # below it, and the summary must not say "at most 93.3 % ... below the 93 % policy target"
    det = detector(window_weeks=4)
    out = []
    for i in range(4):
        out = det.step(week(i, 500, failed, target=target))
    (w,) = out
    assert w.status is WarningStatus.firing
    upper = _percent_after(w.summary, "at most ")
    shown_target = _percent_after(w.summary, "below the ")
    assert upper < shown_target
    assert shown_target == pytest.approx(100 * target, abs=0.05)
    if target == 0.92:
        assert "below the 92 % policy target" in w.summary
