"""Enterprise detectors: the repeat-failure levels and resolution, and the isolation-forest outliers."""

from __future__ import annotations

import math
import pickle
import random
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from detectors import DetectionEngine
from detectors.enterprise_outlier import EnterpriseOutlierDetector
from detectors.enterprise_repeat import EnterpriseRepeatDetector, binomial_tail
from detectors.forest import Forest, _compile, _z_order, fit_forest
from schemas import (
    Level,
    SamplingResult,
    WarningKind,
    WarningStatus,
    default_catalogue,
    uscc_check_char,
    validation_context,
)

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2023, 3, 6, 9, tzinfo=ZONE)
CTX = validation_context(now=datetime(2030, 1, 1, tzinfo=ZONE))


def uscc(n: int) -> str:
    first = f"91653022MA{n:07d}"
    return first + uscc_check_char(first)


ENT = uscc(42)


def rec(day: float, *, failed: tuple[str, ...] = (), **fields: Any) -> SamplingResult:
    data: dict[str, Any] = {
        "id": fields.pop("id", f"s-{day:g}"),
        "sampled_at": (T0 + timedelta(days=day)).isoformat(),
        "region": "653022",
        "industry": "textiles",
        "product": "carpet",
        "enterprise_id": ENT,
        "passed": not failed,
        "failed_items": list(failed),
        "inspector_id": "insp-9",
    }
    data.update(fields)
    return SamplingResult.model_validate(data, context=CTX)


def repeat(**hyper: Any) -> EnterpriseRepeatDetector:
    return EnterpriseRepeatDetector(enterprise_id=ENT, region_label="Akto County", item_labels={}, **hyper)


def feed(det: Any, records: list[SamplingResult]) -> list[tuple[str, str, str]]:
    out = []
    for r in records:
        out += [(r.id, w.status.value, w.level.value) for w in det.step(r)]
    return out


# -- repeat failures ---------------------------------------------------------------------------------


def test_binomial_tail() -> None:
    assert binomial_tail(0, 5, 0.1) == 1.0
    assert binomial_tail(2, 2, 0.06) == pytest.approx(0.0036)
    assert binomial_tail(2, 3, 0.06) == pytest.approx(3 * 0.06**2 * 0.94 + 0.06**3)
    assert binomial_tail(4, 3, 0.06) == 0.0


def test_levels_escalate_with_distinct_items() -> None:
    det = repeat()
    got = feed(
        det,
        [
            rec(0, failed=("ph",)),
            rec(40, failed=("odour",)),
            rec(80, failed=("fibre_content",)),
            rec(120, failed=("colour_fastness",)),
        ],
    )
    assert got == [("s-40", "firing", "yellow"), ("s-80", "firing", "orange"), ("s-120", "firing", "red")]


def test_same_item_twice_is_orange_and_three_times_red() -> None:
    got = feed(
        repeat(),
        [
            rec(0, failed=("formaldehyde",)),
            rec(100, failed=("formaldehyde", "ph")),
            rec(150, failed=("formaldehyde",)),
        ],
    )
    assert got == [("s-100", "firing", "orange"), ("s-150", "firing", "red")]


def test_a_severe_item_failed_twice_is_red() -> None:
    got = feed(repeat(), [rec(0, failed=("lead",)), rec(100, failed=("lead",))])
    assert got == [("s-0", "firing", "blue"), ("s-100", "firing", "red")]


def test_a_single_severe_failure_is_blue_and_a_plain_one_is_nothing() -> None:
    assert feed(repeat(), [rec(0, failed=("ph",))]) == []
    assert feed(repeat(), [rec(0, failed=("lead",))]) == [("s-0", "firing", "blue")]
    assert feed(repeat(), [rec(0, failed=("azo_dyes",))]) == []
    strict = repeat(severe_items=("azo_dyes",))
    assert feed(strict, [rec(0, failed=("azo_dyes",))]) == [("s-0", "firing", "blue")]


def test_a_heavily_sampled_enterprise_needs_a_significant_excess() -> None:
    # 2 failures in 20 samplings at an expected 6 %: p = 0.34, not a repeat offender
    records = [rec(d) for d in range(0, 180, 10)] + [rec(181, failed=("ph",)), rec(182, failed=("odour",))]
    assert feed(repeat(), records) == []


def test_failures_outside_the_window_do_not_count() -> None:
    assert feed(repeat(), [rec(0, failed=("ph",)), rec(400, failed=("odour",))]) == []


def test_resolves_after_consecutive_passes_and_forgives() -> None:
    det = repeat()
    got = feed(
        det,
        [
            rec(0, failed=("ph",)),
            rec(30, failed=("odour",)),
            rec(60),
            rec(90),
            rec(120),
            rec(150, failed=("fibre_content",)),
        ],
    )
    assert got == [("s-30", "firing", "yellow"), ("s-120", "resolved", "yellow")]


def test_resolves_when_the_window_empties() -> None:
    got = feed(repeat(), [rec(0, failed=("ph",)), rec(30, failed=("odour",)), rec(400)])
    assert got == [("s-30", "firing", "yellow"), ("s-400", "resolved", "yellow")]


def test_a_resolution_by_the_window_says_what_is_left_not_that_failures_expired() -> None:
    # 2 failures among 5 samplings (p = 0.032) fire; two passes later the same 2 failures among 7
    # samplings (p = 0.062) meet no rule and the warning resolves, though no failure left the window
    det = repeat()
    records = [
        rec(0),
        rec(10),
        rec(20),
        rec(30, failed=("ph",)),
        rec(40, failed=("odour",)),
        rec(50),
        rec(60),
    ]
    out = [w for r in records for w in det.step(r)]
    assert [(w.status.value, w.level.value) for w in out] == [("firing", "yellow"), ("resolved", "yellow")]
    resolved = out[1]
    assert (resolved.evidence.model_extra or {})["resolved_by"] == "window"
    assert (resolved.evidence.tested, resolved.evidence.failed) == (7, 2)
    assert "expired" not in resolved.summary
    assert "2 failed of 7 samplings within 365 days" in resolved.summary
    assert f"p={resolved.evidence.p_value:.2g} above 0.05" in resolved.summary
    # when the failures did leave the window, it says so
    (gone,) = feed(repeat(), [rec(0, failed=("ph",)), rec(30, failed=("odour",)), rec(400)])[1:]
    assert gone == ("s-400", "resolved", "yellow")
    det = repeat()
    for r in [rec(0, failed=("ph",)), rec(30, failed=("odour",))]:
        det.step(r)
    (w,) = det.step(rec(400))
    assert "no failure left within 365 days" in w.summary


def test_a_firing_summary_says_why_its_level() -> None:
    # 4 failures among 25 samplings (p = 0.06) are no repeat offence; a severe item makes it blue.
    # The documented rules make 4 significant failures red: the summary must show what decided it
    det = repeat()
    records = [rec(d) for d in range(0, 210, 10)]
    records += [rec(211, failed=("ph",)), rec(212, failed=("odour",)), rec(213, failed=("ph",))]
    out = [w for r in records for w in det.step(r)]
    assert out == []
    (w,) = det.step(rec(214, failed=("lead",)))
    assert w.level is Level.blue and (w.evidence.tested, w.evidence.failed) == (25, 4)
    assert w.evidence.p_value is not None and w.evidence.p_value > 0.05
    assert "4 failed of 25 samplings" in w.summary
    assert f"p={w.evidence.p_value:.2g} at the usual 6 % failure rate" in w.summary
    assert "repeated: ph" in w.summary and "severe: lead" in w.summary


def test_repeat_evidence_and_summary() -> None:
    det = repeat()
    det.step(rec(0, failed=("ph",), enterprise_name="Akto Textile Co."))
    (w,) = det.step(rec(30, failed=("odour",)))
    assert w.kind is WarningKind.enterprise and w.detector == "enterprise_repeat"
    assert w.scope.enterprise_id == ENT and w.scope.region == "653022" and w.scope.industry == "textiles"
    assert w.evidence.tested == 2 and w.evidence.failed == 2
    assert w.evidence.record_ids == ["s-0", "s-30"]
    assert w.evidence.expected_rate == 0.06
    assert w.evidence.p_value == pytest.approx(0.0036)
    extra = w.evidence.model_extra or {}
    assert extra["items"] == ["odour", "ph"] and extra["alpha"] == 0.05
    assert "Akto Textile Co." in w.summary and "Akto County" in w.summary and "odour" in w.summary
    assert w.raised_at == T0 + timedelta(days=30)


def test_repeat_summary_names_hazard_items_as_the_catalogue_does() -> None:
    # the engine builds the detector with the catalogue's names: the summary reads them, the
    # evidence keeps the items' keys
    engine = DetectionEngine(default_catalogue())
    records = [rec(0, failed=("ph",)), rec(30, failed=("ph", "lead"))]
    warnings = [*engine.process_samplings(records), *engine.flush()]
    (w,) = [w for w in warnings if w.detector == "enterprise_repeat"]
    assert w.level is Level.orange  # ph failed twice; lead, a severe item, once
    assert "(Lead 铅, pH pH值; p=" in w.summary
    assert "repeated: pH pH值; severe: Lead 铅" in w.summary
    assert "Akto County 阿克陶县" in w.summary and "\n" not in w.summary
    extra = w.evidence.model_extra or {}
    assert extra["items"] == ["lead", "ph"]
    assert (extra["repeated_items"], extra["severe_items"]) == (["ph"], ["lead"])
    assert w.scope.industry == "textiles"


def test_repeat_state_is_bounded_by_the_window() -> None:
    det = repeat()
    for d in range(0, 2000, 7):
        det.step(rec(d, failed=("ph",) if d % 70 == 0 else ()))
    assert len(det._tests) <= 53 and len(det._failures) <= 6


class _Recheck(EnterpriseRepeatDetector):
    """The repeat detector without its memory of quiet passes: every pass is tested afresh."""

    __slots__ = ()

    def step(self, obs: Any, at: float | None = None) -> list[Any]:
        self._quiet_until = -math.inf
        return super().step(obs, at)


def test_failures_turn_significant_when_the_passes_around_them_leave_the_window() -> None:
    # 2 failures among 22 samplings (p = 0.38) are no repeat offence; once the passes of days 0-190
    # have left the 365-day window, the same 2 failures among 5 samplings are (p = 0.03)
    records = [rec(d) for d in range(0, 200, 10)] + [rec(300, failed=("ph",)), rec(301, failed=("odour",))]
    records += [rec(400), rec(500), rec(600)]
    assert feed(repeat(), records) == [("s-600", "firing", "yellow")]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_passes_remembered_as_quiet_decide_as_if_tested_afresh(seed: int) -> None:
    # dense and sparse sampling, bursts of failures, long gaps: samplings leave the window while
    # failures stay, which is when a quiet enterprise can turn significant without a new failure
    rng = random.Random(seed)
    records, day = [], 0.0
    for n in range(220):  # about five years
        day += rng.choice((0.5, 1, 2, 4, 8, 40))
        fail_rate = 0.5 if (n // 30) % 3 == 0 else 0.05
        failed = (rng.choice(("ph", "odour", "fibre_content")),) if rng.random() < fail_rate else ()
        records.append(rec(day, failed=failed, id=f"s{n}"))
    expected = feed(_Recheck(enterprise_id=ENT, region_label="Akto County", item_labels={}), records)
    assert len({status for _, status, _ in expected}) == 2  # fires and resolves: the test says something
    assert feed(repeat(), records) == expected


# -- outliers ----------------------------------------------------------------------------------------

ITEMS = ("formaldehyde", "ph", "azo_dyes")


def batch(k: int, ratios: dict[str, float], *, failed: tuple[str, ...] = ()) -> SamplingResult:
    tests = [
        {"name": name, "value": r * 50.0, "limit": 50.0, "passed": name not in failed}
        for name, r in ratios.items()
    ]
    return rec(k / 10, id=f"b{k:04d}", failed=failed, test_items=tests, enterprise_id=uscc(k % 17))


def normal(rng: random.Random) -> dict[str, float]:
    return {
        "formaldehyde": rng.gauss(0.4, 0.05),
        "ph": rng.gauss(0.8, 0.02),
        "azo_dyes": rng.gauss(0.2, 0.04),
    }


ODD = {"formaldehyde": 0.98, "ph": 0.99, "azo_dyes": 0.97}


def outlier(**hyper: Any) -> EnterpriseOutlierDetector:
    base: dict[str, Any] = {
        "region": "653022",
        "industry": "textiles",
        "items": ITEMS,
        "seed": 3,
        "region_label": "Akto County",
        "industry_label": "Textiles",
        "item_labels": {},
    }
    base.update(hyper)
    return EnterpriseOutlierDetector(**base)


def test_features_are_value_over_limit_with_missing_as_nan() -> None:
    det = outlier()
    x = det.features(batch(1, {"formaldehyde": 0.5, "colour_fastness": 0.9}))
    assert x is not None and x[0] == pytest.approx(0.5) and math.isnan(x[1]) and math.isnan(x[2])
    assert det.features(rec(1)) is None  # no test items
    assert det.features(batch(2, {"odour": 0.5})) is None  # none of the industry's items


def test_compiled_forest_scores_like_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(0.5, 0.1, size=(600, 3))
    model = IsolationForest(n_estimators=40, max_samples=128, contamination=0.01, random_state=5).fit(train)
    forest = _compile(model, (0.0, 0.0, 0.0), train)
    probe = rng.normal(0.5, 0.25, size=(200, 3))
    ours = np.array([forest.score(tuple(row)) for row in probe])
    np.testing.assert_allclose(ours, model.score_samples(probe), rtol=0, atol=1e-12)
    assert forest.offset == model.offset_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_early_stopping_decides_like_the_full_score(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(0.5, 0.1, size=(800, 3))
    forest = fit_forest(
        train, (0.5, 0.5, 0.5), n_estimators=50, max_samples=256, contamination=0.05, seed=seed
    )
    probe = np.vstack([rng.normal(0.5, 0.1, size=(300, 3)), rng.uniform(-0.5, 1.5, size=(300, 3))])
    decisions = [forest.unusual(tuple(row)) for row in probe]
    assert decisions == [forest.score(tuple(row)) < forest.offset for row in probe]
    assert 0 < sum(decisions) < len(decisions)  # both answers occur
    # rows exactly at the threshold: the exact score decides, never the early bound
    border = sorted(probe.tolist(), key=lambda r: abs(forest.score(tuple(r)) - forest.offset))[:5]
    assert [forest.unusual(tuple(r)) for r in border] == [
        forest.score(tuple(r)) < forest.offset for r in border
    ]


@pytest.mark.parametrize(
    ("seed", "rows", "columns", "max_samples", "trees"),
    [(0, 200, 3, 200, 50), (3, 2000, 4, 256, 50), (7, 700, 1, 256, 20), (9, 57, 2, 57, 10)],
)
def test_fitted_forest_is_scikit_learns_isolation_forest(
    seed: int, rows: int, columns: int, max_samples: int, trees: int
) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(0.5, 0.2, size=(rows, columns))
    train[::7, 0] = 0.3  # ties, as imputed medians make them
    medians = tuple(float(v) for v in np.median(train, axis=0))
    model = IsolationForest(
        n_estimators=trees, max_samples=max_samples, contamination=0.01, random_state=seed
    ).fit(train)
    ours = fit_forest(
        train, medians, n_estimators=trees, max_samples=max_samples, contamination=0.01, seed=seed
    )
    assert ours == _compile(model, medians, train)  # same trees, offset and training scores, bit for bit


@pytest.mark.parametrize(
    "rows",
    [
        np.random.default_rng(1).normal(0.5, 0.2, size=(300, 9)).astype(np.float32),  # more than 8 vary
        np.array([[0.5, 1.0], [np.inf, 1.0], [-np.inf, 1.0], [0.2, 1.0]], dtype=np.float32),
        np.ones((5, 3), dtype=np.float32),  # nothing varies
        np.zeros((1, 2), dtype=np.float32),
    ],
)
def test_z_order_is_an_order_of_the_rows(rows: np.ndarray) -> None:
    assert sorted(_z_order(rows).tolist()) == list(range(len(rows)))


def test_trees_grown_through_the_public_estimator_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.forest as forest

    rng = np.random.default_rng(4)
    train = rng.normal(0.5, 0.2, size=(500, 3))
    args = {"n_estimators": 20, "max_samples": 256, "contamination": 0.01, "seed": 4}
    direct = fit_forest(train, (0.5, 0.5, 0.5), **args)
    monkeypatch.setattr(forest, "_tree_grower", lambda depth: partial(forest._grow_with_estimator, depth))
    assert fit_forest(train, (0.5, 0.5, 0.5), **args) == direct


def test_fits_at_min_train_and_refits_on_schedule() -> None:
    rng = random.Random(1)
    det = outlier(min_train=50, refit_every=40, window=100, n_estimators=20)
    for k in range(49):
        assert det.step(batch(k, normal(rng))) == []
    assert det.fits == 0
    det.step(batch(49, normal(rng)))
    assert det.fits == 1
    flagged = 0
    for k in range(50, 170):
        flagged += len(det.step(batch(k, normal(rng))))
    learnt = 120 - flagged  # flagged vectors are not learnt
    assert det.fits == 1 + learnt // 40 and len(det._buffer) == 100


def test_flags_an_unusual_pass_not_a_failure_and_does_not_learn_it() -> None:
    rng = random.Random(2)
    det = outlier(min_train=100, refit_every=1000)
    for k in range(150):
        det.step(batch(k, normal(rng)))
    size = len(det._buffer)
    assert det.step(batch(500, ODD, failed=("ph",))) == []  # failures are not this detector's job
    before = pickle.dumps(det)
    (w,) = det.step(batch(501, ODD))
    assert pickle.dumps(det) == before and len(det._buffer) == size  # flagged vector not learnt
    assert w.detector == "enterprise_outlier" and w.kind is WarningKind.enterprise
    assert w.status is WarningStatus.firing and w.level is Level.yellow
    assert (w.scope.region, w.scope.industry) == ("653022", "textiles")
    assert w.scope.enterprise_id == uscc(501 % 17)
    assert w.evidence.statistic is not None and w.evidence.threshold is not None
    assert w.evidence.statistic < w.evidence.threshold
    assert w.evidence.record_ids == ["b0501"]
    extra = w.evidence.model_extra or {}
    assert extra["features"] == pytest.approx(ODD)
    assert extra["trained_on"] == 100 and extra["record_id"] == "b0501"


def test_outlier_summary_names_the_county_industry_and_items_as_the_catalogue_does() -> None:
    rng = random.Random(2)
    engine = DetectionEngine(default_catalogue())
    records = [batch(k, normal(rng)) for k in range(300)] + [batch(301, ODD)]
    warnings = [*engine.process_samplings(records), *engine.flush()]
    (w,) = [w for w in warnings if w.detector == "enterprise_outlier" and w.evidence.record_ids == ["b0301"]]
    assert "(carpet, Textiles and apparel 纺织服装, Akto County 阿克陶县)" in w.summary
    assert "Formaldehyde 甲醛含量 0.98×limit, pH pH值 0.99×limit, Azo dyes" in w.summary
    assert "\n" not in w.summary
    assert (w.scope.region, w.scope.industry) == ("653022", "textiles")
    extra = w.evidence.model_extra or {}
    assert extra["features"] == pytest.approx(ODD)  # keyed by the items' keys


def test_nothing_is_scored_before_the_first_fit() -> None:
    det = outlier(min_train=100)
    assert det.step(batch(0, ODD)) == []
    assert len(det._buffer) == 1


def test_missing_items_are_imputed_with_the_training_median() -> None:
    rng = random.Random(4)
    det = outlier(min_train=100, refit_every=1000)
    for k in range(120):
        det.step(batch(k, normal(rng)))
    forest = det._forest
    assert forest is not None
    assert forest.medians == pytest.approx((0.4, 0.8, 0.2), abs=0.03)
    # a typical batch that did not test azo dyes is not unusual
    assert det.step(batch(900, {"formaldehyde": 0.4, "ph": 0.8})) == []


def test_outlier_determinism_depends_on_the_seed_only() -> None:
    def run(seed: int) -> list[str]:
        rng = random.Random(7)
        det = outlier(seed=seed, min_train=100, refit_every=50)
        out = []
        for k in range(400):
            out += [w.model_dump_json() for w in det.step(batch(k, ODD if k % 97 == 0 else normal(rng)))]
        return out

    first = run(3)
    assert first and first == run(3)


# -- batch mode (replays) ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 5])
def test_flat_forest_decides_like_the_nested_trees(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(0.5, 0.1, size=(900, 3))
    forest = fit_forest(
        train, (0.5, 0.5, 0.5), n_estimators=50, max_samples=256, contamination=0.05, seed=seed
    )
    probe = np.vstack(
        [
            rng.normal(0.5, 0.1, size=(400, 3)),
            rng.uniform(-0.5, 1.5, size=(400, 3)),
            [[1e300, 0.5, 0.5], [-1e300, -1e300, 1e300], [0.5, 0.5, 0.5]],  # beyond float32: inf
            train[:50],  # values at the thresholds the trees were split on
        ]
    )
    depths = forest.depths(probe)  # the arrays, all rows at once
    assert forest._trees is None  # the nested trees are not needed for that
    scores = [forest.score(tuple(row)) for row in probe.tolist()]  # the nested trees, row by row
    assert [forest.score_of(d) for d in depths] == scores  # bit for bit
    decisions = [forest.score_of(d) < forest.offset for d in depths]
    assert decisions == [forest.unusual(tuple(row)) for row in probe.tolist()]
    assert 0 < sum(decisions) < len(decisions)


def _outlier_run(det: EnterpriseOutlierDetector, n: int, drain_every: int | None) -> list[str]:
    rng = random.Random(11)
    out: list[str] = []
    for k in range(n):
        ratios = normal(rng)
        if k % 19 == 0:  # scattered unusual values (a fixed odd row would soon be learnt as normal)
            ratios = {name: rng.uniform(0.0, 1.0) for name in ratios}
        if k % 9 == 0:
            ratios = {"formaldehyde": ratios["formaldehyde"], "ph": ratios["ph"]}  # imputed azo dyes
        out += [
            w.model_dump_json() for w in det.step(batch(k, ratios, failed=("ph",) if k % 13 == 0 else ()))
        ]
        if drain_every is not None and k % drain_every == drain_every - 1:
            out += [w.model_dump_json() for w in det.drain()]
    out += [w.model_dump_json() for w in det.drain()]
    return out


@pytest.mark.parametrize("drain_every", [None, 1, 37, 250])
def test_batch_mode_gives_the_same_warnings_fits_and_state(drain_every: int | None) -> None:
    hyper = {"min_train": 120, "refit_every": 90, "window": 300, "n_estimators": 30}
    one_by_one = outlier(**hyper)
    expected = _outlier_run(one_by_one, 1200, None)
    batched = outlier(batch=True, **hyper)
    got = _outlier_run(batched, 1200, drain_every)
    assert got == expected  # the same warnings in the same order, whatever the drain points
    assert sum('"enterprise_outlier"' in w for w in got) >= 10
    assert batched.fits == one_by_one.fits >= 10
    assert batched._forest == one_by_one._forest and list(batched._buffer) == list(one_by_one._buffer)
    assert batched._since_fit == one_by_one._since_fit


def test_batch_mode_holds_rows_back_until_the_next_fit_and_pickles() -> None:
    rng = random.Random(3)
    det = outlier(batch=True, min_train=100, refit_every=50, n_estimators=20)
    for k in range(99):
        assert det.step(batch(k, normal(rng))) == []
    assert det.fits == 0 and len(det._pending) == 99
    det.step(batch(99, normal(rng)))  # the 100th row fills the first training window
    assert det.fits == 1 and det._pending == []
    det.step(batch(100, ODD))
    det.drain()
    forest = det._forest
    assert forest is not None and forest._trees is None  # batch mode never builds the nested trees
    forest.score((0.5, 0.5, 0.5))  # one row at a time builds them (a cache)
    assert forest._trees is not None
    copy = pickle.loads(pickle.dumps(det))
    assert copy._forest is not None and copy._forest._trees is None  # the cache is not pickled
    assert copy._forest == det._forest
    for k in range(101, 130):
        row = normal(rng)
        assert [w.model_dump_json() for w in copy.step(batch(k, row))] == [
            w.model_dump_json() for w in det.step(batch(k, row))
        ]
    assert [w.model_dump_json() for w in copy.drain()] == [w.model_dump_json() for w in det.drain()]


# -- checkpoints -------------------------------------------------------------------------------------


def test_state_pickled_when_both_detectors_lived_in_detectors_enterprise_still_loads() -> None:
    """Checkpoints written before each detector had a module of its own name ``detectors.enterprise``."""
    rng = random.Random(6)
    rep = repeat()
    out = outlier(min_train=50, refit_every=30, window=100, n_estimators=10)
    assert feed(rep, [rec(0, failed=("ph",)), rec(30, failed=("ph",))]) == [("s-30", "firing", "orange")]
    for k in range(60):
        out.step(batch(k, normal(rng)))
    assert out._forest is not None
    # protocol 2 names each class once, as b"c<module>\n<name>\n": the names an older pickle holds
    blob = pickle.dumps((rep, out), protocol=2)
    moved = {
        b"cdetectors.enterprise_repeat\nEnterpriseRepeatDetector\n": b"EnterpriseRepeatDetector",
        b"cdetectors.enterprise_repeat\n_RepeatRules\n": b"_RepeatRules",
        b"cdetectors.enterprise_outlier\nEnterpriseOutlierDetector\n": b"EnterpriseOutlierDetector",
        b"cdetectors.forest\nForest\n": b"_Forest",
    }
    for new, name in moved.items():
        assert blob.count(new) == 1
        blob = blob.replace(new, b"cdetectors.enterprise\n" + name + b"\n")
    assert b"cdetectors.enterprise_" not in blob and b"cdetectors.forest" not in blob

    old_rep, old_out = pickle.loads(blob)
    assert type(old_rep) is EnterpriseRepeatDetector and type(old_out) is EnterpriseOutlierDetector
    assert type(old_out._forest) is Forest and old_out._forest == out._forest
    later = [rec(40 + k, id=f"p-{k}") for k in range(3)]
    assert feed(old_rep, later) == feed(rep, later) == [("p-2", "resolved", "orange")]
    rows = [normal(rng) for _ in range(60)] + [ODD]
    mine, theirs = [], []
    for k, row in enumerate(rows, start=60):
        mine += [w.model_dump_json() for w in out.step(batch(k, row))]
        theirs += [w.model_dump_json() for w in old_out.step(batch(k, row))]
    assert theirs == mine and mine  # the same unusual batches flagged, with the same evidence
    assert old_out.fits == out.fits == 3 and old_out._forest == out._forest  # and refitted alike
