"""One conformance suite for every detector in ``detectors.__all__``.

Each detector class has a factory here: an instance with default hyper-parameters and a seeded
observation stream (``SeriesWeek`` / ``ItemWeek`` / ``SamplingResult`` / ``PatrolReport``) with an
injected change, so the stream exercises alarms. Every detector must be deterministic for a seed,
survive pickling mid-stream, not mutate on ``score``, and emit well-formed warnings. The last tests
pin where the record detectors alarm on their seeded streams.
"""

from __future__ import annotations

import inspect
import pickle
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import detectors
from detectors import (
    EnterpriseOutlierDetector,
    EnterpriseRepeatDetector,
    ItemCell,
    ItemWeek,
    PatrolDetector,
    PolicyTargetDetector,
    RateChangeDetector,
    SeriesWeek,
    SystemicItemDetector,
)
from detectors.base import Detector
from schemas import (
    Level,
    PatrolReport,
    RiskWarning,
    SamplingResult,
    Scope,
    WarningKind,
    WarningStatus,
    fingerprint_of,
    uscc_check_char,
    validation_context,
)

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2021, 1, 4, tzinfo=ZONE)  # a Monday
CTX = validation_context(now=datetime(2027, 1, 1, tzinfo=ZONE))
REGIONS = ("653001", "653022", "653023", "653024")


def uscc(n: int) -> str:
    """A valid unified social credit code numbered ``n``."""
    first = f"91653001MA{n:07d}"
    return first + uscc_check_char(first)


def sampling(**fields: Any) -> SamplingResult:
    base: dict[str, Any] = {
        "region": "653001",
        "industry": "textiles",
        "product": "carpet",
        "enterprise_id": uscc(1),
        "passed": True,
        "inspector_id": "insp-1",
    }
    base.update(fields)
    base["sampled_at"] = base["sampled_at"].isoformat()
    return SamplingResult.model_validate(base, context=CTX)


def patrol(**fields: Any) -> PatrolReport:
    base: dict[str, Any] = {
        "region": "653001",
        "industry": "food_processing",
        "enterprise_id": uscc(1),
        "inspector_id": "insp-1",
        "hazard": "labelling",
        "severity": "general",
        "action": "rectification_ordered",
    }
    base.update(fields)
    base["patrolled_at"] = base["patrolled_at"].isoformat()
    return PatrolReport.model_validate(base, context=CTX)


# -- seeded streams -----------------------------------------------------------------------------------


def _weeks(n: int) -> list[tuple[datetime, datetime]]:
    return [(START + timedelta(weeks=k), START + timedelta(weeks=k + 1)) for k in range(n)]


def series_stream(
    seed: int,
    *,
    weeks: int = 200,
    change: int = 160,
    base: float = 0.04,
    high: float = 0.14,
    target: float | None = None,
) -> list[SeriesWeek]:
    """Weekly tests of one series with a step in the failure rate at week ``change``."""
    rng = random.Random(seed)
    out = []
    for k, (ws, we) in enumerate(_weeks(weeks)):
        tested = rng.randint(120, 220)
        rate = high if k >= change else base
        failed_n = sum(rng.random() < rate for _ in range(tested))
        ids = tuple(f"s{k:03d}-{j:03d}" for j in range(failed_n))
        out.append(
            SeriesWeek(
                week_start=ws,
                week_end=we,
                tested=tested,
                failed=failed_n,
                failed_ids=ids,
                last_event=we - timedelta(hours=1),
                target=target,
            )
        )
    return out


def item_stream(seed: int, *, weeks: int = 120, change: int = 90) -> list[ItemWeek]:
    """One hazard item in 4 counties x 3 industries; from ``change`` on it rises in 2 x 2 cells."""
    rng = random.Random(seed)
    industries = ("textiles", "light_industry", "ethnic_handicrafts")
    out = []
    for k, (ws, we) in enumerate(_weeks(weeks)):
        cells = []
        for region in REGIONS:
            for industry in industries:
                tested = rng.randint(20, 40)
                hot = k >= change and region in REGIONS[:2] and industry in industries[:2]
                rate = 0.25 if hot else 0.005
                failed_n = sum(rng.random() < rate for _ in range(tested))
                ids = tuple(f"i{k:03d}-{region}-{industry}-{j}" for j in range(failed_n))
                cells.append(ItemCell(region, industry, tested, failed_n, ids))
        out.append(ItemWeek("formaldehyde", ws, we, tuple(cells), last_event=we - timedelta(hours=1)))
    return out


def repeat_stream(seed: int, *, n: int = 40) -> list[SamplingResult]:
    """One enterprise sampled about monthly: rare failures, a bad spell (20-29), then a clean run."""
    rng = random.Random(seed)
    out = []
    when = START
    for k in range(n):
        when += timedelta(days=rng.randint(20, 40), hours=rng.randint(0, 8))
        rate = 0.6 if 20 <= k < 30 else (0.0 if k >= 30 else 0.05)
        failed = rng.random() < rate
        items = [rng.choice(["formaldehyde", "ph", "fibre_content", "odour", "azo_dyes"])] if failed else []
        out.append(
            sampling(
                id=f"r{k:03d}",
                sampled_at=when,
                enterprise_id=uscc(7),
                enterprise_name="Artux Carpet Works",
                passed=not failed,
                failed_items=items,
            )
        )
    return out


OUTLIER_ITEMS = ("formaldehyde", "ph", "azo_dyes", "colour_fastness", "fibre_content", "odour")


def outlier_stream(seed: int, *, n: int = 900, odd: Sequence[int] = (500, 650, 800)) -> list[SamplingResult]:
    """Passing textile batches with test-item values; ``odd`` positions carry an unusual pattern."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        when = START + timedelta(hours=6 * k)
        ratios = {
            "formaldehyde": rng.gauss(0.35, 0.08),
            "ph": rng.gauss(0.80, 0.03),
            "azo_dyes": rng.gauss(0.20, 0.05),
            "colour_fastness": rng.gauss(1.10, 0.05),
        }
        if k in odd:  # every item near its limit at once, each still passing
            ratios = {"formaldehyde": 0.97, "ph": 0.99, "azo_dyes": 0.95, "colour_fastness": 1.01}
        tests = [
            {"name": name, "value": round(r * 100.0, 3), "limit": 100.0, "unit": "mg/kg", "passed": True}
            for name, r in ratios.items()
            if k % 9 != 0 or name != "azo_dyes"  # some batches do not test every item
        ]
        out.append(
            sampling(
                id=f"o{k:04d}",
                sampled_at=when,
                enterprise_id=uscc(100 + k % 30),
                test_items=tests,
            )
        )
    return out


PATROL_ACTIONS = ("rectification_ordered", "rectification_ordered", "rectified_on_site", "escalated")


def patrol_stream(seed: int, *, n: int = 400) -> list[PatrolReport]:
    """A county's patrols over about two years: scattered general hazards and a few majors, one
    enterprise with repeated general hazards (150-159), one major later rectified on site (200, 230),
    and a burst of general hazards (300-329)."""
    rng = random.Random(seed)
    out = []
    when = START
    hazards = ("labelling", "preservatives", "coliforms", "moisture")
    for k in range(n):
        when += timedelta(hours=rng.randint(24, 60) if not 300 <= k < 330 else rng.randint(2, 8))
        enterprise = uscc(200 + rng.randint(0, 400))
        severity = "major" if rng.random() < 0.02 else "general"
        action = rng.choice(PATROL_ACTIONS)
        if 150 <= k < 160 and k % 3 == 0:
            enterprise, severity = uscc(999), "general"  # one enterprise keeps showing up
        if k in (200, 230):
            enterprise = uscc(998)
            severity = "major" if k == 200 else "general"
            action = "rectification_ordered" if k == 200 else "rectified_on_site"
        out.append(
            patrol(
                id=f"p{k:04d}",
                patrolled_at=when,
                enterprise_id=enterprise,
                hazard=rng.choice(hazards),
                severity=severity,
                action=action,
            )
        )
    return out


# -- factories ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """How to build one detector class and a seeded stream that exercises its alarms."""

    make: Callable[[int], Detector[Any]]
    stream: Callable[[int], list[Any]]


CASES: dict[type, Case] = {
    RateChangeDetector: Case(
        make=lambda seed: RateChangeDetector(
            name="regional_rate", kind=WarningKind.regional, scope=Scope(region="653001"), label="Artux City"
        ),
        stream=lambda seed: series_stream(seed),
    ),
    PolicyTargetDetector: Case(
        make=lambda seed: PolicyTargetDetector(
            kind=WarningKind.industry, scope=Scope(industry="textiles"), label="Textiles"
        ),
        stream=lambda seed: series_stream(seed, base=0.03, high=0.16, target=0.92),
    ),
    SystemicItemDetector: Case(
        make=lambda seed: SystemicItemDetector(
            item="formaldehyde",
            label="Formaldehyde",
            region_labels={r: r for r in REGIONS},
            industry_labels={"textiles": "Textiles"},
        ),
        stream=lambda seed: item_stream(seed),
    ),
    EnterpriseRepeatDetector: Case(
        make=lambda seed: EnterpriseRepeatDetector(
            enterprise_id=uscc(7), region_label="Artux City", item_labels={"ph": "pH"}
        ),
        stream=lambda seed: repeat_stream(seed),
    ),
    EnterpriseOutlierDetector: Case(
        make=lambda seed: EnterpriseOutlierDetector(  # refits twice within the stream
            region="653001",
            industry="textiles",
            items=OUTLIER_ITEMS,
            seed=seed,
            refit_every=300,
            region_label="Artux City",
            industry_label="Textiles",
            item_labels={"ph": "pH"},
        ),
        stream=lambda seed: outlier_stream(seed),
    ),
    PatrolDetector: Case(
        make=lambda seed: PatrolDetector(
            region="653001", label="Artux City", industry_labels={"textiles": "Textiles"}, item_labels={}
        ),
        stream=lambda seed: patrol_stream(seed),
    ),
}


def detector_classes() -> list[type]:
    """Every class exported by ``detectors`` that is a concrete :class:`Detector`."""
    out = []
    for name in detectors.__all__:
        obj = getattr(detectors, name)
        if inspect.isclass(obj) and issubclass(obj, Detector) and obj is not Detector:
            out.append(obj)
    return out


def run(det: Detector[Any], stream: Sequence[Any]) -> list[RiskWarning]:
    out: list[RiskWarning] = []
    for obs in stream:
        out += det.step(obs)
    return out


def dump(warnings: Sequence[RiskWarning]) -> list[str]:
    return [w.model_dump_json() for w in warnings]


PARAMS = [pytest.param(cls, id=cls.__name__) for cls in CASES]
SEED = 11


@pytest.fixture(scope="module")
def reference() -> dict[type, list[RiskWarning]]:
    """Each detector's warnings on its seeded stream, computed once per module."""
    return {cls: run(case.make(SEED), case.stream(SEED)) for cls, case in CASES.items()}


# -- the suite ----------------------------------------------------------------------------------------


def test_every_exported_detector_is_in_the_suite() -> None:
    missing = [cls.__name__ for cls in detector_classes() if cls not in CASES]
    assert not missing, f"detectors without a conformance case: {missing}"
    assert set(CASES) <= set(detector_classes())


@pytest.mark.parametrize("cls", PARAMS)
def test_stream_exercises_alarms(cls: type, reference: dict[type, list[RiskWarning]]) -> None:
    firing = [w for w in reference[cls] if w.status is WarningStatus.firing]
    assert firing, f"{cls.__name__} raised nothing on its seeded stream"


@pytest.mark.parametrize("cls", PARAMS)
def test_same_seed_same_warnings(cls: type, reference: dict[type, list[RiskWarning]]) -> None:
    case = CASES[cls]
    assert dump(run(case.make(SEED), case.stream(SEED))) == dump(reference[cls])


@pytest.mark.parametrize("cls", PARAMS)
def test_state_survives_pickling_mid_stream(cls: type, reference: dict[type, list[RiskWarning]]) -> None:
    case = CASES[cls]
    stream = case.stream(SEED)
    half = len(stream) // 2
    det = case.make(SEED)
    first = run(det, stream[:half])
    restored = pickle.loads(pickle.dumps(det))
    rest = run(restored, stream[half:])
    assert dump(first + rest) == dump(reference[cls])


@pytest.mark.parametrize("cls", PARAMS)
def test_score_does_not_mutate(cls: type) -> None:
    case = CASES[cls]
    det = case.make(SEED)
    stream = case.stream(SEED)
    for n, obs in enumerate(stream):
        if n % 7 == 0:
            before = pickle.dumps(det)
            det.score(obs)
            det.score(obs)
            assert pickle.dumps(det) == before, f"{cls.__name__}.score changed the state at observation {n}"
        det.step(obs)


@pytest.mark.parametrize("cls", PARAMS)
def test_warnings_are_well_formed(cls: type, reference: dict[type, list[RiskWarning]]) -> None:
    fingerprints: dict[tuple[str, str, Scope], set[str]] = {}
    for w in reference[cls]:
        assert w.summary.strip() and "\n" not in w.summary
        assert w.evidence.record_ids, f"{w.summary}: no contributing record ids"
        assert w.level in set(Level)
        assert w.raised_at.tzinfo is not None and w.window_start <= w.window_end
        assert w.fingerprint == fingerprint_of(w.detector, w.kind, w.scope)
        fingerprints.setdefault((w.detector, w.kind.value, w.scope), set()).add(w.fingerprint)
    assert all(len(fps) == 1 for fps in fingerprints.values())
    ids = [w.id for w in reference[cls]]
    assert len(ids) == len(set(ids)), "warning ids must be unique per emission"


# -- pinned alarm positions of the record detectors -----------------------------------------------------


def positions(det: Detector[Any], stream: Sequence[Any]) -> list[tuple[int, str, str]]:
    """(index in the stream, status, level) of every emission."""
    out = []
    for n, obs in enumerate(stream):
        out += [(n, w.status.value, w.level.value) for w in det.step(obs)]
    return out


def test_pinned_repeat_positions() -> None:
    stream = repeat_stream(SEED)
    assert [n for n, r in enumerate(stream) if not r.passed] == [13, 20, 22, 23, 25, 26, 27, 28, 29]
    got = positions(CASES[EnterpriseRepeatDetector].make(SEED), stream)
    # 13 and 20 both failed formaldehyde but two failures are not yet significant; 22 is the third
    # failure in 13 samplings (p = 0.039, orange, formaldehyde repeated); 23 is the fourth (red)
    assert got == [(22, "firing", "orange"), (23, "firing", "red"), (32, "resolved", "red")]


def test_pinned_outlier_positions() -> None:
    det = CASES[EnterpriseOutlierDetector].make(SEED)
    assert isinstance(det, EnterpriseOutlierDetector)
    got = positions(det, outlier_stream(SEED))
    assert det.fits == 3  # fitted at 200 vectors, refitted after 300 more, twice
    # the three planted patterns are beyond every training score (yellow); the rest are the
    # ~1 % the contamination lets through (blue)
    flagged = [n for n, _, _ in got]
    assert flagged == [202, 238, 269, 385, 402, 426, 485, 500, 537, 650, 656, 690, 737, 800, 835]
    assert [n for n, _, level in got if level == "yellow"] == [500, 650, 800]


def _tagged(det: Detector[Any], stream: Sequence[Any]) -> list[tuple[int, str, str, str, str | None]]:
    out = []
    for n, obs in enumerate(stream):
        for w in det.step(obs):
            rule = str((w.evidence.model_extra or {}).get("rule"))
            out.append((n, rule, w.status.value, w.level.value, w.scope.enterprise_id))
    return out


def test_pinned_patrol_positions() -> None:
    got = _tagged(CASES[PatrolDetector].make(SEED), patrol_stream(SEED))
    assert [x[:4] for x in got if x[1] != "repeat"] == [
        (41, "major", "firing", "orange"),
        (121, "major", "firing", "orange"),
        (144, "major", "resolved", "orange"),  # 180 days without a report at that enterprise
        (145, "major", "firing", "orange"),
        (200, "major", "firing", "orange"),
        (222, "major", "resolved", "orange"),
        (230, "major", "resolved", "orange"),  # the planted rectified_on_site at enterprise 998
        (247, "major", "firing", "orange"),
        (312, "major", "firing", "red"),  # escalated
        (314, "cluster", "firing", "yellow"),  # the burst from 300 on
        (334, "major", "resolved", "orange"),
        (343, "cluster", "resolved", "yellow"),
        (347, "major", "firing", "orange"),
        (376, "major", "resolved", "orange"),
    ]
    assert [x[:4] for x in got if x[1] == "repeat" and x[4] == uscc(999)] == [
        (153, "repeat", "firing", "blue"),
        (156, "repeat", "firing", "yellow"),
        (159, "repeat", "firing", "orange"),
        (211, "repeat", "resolved", "orange"),
    ]
    assert len(got) == 91
