"""Patrol detector: major hazards, repeated general hazards per enterprise, county clusters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from detectors import DetectionEngine
from detectors.patrol import PatrolDetector, poisson_tail
from schemas import (
    Level,
    PatrolReport,
    Scope,
    WarningKind,
    WarningStatus,
    default_catalogue,
    uscc_check_char,
    validation_context,
)

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2023, 1, 2, 10, tzinfo=ZONE)
CTX = validation_context(now=datetime(2030, 1, 1, tzinfo=ZONE))


def uscc(n: int) -> str:
    first = f"91653024MA{n:07d}"
    return first + uscc_check_char(first)


A, B, C = uscc(1), uscc(2), uscc(3)


def report(
    day: float,
    enterprise: str = A,
    severity: str = "general",
    action: str = "rectification_ordered",
    hazard: str = "labelling",
    **fields: Any,
) -> PatrolReport:
    data = {
        "id": fields.pop("id", f"p-{day:g}-{enterprise[-3:]}"),
        "patrolled_at": (T0 + timedelta(days=day)).isoformat(),
        "region": "653024",
        "industry": "food_processing",
        "enterprise_id": enterprise,
        "inspector_id": "insp-3",
        "hazard": hazard,
        "severity": severity,
        "action": action,
        **fields,
    }
    return PatrolReport.model_validate(data, context=CTX)


def detector(**hyper: Any) -> PatrolDetector:
    return PatrolDetector(region="653024", label="Wuqia County", industry_labels={}, item_labels={}, **hyper)


def rule(w: Any) -> str:
    return str((w.evidence.model_extra or {})["rule"])


def emissions(det: PatrolDetector, reports: list[PatrolReport]) -> list[tuple[str, str, str, str]]:
    out = []
    for r in reports:
        out += [(r.id, rule(w), w.status.value, w.level.value) for w in det.step(r)]
    return out


def test_poisson_tail() -> None:
    assert poisson_tail(0, 3.0) == 1.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 2.718281828459045**-2)


@pytest.mark.parametrize(
    ("action", "level"),
    [
        ("rectified_on_site", Level.orange),
        ("rectification_ordered", Level.orange),
        ("suspended", Level.red),
        ("escalated", Level.red),
    ],
)
def test_a_major_hazard_warns_at_once(action: str, level: Level) -> None:
    (w,) = detector().step(report(0, severity="major", action=action, hazard="aflatoxin_b1"))
    assert w.status is WarningStatus.firing and w.level is level
    assert w.kind is WarningKind.site and w.detector == "patrol"
    assert w.scope == Scope(region="653024", industry="food_processing", enterprise_id=A, item="aflatoxin_b1")
    assert w.evidence.record_ids == ["p-0-" + A[-3:]]
    assert "aflatoxin_b1" in w.summary and "Wuqia County" in w.summary


def test_a_second_major_at_the_enterprise_is_red() -> None:
    got = emissions(detector(), [report(0, severity="major", hazard="lead"), report(30, severity="major")])
    assert [g[3] for g in got] == ["orange", "red"]


def test_a_major_is_resolved_by_a_later_on_site_rectification() -> None:
    det = detector()
    got = emissions(
        det,
        [
            report(0, severity="major", action="rectified_on_site", hazard="lead"),  # does not clear itself
            report(5, B, action="rectified_on_site"),  # another enterprise: no effect
            report(10, action="rectified_on_site", hazard="moisture"),
        ],
    )
    assert got == [
        ("p-0-" + A[-3:], "major", "firing", "orange"),
        ("p-10-" + A[-3:], "major", "resolved", "orange"),
    ]


def test_a_major_without_news_is_closed_after_the_stale_period() -> None:
    got = emissions(detector(), [report(0, severity="major"), report(100, B), report(181, C)])
    assert got == [
        ("p-0-" + A[-3:], "major", "firing", "orange"),
        ("p-181-" + C[-3:], "major", "resolved", "orange"),
    ]


def test_a_resolution_lists_only_reports_at_its_enterprise() -> None:
    # a stale major, or a quiet repeat, is resolved by the county's next report, at another
    # enterprise: that report is no evidence of it, neither among the record ids nor in the counts
    det = detector()
    reports = [report(0, severity="major", hazard="lead"), report(100, B), report(181, C)]
    (stale,) = [w for r in reports for w in det.step(r) if w.status is WarningStatus.resolved]
    assert stale.evidence.record_ids == ["p-0-" + A[-3:]]
    assert (stale.evidence.tested, stale.evidence.failed) == (1, 1)
    det = detector()
    reports = [report(0), report(20), report(155, C)]
    (quiet,) = [w for r in reports for w in det.step(r) if w.status is WarningStatus.resolved]
    assert quiet.scope.enterprise_id == A
    assert quiet.evidence.record_ids == sorted(["p-0-" + A[-3:], "p-20-" + A[-3:]])
    # the report at the enterprise that cleared a major is evidence, and stays listed
    det = detector()
    reports = [report(0, severity="major", hazard="lead"), report(10, action="rectified_on_site")]
    (cleared,) = [w for r in reports for w in det.step(r) if w.status is WarningStatus.resolved]
    assert cleared.evidence.record_ids == sorted(["p-0-" + A[-3:], "p-10-" + A[-3:]])


def test_repeated_general_hazards_escalate_and_resolve_after_quiet_days() -> None:
    det = detector()
    reports = [report(0), report(20), report(40), report(60), report(70), report(155, B), report(161, C)]
    got = emissions(det, reports)
    assert got == [
        ("p-20-" + A[-3:], "repeat", "firing", "blue"),
        ("p-40-" + A[-3:], "repeat", "firing", "yellow"),
        ("p-60-" + A[-3:], "repeat", "firing", "orange"),
        ("p-161-" + C[-3:], "repeat", "resolved", "orange"),  # 90 days after the last hazard (day 70)
    ]
    assert det._repeats.keys() == {B, C}


def test_general_hazards_farther_apart_than_the_window_do_not_repeat() -> None:
    assert emissions(detector(), [report(0), report(91), report(182)]) == []


def test_repeat_evidence() -> None:
    det = detector()
    det.step(report(0, hazard="coliforms"))
    (w,) = det.step(report(10))
    assert w.scope == Scope(region="653024", industry="food_processing", enterprise_id=A)
    assert w.evidence.record_ids == sorted(["p-0-" + A[-3:], "p-10-" + A[-3:]])
    assert (w.evidence.model_extra or {})["hazards"] == ["coliforms", "labelling"]
    assert "2 general hazards" in w.summary


def test_summaries_name_the_industry_and_hazard_as_the_catalogue_does() -> None:
    # the engine builds the detector with the catalogue's names: summaries read them, scope and
    # evidence keep the keys (a hazard outside the catalogue is named as reported)
    engine = DetectionEngine(default_catalogue())
    reports = [
        report(0, severity="major", hazard="aflatoxin_b1"),
        report(1, enterprise=B, hazard="coliforms"),
        report(2, enterprise=B, hazard="spilt oil by the mixer"),
        report(3, action="rectified_on_site", id="p-fixed"),
    ]
    major, repeat, rectified = [w for r in reports for w in engine.process_patrol(r)[1]]
    assert major.summary.startswith(
        f"Major hazard Aflatoxin B1 黄曲霉毒素B1 at enterprise {A} "
        "(Wuqia County 乌恰县, Food processing 食品加工): action rectification_ordered"
    )
    assert major.scope.item == "aflatoxin_b1" and major.scope.industry == "food_processing"
    free_text = reports[2].hazard  # as the record keeps it
    assert repeat.summary.startswith(
        f"Enterprise {B} (Wuqia County 乌恰县, Food processing 食品加工): 2 general hazards within 90 days "
        f"(Coliforms 大肠菌群, {free_text})"
    )
    assert (repeat.evidence.model_extra or {})["hazards"] == ["coliforms", free_text]
    assert rectified.status is WarningStatus.resolved
    assert rectified.summary.startswith("Major hazard Aflatoxin B1 黄曲霉毒素B1 at enterprise")
    assert all("\n" not in w.summary for w in (major, repeat, rectified))


def background(days: int, *, every: float = 7.0, start: float = 0.0) -> list[PatrolReport]:
    """One general hazard every ``every`` days, each at a different enterprise."""
    out = []
    k = 0
    while start + k * every < start + days:
        out.append(report(start + k * every, uscc(100 + k), id=f"bg-{start + k * every:g}"))
        k += 1
    return out


def test_a_cluster_of_general_hazards_warns_the_county_and_resolves() -> None:
    det = detector()
    quiet = background(140)
    burst = [report(141 + i * 0.5, uscc(500 + i), id=f"burst-{i}") for i in range(12)]
    after = background(90, start=200)
    got = [g for g in emissions(det, quiet + burst + after) if g[1] == "cluster"]
    assert [g[2:] for g in got] == [("firing", "yellow"), ("resolved", "yellow")]
    assert got[0][0].startswith("burst-")
    det2 = detector()
    for r in quiet + burst:
        fired = [w for w in det2.step(r) if rule(w) == "cluster"]
        if fired:
            (w,) = fired
            assert w.scope == Scope(region="653024")
            assert w.evidence.p_value is not None and w.evidence.p_value <= 0.001
            assert w.evidence.statistic is not None and w.evidence.statistic >= 5
            assert len(w.evidence.record_ids) == w.evidence.failed
            break
    else:
        pytest.fail("the burst did not fire")


def test_no_cluster_before_enough_history() -> None:
    det = detector()
    burst = [report(10 + i * 0.2, uscc(500 + i), id=f"burst-{i}") for i in range(20)]
    assert [g for g in emissions(det, background(10) + burst) if g[1] == "cluster"] == []


def test_reports_during_a_cluster_stay_out_of_the_baseline() -> None:
    det = detector()
    for r in background(140):
        det.step(r)
    for i in range(15):
        det.step(report(141 + i * 0.3, uscc(500 + i), id=f"burst-{i}"))
    assert det._cluster_firing
    counted = [c for _, rid, c in det._general if rid.startswith("burst-")]
    tipped = counted.index(False)
    assert tipped > 0 and counted == [True] * tipped + [False] * (15 - tipped)


def test_fingerprints_differ_per_rule() -> None:
    det = detector()
    major = det.step(report(0, severity="major"))
    det.step(report(1))
    rep = det.step(report(2))
    assert major[0].fingerprint != rep[0].fingerprint


def test_state_is_bounded() -> None:
    det = detector()
    for r in background(1500, every=1.0):
        det.step(r)
    assert len(det._general) <= 28 + 364 + 1
    assert len(det._repeats) <= 91
