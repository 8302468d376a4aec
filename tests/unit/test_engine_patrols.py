"""Patrol reports through the engine: a major hazard warns the moment its report arrives."""

from __future__ import annotations

from test_patrol import T0, report

from detectors import DetectionEngine, EngineConfig, Outcome
from schemas import Level, WarningKind, default_catalogue, week_start


def test_a_major_hazard_warns_on_arrival_without_waiting_for_later_reports() -> None:
    engine = DetectionEngine(default_catalogue())
    outcome, warnings = engine.process_patrol(report(0, severity="major", action="suspended", hazard="lead"))
    assert outcome is Outcome.accepted
    assert [(w.kind, w.level, w.status.value) for w in warnings] == [(WarningKind.site, Level.red, "firing")]


def test_a_report_that_arrives_days_late_is_still_used_and_a_resubmission_is_not() -> None:
    cat = default_catalogue()
    engine = DetectionEngine(cat, EngineConfig(epoch=week_start(T0, cat.zone)))
    assert engine.process_patrol(report(20))[0] is Outcome.accepted
    late = report(3, severity="major")
    outcome, warnings = engine.process_patrol(late)
    assert outcome is Outcome.accepted
    assert [w.level for w in warnings] == [Level.orange]
    assert engine.process_patrol(late) == (Outcome.duplicate, [])
